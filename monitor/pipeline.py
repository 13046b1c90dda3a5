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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from alerts.policy import RulePolicy
from monitor import metrics
from monitor.config import ScheduleConfig
from monitor.dedupe import (
    Known,
    NearCandidate,
    Placement,
    StoryIndex,
    StoryRow,
    entry_hash,
    entry_url,
    is_update,
    known_article,
    known_entry,
    near_duplicate,
    place,
    profile_time,
    revises,
)
from monitor.extract import Article, choose_text
from monitor.fetch import NETWORK_KINDS, Fetcher, FetchError
from monitor.language import choose_language
from monitor.minhash import SCHEME, band_keys, pack, shingles, signature, unpack
from monitor.parse import Entry, parse_feed
from monitor.robots import RobotsCache
from monitor.rules import CompiledRule, RuleSet, match_rules
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
from monitor.stories import ACTIVE_DAYS, Profile, profile
from monitor.text import content_hash
from monitor.urls import host_of
from monitor.workers import ExtractPool
from storage.models import Feed, utcnow
from storage.repository import (
    Conflict,
    Ingest,
    ItemRevision,
    MatchRecord,
    NewItem,
    PollRecord,
    SourceRecord,
    Store,
)

log = logging.getLogger(__name__)

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
MAX_ENTRIES = 1000  # per poll; a feed of 50,000 entries is read in part, not refused
MAX_TITLE = 1000  # a 1 MB <title> is an attack or a bug, not a headline
# Stories changed by other workers are looked for from this far before the newest change
# this worker has seen: the clocks of workers on other hosts may be a little behind ours.
STORY_CLOCK_MARGIN = timedelta(seconds=60)


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


EntryOutcome = Literal["new", "known", "updated", "failed"]


