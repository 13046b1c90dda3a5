"""SIGHUP re-reads feeds.toml without a restart (issue 9): new feeds and rules
take effect, removed feeds stop; a file that does not load keeps the old
configuration, and the log says why (file and line)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from newssite import NewsSite, config_toml

SITECUSTOM = str(Path(__file__).parent / "sitecustom")

pytestmark = pytest.mark.slow


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return list(conn.execute(sql).fetchall())
    except sqlite3.OperationalError:  # not created yet
        return []


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_sighup_reloads_feeds_and_rules_and_keeps_a_broken_file_out(tmp_path: Path, site: NewsSite) -> None:
    cfg, db, log = tmp_path / "feeds.toml", tmp_path / "monitor.db", tmp_path / "run.log"
    first = config_toml("sqlite:///monitor.db", {"quotidien-fr": site.rss_url}, rules="")
    cfg.write_text(first, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        polled = "SELECT name FROM feeds WHERE last_polled_at IS NOT NULL"
        assert wait_for(lambda: query(db, polled) == [("quotidien-fr",)]), log.read_text()
        assert query(db, "SELECT count(*) FROM matches") == [(0,)]  # no rules yet

        # A typo: the old configuration stays, and the log names the file and line.
        cfg.write_text(first + '\n[[feeds]]\nname = "broken"\nurl = "ftp://nowhere"\n', encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "keeping the running configuration" in log.read_text()), log.read_text()
        assert "feeds.toml:" in log.read_text() and "broken" in log.read_text()
        assert query(db, "SELECT name FROM feeds WHERE name = 'broken'") == []

        # The world wire replaces the French feed, and rules arrive.
        cfg.write_text(config_toml("sqlite:///monitor.db", {"world-wire": site.atom_url}), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: ("world-wire",) in query(db, polled)), log.read_text()
        assert query(db, "SELECT status FROM feeds WHERE name = 'quotidien-fr'") == [("removed",)]
        assert wait_for(lambda: query(db, "SELECT count(*) FROM matches") != [(0,)]), log.read_text()
        assert "SIGHUP: reloaded" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
