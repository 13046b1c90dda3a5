"""Operator notices (issue 9): a dead delivery or a channel that fails
permanently is logged at error level and, if an `ops` channel is configured,
reported there: once per failing channel and hour, never about `ops` itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from itemfactory import new_item

from alerts.channels import DeliveryError
from alerts.outbox import Outbox
from alerts.policy import RulePolicy
from alerts.render import Alert
from storage.db import make_engine, upgrade
from storage.models import utcnow
from storage.repository import FeedSpec, MatchRecord, Store

MATCH = MatchRecord("r", ("kyiv",), "Kyiv", ("console",), RulePolicy(max_per_hour=1000))


@pytest.fixture
def store(db_url: str) -> Store:
    engine = make_engine(db_url)
    upgrade(engine)
    s = Store(engine)
    s.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    return s


class Sink:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> str | None:
        self.sent.append(alert)
        return None


class Failing:
    def __init__(self, error: DeliveryError) -> None:
        self.error = error
        self.calls = 0

    def send(self, alert: Alert) -> str | None:
        self.calls += 1
        raise self.error


def test_dead_deliveries_raise_one_operator_notice_per_channel_and_hour(store: Store) -> None:
    store.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    for i in range(3):
        store.add_item(new_item(feed_id, f"http://127.0.0.1/n{i}", title=f"Dépêche {i}", matches=[MATCH]))
    ops = Sink()
    broken = Failing(DeliveryError("404 no_service", permanent=True))
    outbox = Outbox(store.engine, {"console": broken, "ops": ops})
    assert outbox.deliver_due().dead == 3
    assert broken.calls == 3
    (notice,) = ops.sent  # one notice for the three dead alerts
    assert notice.channel == "ops" and "channel console" in notice.title and "404 no_service" in notice.title
    # An hour later the channel still failing gets a new notice; the ops channel never reports on itself.
    later = utcnow() + timedelta(hours=1, minutes=1)
    alert = replace(notice, channel="console")
    assert outbox.notify_ops(alert, "still failing", later)
    assert not outbox.notify_ops(replace(notice, channel="ops"), "ops failing", later + timedelta(hours=2))
    assert len(ops.sent) == 2
    assert ops.sent[0].message_id != ops.sent[1].message_id  # receivers drop repeats by id


def test_no_ops_channel_no_notice(store: Store) -> None:
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    store.add_item(new_item(feed_id, "http://127.0.0.1/one", matches=[MATCH]))
    outbox = Outbox(store.engine, {"console": Failing(DeliveryError("535 auth", permanent=True))})
    assert outbox.deliver_due().dead == 1  # logged at error level only
