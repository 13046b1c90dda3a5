"""Extraction in worker processes.

Extraction is the most expensive step per article and pure CPU: in the
polling threads it would hold the GIL and use one core. A process pool sized
to the machine lets every core extract while the threads keep fetching.
`processes = 0` extracts in the calling thread (small machines, tests).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from monitor.extract import Article, extract_article

log = logging.getLogger(__name__)


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def timed_extract(html: bytes, url: str) -> tuple[Article, float]:
    """Extraction and the CPU seconds it took, wherever it ran."""
    start = time.process_time()
    article = extract_article(html, url)
    return article, time.process_time() - start


class ExtractPool:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.on_cpu: Callable[[float], None] | None = None  # told the CPU seconds of each extraction
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: never fork a process whose threads may hold locks.
                self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("forkserver"))
            return self._pool

    def extract(self, html: bytes, url: str) -> Article:
        if self.processes <= 0:
            article, cpu = timed_extract(html, url)
        else:
            try:
                article, cpu = self._get().submit(timed_extract, html, url).result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh, extract here this time
                log.warning("extraction worker died; restarting the pool")
                with self._lock:
                    self._pool = None
                article, cpu = timed_extract(html, url)
        if self.on_cpu is not None:
            self.on_cpu(cpu)
        return article

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
