"""Extraction in worker processes.

Extraction is the most expensive step per article and pure CPU: in the
polling threads it would hold the GIL and use one core. A process pool sized
to the machine lets every core extract while the threads keep fetching.
`processes = 0` extracts in the calling thread (small machines, tests).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from monitor.extract import Article, extract_article
from monitor.language import detect_language

log = logging.getLogger(__name__)


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def timed_extract(html: bytes, url: str, title: str | None) -> tuple[Article, dict[str, float]]:
    """Extraction, language detection on the title and the page text (here,
    so that the polling process keeps its core for fetching and storage),
    and the CPU seconds of each, wherever they ran."""
    start = time.process_time()
    article = extract_article(html, url)
    extracted = time.process_time()
    if article.text:
        article = replace(article, detected=detect_language(f"{title or article.title or ''}\n{article.text}"))
    return article, {"extract": extracted - start, "language": time.process_time() - extracted}


def warm_up() -> None:
    """Load what extraction needs (trafilatura, justext's stop words,
    langdetect's profiles: a second of CPU) before the first page arrives,
    not while it waits."""
    extract_article(b"<html><body><article><p>warm</p></article></body></html>", "http://localhost/")
    detect_language("warm up")
    # What is loaded now lives as long as the process (langdetect's profiles alone are a
    # list per n-gram, 88,000 lists): the collector's full passes need not walk it again.
    gc.freeze()
    time.sleep(0.2)  # hold this worker so that the next warm-up task goes to another


class ExtractPool:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.on_cpu: Callable[[str, float], None] | None = None  # told the CPU seconds of each stage it ran
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: never fork a process whose threads may hold locks.
                self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("forkserver"))
            return self._pool

    def start(self) -> None:
        """Start every worker now and let each load its libraries."""
        if self.processes > 0 and self._pool is None:
            pool = self._get()
            for future in [pool.submit(warm_up) for _ in range(self.processes)]:
                future.result()

    def extract(self, html: bytes, url: str, title: str | None = None) -> Article:
        """The page's article; `title` (the feed's) joins the text for language detection."""
        if self.processes <= 0:
            article, cpu = timed_extract(html, url, title)
        else:
            try:
                article, cpu = self._get().submit(timed_extract, html, url, title).result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh, extract here this time
                log.warning("extraction worker died; restarting the pool")
                with self._lock:
                    self._pool = None
                article, cpu = timed_extract(html, url, title)
        if self.on_cpu is not None:
            for stage, seconds in cpu.items():
                self.on_cpu(stage, seconds)
        return article

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
