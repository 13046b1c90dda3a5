"""Leases (issue 8): workers claim feeds and deliveries for a while under a
token, and only the token's holder records the outcome. On both engines."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from itemfactory import new_item
from sqlmodel import Session, col, select

from alerts.channels import DeliveryError
from alerts.outbox import DeliveryStats, Outbox
from alerts.policy import RulePolicy
from alerts.render import Alert
from storage.db import make_engine, upgrade
from storage.models import Delivery, Feed, utcnow
from storage.repository import FeedSpec, MatchRecord, PollRecord, Store, lease_token

LEASE = timedelta(minutes=10)
MATCH = MatchRecord("r", ("kyiv",), "Kyiv", ("console",), RulePolicy(max_per_hour=1000))


class Sink:
    """A channel that accepts everything."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> str | None:
        self.sent.append(alert)
        return None


@pytest.fixture
def store(db_url: str) -> Store:
    engine = make_engine(db_url, pool_size=12)
    upgrade(engine)
    return Store(engine)


def add_feeds(store: Store, n: int) -> list[Feed]:
    store.sync_feeds([FeedSpec(f"f{i:03}", f"http://127.0.0.1/f{i}", 600, 1800) for i in range(n)])
    return store.feeds()


def row(store: Store, feed_id: int | None) -> Feed:
    with store.session() as s:
        feed = s.get(Feed, feed_id)
        assert feed is not None
        return feed


def test_a_claimed_feed_is_not_claimed_again_until_its_lease_expires(store: Store) -> None:
    add_feeds(store, 3)
    now = utcnow()
    a = store.claim_feeds(now, "a", LEASE, 2)
    b = store.claim_feeds(now, "b", LEASE, 10)
    assert len(a) == 2 and len(b) == 1
    assert {f.name for f in a}.isdisjoint(f.name for f in b)
    assert all(f.lease_token == "a" for f in a)
    assert store.claim_feeds(now, "c", LEASE, 10) == []
    # Eleven minutes later, all three leases have expired and may be taken over.
    later = store.claim_feeds(now + timedelta(minutes=11), "c", LEASE, 10)
    assert sorted(f.name for f in later) == ["f000", "f001", "f002"]


def test_only_the_lease_holder_records_the_poll(store: Store) -> None:
    (feed,) = add_feeds(store, 1)
    now = utcnow()
    (stale,) = store.claim_feeds(now, "stalled", LEASE, 1)
    # The first worker stalls past its lease; a second one takes the feed and polls it.
    (fresh,) = store.claim_feeds(now + timedelta(minutes=11), "fresh", LEASE, 1)
    assert not store.renew_feed_lease(feed.id or 0, "stalled", now + timedelta(minutes=20))
    done = PollRecord("ok", now + timedelta(hours=1), etag='"new"', body_hash="new", save_cache=True)
    assert store.record_poll(feed.id or 0, done, now + timedelta(minutes=11), "fresh")
    # The stalled worker wakes up with an older answer: refused, the newer poll stands.
    old = PollRecord("error", now + timedelta(minutes=1), error="http: HTTP 500")
    assert not store.record_poll(feed.id or 0, old, now + timedelta(minutes=12), stale.lease_token)
    f = row(store, feed.id)
    assert (f.status, f.etag, f.error_count, f.lease_token, f.lease_until) == ("ok", '"new"', 0, None, None)
    assert f.next_poll_at.replace(tzinfo=None) == (now + timedelta(hours=1)).replace(tzinfo=None)
    assert fresh.lease_token == "fresh"


def test_recorded_poll_frees_the_feed_and_a_released_one_is_claimable(store: Store) -> None:
    feeds = add_feeds(store, 2)
    now = utcnow()
    claimed = store.claim_feeds(now, "w", LEASE, 2)
    assert len(claimed) == 2
    assert store.record_poll(claimed[0].id or 0, PollRecord("ok", now + timedelta(hours=1)), now, "w")
    store.release_feeds([claimed[1].id or 0], "w")
    # The polled feed is not due; the released one is claimable at once.
    assert [f.name for f in store.claim_feeds(now, "x", LEASE, 10)] == [claimed[1].name]
    assert len(feeds) == 2


