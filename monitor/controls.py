"""Operator controls: pause, resume and revive feeds; mute rules; merge and
split stories; backfill a rule over stored items.

Each is one short transaction on the shared tables, so it works the same with
one daemon or several running: the daemons read `feeds.paused_at` when they
pick the due feeds and `rule_mutes` when they queue alerts (see the WHERE
clauses `due_feeds_filter` and `muted_rules`). Every function raises
`ControlError` with a message naming the feed, rule, story or item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.config import RuleConfig
from monitor.dedupe import profile_time
from monitor.retention import recount_stories
from monitor.stories import Profile, profile, story_profile
from storage.models import Delivery, Feed, Item, Match, RuleMute, Story, utcnow
from storage.repository import lock_for_writing

_FEEDS = Feed.__table__  # type: ignore[attr-defined]
_ITEMS = Item.__table__  # type: ignore[attr-defined]
_MATCHES = Match.__table__  # type: ignore[attr-defined]
_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_STORIES = Story.__table__  # type: ignore[attr-defined]
_MUTES = RuleMute.__table__  # type: ignore[attr-defined]


class ControlError(Exception):
    """An operator command that cannot be carried out; the message says why."""


# -- feeds ----------------------------------------------------------------------


def _feed(conn: Connection, name: str) -> dict[str, object]:
    row = (
        conn.execute(select(_FEEDS.c.id, _FEEDS.c.status, _FEEDS.c.paused_at).where(_FEEDS.c.name == name))
        .mappings()
        .first()
    )
    if row is None:
        raise ControlError(
            f"no feed named {name!r} in the database "
            "(a feed new in feeds.toml is added by `monitor poll` or `monitor run`)"
        )
    return dict(row)


def pause_feed(engine: Engine, name: str, now: datetime | None = None) -> bool:
    """Stop polling feed `name` until resumed; False if it was paused already."""
    with engine.begin() as conn:
        feed = _feed(conn, name)
        if feed["paused_at"] is not None:
            return False
        conn.execute(update(_FEEDS).where(_FEEDS.c.id == feed["id"]).values(paused_at=now or utcnow()))
        return True


def resume_feed(engine: Engine, name: str, now: datetime | None = None) -> bool:
    """Poll feed `name` again (due now); False if it was not paused."""
    with engine.begin() as conn:
        feed = _feed(conn, name)
        if feed["paused_at"] is None:
            return False
        conn.execute(
            update(_FEEDS).where(_FEEDS.c.id == feed["id"]).values(paused_at=None, next_poll_at=now or utcnow())
        )
        return True


def revive_feed(engine: Engine, name: str, now: datetime | None = None) -> None:
    """A feed that answered `410 Gone` back to `new`, due now, errors cleared."""
    with engine.begin() as conn:
        feed = _feed(conn, name)
        if feed["status"] != "gone":
            raise ControlError(f"feed {name!r} is {feed['status']}, not gone: nothing to revive")
        conn.execute(
            update(_FEEDS)
            .where(_FEEDS.c.id == feed["id"])
            .values(status="new", error_count=0, last_error=None, next_poll_at=now or utcnow())
        )


def due_feeds_filter() -> object:
    """The condition the poller adds to its due-feeds query: not paused."""
    return _FEEDS.c.paused_at.is_(None)


# -- rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mute:
    rule: str
    until: datetime
    reason: str | None


def mute_rule(
    engine: Engine, rule: str, duration: timedelta, reason: str | None = None, now: datetime | None = None
) -> Mute:
    """Queue no alert for `rule` for `duration` from now (matches are still
    recorded); muting a muted rule sets the new end."""
    if duration <= timedelta(0):
        raise ControlError(f"rule {rule!r}: the mute must last a positive time, got {duration}")
    now = now or utcnow()
    row = {"rule": rule, "until": now + duration, "reason": reason, "created_at": now}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            pg = postgresql.insert(_MUTES)
            conn.execute(pg.on_conflict_do_update(index_elements=["rule"], set_=_upsert(pg.excluded)), row)
        else:
            lite = sqlite.insert(_MUTES)
            conn.execute(lite.on_conflict_do_update(index_elements=["rule"], set_=_upsert(lite.excluded)), row)
    return Mute(rule, row["until"], reason)  # type: ignore[arg-type]


def _upsert(new: object) -> dict[str, object]:
    return {k: getattr(new, k) for k in ("until", "reason", "created_at")}


def unmute_rule(engine: Engine, rule: str) -> bool:
    """End a rule's mute; False if it was not muted."""
    with engine.begin() as conn:
        return bool(conn.execute(_MUTES.delete().where(_MUTES.c.rule == rule)).rowcount)


