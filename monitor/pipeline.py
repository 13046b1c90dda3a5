"""One poll of one feed, from HTTP to outbox: the flow
feed -> entries -> articles -> items -> matches -> deliveries.

The feed's caching state (ETag, Last-Modified, body hash) is saved only
after every entry has been processed: a poll cut short (SIGTERM, crash)
leaves the feed looking changed, so the next poll sees the rest of it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from monitor.config import ScheduleConfig
from monitor.dedupe import Known, entry_url, known_article, known_entry
from monitor.extract import Article, choose_text
from monitor.fetch import NETWORK_KINDS, Fetcher, FetchError
from monitor.language import choose_language
from monitor.parse import Entry, parse_feed
from monitor.robots import RobotsCache
from monitor.rules import CompiledRule, match_rules
from monitor.schedule import (
    adaptive_interval,
    after_error,
    after_success,
    entry_gap,
    is_stale,
    server_floor,
    smooth_gap,
)
from monitor.stages import Stages
from monitor.text import content_hash
from monitor.workers import ExtractPool
from storage.models import Feed, utcnow
from storage.repository import MatchRecord, NewItem, PollRecord, Store

log = logging.getLogger(__name__)

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
MAX_ENTRIES = 1000  # per poll; a feed of 50,000 entries is read in part, not refused
MAX_TITLE = 1000  # a 1 MB <title> is an attack or a bug, not a headline


def validator(value: str | None) -> str | None:
    """An ETag or Last-Modified we can send back: printable ASCII, bounded.
    Anything else (a server sending "café") would break every later request."""
    if value is None or len(value) > 512 or not all(" " <= c <= "~" for c in value):
        return None
    return value


def newest_first(entries: list[Entry]) -> list[Entry]:
    """Feeds list newest first, but not all of them: when only part of a long
    feed is read, it must be the newest part. Undated entries keep their place."""
    if not any(e.published_at or e.updated_at for e in entries):
        return entries
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: e.published_at or e.updated_at or floor, reverse=True)


def clip(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


EntryOutcome = Literal["new", "known", "failed"]


@dataclass
class PollReport:
    feed: str
    status: str  # ok | not_modified | unchanged | error | gone
    entries: int = 0
    new_items: int = 0
    known: int = 0
    failed: int = 0
    error: str | None = None
    error_kind: str | None = None  # a FetchError kind, "http" or "parse"
    interrupted: bool = False
    feed_id: int | None = None


class Pipeline:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        rules: Sequence[CompiledRule],
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        schedule: ScheduleConfig | None = None,
        extractor: ExtractPool | None = None,
    ) -> None:
        self.stages = Stages()
        self.extractor = extractor or ExtractPool(0)
        self.extractor.on_cpu = self.stages.add
        self.schedule = schedule or ScheduleConfig()
        self.robots = RobotsCache(fetcher) if fetcher.config.robots else None
        self.store = store
        self.fetcher = fetcher
        self.rules = list(rules)
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self._insert_lock = threading.Lock()

    # -- feed level ----------------------------------------------------------

    def poll(self, feed: Feed) -> PollReport:
        assert feed.id is not None
        now = utcnow()
        headers = {"Accept": FEED_ACCEPT}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        try:
            with self.stages.timed("fetch"):
                resp = self.fetcher.get(feed.current_url, headers)
        except FetchError as exc:
            return self._error(feed, now, f"{exc.kind}: {exc}", exc.kind, retry_after=exc.retry_after)
        if resp.moved_to and resp.moved_to != feed.current_url:
            log.warning("feed %s: moved permanently to %s (polled there from now on)", feed.name, resp.moved_to)
        if resp.status in (429, 503):
            hint = f", Retry-After {resp.headers['retry-after']!r}" if "retry-after" in resp.headers else ""
            return self._error(
                feed, now, f"http: HTTP {resp.status} from {resp.url}{hint}", "http", retry_after=resp.retry_after
            )
        if resp.status == 304:
            self._success(feed, now, "not_modified", server_floor(resp.headers, now), moved_to=resp.moved_to)
            return PollReport(feed.name, "not_modified")
        if resp.status == 410:
            self._success(feed, now, "gone", 0.0, error="HTTP 410 Gone: the publisher removed this feed")
            log.warning("feed %s: HTTP 410 Gone, no longer polled (fix its url in feeds.toml)", feed.name)
            return PollReport(feed.name, "gone", error="HTTP 410 Gone")
        if resp.status >= 400 or resp.status < 200:
            return self._error(feed, now, f"http: HTTP {resp.status} from {resp.url}", "http")
        cache: dict[str, Any] = dict(
            etag=validator(resp.headers.get("etag")),
            last_modified=validator(resp.headers.get("last-modified")),
            body_hash=hashlib.sha256(resp.body).hexdigest(),
            moved_to=resp.moved_to,
        )
        if feed.body_hash == cache["body_hash"]:  # many servers ignore validators
            self._success(feed, now, "unchanged", server_floor(resp.headers, now), save_cache=True, **cache)
            return PollReport(feed.name, "unchanged")
        with self.stages.timed("parse"):
            parsed = parse_feed(resp.body, resp.url, resp.headers)
        if not parsed.entries and (parsed.bozo or parsed.version is None):
            why = parsed.bozo or "no RSS or Atom content"
            kind = resp.content_type or "no content type"
            return self._error(feed, now, f"parse: not a usable feed ({kind}): {why}", "parse")
        if parsed.bozo:
            log.info("feed %s: ill-formed but usable (%s)", feed.name, parsed.bozo)
        entries = newest_first(parsed.entries)[:MAX_ENTRIES]
        if len(parsed.entries) > MAX_ENTRIES:
            log.warning("feed %s: %d entries, only the first %d are read", feed.name, len(parsed.entries), MAX_ENTRIES)
        report = PollReport(feed.name, "ok", entries=len(entries))
        # Oldest first, so items are stored (and alerts sent) in publication order.
        for entry in reversed(entries):
            if self.stop.is_set():
                report.interrupted = True
                break
            outcome = self.process_entry(feed, entry)
            if outcome == "new":
                report.new_items += 1
            elif outcome == "known":
                report.known += 1
            else:
                report.failed += 1
        dates = [d for e in entries if (d := e.published_at or e.updated_at) is not None and d <= now]
        complete = not report.interrupted and report.failed == 0
        self._success(
            feed,
            now,
            "ok",
            server_floor(resp.headers, now, parsed.ttl),
            save_cache=complete,
            gap=entry_gap(dates),
            newest=max(dates, default=None),
            **cache,
        )
        log.info(
            "feed %s: %d entries, %d new, %d known, %d failed%s",
            feed.name,
            report.entries,
            report.new_items,
            report.known,
            report.failed,
            " (interrupted)" if report.interrupted else "",
        )
        return report

    def _success(
        self,
        feed: Feed,
        now: datetime,
        status: str,
        floor: float,
        gap: float | None = None,
        newest: datetime | None = None,
        **record: Any,
    ) -> None:
        """Record an answered poll; the next one comes at the feed's adapted interval."""
        assert feed.id is not None
        avg_gap = smooth_gap(feed.avg_entry_gap, gap)
        last_entry = max((d for d in (feed.last_entry_at, newest) if d is not None), default=None)
        s = self.schedule
        interval = adaptive_interval(
            avg_gap, feed.configured_interval, s.default_interval, s.min_interval, s.max_interval
        )
        stale = status != "gone" and is_stale(now, last_entry, avg_gap)
        if stale and feed.status != "stale":
            log.warning(
                "feed %s: stale: nothing new since %s, ten times its usual gap",
                feed.name,
                last_entry.isoformat(timespec="minutes") if last_entry else "?",
            )
        # A poll cut short (stop, failed entries) comes back soon for the rest.
        incomplete = status == "ok" and not record.get("save_cache")
        wait = min(interval, s.min_interval) if incomplete else interval
        self.store.record_poll(
            feed.id,
            PollRecord(
                status,
                after_success(now, wait, self.rng, floor),
                interval_seconds=interval,
                avg_entry_gap=avg_gap,
                last_entry_at=newest,
                stale=stale,
                **record,
            ),
            now,
        )

    def record_crash(self, feed: Feed, exc: Exception) -> PollReport:
        """A poll that raised: recorded as an error with backoff, so a feed that
        trips a bug is retried later, not every tick."""
        return self._error(feed, utcnow(), f"internal: {type(exc).__name__}: {exc}", "internal")

    def _error(
        self, feed: Feed, now: datetime, message: str, kind: str, retry_after: float | None = None
    ) -> PollReport:
        assert feed.id is not None
        when = after_error(
            now,
            feed.interval_seconds,
            feed.error_count + 1,
            self.rng,
            self.schedule.max_interval,
            retry_after=retry_after,
        )
        self.store.record_poll(feed.id, PollRecord("error", when, error=message), now)
        if kind not in NETWORK_KINDS:  # those are logged by the caller, who sees all feeds at once
            log.warning("feed %s: %s (retry at %s)", feed.name, message, when.isoformat(timespec="seconds"))
        return PollReport(feed.name, "error", error=message, error_kind=kind, feed_id=feed.id)

    # -- entry level -----------------------------------------------------------

    def process_entry(self, feed: Feed, entry: Entry) -> EntryOutcome:
        assert feed.id is not None
        url = entry_url(entry, feed.current_url)
        with self.stages.timed("dedupe"):
            known = known_entry(self.store, feed.id, entry, url)
        if known is not None:
            with self.stages.timed("store"):
                self.store.add_source(known.item_id, feed.id, url, entry.guid)
            return "known"
        try:
            article = self.fetch_article(feed, entry)
            text, source = choose_text(article, entry)
            title = clip(entry.title or (article.title if article else None), MAX_TITLE)
            canonical = article.canonical_url if article else None
            digest = content_hash(text) or hashlib.sha256(url.encode()).hexdigest()
            with self.stages.timed("dedupe"):
                # A copy of a stored article needs no language or rules: it becomes a source.
                copy_of = known_article(self.store, canonical if canonical != url else None, digest)
            if copy_of is not None:
                with self.stages.timed("store"):
                    self.store.add_source(copy_of.item_id, feed.id, url, entry.guid)
                log.info("feed %s: %s is a copy of item %s (%s)", feed.name, url, copy_of.item_id, copy_of.layer)
                return "known"
            with self.stages.timed("language"):
                language, probability, language_source = choose_language(
                    f"{title or ''}\n{text}",
                    article.language if article else None,
                    feed.language,
                    detected=article.detected if article and source == "page" else None,
                )
            with self.stages.timed("match"):
                matches = [
                    MatchRecord(rule.name, result.terms, result.snippet, rule.channels)
                    for rule, result in match_rules(self.rules, title, text)
                ]
            new = NewItem(
                feed_id=feed.id,
                url=url,
                guid=entry.guid,
                source_url=url,
                title=title,
                author=clip(entry.author or (article.author if article else None), MAX_TITLE),
                published_at=entry.published_at or (article.published_at if article else None),
                language=language,
                language_probability=probability,
                language_source=language_source,
                text=text,
                text_source=source,
                content_hash=digest,
                canonical_url=canonical,
                site_name=article.site_name if article else None,
                image_url=article.image_url if article else None,
                matches=matches,
            )
            # Look-up then insert, as one step: two feeds carrying the same article
            # are polled concurrently, and only one may store it.
            with self._insert_lock:
                with self.stages.timed("dedupe"):
                    known = known_article(self.store, canonical if canonical != url else None, digest)
                with self.stages.timed("store"):
                    item_id = self.store.add_item(new) if known is None else None
                if known is None and item_id is None:  # stored meanwhile by another process
                    found = self.store.find_by_url(url)
                    known = Known(found, "url") if found is not None else None
                if known is not None:
                    with self.stages.timed("store"):
                        self.store.add_source(known.item_id, feed.id, url, entry.guid)
        except Exception:  # one bad entry must not cost the feed its other entries
            log.exception("feed %s: entry %s failed", feed.name, entry.guid)
            return "failed"
        if known is not None:
            log.info("feed %s: %s is a copy of item %s (%s)", feed.name, url, known.item_id, known.layer)
            return "known"
        log.info(
            "feed %s: new item %s %r [%s, %s]%s",
            feed.name,
            item_id,
            title,
            new.language,
            source,
            f" matches {', '.join(m.rule for m in matches)}" if matches else "",
        )
        return "new"

    def fetch_article(self, feed: Feed, entry: Entry) -> Article | None:
        """The extracted page, or None when it cannot be had (the feed's text is used then)."""
        if not entry.url:
            return None
        if self.robots is not None and not self.robots.allowed(entry.url):
            log.info("feed %s: robots.txt keeps us from %s (using the feed's text)", feed.name, entry.url)
            return None
        try:
            with self.stages.timed("fetch"):
                resp = self.fetcher.get_page(entry.url)
        except FetchError as exc:
            log.warning("feed %s: article %s: %s (using the feed's text)", feed.name, entry.url, exc)
            return None
        return self.extractor.extract(resp.body, resp.url, entry.title)
