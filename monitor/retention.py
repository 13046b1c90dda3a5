"""Retention: `[storage] keep_text_days` and `keep_items_days`, `monitor db prune`.

Two steps, oldest first by `items.fetched_at` (when we stored the item: a
feed's own dates can be missing or wrong):

- **text**: after `keep_text_days`, `items.text` is set to NULL and
  `items.text_pruned_at` records when. The item keeps its title, URL,
  metadata, story, matches and alerts; the full-text index follows by
  trigger (SQLite `items_fts`, migration 0008) or generation (PostgreSQL
  `search_vector`).
- **items**: after `keep_items_days`, the item is deleted with its sources,
  band keys and matches, and a **tombstone** per source (feed, SHA-256 of
  the normalised URL, SHA-256 of the GUID) says it existed, so an entry a
  feed still lists is not stored, matched and alerted again as new
  (`storage.repository.is_tombstoned`, which the pipeline asks before fetching an entry).

An item an alert refers to (`deliveries.item_id`) is never deleted: the
delivery log (`delivery_log`, `monitor alerts`, `monitor explain`) names the
article it was about, and a pending or sending alert still has to be sent
with its title and link. Its text is still pruned. Near-duplicates of a
deleted item lose their `duplicate_of` pointer; a story's counts and
languages are recounted from the items it has left.

The decisions are pure (`plan`, `prunable`); `apply` does the SQL in small
batches, each in the serialised section the pipeline stores items in
(`storage.repository.INGEST_LOCK`), so no item gains a source while it is
being deleted. `run_retention_once` runs it at most once per UTC day across
every worker sharing the database (`job_runs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from monitor.config import Config, RetentionConfig
from storage.models import Delivery, Item, ItemSource, JobRun, LshBand, Match, Story, Tombstone, utcnow
from storage.repository import lock_for_writing, tombstone_hash, worker_name

log = logging.getLogger(__name__)

BATCH = 500
JOB = "retention"

_ITEMS = Item.__table__  # type: ignore[attr-defined]
_SOURCES = ItemSource.__table__  # type: ignore[attr-defined]
_BANDS = LshBand.__table__  # type: ignore[attr-defined]
_MATCHES = Match.__table__  # type: ignore[attr-defined]
_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_STORIES = Story.__table__  # type: ignore[attr-defined]
_TOMBSTONES = Tombstone.__table__  # type: ignore[attr-defined]
_JOBS = JobRun.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Plan:
    """The cut-off times: items fetched before `text_before` lose their text,
    items fetched before `items_before` are deleted. None: that step is off."""

    text_before: datetime | None
    items_before: datetime | None

    @property
    def empty(self) -> bool:
        return self.text_before is None and self.items_before is None


def plan(policy: RetentionConfig, now: datetime) -> Plan:
    """The cut-offs of `policy` at `now` (pure)."""
    return Plan(
        now - timedelta(days=policy.keep_text_days) if policy.keep_text_days else None,
        now - timedelta(days=policy.keep_items_days) if policy.keep_items_days else None,
    )


@dataclass(frozen=True)
class Candidate:
    """An item past `keep_items_days`, with what refers to it."""

    item_id: int
    alerted: bool  # a delivery names it (any status): kept


def prunable(candidates: Iterable[Candidate]) -> tuple[list[int], list[int]]:
    """(ids to delete, ids kept because an alert refers to them) (pure)."""
    delete_ids: list[int] = []
    kept: list[int] = []
    for c in candidates:
        (kept if c.alerted else delete_ids).append(c.item_id)
    return delete_ids, kept


@dataclass
class Outcome:
    """What pruning did (or, with dry_run, would do)."""

    texts_pruned: int = 0
    items_deleted: int = 0
    items_kept_for_alerts: int = 0
    tombstones: int = 0
    stories_emptied: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would " if self.dry_run else ""
        parts = [
            f"{verb}prune the text of {self.texts_pruned} item{'s' * (self.texts_pruned != 1)}",
            f"{verb}delete {self.items_deleted} item{'s' * (self.items_deleted != 1)}"
            + (f" leaving {self.tombstones} tombstone{'s' * (self.tombstones != 1)}" if self.tombstones else ""),
        ]
        if self.items_kept_for_alerts:
            parts.append(f"keep {self.items_kept_for_alerts} old item(s) that alerts refer to")
        if self.stories_emptied:
            parts.append(f"{self.stories_emptied} stor{'ies' if self.stories_emptied != 1 else 'y'} left empty")
        return ", ".join(parts)


@contextmanager
def _serialised(engine: Engine, lock: bool = True) -> Iterator[Connection]:
    """One transaction in the pipeline's serialised section (see Store.serialised);
    without `lock`, a plain one (a dry run only reads)."""
    with engine.connect() as conn:
        if lock:
            lock_for_writing(conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def apply(
    engine: Engine,
    p: Plan,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Prune texts and delete items as `p` says, in batches of BATCH items."""
    now = now or utcnow()
    out = Outcome(dry_run=dry_run)
    if p.text_before is not None:
        _prune_texts(engine, p.text_before, now, dry_run, out, progress)
    if p.items_before is not None:
        _delete_items(engine, p.items_before, now, dry_run, out, progress)
    return out


