"""No floods: backlog, per-rule budget and digests, as pure decisions and on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itemfactory import new_item as build_item
from sqlalchemy import text
from sqlmodel import Session, select

from alerts.digest import Held, build_digests, due_groups
from alerts.outbox import Outbox
from alerts.policy import RulePolicy, digest_period, hold_for, period_start
from alerts.render import Alert
from storage.db import make_engine, upgrade
from storage.models import Delivery, utcnow
from storage.repository import FeedSpec, MatchRecord, NewItem, Store

# -- pure decisions ------------------------------------------------------------------


def test_hold_precedence() -> None:
    assert hold_for(False, None, 0, 20) is None
    assert hold_for(False, None, 19, 20) is None
    assert hold_for(False, None, 20, 20) == "budget"
    assert hold_for(False, "daily", 0, 20) == "digest"
    assert hold_for(True, "daily", 99, 20) == "backlog"  # the backlog never alerts, not even in a digest


def test_rule_digest_wins_over_channel_digest() -> None:
    p = RulePolicy(digest="hourly", channel_digests={"desk": "daily"})
    assert p.period("desk") == "hourly" and p.period("console") == "hourly"
    q = RulePolicy(channel_digests={"desk": "daily"})
    assert q.period("desk") == "daily" and q.period("console") is None


def test_digest_period() -> None:
    assert digest_period("budget", None) == "hourly"
    assert digest_period("budget", "daily") == "daily"
    assert digest_period("digest", "daily") == "daily"
    assert digest_period("digest", None) == "hourly"  # digest mode switched off since
    assert digest_period("backlog", "daily") is None


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_period_start(now: datetime) -> None:
    hour, day = period_start("hourly", now), period_start("daily", now)
    assert hour <= now < hour + timedelta(hours=1) and (hour.minute, hour.second, hour.microsecond) == (0, 0, 0)
    assert day <= hour and day.date() == now.date() and day.hour == 0
    with pytest.raises(ValueError):
        period_start("weekly", now)


def test_due_groups_take_what_was_held_before_the_boundary() -> None:
    t = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
    held = [
        Held(1, "r", "console", 1, 1, "budget", t + timedelta(minutes=5)),
        Held(2, "r", "console", 2, 2, "budget", t + timedelta(minutes=65)),
        Held(3, "d", "console", 3, 3, "digest", t + timedelta(minutes=5)),
        Held(4, "r", "desk", 4, 4, "backlog", t),
    ]
    policies = {"d": RulePolicy(digest="daily")}
    assert due_groups(held, policies, t + timedelta(minutes=30)) == {}
    assert due_groups(held, policies, t + timedelta(minutes=61)) == {("r", "console"): [held[0]]}
    assert due_groups(held, policies, t + timedelta(hours=14)) == {
        ("r", "console"): held[:2],
        ("d", "console"): [held[2]],
    }


# -- on the database ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> str | None:
        self.sent.append(alert)
        return None


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    s = Store(engine)
    s.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800), FeedSpec("g", "http://127.0.0.1/g", 600, 1800)])
    yield s
    engine.dispose()


DEFAULT = RulePolicy()


def new_item(store: Store, n: int, policy: RulePolicy, backlog: bool = False, feed: int = 0) -> NewItem:
    feed_id = store.feeds()[feed].id
    assert feed_id is not None
    url = f"http://127.0.0.1/a{n}"
    return build_item(
        feed_id,
        url,
        title=f"Story {n}",
        language_probability=0.99,
        text=f"texte {n}",
        matches=[MatchRecord("r", ("garanties",), "**garanties**", ("console", "desk"), policy)],
        backlog=backlog,
    )


def add(store: Store, n: int, policy: RulePolicy = DEFAULT, backlog: bool = False, story: int | None = None) -> int:
    with store.serialised() as ingest:
        item_id = ingest.add_item(new_item(store, n, policy, backlog, feed=n % 2), story)
    return item_id


def rows(store: Store) -> list[tuple[str, str | None, str, int, int | None]]:
    with Session(store.engine) as s:
        return [
            (d.status, d.hold, d.channel, d.item_id, d.digest_id)
            for d in s.exec(select(Delivery).where(Delivery.kind == "alert").order_by(Delivery.id)).all()
        ]


def story_of(store: Store, item_id: int) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT story_id FROM items WHERE id = :i"), {"i": item_id}).scalar_one())


def test_backlog_is_held_and_released_by_fresh_news_of_the_story(store: Store) -> None:
    first = add(store, 1, backlog=True)
    story = story_of(store, first)
    add(store, 2, backlog=True, story=story)  # more backlog of the story: still held
    assert rows(store) == [("held", "backlog", "console", first, None), ("held", "backlog", "desk", first, None)]
    ch, desk = Recorder(), Recorder()
    outbox = Outbox(store.engine, {"console": ch, "desk": desk})
    assert outbox.deliver_due().sent == 0
    fresh = add(store, 3, story=story)  # a new entry of another feed on the same story
    assert rows(store) == [("pending", None, "console", fresh, None), ("pending", None, "desk", fresh, None)]
    assert outbox.deliver_due().sent == 2
    assert [a.item_id for a in ch.sent] == [fresh] and [a.item_id for a in desk.sent] == [fresh]
    add(store, 4, story=story)  # the story has its alert: no second one
    assert outbox.deliver_due().sent == 0 and len(rows(store)) == 2


def test_budget_overflow_goes_to_the_hourly_digest(store: Store) -> None:
    policy = RulePolicy(max_per_hour=3)
    ids = [add(store, n, policy) for n in range(5)]
    console = [r for r in rows(store) if r[2] == "console"]
    assert [r[:2] for r in console] == [("pending", None)] * 3 + [("held", "budget")] * 2
    ch, desk = Recorder(), Recorder()
    outbox = Outbox(store.engine, {"console": ch, "desk": desk})
    assert outbox.deliver_due().sent == 6  # 3 per channel
    policies = {"r": policy}
    assert build_digests(store.engine, policies) == []  # the hour is not over
    later = utcnow() + timedelta(hours=1)
    digests = build_digests(store.engine, policies, later)
    assert len(digests) == 2  # one per channel
    assert build_digests(store.engine, policies, later + timedelta(hours=1)) == []  # each held alert once
    assert outbox.deliver_due(now=later).sent == 2
    (digest,) = ch.sent[3:]
    assert digest.kind == "digest" and [e.item_id for e in digest.entries] == ids[3:]
    assert {r[0] for r in rows(store) if r[1] == "budget"} == {"digested"}
    assert {r[4] for r in rows(store) if r[1] == "budget"} == set(digests)


def test_budget_counts_only_the_last_hour(store: Store) -> None:
    policy = RulePolicy(max_per_hour=2)
    add(store, 0, policy)
    add(store, 1, policy)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET created_at = :t"), {"t": utcnow() - timedelta(minutes=61)})
    add(store, 2, policy)
    add(store, 3, policy)
    add(store, 4, policy)
    assert [r[1] for r in rows(store) if r[2] == "console"] == [None, None, None, None, "budget"]


def test_daily_digest_on_one_channel(store: Store) -> None:
    policy = RulePolicy(channel_digests={"desk": "daily"})
    for n in range(3):
        add(store, n, policy)
    assert [(r[0], r[1], r[2]) for r in rows(store) if r[2] == "desk"] == [("held", "digest", "desk")] * 3
    ch, desk = Recorder(), Recorder()
    outbox = Outbox(store.engine, {"console": ch, "desk": desk})
    assert outbox.deliver_due().sent == 3 and desk.sent == []
    with Session(store.engine) as s:
        created = max(s.exec(select(Delivery.created_at)).all())
    assert build_digests(store.engine, {"r": policy}, created) == []  # the day is not over
    midnight = period_start("daily", created) + timedelta(days=1, minutes=1)
    build_digests(store.engine, {"r": policy}, midnight)
    assert outbox.deliver_due(now=midnight).sent == 1
    (digest,) = desk.sent
    assert digest.kind == "digest" and len(digest.entries) == 3
    assert digest.entries[0].title == "Story 0" and digest.entries[0].terms == ("garanties",)