@dataclass
class PollReport:
    feed: str
    status: str  # ok | not_modified | unchanged | error | gone
    entries: int = 0
    new_items: int = 0
    known: int = 0
    updated: int = 0  # known entries whose page changed: a new revision of their item
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
        policies: Mapping[str, RulePolicy] | None = None,
    ) -> None:
        self.stages = Stages()
        self.extractor = extractor or ExtractPool(0)
        self.extractor.on_cpu = self.stages.add
        self.schedule = schedule or ScheduleConfig()
        self.robots = RobotsCache(fetcher) if fetcher.config.robots else None
        self.store = store
        self.fetcher = fetcher
        # A RuleSet matches through its prefilter; a plain list would be matched rule by rule.
        self.rules = rules if isinstance(rules, RuleSet) else RuleSet(rules)
        self.policies = dict(policies or {})  # alert budgets and digests, by rule name
        self.story_index = StoryIndex()  # this process's cache of the active stories
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
        started = time.monotonic()
        try:
            with self.stages.timed("fetch"):
                resp = self.fetcher.get(feed.current_url, headers)
        except FetchError as exc:
            metrics.observe_fetch(time.monotonic() - started)
            return self._error(feed, now, f"{exc.kind}: {exc}", exc.kind, retry_after=exc.retry_after)
        metrics.observe_fetch(time.monotonic() - started)
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
        # Until a poll of the feed has completed, what it lists is its backlog (alerts.policy).
        backlog = feed.body_hash is None and not feed.alert_on_backlog
        renewed = time.monotonic()
        # Oldest first, so items are stored (and alerts sent) in publication order.
        for entry in reversed(entries):
            if self.stop.is_set():
                report.interrupted = True
                break
            if feed.lease_token is not None and time.monotonic() - renewed > self.schedule.lease / 3:
                until = utcnow() + timedelta(seconds=self.schedule.lease)
                if not self.store.renew_feed_lease(feed.id, feed.lease_token, until):
                    log.warning("feed %s: lease lost to another worker mid-poll; leaving the rest to it", feed.name)
                    report.interrupted = True
                    break
                renewed = time.monotonic()
            outcome = self.process_entry(feed, entry, backlog)
            if outcome == "new":
                report.new_items += 1
            elif outcome == "known":
                report.known += 1
            elif outcome == "updated":
                report.updated += 1
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
            "feed %s: %d entries, %d new, %d known, %d updated, %d failed%s",
            feed.name,
            report.entries,
            report.new_items,
            report.known,
            report.updated,
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
        self._record(
            feed,
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

    def _record(self, feed: Feed, rec: PollRecord, now: datetime) -> None:
        assert feed.id is not None
        if not self.store.record_poll(feed.id, rec, now, feed.lease_token):
            log.warning(
                "feed %s: poll outcome (%s) not recorded: this worker's lease expired and another worker took the feed",
                feed.name,
                rec.status,
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
        self._record(feed, PollRecord("error", when, error=message), now)
        if kind not in NETWORK_KINDS:  # those are logged by the caller, who sees all feeds at once
            log.warning("feed %s: %s (retry at %s)", feed.name, message, when.isoformat(timespec="seconds"))
        return PollReport(feed.name, "error", error=message, error_kind=kind, feed_id=feed.id)

    # -- entry level -----------------------------------------------------------

    def process_entry(self, feed: Feed, entry: Entry, backlog: bool = False) -> EntryOutcome:
        assert feed.id is not None
        url = entry_url(entry, feed.current_url)
        said = entry_hash(entry)
        with self.stages.timed("dedupe"):
            known = known_entry(self.store, feed.id, entry, url)
            # A known entry is fetched again only when its feed says something new of it.
            update = known is not None and is_update(self.store.entry_hash(feed.id, url), said)
        if known is not None and not update:
            with self.stages.timed("store"):
                self.store.add_source(known.item_id, feed.id, url, entry.guid, said, known.layer)
            metrics.observe_duplicate(known.layer)
            return "known"
        if known is None and self.store.tombstoned(feed.id, url, entry.guid):
            return "known"  # retention deleted its item: an entry still listed is not news
        try:
            article = self.fetch_article(feed, entry)
            text, source = choose_text(article, entry)
            title = clip(entry.title or (article.title if article else None), MAX_TITLE)
            canonical = article.canonical_url if article else None
            digest = content_hash(text) or hashlib.sha256(url.encode()).hexdigest()
            if known is not None:
                return self._revise(feed, entry, url, said, known.item_id, title, text, source, digest)
            with self.stages.timed("dedupe"):
                # A copy of a stored article needs no language or rules: it becomes a source.
                copy_of = known_article(self.store, canonical if canonical != url else None, digest)
            if copy_of is not None:
                with self.stages.timed("store"):
                    self.store.add_source(copy_of.item_id, feed.id, url, entry.guid, said, copy_of.layer)
                log.info("feed %s: %s is a copy of item %s (%s)", feed.name, url, copy_of.item_id, copy_of.layer)
                metrics.observe_duplicate(copy_of.layer)
                return "known"
            with self.stages.timed("dedupe"):
                sig, keys = self._signature(title, text)
            with self.stages.timed("language"):
                language, probability, language_source = choose_language(
                    f"{title or ''}\n{text}",
                    article.language if article else None,
                    feed.language,
                    detected=article.detected if article and source == "page" else None,
                )
            with self.stages.timed("match"):
                matches = [
                    MatchRecord(
                        rule.name,
                        result.terms,
                        result.snippet,
                        rule.channels,
                        self.policies.get(rule.name, RulePolicy()),
                    )
                    for rule, result in match_rules(
                        self.rules,
                        title,
                        text,
                        language=language,
                        site=host_of(canonical or url),
                        feed=feed.name,
                    )
                ]
            published_at = entry.published_at or (article.published_at if article else None)
            with self.stages.timed("dedupe"):
                item_profile = profile(title or "", text, language, profile_time(published_at, utcnow()))
            new = NewItem(
                feed_id=feed.id,
                url=url,
                guid=entry.guid,
                source_url=url,
                title=title,
                author=clip(entry.author or (article.author if article else None), MAX_TITLE),
                published_at=published_at,
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
                entry_hash=said,
                signature=pack(sig) if keys else None,
                signature_scheme=SCHEME if keys else None,
                band_keys=keys,
                backlog=backlog,
            )
            stored = self._store_new(new, canonical, sig, item_profile)
        except Exception:  # one bad entry must not cost the feed its other entries
            log.exception("feed %s: entry %s failed", feed.name, entry.guid)
            return "failed"
        if isinstance(stored, Known):
            log.info("feed %s: %s is a copy of item %s (%s)", feed.name, url, stored.item_id, stored.layer)
            metrics.observe_duplicate(stored.layer)
            return "known"
        item_id, placement = stored
        for m in matches:
            metrics.observe_match(m.rule)
        if placement.duplicate_of is not None:
            metrics.observe_duplicate("near")
            where = f" near-duplicate of item {placement.duplicate_of} ({placement.similarity or 0:.2f})"
        elif placement.story_id is not None:
            where = f" joins story {placement.story_id} ({placement.score or 0:.2f})"
        else:
            where = ""
        log.info(
            "feed %s: new item %s %r [%s, %s]%s%s",
            feed.name,
            item_id,
            title,
            new.language,
            source,
            where,
            f" matches {', '.join(m.rule for m in matches)}" if matches else "",
        )
        return "new"

    @staticmethod
    def _signature(title: str | None, text: str) -> tuple[tuple[int, ...], list[int]]:
        """The MinHash signature of title and text, and its band keys (none for a
        text without words: it is nobody's near-duplicate)."""
        found = shingles(f"{title or ''}\n{text}")
        sig = signature(found)
        return sig, band_keys(sig) if found else []

    def _store_new(
        self, new: NewItem, canonical: str | None, sig: tuple[int, ...], item_profile: Profile
    ) -> Known | tuple[int, Placement]:
        """Look up where the article belongs and store it, as one step that no other
        worker (thread: `_insert_lock`; process: `Store.serialised`) runs meanwhile:
        two feeds carrying copies of one story are polled concurrently, and only one
        of them may start the story."""
        try:
            with self._insert_lock, self.store.serialised() as ingest:
                with self.stages.timed("dedupe"):
                    known = self._known_in(ingest, new.url, canonical, new.content_hash)
                    placement = None if known is not None else self._place(ingest, sig, new.band_keys, item_profile)
                with self.stages.timed("store"):
                    if known is not None:
                        ingest.add_source(
                            known.item_id, new.feed_id, new.source_url, new.guid, new.entry_hash, known.layer
                        )
                        return known
                    assert placement is not None
                    item_id = ingest.add_item(new, placement.story_id, placement.duplicate_of, placement.profile)
                    return item_id, placement
        except Conflict:  # stored meanwhile by a worker that does not serialise (an older version)
            found = self.store.find_by_url(new.url)
            if found is None:
                raise
            self.store.add_source(found, new.feed_id, new.source_url, new.guid, new.entry_hash, "url")
            return Known(found, "url")

    @staticmethod
    def _known_in(ingest: Ingest, url: str, canonical: str | None, digest: str) -> Known | None:
        if (found := ingest.find_by_url(url)) is not None:
            return Known(found, "url")
        return known_article(ingest, canonical if canonical != url else None, digest)

    def _place(self, ingest: Ingest, sig: tuple[int, ...], keys: Sequence[int], item: Profile) -> Placement:
        """Near-duplicate of a stored item, member of an active story, or a new story."""
        rows = ingest.near_candidates(keys, SCHEME) if keys else []
        near = near_duplicate(
            sig, (NearCandidate(r.item_id, r.story_id, r.duplicate_of, unpack(r.signature)) for r in rows)
        )
        if near is not None:
            return place(item, near, None, {})
        active_since = ingest.now - timedelta(days=ACTIVE_DAYS)
        since = self.story_index.changed_since(STORY_CLOCK_MARGIN)
        rows_seen = ingest.stories_seen_since(active_since if since is None else max(since, active_since))
        self.story_index.refresh((StoryRow(*row) for row in rows_seen), ingest.story_profiles, active_since)
        return place(item, None, self.story_index.best(item), self.story_index.profiles)

    def _revise(
        self,
        feed: Feed,
        entry: Entry,
        url: str,
        said: str,
        item_id: int,
        title: str | None,
        text: str,
        source: str,
        digest: str,
    ) -> EntryOutcome:
        """A known entry whose feed data changed, its page fetched again: a changed
        text is a new revision of the item (no new item, no new alert)."""
        assert feed.id is not None
        state = self.store.item_text_state(item_id)
        if state is None or digest == state[0]:
            self.store.add_source(item_id, feed.id, url, entry.guid, said)
            return "known"
        if not revises(state[0], state[1], digest, source):
            # Most likely the page failed this time: try again when the feed next changes.
            log.info("feed %s: %s changed in the feed, but its page gave no better text", feed.name, url)
            return "known"
        with self.stages.timed("dedupe"):
            sig, keys = self._signature(title, text)
        with self.stages.timed("store"):
            revised = self.store.revise_item(
                item_id,
                ItemRevision(
                    replaces=state[0],
                    title=title,
                    text=text,
                    text_source=source,
                    content_hash=digest,
                    signature=pack(sig) if keys else None,
                    signature_scheme=SCHEME if keys else None,
                    band_keys=keys,
                ),
                SourceRecord(feed.id, url, entry.guid, said),
            )
        if not revised:
            return "known"
        log.info("feed %s: item %s updated: %s changed", feed.name, item_id, url)
        return "updated"

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
