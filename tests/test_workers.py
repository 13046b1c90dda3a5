"""Extraction in worker processes gives what extraction in the thread gives, and survives a dead worker."""

from __future__ import annotations

import os
import signal

from newssite import ARTICLES, FIXTURES

from monitor.config import parse_config
from monitor.workers import ExtractPool


def test_pool_and_thread_agree_and_a_killed_worker_is_replaced() -> None:
    pages = [((FIXTURES / a["file"]).read_bytes(), a["canonical"]) for a in ARTICLES.values()]
    here = ExtractPool(0)
    pool = ExtractPool(2)
    try:
        assert [pool.extract(h, u) for h, u in pages] == [here.extract(h, u) for h, u in pages]
        pool_pids = list(pool._get()._processes)  # noqa: SLF001 - the test kills a worker on purpose
        os.kill(pool_pids[0], signal.SIGKILL)
        results = [pool.extract(h, u) for h, u in pages]  # the first may find the pool broken
        assert results == [here.extract(h, u) for h, u in pages]
    finally:
        pool.close()


def test_processes_setting() -> None:
    base = "[alerts.console]\n"
    assert parse_config(base, "f.toml", {}).extract.processes is None
    assert parse_config(base + "[extract]\nprocesses = 0\n", "f.toml", {}).extract.processes == 0
    import pytest

    from monitor.config import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_config(base + "[extract]\nprocesses = -1\nthreads = 2\n", "f.toml", {})
    text = "\n".join(err.value.problems)
    assert "extract.processes: must be an integer of at least 0" in text and "extract.threads: unknown key" in text
