"""Per-host politeness: how many requests at once and how often, per host.

Every request (feeds and article pages, each redirect hop) takes a slot
for its host: at most `per_host_concurrency` at once, starts at least
`per_host_delay` seconds apart. A host that answered 429 or 503 with a
valid `Retry-After` is blocked for that long: its other feeds wait too,
and hosts that did nothing wrong are not slowed down.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


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
    def slot(self, host: str, spaced: bool = True) -> Iterator[None]:
        """Hold one of the host's request slots, after waiting its turn. An
        unspaced request (robots.txt, the protocol's own preflight) neither
        waits for the delay nor delays the request it precedes."""
        host = host.lower()
        sem = self._slot(host)
        sem.acquire()
        try:
            start = now = self.clock()
            if spaced:
                with self._lock:
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

    def ready_at(self, host: str) -> float:
        """When the host may next be asked, as far as the delay goes. A host that
        asked us to wait is not waited for here: its requests fail at once (and
        their feeds are rescheduled), which takes no worker's time."""
        with self._lock:
            return self._next_start.get(host.lower(), 0.0)


class HostQueue(Generic[T]):
    """Due work handed to workers host by host, always from a host that may be
    asked now: workers never sleep through one host's delay while another host
    waits, and a publisher with many feeds occupies at most
    `per_host_concurrency` workers.
    """

    def __init__(
        self, items: Iterable[tuple[str, T]], limiter: HostLimiter, per_host: int, stop: threading.Event | None = None
    ) -> None:
        self.limiter = limiter
        self.per_host = per_host
        self.stop = stop or threading.Event()
        self._pending: dict[str, deque[T]] = {}
        for host, item in items:  # in due order
            self._pending.setdefault(host.lower(), deque()).append(item)
        self._busy: dict[str, int] = {}
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, str]] = []
        self._queued: set[str] = set()
        for host in self._pending:
            self._queue(host)
        self._cond = threading.Condition()

    def _queue(self, host: str) -> None:
        if host not in self._queued and self._pending[host] and self._busy.get(host, 0) < self.per_host:
            heapq.heappush(self._heap, (self.limiter.ready_at(host), next(self._seq), host))
            self._queued.add(host)

    def take(self) -> tuple[str, T] | None:
        """The next item, waiting for its host's turn; None when all are taken or we stop."""
        with self._cond:
            while not self.stop.is_set():
                if not self._heap:
                    if not any(self._pending.values()):
                        return None
                    self._cond.wait(0.5)  # every host with work is busy: wait for one to be done
                    continue
                ready, _, host = self._heap[0]
                wait = ready - self.limiter.clock()
                if wait > 0:
                    self._cond.wait(min(wait, 0.5))
                    continue
                heapq.heappop(self._heap)
                self._queued.discard(host)
                item = self._pending[host].popleft()
                self._busy[host] = self._busy.get(host, 0) + 1
                self._queue(host)
                return host, item
            return None

    def done(self, host: str) -> None:
        with self._cond:
            self._busy[host] -= 1
            self._queue(host)
            self._cond.notify_all()