def muted_rules(conn: Connection, now: datetime) -> set[str]:
    """The rules muted at `now`: the alert writer queues no delivery for them."""
    return set(conn.scalars(select(_MUTES.c.rule).where(_MUTES.c.until > now)))


def mutes(engine: Engine, now: datetime | None = None) -> list[Mute]:
    """The mutes in force at `now`, for listing."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(select(_MUTES).where(_MUTES.c.until > now).order_by(_MUTES.c.rule)).all()
    return [Mute(r.rule, _aware(r.until), r.reason) for r in rows]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- stories ----------------------------------------------------------------------


def _story(conn: Connection, story_id: int) -> dict[str, object]:
    row = conn.execute(select(_STORIES).where(_STORIES.c.id == story_id)).mappings().first()
    if row is None:
        raise ControlError(f"no story {story_id}")
    return dict(row)


@dataclass(frozen=True)
class MergeResult:
    story_id: int
    moved_items: int
    moved_alerts: int
    kept_alerts: int  # alerts of the merged story for rules the target had alerted too: they stay with it


def merge_stories(engine: Engine, target: int, merged: int, now: datetime | None = None) -> MergeResult:
    """Move every item (and match) of story `merged` into story `target`, and its
    alerts where the target has none for the same rule, channel and kind. The
    merged story stays as an empty row (item_count 0) for the alerts that remain
    about it; its profile is cleared so no new item joins it. The target's
    counts, languages and profile are recomputed."""
    if target == merged:
        raise ControlError(f"cannot merge story {target} into itself")
    now = now or utcnow()
    with engine.connect() as conn:
        lock_for_writing(conn)  # stories change under the pipeline's serialised section
        a, b = _story(conn, target), _story(conn, merged)
        i, m, d = _ITEMS.c, _MATCHES.c, _DELIVERIES.c
        moved = conn.execute(update(_ITEMS).where(i.story_id == merged).values(story_id=target)).rowcount
        conn.execute(update(_MATCHES).where(m.story_id == merged).values(story_id=target))
        # Matches of one rule on one item are unique already; per story alerts are
        # unique by (rule, story, channel, kind): move only those the target lacks.
        target_keys = {
            (r.rule, r.channel, r.kind)
            for r in conn.execute(select(d.rule, d.channel, d.kind).where(d.story_id == target))
        }
        movable = [
            r.id
            for r in conn.execute(select(d.id, d.rule, d.channel, d.kind).where(d.story_id == merged))
            if (r.rule, r.channel, r.kind) not in target_keys
        ]
        if movable:
            conn.execute(update(_DELIVERIES).where(d.id.in_(movable)).values(story_id=target))
        kept = conn.execute(select(func.count()).select_from(_DELIVERIES).where(d.story_id == merged)).scalar_one()
        profiles = [Profile.from_json(str(p)) for p in (a["profile"], b["profile"]) if p is not None]
        first = min(_aware(a["first_seen_at"]), _aware(b["first_seen_at"]))  # type: ignore[arg-type]
        conn.execute(
            update(_STORIES)
            .where(_STORIES.c.id == target)
            .values(
                title=a["title"] or b["title"],
                first_seen_at=first,
                last_seen_at=now,  # items were added to it now; daemons reload its profile
                profile=story_profile(profiles).to_json() if profiles else None,
            )
        )
        recount_stories(conn, [target])
        # Not deleted: the daemons' story caches drop it when they see it changed without a profile.
        conn.execute(
            update(_STORIES).where(_STORIES.c.id == merged).values(item_count=0, profile=None, last_seen_at=now)
        )
        if (
            not kept
            and not conn.execute(select(func.count()).select_from(_MATCHES).where(m.story_id == merged)).scalar_one()
        ):
            conn.execute(update(_STORIES).where(_STORIES.c.id == merged).values(source_count=0, languages=None))
        conn.commit()
    return MergeResult(target, moved, len(movable), kept)


def split_item(engine: Engine, item_id: int, now: datetime | None = None) -> int:
    """Move item `item_id` (with the near-duplicates of it) out of its story into
    a new story of its own; returns the new story's id. Its alerts stay with
    the old story (they were sent about it)."""
    now = now or utcnow()
    i, m = _ITEMS.c, _MATCHES.c
    with engine.connect() as conn:
        lock_for_writing(conn)  # stories change under the pipeline's serialised section
        item = conn.execute(select(_ITEMS).where(i.id == item_id)).mappings().first()
        if item is None:
            raise ControlError(f"no item {item_id}")
        old = item["story_id"]
        moving = [item_id] + list(conn.scalars(select(i.id).where(i.duplicate_of == item_id, i.story_id == old)))
        if old is not None:
            total = conn.execute(select(func.count()).select_from(_ITEMS).where(i.story_id == old)).scalar_one()
            if total <= len(moving):
                raise ControlError(
                    f"item {item_id} is alone in story {old} (with its near-duplicates): nothing to split"
                )
        fetched = _aware(item["fetched_at"])
        p = profile(
            item["title"] or "", item["text"] or "", item["language"], profile_time(item["published_at"], fetched)
        )
        new_id = conn.execute(
            insert(_STORIES).values(
                title=item["title"],
                first_seen_at=fetched,
                last_seen_at=now,
                item_count=len(moving),
                source_count=1,
                languages=item["language"],
                profile=p.to_json(),
            )
        ).inserted_primary_key
        assert new_id is not None
        story_id = int(new_id[0])
        conn.execute(update(_ITEMS).where(i.id.in_(moving)).values(story_id=story_id))
        conn.execute(update(_ITEMS).where(i.id == item_id).values(duplicate_of=None))
        conn.execute(update(_MATCHES).where(m.item_id.in_(moving)).values(story_id=story_id))
        recount_stories(conn, [story_id] + ([old] if old is not None else []))
        conn.commit()
    return story_id


# -- backfill -------------------------------------------------------------------


@dataclass
class Backfill:
    matched: int = 0  # items the rule matches
    recorded: int = 0  # new matches rows (the others were recorded already)


def backfill_rule(
    engine: Engine,
    rule: RuleConfig,
    since: datetime | None = None,
    progress: Callable[[Backfill], None] | None = None,
    every: int = 200,
) -> Backfill:
    """Match one configured rule over the stored items (with the pipeline's matcher,
    `monitor.search`) and record the `matches` rows it lacks. No alert is queued:
    these items were stored long ago."""
    from monitor.search import search

    out = Backfill()
    batch: list[dict[str, object]] = []
    now = utcnow()

    def flush() -> None:
        if not batch:
            return
        ids = [row["item_id"] for row in batch]
        with engine.begin() as conn:
            known = conn.execute(
                select(func.count())
                .select_from(_MATCHES)
                .where(_MATCHES.c.rule == rule.name, _MATCHES.c.item_id.in_(ids))
            ).scalar_one()
            if conn.dialect.name == "postgresql":
                conn.execute(
                    postgresql.insert(_MATCHES).on_conflict_do_nothing(constraint="uq_matches_rule_item"), batch
                )
            else:
                conn.execute(sqlite.insert(_MATCHES).on_conflict_do_nothing(index_elements=["rule", "item_id"]), batch)
        out.recorded += len(batch) - known
        batch.clear()

    for hit in search(engine, rule.query, since, stem=rule.stem, fuzzy=rule.fuzzy, languages=tuple(rule.languages)):
        out.matched += 1
        batch.append(
            {
                "rule": rule.name,
                "item_id": hit.item_id,
                "story_id": hit.story_id,
                "terms": json.dumps(list(hit.terms), ensure_ascii=False),
                "snippet": hit.snippet,
                "matched_at": now,
            }
        )
        if len(batch) >= every:
            flush()
            if progress:
                progress(out)
    flush()
    if progress:
        progress(out)
    return out


def known_rule(rules: Iterable[RuleConfig], name: str, config_name: str) -> RuleConfig:
    for r in rules:
        if r.name == name:
            return r
    raise ControlError(f"no rule named {name!r} in {config_name}")
