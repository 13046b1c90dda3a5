"""Prometheus metrics: `[metrics] listen = "127.0.0.1:9464"` serves `/metrics`,
`/healthz` (the process and the database answer, and the scheduler ticked
within `heartbeat_max_age`) and `/readyz` (the database answers).

Without `listen`, every `observe_*` call is a no-op, so the poll loop can
call them unconditionally. Counters live in one registry per
`Metrics` (the tests make their own); the daemon's is the module's current
one, set by `serve`.

What is counted (names as Prometheus shows them):

- `monitor_polls_total{outcome}`: feed polls by outcome (ok, not_modified,
  unchanged, error, gone); `monitor_poll_seconds`: how long a feed's poll took
  (fetch, and the processing of its new entries);
- `monitor_fetch_seconds`: how long fetching a feed document took;
- `monitor_articles_ingested_total`: new items stored;
- `monitor_duplicates_total{layer}`: entries found to be copies, by dedupe
  layer (guid, url, canonical, content, near);
- `monitor_matches_total{rule}`: matches recorded per rule;
- `monitor_deliveries_total{channel,status}`: delivery outcomes (sent, retry,
  dead) per channel; `monitor_delivery_lag_seconds`: from queued to accepted;
- computed from the database at each scrape: `monitor_oldest_pending_delivery_seconds`
  (age of the oldest pending or sending alert, 0 when none) and
  `monitor_feeds{status}` (feeds per status, paused counted apart) and
  `monitor_stories`. The conditional-hit ratio is
  `monitor_polls_total{outcome=~"not_modified|unchanged"}` over all polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, func, select, text

from monitor.config import MetricsConfig

log = logging.getLogger(__name__)

try:
    import prometheus_client  # type: ignore[import-not-found, unused-ignore]
    from prometheus_client.core import GaugeMetricFamily  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # optional dependency
    prometheus_client = None  # type: ignore[assignment]


def available() -> bool:
    return prometheus_client is not None


class _DatabaseCollector:
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from storage.models import Delivery, Feed, Story

        d, f = Delivery.__table__.c, Feed.__table__.c  # type: ignore[attr-defined]
        story_table = Story.__table__  # type: ignore[attr-defined]
        oldest = GaugeMetricFamily(
            "monitor_oldest_pending_delivery_seconds", "Age of the oldest pending or sending alert (0: none)"
        )
        feeds = GaugeMetricFamily("monitor_feeds", "Feeds per status (paused feeds as 'paused')", labels=["status"])
        stories = GaugeMetricFamily("monitor_stories", "Stories stored")
        try:
            with self.engine.connect() as conn:
                first = conn.execute(
                    select(func.min(d.created_at)).where(d.status.in_(["pending", "sending"]))
                ).scalar()
                by_status = conn.execute(
                    select(f.status, f.paused_at.is_not(None), func.count()).group_by(
                        f.status, f.paused_at.is_not(None)
                    )
                ).all()
                n_stories = conn.execute(select(func.count()).select_from(story_table)).scalar() or 0
        except Exception:  # a scrape must not fail because the database does: /readyz says so
            log.warning("metrics: cannot read the database", exc_info=True)
            return
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            oldest.add_metric([], max(0.0, (datetime.now(UTC) - first).total_seconds()))
        else:
            oldest.add_metric([], 0.0)
        counts: dict[str, int] = {}
        for status, paused, n in by_status:
            key = "paused" if paused else status
            counts[key] = counts.get(key, 0) + n
        for status, n in sorted(counts.items()):
            feeds.add_metric([status], n)
        stories.add_metric([], n_stories)
        yield oldest
        yield feeds
        yield stories


class Metrics:
    """The counters of one process, in a registry of their own."""

    def __init__(self, engine: Engine | None = None, max_tick_age: float = 900.0) -> None:
        if prometheus_client is None:
            raise RuntimeError("metrics need prometheus_client: pip install 'news-monitor[metrics]'")
        pc = prometheus_client
        self.registry = pc.CollectorRegistry()
        self.engine = engine
        self.last_tick: float | None = None  # time.monotonic() of the scheduler's last tick
        self.max_tick_age = max_tick_age
        r = self.registry
        self.polls = pc.Counter("monitor_polls", "Feed polls by outcome", ["outcome"], registry=r)
        self.poll_seconds = pc.Histogram(
            "monitor_poll_seconds",
            "Time to poll one feed (fetch and process)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.fetch_seconds = pc.Histogram(
            "monitor_fetch_seconds",
            "Time to fetch a feed document (one request and its redirects)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.delivery_lag = pc.Histogram(
            "monitor_delivery_lag_seconds",
            "From an alert being queued to its channel accepting it",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )
        self.articles = pc.Counter("monitor_articles_ingested", "New items stored", registry=r)
        self.duplicates = pc.Counter(
            "monitor_duplicates", "Entries found to be copies, by layer", ["layer"], registry=r
        )
        self.matches = pc.Counter("monitor_matches", "Matches recorded, by rule", ["rule"], registry=r)
        self.deliveries = pc.Counter(
            "monitor_deliveries", "Delivery outcomes by channel and status", ["channel", "status"], registry=r
        )
        if engine is not None:
            r.register(_DatabaseCollector(engine))

    def exposition(self) -> bytes:
        assert prometheus_client is not None
        return bytes(prometheus_client.generate_latest(self.registry))

    def healthy(self) -> tuple[bool, str]:
        """/healthz: the process answers, the database too, and the scheduler ticked
        within `max_tick_age` seconds (once it has started ticking)."""
        ok, reason = self.ready()
        if not ok:
            return ok, reason
        if self.last_tick is not None:
            age = time.monotonic() - self.last_tick
            if age > self.max_tick_age:
                return False, f"last tick {age:.0f}s ago (more than {self.max_tick_age:.0f}s): the scheduler is stuck"
            return True, f"{reason}; last tick {age:.0f}s ago"
        return True, f"{reason}; no tick yet"

    def ready(self) -> tuple[bool, str]:
        if self.engine is None:
            return True, "no database to check"
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1")).all()
        except Exception as exc:
            return False, f"database: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
        return True, "database answers"


_current: Metrics | None = None


def observe_poll(outcome: str, seconds: float, new_items: int = 0) -> None:
    """One feed polled: its outcome (PollReport.status), duration and new items."""
    if _current is not None:
        _current.polls.labels(outcome).inc()
        _current.poll_seconds.observe(seconds)
        if new_items:
            _current.articles.inc(new_items)


def observe_duplicate(layer: str) -> None:
    """An entry found to be a copy, by dedupe layer (guid, url, canonical, content, near)."""
    if _current is not None:
        _current.duplicates.labels(layer).inc()


def observe_match(rule: str) -> None:
    if _current is not None:
        _current.matches.labels(rule).inc()


def observe_delivery(channel: str, status: str, lag: float | None = None) -> None:
    """A delivery's outcome on a channel: sent, retry or dead; `lag`, for a sent one,
    the seconds since it was queued."""
    if _current is not None:
        _current.deliveries.labels(channel, status).inc()
        if lag is not None:
            _current.delivery_lag.observe(max(0.0, lag))


def observe_tick() -> None:
    """The scheduler ticked (for /healthz)."""
    if _current is not None:
        _current.last_tick = time.monotonic()


def observe_fetch(seconds: float) -> None:
    """One feed document fetched (whatever the answer)."""
    if _current is not None:
        _current.fetch_seconds.observe(seconds)


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, self.metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/healthz":
            ok, reason = self.metrics.healthy()
            self._reply(200 if ok else 503, (reason + "\n").encode())
        elif path == "/readyz":
            ok, reason = self.metrics.ready()
            self._reply(200 if ok else 503, (reason + "\n").encode())
        else:
            self._reply(404, b"not found: /metrics, /healthz, /readyz\n")

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class MetricsServer:
    """The HTTP endpoint, in a daemon thread; `close()` stops it."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        handler = type("Handler", (_Handler,), {"metrics": metrics})
        self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        self.httpd.daemon_threads = True
        self.metrics = metrics
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        global _current
        self.httpd.shutdown()
        self.httpd.server_close()
        if _current is self.metrics:
            _current = None


def serve(config: MetricsConfig, engine: Engine | None, listen: str | None = None) -> MetricsServer | None:
    """Start the endpoint when `[metrics] listen` is set (or `listen` given) and make
    its counters the ones `observe_*` feed. None when off or prometheus_client is missing."""
    global _current
    where = listen or config.listen
    if not where:
        return None
    if not available():
        log.error("[metrics] listen = %r: prometheus_client is not installed; no metrics served", where)
        return None
    metrics = Metrics(engine, max_tick_age=config.heartbeat_max_age)
    server = MetricsServer(metrics, where)
    _current = metrics
    log.info("metrics on http://%s/metrics", server.address)
    return server
