"""robots.txt for article pages (RFC 9309), fetched through the same guarded,
polite fetcher and cached per host.

Feeds themselves are meant to be polled by readers; the pages they link to
are what a publisher may keep robots away from. A robots.txt that does not
exist (4xx) allows everything; one the server fails to give (5xx, network
error) disallows everything for a while, as the RFC asks, so the feed's own
text is used meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from monitor.fetch import Fetcher, FetchError

AGENT = "news-monitor"
TTL_OK = 24 * 3600.0
TTL_UNREACHABLE = 3600.0
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: at least 500 KiB must be parsed


class RobotsCache:
    def __init__(self, fetcher: Fetcher, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetcher = fetcher
        self.clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[float, RobotFileParser | bool]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        with self._lock:
            cached = self._rules.get(origin)
            loading = self._loading.setdefault(origin, threading.Lock())
        if cached is None or cached[0] < self.clock():
            with loading:  # one fetch per origin, however many feeds wait for it
                with self._lock:
                    cached = self._rules.get(origin)
                if cached is None or cached[0] < self.clock():
                    cached = self._load(origin)
                    with self._lock:
                        self._rules[origin] = cached
        rules = cached[1]
        if isinstance(rules, bool):
            return rules
        return rules.can_fetch(AGENT, url)

    def _load(self, origin: str) -> tuple[float, RobotFileParser | bool]:
        now = self.clock()
        try:
            resp = self.fetcher.get(origin + "/robots.txt", {"Accept": "text/plain"})
        except FetchError:
            return now + TTL_UNREACHABLE, False
        if 400 <= resp.status < 500:
            return now + TTL_OK, True
        if resp.status != 200:
            return now + TTL_UNREACHABLE, False
        parser = RobotFileParser()
        parser.parse(resp.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace").splitlines())
        return now + TTL_OK, parser
