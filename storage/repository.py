"""The storage API the pipeline and the CLI use; nothing else writes SQL.

Each method is one transaction. `add_item` writes the story, the item, its
first source, its matches and one outbox row per (rule, channel) together,
so an alert can never be lost between "stored" and "queued".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, inspect, or_
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from storage.models import Delivery, Feed, Item, ItemSource, Match, Story, utcnow


@dataclass(frozen=True)
class FeedSpec:
    """A feed as the configuration defines it."""

    name: str
    url: str
    interval: int | None  # configured in feeds.toml; None lets the schedule adapt
    default_interval: int
    language: str | None = None


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
        reset the state of a feed whose URL changed, mark dropped ones removed."""
        with self.session() as s:
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
                        )
                    )
                    continue
                if row.url != spec.url:
                    row.url = row.current_url = spec.url
                    row.etag = row.last_modified = row.body_hash = row.last_error = None
                    row.error_count = 0
                    row.status = "new"
                    row.next_poll_at = utcnow()
                elif row.status == "removed":
                    row.status = "new"
                    row.next_poll_at = utcnow()
                row.language = spec.language
                if spec.interval:
                    row.interval_seconds = spec.interval
                elif row.configured_interval:  # the override was removed: adapt from the default again
                    row.interval_seconds = spec.default_interval
                row.configured_interval = spec.interval
                s.add(row)
            for row in rows.values():
                if row.status != "removed":
                    row.status = "removed"
                    s.add(row)
            s.commit()

    def feeds(self, include_removed: bool = False) -> list[Feed]:
        with self.session() as s:
            q = select(Feed).order_by(col(Feed.name))
            if not include_removed:
                q = q.where(Feed.status != "removed")
            return list(s.exec(q).all())

    def due_feeds(self, now: datetime, names: Iterable[str] | None = None, force: bool = False) -> list[Feed]:
        """Feeds to poll now; `force` ignores the schedule (but never polls gone or removed feeds)."""
        with self.session() as s:
            q = select(Feed).where(col(Feed.status).not_in(["removed", "gone"]))
            if not force:
                q = q.where(Feed.next_poll_at <= now)
            if names is not None:
                q = q.where(col(Feed.name).in_(list(names)))
            return list(s.exec(q.order_by(col(Feed.next_poll_at), col(Feed.id))).all())

    def record_poll(self, feed_id: int, rec: PollRecord, now: datetime) -> None:
        with self.session() as s:
            feed = s.get(Feed, feed_id)
            if feed is None:
                return
            feed.last_polled_at = now
            feed.next_poll_at = rec.next_poll_at
            if rec.status == "error":
                feed.error_count += 1
                feed.status = "error"
            elif rec.status == "gone":
                feed.status = "gone"
            else:
                feed.error_count = 0
                feed.last_success_at = now
                feed.status = "stale" if rec.stale else "ok"
            feed.last_error = rec.error
            if rec.interval_seconds:
                feed.interval_seconds = rec.interval_seconds
            if rec.avg_entry_gap is not None:
                feed.avg_entry_gap = rec.avg_entry_gap
            if rec.last_entry_at is not None:
                feed.last_entry_at = rec.last_entry_at
            if rec.save_cache:
                feed.etag = rec.etag
                feed.last_modified = rec.last_modified
                feed.body_hash = rec.body_hash
            if rec.moved_to:
                feed.current_url = rec.moved_to
            s.add(feed)
            s.commit()

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
        with self.session() as s:
            q = select(ItemSource.item_id).where(ItemSource.feed_id == feed_id, ItemSource.guid == guid)
            if url is not None:
                q = q.where(ItemSource.url == url)
            return s.exec(q.limit(1)).first()

    def find_by_url(self, url: str) -> int | None:
        """An item stored under this normalised URL, as its own URL, its
        canonical URL or the URL of one of its sources."""
        with self.session() as s:
            found = s.exec(
                select(Item.id).where(or_(col(Item.url) == url, col(Item.canonical_url) == url)).limit(1)
            ).first()
            if found is None:
                found = s.exec(select(ItemSource.item_id).where(ItemSource.url == url).limit(1)).first()
            return found

    def find_by_hash(self, content_hash: str) -> int | None:
        with self.session() as s:
            return s.exec(
                select(Item.id).where(Item.content_hash == content_hash).order_by(col(Item.id)).limit(1)
            ).first()

    def add_source(self, item_id: int, feed_id: int, url: str, guid: str | None) -> bool:
        """Record that `item_id` was seen in `feed_id` under `url`; False if known already."""
        with self.session() as s:
            exists = s.exec(select(ItemSource.id).where(ItemSource.feed_id == feed_id, ItemSource.url == url)).first()
            if exists is not None:
                return False
            s.add(ItemSource(item_id=item_id, feed_id=feed_id, url=url, guid=guid))
            try:
                s.commit()
            except IntegrityError:  # another worker recorded it first
                return False
            return True

    def add_item(self, new: NewItem) -> int | None:
        """Store a new item with its story, source, matches and outbox rows.
        None if an item with the same URL appeared meanwhile (another worker)."""
        try:
            return self._add_item(new)
        except IntegrityError:
            return None

    def _add_item(self, new: NewItem) -> int:
        now = utcnow()
        with self.session() as s:
            story = Story(title=new.title, first_seen_at=now, last_seen_at=now)
            s.add(story)
            s.flush()
            item = Item(
                feed_id=new.feed_id,
                url=new.url,
                canonical_url=new.canonical_url,
                guid=new.guid,
                title=new.title,
                author=new.author,
                published_at=new.published_at,
                fetched_at=now,
                language=new.language,
                language_probability=new.language_probability,
                language_source=new.language_source,
                site_name=new.site_name,
                image_url=new.image_url,
                text=new.text,
                text_source=new.text_source,
                content_hash=new.content_hash,
                story_id=story.id,
            )
            s.add(item)
            s.flush()
            assert item.id is not None and story.id is not None
            s.add(
                ItemSource(item_id=item.id, feed_id=new.feed_id, url=new.source_url, guid=new.guid, first_seen_at=now)
            )
            for m in new.matches:
                s.add(
                    Match(
                        rule=m.rule,
                        item_id=item.id,
                        story_id=story.id,
                        terms=json.dumps(list(m.terms), ensure_ascii=False),
                        snippet=m.snippet,
                        matched_at=now,
                    )
                )
                for channel in m.channels:
                    s.add(
                        Delivery(
                            rule=m.rule,
                            story_id=story.id,
                            item_id=item.id,
                            channel=channel,
                            kind="alert",
                            next_attempt_at=now,
                            created_at=now,
                        )
                    )
            s.commit()
            return item.id

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

    def item_counts(self) -> dict[int, int]:
        """Items seen per feed (through any of their sources)."""
        with self.session() as s:
            rows = s.exec(
                select(ItemSource.feed_id, func.count(func.distinct(ItemSource.item_id))).group_by(
                    col(ItemSource.feed_id)
                )
            ).all()
            return {feed_id: n for feed_id, n in rows}