def _prune_texts(
    engine: Engine,
    before: datetime,
    now: datetime,
    dry_run: bool,
    out: Outcome,
    progress: Callable[[Outcome], None] | None,
) -> None:
    i = _ITEMS.c
    old = (i.fetched_at < bindparam("before", type_=i.fetched_at.type)) & i.text.is_not(None)
    if dry_run:
        with engine.connect() as conn:
            out.texts_pruned = conn.execute(
                select(func.count()).select_from(_ITEMS).where(old), {"before": before}
            ).scalar_one()
        return
    while True:
        with _serialised(engine) as conn:
            ids = list(conn.scalars(select(i.id).where(old).order_by(i.id).limit(BATCH), {"before": before}))
            if not ids:
                return
            conn.execute(
                update(_ITEMS).where(i.id.in_(ids)).values(text=None, text_pruned_at=now),
            )
        out.texts_pruned += len(ids)
        if progress:
            progress(out)


def _delete_items(
    engine: Engine,
    before: datetime,
    now: datetime,
    dry_run: bool,
    out: Outcome,
    progress: Callable[[Outcome], None] | None,
) -> None:
    i, d = _ITEMS.c, _DELIVERIES.c
    alerted = select(d.item_id).where(d.item_id == i.id).exists()
    after_id = 0
    while True:
        with _serialised(engine, lock=not dry_run) as conn:
            rows = conn.execute(
                select(i.id, alerted.label("alerted"))
                .where(i.fetched_at < bindparam("before", type_=i.fetched_at.type), i.id > after_id)
                .order_by(i.id)
                .limit(BATCH),
                {"before": before},
            ).all()
            if not rows:
                return
            after_id = rows[-1].id
            delete_ids, kept = prunable(Candidate(r.id, bool(r.alerted)) for r in rows)
            out.items_kept_for_alerts += len(kept)
            if delete_ids:
                if dry_run:
                    out.tombstones += conn.execute(
                        select(func.count()).select_from(_SOURCES).where(_SOURCES.c.item_id.in_(delete_ids))
                    ).scalar_one()
                    out.items_deleted += len(delete_ids)
                else:
                    tombs, emptied = _delete(conn, delete_ids, now)
                    out.tombstones += tombs
                    out.stories_emptied += emptied
                    out.items_deleted += len(delete_ids)
            if dry_run:
                conn.rollback()
        if progress:
            progress(out)


def _delete(conn: Connection, ids: Sequence[int], now: datetime) -> tuple[int, int]:
    """Delete the items `ids` and what depends on them; (tombstones written, stories emptied)."""
    i, s = _ITEMS.c, _SOURCES.c
    sources = conn.execute(select(s.feed_id, s.url, s.guid).where(s.item_id.in_(ids))).all()
    tombstones = [
        {
            "feed_id": r.feed_id,
            "url_hash": tombstone_hash(r.url),
            "guid_hash": tombstone_hash(r.guid) if r.guid else None,
        }
        for r in sources
    ]
    own = conn.execute(select(i.id, i.feed_id, i.url, i.canonical_url, i.story_id).where(i.id.in_(ids))).all()
    source_hashes = {t["url_hash"] for t in tombstones}
    for r in own:
        # URL-only tombstones for the item's own and canonical URLs not among its sources.
        for url in {r.url, r.canonical_url} - {None}:
            assert url is not None
            if tombstone_hash(url) not in source_hashes:
                tombstones.append({"feed_id": None, "url_hash": tombstone_hash(url), "guid_hash": None})
                source_hashes.add(tombstone_hash(url))
    for t in tombstones:
        t["pruned_at"] = now
    if tombstones:
        conn.execute(insert(_TOMBSTONES), tombstones)
    stories = {r.story_id for r in own if r.story_id is not None}
    conn.execute(update(_ITEMS).where(i.duplicate_of.in_(ids)).values(duplicate_of=None))
    conn.execute(delete(_BANDS).where(_BANDS.c.item_id.in_(ids)))
    conn.execute(delete(_MATCHES).where(_MATCHES.c.item_id.in_(ids)))
    conn.execute(delete(_SOURCES).where(s.item_id.in_(ids)))
    conn.execute(delete(_ITEMS).where(i.id.in_(ids)))
    emptied = recount_stories(conn, stories)
    return len(tombstones), emptied


