"""The storage API the pipeline and the CLI use; nothing else writes SQL.

Each method is one transaction. Storing an item (`Ingest.add_item`) writes
the item, its story (new or joined), its first source, its matches, its
near-duplicate band keys and the outbox rows of its alerts together, so an
alert can never be lost between "stored" and "queued"; and it runs in the
serialised section (`Store.serialised`), so that two workers storing copies
of one story at once cannot both decide it is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    String,
    Text,
    and_,
    bindparam,
    func,
    inspect,
    or_,
    text,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, select

from alerts.policy import BUDGET_WINDOW, RulePolicy, hold_for
from storage.models import Feed, Item, ItemSource, utcnow

# The key of the PostgreSQL advisory lock that serialises storing items (any
# 64-bit number no other application on the database uses: "monitor" in ASCII).
INGEST_LOCK = int.from_bytes(b"monitor", "big")
FEEDS_LOCK = INGEST_LOCK + 1  # synchronising `feeds` with the configuration


def lock_for_writing(conn: Connection, key: int = INGEST_LOCK) -> None:
    """Make the transaction just begun exclusive (by default, the serialised section
    of storing items, see `Store.serialised`): PostgreSQL, a transaction-level
    advisory lock on `key`; SQLite, `BEGIN IMMEDIATE` (its one write lock, taken
    before the first read, so no decision is made on a stale read)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def worker_name() -> str:
    """This worker, as operators read it in leases, `job_runs` and the heartbeat: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_token() -> str:
    """A claim's token: which worker holds a row, and which claim."""
    return f"{worker_name()}:{uuid.uuid4().hex[:12]}"


class Conflict(Exception):
    """A write refused by a unique key: another worker stored the same thing first."""


# Candidates fetched for a near-duplicate check: those sharing the most band keys.
NEAR_CANDIDATES = 50


@dataclass(frozen=True)
class FeedSpec:
    """A feed as the configuration defines it."""

    name: str
    url: str
    interval: int | None  # configured in feeds.toml; None lets the schedule adapt
    default_interval: int
    language: str | None = None
    alert_on_backlog: bool = False


@dataclass(frozen=True)
class PollRecord:
    """What one poll of a feed changes in its row."""

    status: str  # ok | not_modified | unchanged | error | gone
    next_poll_at: datetime
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    save_cache: bool = False  # store etag/last_modified/body_hash (only after a complete poll)
    moved_to: str | None = None
    interval_seconds: int | None = None  # a new adaptive interval
    avg_entry_gap: float | None = None
    last_entry_at: datetime | None = None
    stale: bool = False


@dataclass(frozen=True)
class MatchRecord:
    rule: str
    terms: tuple[str, ...]
    snippet: str
    channels: tuple[str, ...]
    policy: RulePolicy = RulePolicy()  # budget and digest settings of the rule


@dataclass
class NewItem:
    feed_id: int
    url: str
    guid: str | None
    source_url: str
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    language_probability: float | None
    text: str
    text_source: str
    content_hash: str
    canonical_url: str | None = None
    language_source: str | None = None
    site_name: str | None = None
    image_url: str | None = None
    matches: list[MatchRecord] = field(default_factory=list)
    entry_hash: str | None = None  # what the feed said of the entry (see item_sources.entry_hash)
    signature: bytes | None = None  # packed MinHash signature (monitor.minhash.pack)
    signature_scheme: str | None = None
    band_keys: Sequence[int] = ()  # LSH band keys of the signature
    backlog: bool = False  # from a feed's first poll, whose alerts are held (alert_on_backlog = false)


@dataclass(frozen=True)
class ItemRevision:
    """A stored item's new text, after its page changed."""

    replaces: str  # the content_hash of the text it replaces
    title: str | None
    text: str
    text_source: str
    content_hash: str
    signature: bytes | None
    signature_scheme: str | None
    band_keys: Sequence[int]


@dataclass(frozen=True)
class SourceRecord:
    feed_id: int
    url: str
    guid: str | None
    entry_hash: str | None = None


@dataclass(frozen=True)
class NearRow:
    """A stored item that shares band keys with a new one."""

    item_id: int
    story_id: int | None
    duplicate_of: int | None
    signature: bytes


