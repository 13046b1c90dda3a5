"""The outbox on a real database: retries, dead letters, leases, idempotency."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from itemfactory import new_item
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from alerts.channels import DeliveryError
from alerts.outbox import Outbox, list_deliveries, next_state, retry_delay
from alerts.render import Alert
from storage.db import make_engine, upgrade
from storage.models import Delivery, utcnow
from storage.repository import FeedSpec, MatchRecord, Store


class Recorder:
    def __init__(self, name: str = "console", fail: list[DeliveryError | None] | None = None) -> None:
        self.name = name
        self.sent: list[Alert] = []
        self.fail = fail or []

    def send(self, alert: Alert) -> str | None:
        if self.fail:
            err = self.fail.pop(0)
            if err is not None:
                raise err
        self.sent.append(alert)
        return None


@pytest.fixture
def store(db_url: str) -> Store:
    engine = make_engine(db_url)
    upgrade(engine)
    s = Store(engine)
    s.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    yield s
    engine.dispose()


def add(store: Store, url: str = "http://127.0.0.1/a", channels: tuple[str, ...] = ("console",)) -> int:
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    item_id = store.add_item(
        new_item(
            feed_id,
            url,
            language_probability=0.99,
            text="texte",
            matches=[MatchRecord("r", ("garanties",), "**garanties**", channels)],
        )
    )
    assert item_id is not None
    return item_id


def test_sent_once(store: Store) -> None:
    add(store)
    ch = Recorder()
    outbox = Outbox(store.engine, {"console": ch})
    assert outbox.deliver_due().sent == 1
    assert outbox.deliver_due().sent == 0
    assert [a.rule for a in ch.sent] == ["r"]
    assert ch.sent[0].terms == ("garanties",)


def test_transient_failure_is_retried_later(store: Store) -> None:
    add(store)
    ch = Recorder(fail=[DeliveryError("smtp down")])
    outbox = Outbox(store.engine, {"console": ch}, rng=random.Random(1))
    stats = outbox.deliver_due()
    assert (stats.sent, stats.retried) == (0, 1)
    with Session(store.engine) as s:
        d = s.exec(select(Delivery)).one()
        assert d.status == "pending" and d.attempts == 1 and d.last_error == "smtp down"
        due = d.next_attempt_at
    assert outbox.deliver_due().sent == 0  # not due yet
    assert outbox.deliver_due(now=due + timedelta(seconds=1)).sent == 1
    assert len(ch.sent) == 1


def test_permanent_failure_is_dead_at_once(store: Store) -> None:
    add(store)
    outbox = Outbox(store.engine, {"console": Recorder(fail=[DeliveryError("404 no_service", permanent=True)])})
    assert outbox.deliver_due().dead == 1
    with Session(store.engine) as s:
        assert s.exec(select(Delivery.status)).one() == "dead"


def test_expired_lease_is_claimed_again(store: Store) -> None:
    add(store)
    crashed = Outbox(store.engine, {"console": Recorder()}, lease=timedelta(seconds=30))
    assert len(crashed.claim(utcnow())) == 1  # claimed, then the process "dies"
    again = Outbox(store.engine, {"console": Recorder()})
    assert again.claim(utcnow()) == []  # lease still held
    assert again.deliver_due(now=utcnow() + timedelta(seconds=31)).sent == 1


def test_unconfigured_channel_rows_wait(store: Store) -> None:
    add(store, channels=("desk",))
    assert Outbox(store.engine, {"console": Recorder()}).deliver_due().sent == 0
    with Session(store.engine) as s:
        assert s.exec(select(Delivery.status)).one() == "pending"


def test_idempotency_key(store: Store) -> None:
    item_id = add(store)
    with Session(store.engine) as s:
        d = s.exec(select(Delivery)).one()
        s.add(Delivery(rule=d.rule, story_id=d.story_id, item_id=item_id, channel=d.channel, kind=d.kind))
        with pytest.raises(IntegrityError):
            s.commit()


def test_backoff_is_bounded_and_grows() -> None:
    rng = random.Random(7)
    assert all(0 <= retry_delay(a, rng) <= 3600 for a in range(1, 40))
    assert max(retry_delay(1, rng) for _ in range(200)) <= 30
    assert max(retry_delay(6, rng) for _ in range(200)) > 30
    now = utcnow()
    err = DeliveryError("x")
    assert next_state(12, now, now, err, 12, timedelta(hours=24), rng)[0] == "dead"
    assert next_state(3, now - timedelta(hours=25), now, err, 12, timedelta(hours=24), rng)[0] == "dead"
    status, when = next_state(1, now, now, DeliveryError("429", retry_after=120), 12, timedelta(hours=24), rng)
    assert status == "pending" and when - now >= timedelta(seconds=120)


def test_add_item_twice_is_not_an_error(store: Store) -> None:
    add(store, url="http://127.0.0.1/same")
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    again = new_item(
        feed_id,
        "http://127.0.0.1/same",
        guid="other",
        source_url="x",
        title=None,
        language=None,
        text="t",
        text_source="title",
        content_hash="other",
    )
    assert store.add_item(again) is None  # another worker stored it first: no exception, no second item


def test_real_slack_endpoint_dead_then_retried_by_hand(store: Store) -> None:
    """A Slack webhook that answers 404 no_service: dead at once, the channel
    reported unhealthy; `requeue` (monitor alerts retry) sends it once it works."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from slackserver import NO_SERVICE, WebhookServer

    from alerts.channels import build_channels
    from alerts.outbox import channel_health, requeue

    server = WebhookServer().start()
    try:
        server.replies = [NO_SERVICE]
        add(store, channels=("slack",))
        channels = build_channels({"slack": ("slack", {"webhook_url": server.url()})}, {})
        outbox = Outbox(store.engine, channels)
        assert outbox.deliver_due().dead == 1
        [row] = list_deliveries(store.engine, "dead")
        assert row.delivery.error_kind == "permanent" and "404" in (row.delivery.last_error or "")
        assert "no_service" in (channel_health(store.engine)["slack"] or "")
        assert requeue(store.engine, row.delivery.id or 0) is None
        assert requeue(store.engine, row.delivery.id or 0) == f"delivery {row.delivery.id} is pending, not dead"
        assert outbox.deliver_due().sent == 1
        assert len(server.received) == 2  # the refused attempt and the one that went through
        assert channel_health(store.engine) == {"slack": None}
        [sent] = list_deliveries(store.engine, "sent")
        assert sent.delivery.message_id and sent.delivery.message_id.endswith("@news-monitor")
        assert requeue(store.engine, 999) == "no delivery 999"
    finally:
        server.stop()


def test_note_of_a_partial_acceptance_is_kept(store: Store) -> None:
    add(store)

    class Partial(Recorder):
        def send(self, alert: Alert) -> str | None:
            super().send(alert)
            return "refused: kyiv@example.org (550 no such user)"

    assert Outbox(store.engine, {"console": Partial()}).deliver_due().sent == 1
    [row] = list_deliveries(store.engine, "sent")
    assert row.delivery.note == "refused: kyiv@example.org (550 no such user)"