def test_paused_gone_and_polled_feeds_are_not_claimed(store: Store) -> None:
    feeds = add_feeds(store, 4)
    now = utcnow()
    with store.session() as s:
        for f, change in zip(feeds, ("paused", "gone", "polled", None), strict=True):
            f = s.get(Feed, f.id)
            assert f is not None
            if change == "paused":
                f.paused_at = now
            elif change == "gone":
                f.status = "gone"
            elif change == "polled":
                f.last_polled_at = now
            s.add(f)
        s.commit()
    got = store.claim_feeds(now, "w", LEASE, 10, force=True, polled_before=now - timedelta(seconds=1))
    assert [f.name for f in got] == ["f003"]


def test_concurrent_claims_share_the_feeds_without_overlap(store: Store) -> None:
    """Eight threads claim batches of 7 out of 200 due feeds at once: every feed
    goes to exactly one of them (SKIP LOCKED on PostgreSQL, the write lock on SQLite)."""
    add_feeds(store, 200)
    now = utcnow()
    got: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        while feeds := store.claim_feeds(now, lease_token(), LEASE, 7):
            with lock:
                got.update(f.name for f in feeds)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200
    assert set(got.values()) == {1}


def queue_alert(store: Store) -> int:
    store.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    store.add_item(new_item(feed_id, "http://127.0.0.1/a", matches=[MATCH]))
    with Session(store.engine) as s:
        (d,) = s.exec(select(Delivery)).all()
        assert d.id is not None
        return d.id


def test_a_stalled_sender_does_not_overwrite_the_outcome_of_the_next(store: Store) -> None:
    delivery_id = queue_alert(store)
    now = utcnow()
    stalled = Outbox(store.engine, {"console": Sink()}, lease=timedelta(seconds=30))
    assert stalled.claim(now, token="stalled") == [delivery_id]
    # Its lease runs out; another sender claims the row and sends it.
    fresh = Outbox(store.engine, {"console": Sink()})
    assert fresh.deliver_due(now + timedelta(minutes=1)).sent == 1
    # The stalled sender finally hears of a failure: it records nothing.
    stalled._failed(delivery_id, "stalled", DeliveryError("timeout"), DeliveryStats())
    with Session(store.engine) as s:
        d = s.get(Delivery, delivery_id)
        assert d is not None
        assert (d.status, d.attempts, d.last_error, d.lease_token) == ("sent", 2, None, None)


def test_concurrent_senders_claim_each_delivery_once(store: Store) -> None:
    store.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    for i in range(60):
        store.add_item(
            new_item(
                feed_id,
                f"http://127.0.0.1/a{i}",
                title=f"Title {i} " + "x" * i,
                text=f"story number {i} " * 5 + " ".join(f"w{i}x{j}" for j in range(40)),
                matches=[MATCH],
            )
        )
    with Session(store.engine) as s:
        total = len(s.exec(select(Delivery).where(col(Delivery.status) == "pending")).all())
    assert total > 0
    claimed: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(6)
    outbox = Outbox(store.engine, {"console": Sink()})

    def sender() -> None:
        start.wait()
        while ids := outbox.claim(utcnow(), 3):
            with lock:
                claimed.update(ids)

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == total
    assert set(claimed.values()) == {1}


def test_workers_starting_at_once_sync_the_feeds_without_conflict(store: Store) -> None:
    specs = [FeedSpec(f"s{i:02}", f"http://127.0.0.1/s{i}", 600, 1800) for i in range(50)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            store.sync_feeds(specs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(f.name for f in store.feeds()) == [s.name for s in specs]


def test_a_poll_in_flight_does_not_undo_a_configuration_change(store: Store) -> None:
    """A worker reloads feeds.toml (the feed removed, another's URL changed) while
    another polls them: the in-flight polls record nothing over the change."""
    add_feeds(store, 2)
    now = utcnow()
    gone, moved = store.claim_feeds(now, "busy", LEASE, 2)
    store.sync_feeds([FeedSpec(moved.name, "http://127.0.0.1/elsewhere", 600, 1800)])
    done = PollRecord("ok", now + timedelta(hours=1), etag='"old"', body_hash="old", save_cache=True)
    assert not store.record_poll(gone.id or 0, done, now, "busy")
    assert not store.record_poll(moved.id or 0, done, now, "busy")
    g, m = row(store, gone.id), row(store, moved.id)
    assert g.status == "removed"
    assert (m.url, m.current_url, m.body_hash, m.etag, m.status) == (
        "http://127.0.0.1/elsewhere",
        "http://127.0.0.1/elsewhere",
        None,
        None,
        "new",
    )
    # Nor is the removed feed claimed again.
    assert [f.name for f in store.claim_feeds(utcnow() + timedelta(seconds=1), "next", LEASE, 10)] == [moved.name]