@dataclass(frozen=True)
class StoryItem:
    """One item of a story, as `Store.stories` lists it."""

    id: int
    title: str | None
    url: str  # the canonical URL when known, else the item's URL
    feed: str  # the name of the feed that brought it
    language: str | None
    duplicate_of: int | None  # the original, when this item is a near-duplicate
    revision: int
    fetched_at: datetime


@dataclass(frozen=True)
class StorySummary:
    id: int
    title: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    item_count: int
    source_count: int
    languages: tuple[str, ...]
    items: list[StoryItem]


class Ingest:
    """The serialised section's transaction (`Store.serialised`): the look-ups that
    decide where an article belongs, and the writes that store it.

    Core statements, built once, on the transaction's connection: this is the hot
    path of storing an item, and the ORM's unit of work costs more than the SQL."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.conn = session.connection()
        self.now = now  # taken inside the section: the order of commits is the order of times

    def find_by_guid(self, feed_id: int, guid: str, url: str | None = None) -> int | None:
        return _find_by_guid(self.conn, feed_id, guid, url)

    def find_by_url(self, url: str) -> int | None:
        return _find_by_url(self.conn, url)

    def find_by_hash(self, content_hash: str) -> int | None:
        return _find_by_hash(self.conn, content_hash)

    def near_candidates(self, band_keys: Sequence[int], scheme: str, limit: int = NEAR_CANDIDATES) -> list[NearRow]:
        """Stored items (with a signature of `scheme`) sharing a band key with the new
        one, those sharing the most first: one look-up of the `lsh_bands` index."""
        if not band_keys:
            return []
        rows = self.conn.execute(_NEAR, {"keys": sorted(set(band_keys)), "scheme": scheme, "limit": limit})
        return [NearRow(i, story, dup, sig) for i, story, dup, sig in rows if sig]

    def stories_seen_since(self, since: datetime) -> list[tuple[int, datetime, int]]:
        """(id, last_seen_at, item_count) of the stories an item was added to since
        `since` (indexed on last_seen_at; the rows' profiles are not read)."""
        return [(i, seen, n) for i, seen, n in self.conn.execute(_STORIES_SEEN, {"since": since})]

    def story_profiles(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The profile JSON of these stories."""
        return {i: p for i, p in self.conn.execute(_STORY_PROFILES, {"ids": list(ids)})}

    def add_source(
        self,
        item_id: int,
        feed_id: int,
        url: str,
        guid: str | None,
        entry_hash: str | None = None,
        via: str | None = None,
    ) -> bool:
        return _add_source(self.conn, item_id, feed_id, url, guid, entry_hash, self.now, via)

    def add_item(
        self,
        new: NewItem,
        story_id: int | None = None,
        duplicate_of: int | None = None,
        story_profile: str | None = None,
    ) -> int:
        """Store a new item in story `story_id` (None: a new story), as a near-duplicate
        of `duplicate_of` or not, with its source, matches, band keys and alerts;
        `story_profile`, when given, becomes the story's profile."""
        conn, now = self.conn, self.now
        if story_id is None:
            story_id = _id(
                conn.execute(
                    _STORIES.insert(),
                    {
                        "title": new.title,
                        "first_seen_at": now,
                        "last_seen_at": now,
                        "item_count": 1,
                        "source_count": 1,
                        "languages": new.language,
                        "profile": story_profile,
                    },
                )
            )
            joined = False
        else:
            found = conn.execute(_STORY_LANGUAGES, {"id": story_id}).first()
            if found is None:
                raise ValueError(f"no story {story_id}")
            conn.execute(
                _STORY_JOIN,
                {
                    "story": story_id,
                    "now": now,
                    "new_title": new.title,
                    "langs": join_languages(found[0], new.language),
                    "new_profile": story_profile,
                },
            )
            joined = True
        # Parameters, not `.values()`: the statement is compiled once and its
        # compiled form cached; `.values()` makes a new statement every time.
        item_id = _id(
            conn.execute(
                _ITEMS.insert(),
                {
                    "feed_id": new.feed_id,
                    "url": new.url,
                    "canonical_url": new.canonical_url,
                    "guid": new.guid,
                    "title": new.title,
                    "author": new.author,
                    "published_at": new.published_at,
                    "fetched_at": now,
                    "language": new.language,
                    "language_probability": new.language_probability,
                    "language_source": new.language_source,
                    "site_name": new.site_name,
                    "image_url": new.image_url,
                    "text": new.text,
                    "text_source": new.text_source,
                    "content_hash": new.content_hash,
                    "story_id": story_id,
                    "duplicate_of": duplicate_of,
                    "revision": 1,
                    "signature": new.signature,
                    "signature_scheme": new.signature_scheme,
                },
            )
        )
        conn.execute(
            _SOURCES.insert(),
            {
                "item_id": item_id,
                "feed_id": new.feed_id,
                "url": new.source_url,
                "guid": new.guid,
                "first_seen_at": now,
                "entry_hash": new.entry_hash,
                "via": "first",
            },
        )
        if new.matches:
            conn.execute(
                _MATCHES.insert(),
                [
                    {
                        "rule": m.rule,
                        "item_id": item_id,
                        "story_id": story_id,
                        "terms": json.dumps(list(m.terms), ensure_ascii=False),
                        "snippet": m.snippet,
                        "matched_at": now,
                    }
                    for m in new.matches
                ],
            )
        _add_alerts(conn, item_id, story_id, new.matches, now, new.backlog)
        _add_bands(conn, item_id, new.band_keys)
        if joined:
            _count_sources(conn, story_id)
        return item_id


def join_languages(languages: str | None, language: str | None) -> str | None:
    """`stories.languages` with one more language: comma-separated, sorted, distinct."""
    found = set(languages.split(",")) if languages else set()
    if language:
        found.add(language)
    return ",".join(sorted(found)) or None


_T = SQLModel.metadata.tables
_ITEMS, _STORIES, _SOURCES, _MATCHES, _BANDS, _DELIVERIES = (
    _T[name] for name in ("items", "stories", "item_sources", "matches", "lsh_bands", "deliveries")
)
_BY_GUID = text("SELECT item_id FROM item_sources WHERE feed_id = :feed AND guid = :guid LIMIT 1")
_BY_GUID_URL = text("SELECT item_id FROM item_sources WHERE feed_id = :feed AND guid = :guid AND url = :url LIMIT 1")
# Three look-ups in one statement, each on its own index: SQLite plans `url = ? OR
# canonical_url = ?` as a full scan once ANALYZE has seen mostly NULL canonical URLs.
_BY_URL = text(
    "SELECT id FROM items WHERE url = :url UNION ALL SELECT id FROM items WHERE canonical_url = :url "
    "UNION ALL SELECT item_id FROM item_sources WHERE url = :url LIMIT 1"
)
_BY_HASH = text("SELECT min(id) FROM items WHERE content_hash = :hash")
_NEAR = text(
    "SELECT i.id, i.story_id, i.duplicate_of, i.signature FROM "
    "(SELECT item_id, count(*) AS n FROM lsh_bands WHERE band_key IN :keys "
    "GROUP BY item_id ORDER BY n DESC, item_id LIMIT :limit) b "
    "JOIN items i ON i.id = b.item_id WHERE i.signature_scheme = :scheme ORDER BY b.n DESC, i.id"
).bindparams(bindparam("keys", expanding=True))
_STORIES_SEEN = select(_STORIES.c.id, _STORIES.c.last_seen_at, _STORIES.c.item_count).where(
    _STORIES.c.last_seen_at >= bindparam("since")
)
_STORY_PROFILES = select(_STORIES.c.id, _STORIES.c.profile).where(_STORIES.c.id.in_(bindparam("ids", expanding=True)))
_STORY_LANGUAGES = select(_STORIES.c.languages).where(_STORIES.c.id == bindparam("id"))
_STORY_JOIN = (
    _STORIES.update()
    .where(_STORIES.c.id == bindparam("story"))
    .values(
        item_count=_STORIES.c.item_count + 1,
        last_seen_at=bindparam("now"),
        title=func.coalesce(_STORIES.c.title, bindparam("new_title", type_=String)),
        languages=bindparam("langs", type_=String),
        profile=func.coalesce(bindparam("new_profile", type_=Text), _STORIES.c.profile),
    )
)
_SOURCE_OF = select(_SOURCES.c.id, _SOURCES.c.entry_hash).where(
    _SOURCES.c.feed_id == bindparam("feed"), _SOURCES.c.url == bindparam("url")
)
_SET_ENTRY_HASH = _SOURCES.update().where(_SOURCES.c.id == bindparam("source")).values(entry_hash=bindparam("hash"))
_STORY_OF = select(_ITEMS.c.story_id).where(_ITEMS.c.id == bindparam("id"))
# Recounted, not incremented: a copy recorded meanwhile by another worker cannot make it drift.
_COUNT_SOURCES = (
    _STORIES.update()
    .where(_STORIES.c.id == bindparam("story"))
    .values(
        source_count=func.coalesce(
            select(func.count(func.distinct(_SOURCES.c.feed_id)))
            .select_from(_SOURCES.join(_ITEMS, _ITEMS.c.id == _SOURCES.c.item_id))
            .where(_ITEMS.c.story_id == bindparam("story"))
            .scalar_subquery(),
            1,
        )
    )
)


def _id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None and key[0] is not None
    return int(key[0])


def _find_by_guid(conn: Connection, feed_id: int, guid: str, url: str | None) -> int | None:
    if url is None:
        return conn.execute(_BY_GUID, {"feed": feed_id, "guid": guid}).scalar()
    return conn.execute(_BY_GUID_URL, {"feed": feed_id, "guid": guid, "url": url}).scalar()


def _find_by_url(conn: Connection, url: str) -> int | None:
    return conn.execute(_BY_URL, {"url": url}).scalar()


def _find_by_hash(conn: Connection, content_hash: str) -> int | None:
    return conn.execute(_BY_HASH, {"hash": content_hash}).scalar()


def _add_source(
    conn: Connection,
    item_id: int,
    feed_id: int,
    url: str,
    guid: str | None,
    entry_hash: str | None,
    now: datetime,
    via: str | None,
) -> bool:
    """Add a source row, or record the entry hash on the existing one; True if added."""
    row = conn.execute(_SOURCE_OF, {"feed": feed_id, "url": url}).first()
    if row is not None:
        if entry_hash is not None and row[1] != entry_hash:
            conn.execute(_SET_ENTRY_HASH, {"source": row[0], "hash": entry_hash})
        return False
    conn.execute(
        _SOURCES.insert().values(
            item_id=item_id, feed_id=feed_id, url=url, guid=guid, first_seen_at=now, entry_hash=entry_hash, via=via
        )
    )
    story_id = conn.execute(_STORY_OF, {"id": item_id}).scalar()
    if story_id is not None:
        _count_sources(conn, story_id)
    return True


def _count_sources(conn: Connection, story_id: int) -> None:
    """Recount the feeds that carried a story's items."""
    conn.execute(_COUNT_SOURCES, {"story": story_id})


def _add_bands(conn: Connection, item_id: int, band_keys: Iterable[int]) -> None:
    """The item's 32 band keys, in one executemany of the driver: SQLAlchemy's
    per-row parameter handling cost twice the inserts themselves."""
    keys = sorted(set(band_keys))
    if keys:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"INSERT INTO lsh_bands (band_key, item_id) VALUES ({mark}, {mark})", [(k, item_id) for k in keys]
        )


def tombstone_hash(value: str) -> str:
    """SHA-256 (hex) of a URL or GUID, as `tombstones` stores it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_tombstoned(conn: Connection, feed_id: int, url: str, guid: str | None) -> bool:
    """Whether retention deleted the item of this entry: its normalised URL (as
    `monitor.dedupe.entry_url` gives it) was pruned from any feed, or its GUID
    from this feed. The pipeline asks this for an entry it does not know."""
    t = _T["tombstones"].c
    found = t.url_hash == tombstone_hash(url)
    if guid:
        found = or_(found, and_(t.feed_id == feed_id, t.guid_hash == tombstone_hash(guid)))
    return conn.execute(sa_select(t.id).where(found).limit(1)).first() is not None


def _add_alerts(
    conn: Connection, item_id: int, story_id: int, matches: Sequence[MatchRecord], now: datetime, backlog: bool
) -> None:
    """One outbox row per (rule, story, channel), unless the story has one already:
    alerts are per story, and the unique key (uq_deliveries_key) decides, inside
    the database, which of two concurrent writers queues it. A row is `held`
    (alerts.policy) for a feed's backlog, a digest or an exhausted budget; a
    story held only as backlog is released by its first item from a fresh entry.
    A rule muted by an operator (`rule_mutes`) queues nothing; its match stays."""
    rows = []
    if matches:
        mutes = _T["rule_mutes"].c
        muted = set(conn.execute(sa_select(mutes.rule).where(mutes.until > now)).scalars())
        matches = [m for m in matches if m.rule not in muted]
    for m in matches:
        for channel in dict.fromkeys(m.channels):
            period = m.policy.period(channel)
            sent = 0
            if not backlog and period is None:
                found = {"rule": m.rule, "channel": channel, "since": now - BUDGET_WINDOW}
                sent = conn.execute(_SENT_SINCE, found).scalar() or 0
            hold = hold_for(backlog, period, sent, m.policy.max_per_hour)
            rows.append(
                {
                    "rule": m.rule,
                    "story_id": story_id,
                    "item_id": item_id,
                    "channel": channel,
                    "kind": "alert",
                    "status": "held" if hold else "pending",
                    "hold": hold,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(_DELIVERIES)
        conn.execute(
            pg.on_conflict_do_update(
                constraint="uq_deliveries_key", set_=_released(pg.excluded), where=_releasable(pg.excluded)
            ),
            rows,
        )
    elif conn.dialect.name == "sqlite":
        lite = sqlite.insert(_DELIVERIES)
        conn.execute(
            lite.on_conflict_do_update(
                index_elements=["rule", "story_id", "channel", "kind"],
                set_=_released(lite.excluded),
                where=_releasable(lite.excluded),
            ),
            rows,
        )
    else:
        raise NotImplementedError(f"alerts on {conn.dialect.name}")


def _released(new: Any) -> dict[str, Any]:
    return {k: new[k] for k in ("item_id", "status", "hold", "next_attempt_at", "created_at")}


def _releasable(new: Any) -> Any:
    """A row held as backlog, met by an alert that is not: fresh news of the story."""
    d = _DELIVERIES.c
    return and_(d.status == "held", d.hold == "backlog", func.coalesce(new.hold, "") != "backlog")


_SENT_SINCE = (
    sa_select(func.count())
    .select_from(_DELIVERIES)
    .where(
        _DELIVERIES.c.rule == bindparam("rule"),
        _DELIVERIES.c.channel == bindparam("channel"),
        _DELIVERIES.c.kind == "alert",
        _DELIVERIES.c.hold.is_(None),
        _DELIVERIES.c.created_at >= bindparam("since"),
    )
)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def has_schema(self) -> bool:
        try:
            return "items" in inspect(self.engine).get_table_names()
        except OperationalError:  # e.g. a SQLite file that does not exist
            return False

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- feeds -------------------------------------------------------------

    def sync_feeds(self, specs: Sequence[FeedSpec]) -> None:
        """Make the `feeds` table follow the configuration: add new feeds,
        reset the state of a feed whose URL changed, mark dropped ones removed.
        Serialised like storing items: workers starting at once would otherwise
        all insert the new feeds, and all but one fail on the unique name."""
        with self.session() as s:
            lock_for_writing(s.connection(), FEEDS_LOCK)
            rows = {f.name: f for f in s.exec(select(Feed)).all()}
            for spec in specs:
                row = rows.pop(spec.name, None)
                if row is None:
                    s.add(
                        Feed(
                            name=spec.name,
                            url=spec.url,
                            current_url=spec.url,
                            language=spec.language,
                            interval_seconds=spec.interval or spec.default_interval,
                            configured_interval=spec.interval,
                            alert_on_backlog=spec.alert_on_backlog,
                        )
                    )
                    continue
                if row.url != spec.url:
                    row.url = row.current_url = spec.url
                    # A poll of the old URL still running must not record over the reset.
                    row.lease_token = row.lease_until = None
                    row.etag = row.last_modified = row.body_hash = row.last_error = None
                    row.error_count = 0
                    row.status = "new"
                    row.next_poll_at = utcnow()
                elif row.status == "removed":
                    row.status = "new"
                    row.next_poll_at = utcnow()
                row.language = spec.language
                row.alert_on_backlog = spec.alert_on_backlog
                if spec.interval:
                    row.interval_seconds = spec.interval
                elif row.configured_interval:  # the override was removed: adapt from the default again
                    row.interval_seconds = spec.default_interval
                row.configured_interval = spec.interval
                s.add(row)
            for row in rows.values():
                if row.status != "removed":
                    row.status = "removed"
                    row.lease_token = row.lease_until = None  # nor bring a removed feed back
                    s.add(row)
            s.commit()

    def feeds(self, include_removed: bool = False) -> list[Feed]:
        with self.session() as s:
            q = select(Feed).order_by(col(Feed.name))
            if not include_removed:
                q = q.where(Feed.status != "removed")
            return list(s.exec(q).all())

    def _pollable(self, now: datetime, names: Iterable[str] | None, force: bool) -> list[Any]:
        """Feeds that may be polled now: not gone, removed or paused; due unless `force`."""
        where: list[Any] = [col(Feed.status).not_in(["removed", "gone"]), col(Feed.paused_at).is_(None)]
        if not force:
            where.append(col(Feed.next_poll_at) <= now)
        if names is not None:
            where.append(col(Feed.name).in_(list(names)))
        return where

    def due_feeds(self, now: datetime, names: Iterable[str] | None = None, force: bool = False) -> list[Feed]:
        """Feeds to poll now; `force` ignores the schedule (but never polls gone, removed or paused feeds)."""
        with self.session() as s:
            q = select(Feed).where(*self._pollable(now, names, force))
            return list(s.exec(q.order_by(col(Feed.next_poll_at), col(Feed.id))).all())

    def claim_feeds(
        self,
        now: datetime,
        token: str,
        lease: timedelta,
        limit: int,
        names: Iterable[str] | None = None,
        force: bool = False,
        polled_before: datetime | None = None,
    ) -> list[Feed]:
        """Lease up to `limit` pollable feeds (oldest due first) whose lease is free
        or expired, under `token`: until `now + lease`, no other worker claims them,
        and only this token may record their polls (`record_poll`).

        One UPDATE over a sub-select: PostgreSQL skips rows another worker is
        claiming (`FOR UPDATE SKIP LOCKED`), SQLite runs the statement under its
        write lock; both re-check the lease in the UPDATE itself."""
        free = or_(col(Feed.lease_until).is_(None), col(Feed.lease_until) < now)
        where = self._pollable(now, names, force)
        if polled_before is not None:
            where.append(or_(col(Feed.last_polled_at).is_(None), col(Feed.last_polled_at) < polled_before))
        pick = (
            sa_select(Feed.id)  # type: ignore[call-overload]
            .where(*where, free)
            .order_by(col(Feed.next_poll_at), col(Feed.id))
            .limit(limit)
        )
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        with self.session() as s:
            s.exec(
                update(Feed)
                .where(col(Feed.id).in_(pick.scalar_subquery()), free)
                .values(lease_token=token, lease_until=now + lease)
            )
            s.commit()
            q = select(Feed).where(col(Feed.lease_token) == token)
            return list(s.exec(q.order_by(col(Feed.next_poll_at), col(Feed.id))).all())

    def renew_feed_lease(self, feed_id: int, token: str, until: datetime) -> bool:
        """Extend a lease still held; False if it was lost (expired and claimed by another)."""
        with self.session() as s:
            res = s.exec(
                update(Feed).where(col(Feed.id) == feed_id, col(Feed.lease_token) == token).values(lease_until=until)
            )
            s.commit()
            return bool(res.rowcount)

    def release_feeds(self, feed_ids: Sequence[int], token: str) -> None:
        """Give back feeds claimed but not polled (the worker is stopping)."""
        if not feed_ids:
            return
        with self.session() as s:
            s.exec(
                update(Feed)
                .where(col(Feed.id).in_(list(feed_ids)), col(Feed.lease_token) == token)
                .values(lease_token=None, lease_until=None)
            )
            s.commit()

    def record_poll(self, feed_id: int, rec: PollRecord, now: datetime, token: str | None = None) -> bool:
        """Write a poll's outcome and free the feed's lease, only if `token` still
        holds it (`None`: only if no worker holds it). False when the lease was
        lost: a newer poll by another worker may already be recorded, and this
        stale one must not overwrite it."""
        values: dict[str, Any] = {
            "last_polled_at": now,
            "next_poll_at": rec.next_poll_at,
            "last_error": rec.error,
            "lease_token": None,
            "lease_until": None,
        }
        if rec.status == "error":
            values.update(error_count=col(Feed.error_count) + 1, status="error")
        elif rec.status == "gone":
            values.update(status="gone")
        else:
            values.update(error_count=0, last_success_at=now, status="stale" if rec.stale else "ok")
        if rec.interval_seconds:
            values["interval_seconds"] = rec.interval_seconds
        if rec.avg_entry_gap is not None:
            values["avg_entry_gap"] = rec.avg_entry_gap
        if rec.last_entry_at is not None:
            values["last_entry_at"] = rec.last_entry_at
        if rec.save_cache:
            values.update(etag=rec.etag, last_modified=rec.last_modified, body_hash=rec.body_hash)
        if rec.moved_to:
            values["current_url"] = rec.moved_to
        held = col(Feed.lease_token).is_(None) if token is None else col(Feed.lease_token) == token
        held = and_(held, col(Feed.status) != "removed")
        with self.session() as s:
            res = s.exec(update(Feed).where(col(Feed.id) == feed_id, held).values(**values))
            s.commit()
            return bool(res.rowcount)

    def defer_after_outage(self, feed_ids: Sequence[int], next_poll_at: datetime) -> None:
        """Undo the error count of a round that failed because our network did,
        and retry soon instead of backing off."""
        with self.session() as s:
            for feed in s.exec(select(Feed).where(col(Feed.id).in_(list(feed_ids)))).all():
                feed.error_count = max(0, feed.error_count - 1)
                feed.next_poll_at = next_poll_at
                s.add(feed)
            s.commit()

    # -- items -------------------------------------------------------------

    def find_by_guid(self, feed_id: int, guid: str, url: str | None = None) -> int | None:
        """The item this feed's GUID stands for. With `url`, only if the GUID was
        seen with that URL: a GUID a feed reuses for another article is no proof."""
        with self.engine.connect() as conn:
            return _find_by_guid(conn, feed_id, guid, url)

    def find_by_url(self, url: str) -> int | None:
        """An item stored under this normalised URL, as its own URL, its
        canonical URL or the URL of one of its sources."""
        with self.engine.connect() as conn:
            return _find_by_url(conn, url)

    def find_by_hash(self, content_hash: str) -> int | None:
        with self.engine.connect() as conn:
            return _find_by_hash(conn, content_hash)

    def tombstoned(self, feed_id: int, url: str, guid: str | None) -> bool:
        with self.engine.connect() as conn:
            return is_tombstoned(conn, feed_id, url, guid)

    def entry_hash(self, feed_id: int, url: str) -> str | None:
        """What this feed said of the entry at `url` when last seen (`item_sources.entry_hash`)."""
        with self.session() as s:
            return s.exec(
                select(ItemSource.entry_hash).where(ItemSource.feed_id == feed_id, ItemSource.url == url)
            ).first()

    def add_source(
        self,
        item_id: int,
        feed_id: int,
        url: str,
        guid: str | None,
        entry_hash: str | None = None,
        via: str | None = None,
    ) -> bool:
        """Record that `item_id` was seen in `feed_id` under `url` (found by dedupe layer
        `via`); False if known already (then only `entry_hash` is recorded, if given)."""
        try:
            with self.engine.begin() as conn:
                return _add_source(conn, item_id, feed_id, url, guid, entry_hash, utcnow(), via)
        except IntegrityError:  # another worker recorded it first
            return False

    @contextmanager
    def serialised(self) -> Iterator[Ingest]:
        """One transaction that no other worker, thread or process, runs at the same
        time: for looking up where an article belongs and storing it, as one step.

        PostgreSQL: a transaction-level advisory lock, released at commit or
        rollback. SQLite: `BEGIN IMMEDIATE`, which takes the database's write lock
        before the first read (a plain BEGIN would read first and could then fail
        to write, or write what it decided on a stale read). pysqlite only begins
        transactions by itself before a write, so ours, issued first, is the one.
        Commits when the block ends, rolls back if it raises; `Conflict` when a
        unique key refused a write.
        """
        try:
            with self.session() as s:
                lock_for_writing(s.connection(), INGEST_LOCK)
                yield Ingest(s, utcnow())
                s.commit()
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from exc

    def add_item(self, new: NewItem) -> int | None:
        """Store a new item in a story of its own, with its source, matches and outbox
        rows. None if an item with the same URL appeared meanwhile (another worker)."""
        try:
            with self.serialised() as ingest:
                return ingest.add_item(new)
        except Conflict:
            return None

    def revise_item(self, item_id: int, revision: ItemRevision, source: SourceRecord) -> bool:
        """Replace an item's text after its page changed: `revision` + 1, new
        signature and band keys; the story, matches and alerts stay. False (and
        nothing changed but the source's entry hash) if the item's text is no
        longer `revision.replaces`, i.e. another worker revised it first."""
        with self.serialised() as ingest:
            changed = ingest.session.exec(
                update(Item)
                .where(col(Item.id) == item_id, col(Item.content_hash) == revision.replaces)
                .values(
                    title=revision.title,
                    text=revision.text,
                    text_source=revision.text_source,
                    content_hash=revision.content_hash,
                    signature=revision.signature,
                    signature_scheme=revision.signature_scheme,
                    revision=col(Item.revision) + 1,
                )
            ).rowcount
            if changed:
                ingest.conn.execute(_BANDS.delete().where(_BANDS.c.item_id == item_id))
                _add_bands(ingest.conn, item_id, revision.band_keys)
            ingest.add_source(item_id, source.feed_id, source.url, source.guid, source.entry_hash)
            return bool(changed)

    def item_text_state(self, item_id: int) -> tuple[str, str] | None:
        """(content_hash, text_source) of a stored item."""
        with self.session() as s:
            row = s.exec(select(Item.content_hash, Item.text_source).where(col(Item.id) == item_id)).first()
            return (row[0], row[1]) if row is not None else None

    def items(self, limit: int = 20) -> list[tuple[Item, str]]:
        """Newest items with the name of the feed that brought them."""
        with self.session() as s:
            rows = s.exec(
                select(Item, Feed.name)
                .join(Feed, col(Item.feed_id) == col(Feed.id))
                .order_by(col(Item.fetched_at).desc(), col(Item.id).desc())
                .limit(limit)
            ).all()
            return [(item, name) for item, name in rows]

    def stories(self, limit: int = 20) -> list[StorySummary]:
        """The stories an item was added to most recently, newest first, each with
        its items in the order they were stored (for `monitor stories`)."""
        st, it, fd = _STORIES, _ITEMS, _T["feeds"]
        with self.engine.connect() as conn:
            found = conn.execute(
                sa_select(
                    st.c.id,
                    st.c.title,
                    st.c.first_seen_at,
                    st.c.last_seen_at,
                    st.c.item_count,
                    st.c.source_count,
                    st.c.languages,
                )
                .order_by(st.c.last_seen_at.desc(), st.c.id.desc())
                .limit(limit)
            ).all()
            items: dict[int, list[StoryItem]] = {row.id: [] for row in found}
            if items:
                for row in conn.execute(
                    sa_select(
                        it.c.id,
                        it.c.story_id,
                        it.c.title,
                        func.coalesce(it.c.canonical_url, it.c.url).label("link"),
                        fd.c.name,
                        it.c.language,
                        it.c.duplicate_of,
                        it.c.revision,
                        it.c.fetched_at,
                    )
                    .join(fd, fd.c.id == it.c.feed_id)
                    .where(it.c.story_id.in_(list(items)))
                    .order_by(it.c.id)
                ):
                    items[row.story_id].append(
                        StoryItem(
                            row.id,
                            row.title,
                            row.link,
                            row.name,
                            row.language,
                            row.duplicate_of,
                            row.revision,
                            row.fetched_at,
                        )
                    )
        return [
            StorySummary(
                id=row.id,
                title=row.title,
                first_seen_at=row.first_seen_at,
                last_seen_at=row.last_seen_at,
                item_count=row.item_count,
                source_count=row.source_count,
                languages=tuple(row.languages.split(",")) if row.languages else (),
                items=items[row.id],
            )
            for row in found
        ]

    def item_counts(self) -> dict[int, int]:
        """Items seen per feed (through any of their sources)."""
        with self.session() as s:
            rows = s.exec(
                select(ItemSource.feed_id, func.count(func.distinct(ItemSource.item_id))).group_by(
                    col(ItemSource.feed_id)
                )
            ).all()
            return {feed_id: n for feed_id, n in rows}
