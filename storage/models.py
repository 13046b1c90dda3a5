"""The SQL schema, as SQLModel tables. Users read these tables directly:
every table and column is documented in `docs/schema.md`; keep both in step,
and add an Alembic migration for every change (tests check the migrations
build exactly this schema).

All times are UTC: `timestamp with time zone` on PostgreSQL, and on SQLite
text such as `2026-01-06 17:30:00.000000` (UTC, no offset written).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Feed(SQLModel, table=True):
    __tablename__ = "feeds"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    url: str  # as configured in feeds.toml
    current_url: str  # where we poll: url, or where a permanent redirect moved it
    language: str | None = None
    interval_seconds: int  # the interval in force: configured, else adapted to the posting rate
    configured_interval: int | None = None  # `interval` from feeds.toml, which overrides adaptation
    avg_entry_gap: float | None = None  # seconds between entries, smoothed over polls
    last_entry_at: datetime | None = None  # newest entry date seen in the feed
    status: str = "new"  # new | ok | stale | error | gone | removed
    # From feeds.toml. False: the entries present before the feed's first complete
    # poll (its backlog) are stored and matched, but their alerts are held.
    alert_on_backlog: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    error_count: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    next_poll_at: datetime = Field(default_factory=utcnow, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    # A worker's claim on the feed while it polls it: only the holder of the token
    # may record the poll, and once lease_until has passed another worker may claim it.
    lease_token: str | None = None
    lease_until: datetime | None = None
    paused_at: datetime | None = None  # `monitor feeds pause`: not polled until resumed


class Story(SQLModel, table=True):
    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    title: str | None = None
    first_seen_at: datetime = Field(default_factory=utcnow)
    # Indexed: the stories an item may join are those seen in the last few days (monitor.stories.ACTIVE_DAYS).
    last_seen_at: datetime = Field(default_factory=utcnow, index=True)
    item_count: int = 1
    source_count: int = Field(default=1, sa_column_kwargs={"server_default": "1"})  # distinct feeds
    languages: str | None = None  # comma-separated, sorted: "de,en,fr"
    profile: str | None = Field(default=None, sa_column=Column(Text))  # monitor.stories.Profile.to_json


class Item(SQLModel, table=True):
    __tablename__ = "items"

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    url: str = Field(unique=True)  # normalised URL: the dedupe key
    canonical_url: str | None = Field(default=None, index=True)
    site_name: str | None = None
    image_url: str | None = None
    guid: str | None = None
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = Field(default=None, index=True)
    fetched_at: datetime = Field(default_factory=utcnow, index=True)
    language: str | None = Field(default=None, index=True)
    language_probability: float | None = None
    language_source: str | None = None  # detected | page | feed
    text: str | None = Field(default=None, sa_column=Column(Text))
    text_source: str = "page"  # page | feed_content | feed_summary | title
    content_hash: str = Field(index=True)
    story_id: int | None = Field(default=None, foreign_key="stories.id", index=True)
    duplicate_of: int | None = Field(default=None, foreign_key="items.id")  # the original of a near-duplicate
    revision: int = Field(default=1, sa_column_kwargs={"server_default": "1"})  # 1, +1 per text update
    # MinHash of title and text (monitor.minhash.pack), comparable only under the same scheme.
    signature: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    signature_scheme: str | None = None
    text_pruned_at: datetime | None = None  # retention dropped the text (keep_text_days)


class ItemSource(SQLModel, table=True):
    __tablename__ = "item_sources"
    __table_args__ = (
        UniqueConstraint("feed_id", "url", name="uq_item_sources_feed_url"),
        Index("ix_item_sources_feed_guid", "feed_id", "guid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    feed_id: int = Field(foreign_key="feeds.id")
    url: str = Field(index=True)  # normalised URL of the entry in that feed
    guid: str | None = None
    first_seen_at: datetime = Field(default_factory=utcnow)
    entry_hash: str | None = None  # what the feed said last (monitor.dedupe.entry_hash): a change is an update
    # How this source was found to be the item: "first" (the entry that brought it),
    # or the dedupe layer that matched it: guid | url | canonical | content.
    via: str | None = None


class LshBand(SQLModel, table=True):
    """The near-duplicate index: one row per (band key, item), shared by every worker.
    The primary key's leading column serves the look-up by band key."""

    __tablename__ = "lsh_bands"

    band_key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    item_id: int = Field(
        sa_column=Column(Integer, ForeignKey("items.id"), primary_key=True, autoincrement=False, index=True)
    )


class Match(SQLModel, table=True):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("rule", "item_id", name="uq_matches_rule_item"),)

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(index=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    story_id: int | None = Field(default=None, foreign_key="stories.id", index=True)
    terms: str  # JSON list of the rule's terms found in the item
    snippet: str | None = Field(default=None, sa_column=Column(Text))
    matched_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        # The idempotency key: one alert per rule, story and channel, ever.
        UniqueConstraint("rule", "story_id", "channel", "kind", name="uq_deliveries_key"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # A rule's alerts on a channel in the last hour: its budget (max_alerts_per_hour).
        Index("ix_deliveries_budget", "rule", "channel", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule: str
    story_id: int = Field(foreign_key="stories.id")
    item_id: int = Field(foreign_key="items.id")  # the item that raised the alert
    channel: str
    kind: str = "alert"
    status: str = "pending"  # pending | sending | sent | dead | held | digested
    # Why an alert is held instead of sent on its own: backlog | budget | digest.
    hold: str | None = None
    # The digest delivery that carried this held alert (status "digested").
    digest_id: int | None = Field(default=None, foreign_key="deliveries.id", index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = None
    lease_token: str | None = None  # the sender holding the claim; only it may record the outcome
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    message_id: str | None = None  # the Message-ID the alert carries, the same on every attempt
    note: str | None = Field(default=None, sa_column=Column(Text))  # accepted with a reservation
    error_kind: str | None = None  # transient | permanent: the last failure


class JobRun(SQLModel, table=True):
    """A periodic job's run for one period: the primary key makes it run once
    per period however many workers share the database."""

    __tablename__ = "job_runs"

    job: str = Field(primary_key=True)  # digests | retention | ...
    period: str = Field(primary_key=True)  # e.g. 2026-11-21 or 2026-11-21T14
    worker: str  # host:pid of the worker that ran it
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    outcome: str | None = Field(default=None, sa_column=Column(Text))


class RuleMute(SQLModel, table=True):
    """`monitor rules mute`: a rule still matches, but its alerts are not queued until `until`."""

    __tablename__ = "rule_mutes"

    rule: str = Field(primary_key=True)
    until: datetime
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class Tombstone(SQLModel, table=True):
    """What retention leaves of a deleted item, so its entry is never new again."""

    __tablename__ = "tombstones"
    __table_args__ = (Index("ix_tombstones_feed_guid", "feed_id", "guid_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, foreign_key="feeds.id")
    url_hash: str = Field(index=True)  # sha256 of the normalised URL
    guid_hash: str | None = None  # sha256 of the feed's GUID
    pruned_at: datetime = Field(default_factory=utcnow)
