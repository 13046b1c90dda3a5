"""robots.txt for article pages (RFC 9309), fetched through the same guarded,
polite fetcher and cached per host.

Feeds themselves are meant to be polled by readers; the pages they link to
are what a publisher may keep robots away from. A robots.txt that does not
exist (4xx) allows everything; one the server fails to give (5xx, network
error) disallows everything for ten minutes, as the RFC asks, so the feed's
own text is used meanwhile. Only the entry's own URL is checked, not the
hops it redirects through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from protego import Protego

from monitor.fetch import Fetcher, FetchError

AGENT = "news-monitor"
TTL_OK = 24 * 3600.0
TTL_UNREACHABLE = 600.0
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: at least 500 KiB must be parsed


class RobotsCache:
    def __init__(self, fetcher: Fetcher, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetcher = fetcher
        self.clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[float, Protego | bool]] = {}
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
        return bool(rules.can_fetch(url, AGENT))

    def _load(self, origin: str) -> tuple[float, Protego | bool]:
        now = self.clock()
        try:
            resp = self.fetcher.get(origin + "/robots.txt", {"Accept": "text/plain"}, spaced=False)
        except FetchError as exc:
            # Unreachable: disallowed (RFC 9309 2.3.1.4), but asked again soon; a host
            # that told us to slow down is asked again when it allows.
            ttl = exc.retry_after if exc.kind == "rate_limited" and exc.retry_after else TTL_UNREACHABLE
            return now + ttl, False
        if 400 <= resp.status < 500:
            return now + TTL_OK, True
        if resp.status != 200:
            return now + TTL_UNREACHABLE, False
        # Longest match wins, with * and $ (RFC 9309 2.2.2): protego, not urllib.robotparser.
        return now + TTL_OK, Protego.parse(resp.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"))