def recount_stories(conn: Connection, story_ids: Iterable[int]) -> int:
    """Recount item_count, source_count and languages of stories from their items;
    a story left without items (and without matches or alerts) is deleted.
    Returns the number of stories left without items."""
    i, s, st = _ITEMS.c, _SOURCES.c, _STORIES.c
    emptied = 0
    for sid in sorted(story_ids):
        count = conn.execute(select(func.count()).select_from(_ITEMS).where(i.story_id == sid)).scalar_one()
        if count == 0:
            emptied += 1
            referenced = (
                conn.execute(
                    select(func.count()).select_from(_DELIVERIES).where(_DELIVERIES.c.story_id == sid)
                ).scalar_one()
                + conn.execute(
                    select(func.count()).select_from(_MATCHES).where(_MATCHES.c.story_id == sid)
                ).scalar_one()
            )
            if referenced:
                conn.execute(update(_STORIES).where(st.id == sid).values(item_count=0))
            else:
                conn.execute(delete(_STORIES).where(st.id == sid))
            continue
        languages = sorted(
            {
                lang
                for (lang,) in conn.execute(select(i.language).where(i.story_id == sid).distinct())
                if lang is not None
            }
        )
        feeds = conn.execute(
            select(func.count(func.distinct(s.feed_id)))
            .select_from(_SOURCES.join(_ITEMS, i.id == s.item_id))
            .where(i.story_id == sid)
        ).scalar_one()
        conn.execute(
            update(_STORIES)
            .where(st.id == sid)
            .values(item_count=count, source_count=max(1, feeds), languages=",".join(languages) or None)
        )
    return emptied


def prune(engine: Engine, policy: RetentionConfig, now: datetime | None = None, dry_run: bool = False) -> Outcome:
    """`monitor db prune`: apply the configured retention now."""
    now = now or utcnow()
    return apply(engine, plan(policy, now), now, dry_run)


def run_retention_once(
    engine: Engine, config: Config | RetentionConfig, worker: str | None = None, now: datetime | None = None
) -> Outcome | None:
    """Run retention if no worker has run it this UTC day: claim (`retention`, date)
    in `job_runs` by inserting it; a unique violation means another worker did.
    None when retention is off or it already ran today. Meant for every daemon tick."""
    policy = config.retention if isinstance(config, Config) else config
    now = now or utcnow()
    p = plan(policy, now)
    if p.empty:
        return None
    period = now.astimezone(UTC).strftime("%Y-%m-%d")
    worker = worker or worker_name()
    j = _JOBS.c
    with engine.connect() as conn:
        # Most ticks end here: a read, not a failing insert in the server's log.
        if conn.execute(select(j.worker).where(j.job == JOB, j.period == period)).first() is not None:
            return None
    try:
        with engine.begin() as conn:
            conn.execute(insert(_JOBS).values(job=JOB, period=period, worker=worker, started_at=now))
    except IntegrityError:  # another worker claimed it between our read and our insert
        return None
    try:
        outcome = apply(engine, p, now)
    except Exception as exc:
        _finish(engine, period, f"failed: {type(exc).__name__}: {exc}")
        raise
    _finish(engine, period, outcome.summary())
    log.info("retention: %s", outcome.summary())
    return outcome


def _finish(engine: Engine, period: str, outcome: str) -> None:
    j = _JOBS.c
    with engine.begin() as conn:
        conn.execute(
            update(_JOBS).where(j.job == JOB, j.period == period).values(finished_at=utcnow(), outcome=outcome[:2000])
        )
