"""Per-host politeness: how many requests at once and how often, per host.

Every request (feeds and article pages, each redirect hop) takes a slot
for its host: at most `per_host_concurrency` at once, starts at least
`per_host_delay` seconds apart. A host that answered 429 or 503 with a
valid `Retry-After` is blocked for that long: its other feeds wait too,
and hosts that did nothing wrong are not slowed down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class HostLimiter:
    def __init__(
        self,
        per_host_concurrency: int = 1,
        per_host_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_host_concurrency = per_host_concurrency
        self.per_host_delay = per_host_delay
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}
        self._penalties: dict[str, int] = {}

    def _slot(self, host: str) -> threading.Semaphore:
        with self._lock:
            sem = self._slots.get(host)
            if sem is None:
                sem = self._slots[host] = threading.Semaphore(self.per_host_concurrency)
            return sem

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of the host's request slots, after waiting its turn."""
        host = host.lower()
        sem = self._slot(host)
        sem.acquire()
        try:
            with self._lock:
                now = self.clock()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + self.per_host_delay
            if start > now:
                self.sleep(start - now)
            yield
        finally:
            sem.release()

    def block(self, host: str, seconds: float) -> None:
        """No request to `host` for `seconds` (its Retry-After)."""
        with self._lock:
            until = self.clock() + seconds
            self._blocked_until[host.lower()] = max(until, self._blocked_until.get(host.lower(), 0.0))

    def blocked_for(self, host: str) -> float:
        """Seconds `host` remains blocked, 0 if it is not."""
        with self._lock:
            until = self._blocked_until.get(host.lower())
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._blocked_until[host.lower()]
                return 0.0
            return left

    def penalize(self, host: str, base: float = 60.0, cap: float = 3600.0) -> float:
        """A 429/503 without a usable Retry-After: block the host for an
        exponentially growing time (60 s, 120 s, ... up to an hour)."""
        with self._lock:
            n = self._penalties.get(host.lower(), 0)
            self._penalties[host.lower()] = n + 1
        seconds = min(cap, base * 2.0 ** min(n, 16))
        self.block(host, seconds)
        return seconds

    def forgive(self, host: str) -> None:
        """The host answered normally: its next 429 starts the backoff afresh."""
        if self._penalties:
            with self._lock:
                self._penalties.pop(host.lower(), None)
