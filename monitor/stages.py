"""CPU time per pipeline stage, for the ingest benchmark and for operators
who want to know where the time goes. Thread CPU time (`time.thread_time`),
so concurrent workers do not count each other; extraction in worker
processes reports its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("fetch", "parse", "extract", "language", "dedupe", "match", "store")


class Stages:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.thread_time() - start)
