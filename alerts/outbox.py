"""The delivery outbox: claim due rows, send, record the outcome.

Rows are written by `storage.repository` with the item, in the item's own
transaction. A sender claims a row by moving it to `sending` with a lease
(committed before anything is sent), so a crash mid-send leaves a row whose
lease expires and is claimed again: an alert is never lost, and is repeated
only if we died between the channel accepting it and our commit.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, func, or_, update
from sqlmodel import Session, col, select

from alerts.channels import Channel, DeliveryError
from alerts.render import SOURCES_SHOWN, Alert, Source, message_id
from storage.models import Delivery, Feed, Item, ItemSource, Match, Story, utcnow
from storage.repository import lease_token

log = logging.getLogger(__name__)

# The channel that receives operator notices (dead deliveries, unhealthy channels), if configured.
OPS_CHANNEL = "ops"
OPS_QUIET = timedelta(hours=1)  # at most one notice per failing channel in this time
BASE_DELAY = 30.0  # seconds
MAX_DELAY = 3600.0


def retry_delay(attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog, 2015)."""
    return rng.uniform(0, min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1)))


def next_state(
    attempts: int,
    created_at: datetime,
    now: datetime,
    error: DeliveryError,
    max_attempts: int,
    max_age: timedelta,
    rng: random.Random,
) -> tuple[str, datetime]:
    """(status, next_attempt_at) after a failed attempt."""
    if error.permanent or attempts >= max_attempts or now - created_at >= max_age:
        return "dead", now
    delay = retry_delay(attempts, rng)
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, MAX_DELAY))
    return "pending", now + timedelta(seconds=delay)


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0


class Outbox:
    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        max_attempts: int = 12,
        max_age: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
        observe: Callable[[str, str, float | None], None] | None = None,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.lease = lease
        self.rng = rng or random.Random()
        # Metrics: (channel, sent | retry | dead, seconds from queued to sent).
        self.observe = observe or (lambda channel, outcome, lag: None)
        self._ops_sent: dict[str, datetime] = {}  # failing channel -> last operator notice about it

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            col(Delivery.channel).in_(list(self.channels)),
            or_(
                and_(col(Delivery.status) == "pending", col(Delivery.next_attempt_at) <= now),
                and_(col(Delivery.status) == "sending", col(Delivery.lease_until) < now),
            ),
        )

    def claim(
        self, now: datetime, limit: int = 100, exclude: Sequence[int] = (), token: str | None = None
    ) -> list[int]:
        """Lease up to `limit` due deliveries (not those in `exclude`) under `token`;
        only rows of configured channels. PostgreSQL skips rows another sender is
        claiming (`FOR UPDATE SKIP LOCKED`); each UPDATE re-checks that the row is
        still due, so two senders never both claim one."""
        if not self.channels:
            return []
        token = token or lease_token()
        until = max(now, utcnow()) + self.lease
        with Session(self.engine, expire_on_commit=False) as s:
            pick = (
                select(Delivery.id)
                .where(self._due(now), col(Delivery.id).not_in(list(exclude)))
                .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
                .limit(limit)
            )
            if self.engine.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            claimed = []
            for delivery_id in list(s.exec(pick).all()):
                res = s.exec(
                    update(Delivery)
                    .where(col(Delivery.id) == delivery_id, self._due(now))
                    .values(status="sending", lease_until=until, lease_token=token, attempts=col(Delivery.attempts) + 1)
                )
                if res.rowcount == 1:
                    claimed.append(delivery_id)
            s.commit()
        return [i for i in claimed if i is not None]

    def load_alert(self, delivery_id: int) -> Alert:
        """The alert a delivery carries, as the story stands now (its sources and
        languages at send time); a digest with the alerts it collected."""
        with Session(self.engine, expire_on_commit=False) as s:
            d = s.get(Delivery, delivery_id)
            assert d is not None
            alert = _alert_of(s, d)
            if d.kind != "digest":
                return alert
            held = s.exec(select(Delivery).where(col(Delivery.digest_id) == d.id).order_by(col(Delivery.id))).all()
            return replace(alert, entries=tuple(_alert_of(s, h) for h in held))

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> DeliveryStats:
        stats = DeliveryStats()
        now = now or utcnow()
        # One claim per send, just before it: a batch claimed at once could outlive its
        # lease on a slow channel and be claimed, and sent, again by another sender.
        tried: list[int] = []  # a row that failed is not retried within the same call
        for _ in range(limit):
            token = lease_token()
            claimed = self.claim(now, 1, exclude=tried, token=token)
            if not claimed:
                break
            delivery_id = claimed[0]
            tried.append(delivery_id)
            try:
                alert = self.load_alert(delivery_id)
            except Exception as exc:  # a row that cannot be read must not block the others
                log.exception("delivery %s cannot be loaded", delivery_id)
                self._failed(delivery_id, token, DeliveryError(f"cannot load: {type(exc).__name__}: {exc}"), stats)
                continue
            channel = self.channels[alert.channel]
            try:
                note = channel.send(alert)
            except DeliveryError as exc:
                self._failed(delivery_id, token, exc, stats, alert)
            except Exception as exc:  # a channel bug must not lose the alert
                log.exception("channel %s failed on delivery %s", alert.channel, delivery_id)
                self._failed(delivery_id, token, DeliveryError(f"{type(exc).__name__}: {exc}"), stats, alert)
            else:
                self._sent(delivery_id, token, message_id(alert), note)
                lag = (utcnow() - alert.created_at).total_seconds() if alert.created_at else None
                self.observe(alert.channel, "sent", lag)
                stats.sent += 1
                if note:
                    log.warning("delivery %s to channel %s: sent, but %s", delivery_id, alert.channel, note)
        return stats

    def notify_ops(self, alert: Alert, problem: str, now: datetime | None = None) -> bool:
        """An operator notice on the `ops` channel, if one is configured: at most one
        per failing channel per hour (a dead channel fails every alert at once), and
        never about `ops` itself. Best effort: the error log line is already written."""
        ops = self.channels.get(OPS_CHANNEL)
        now = now or utcnow()
        last = self._ops_sent.get(alert.channel)
        if ops is None or alert.channel == OPS_CHANNEL or (last is not None and now - last < OPS_QUIET):
            return False
        notice = replace(
            alert,
            channel=OPS_CHANNEL,
            kind="alert",
            rule="operator notice",
            title=f"[monitor] {problem}: {alert.title}",
            # Each notice its own id: receivers drop repeats by id.
            message_id=f"ops.{alert.channel}.{alert.delivery_id}.{uuid.uuid4().hex[:12]}@news-monitor",
            entries=(),
        )
        try:
            ops.send(notice)
        except Exception as exc:
            log.error("could not send the operator notice to channel %s: %s", OPS_CHANNEL, exc)
            return False
        self._ops_sent[alert.channel] = now
        return True

    def _held(self, s: Session, delivery_id: int, token: str) -> Delivery | None:
        """The row, locked, if this sender's claim still holds it; else None, logged:
        the lease expired and another sender claimed it, whose outcome is the one kept."""
        q = select(Delivery).where(col(Delivery.id) == delivery_id, col(Delivery.lease_token) == token)
        if self.engine.dialect.name == "postgresql":
            q = q.with_for_update()
        else:  # SQLite: take the write lock before reading, so the check holds until commit
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
        d = s.exec(q).first()
        if d is None or d.status != "sending":
            log.warning("delivery %s: outcome not recorded: the lease expired and another sender took it", delivery_id)
            return None
        return d

    def _sent(self, delivery_id: int, token: str, mid: str, note: str | None) -> None:
        with Session(self.engine, expire_on_commit=False) as s:
            if (d := self._held(s, delivery_id, token)) is None:
                return
            d.status, d.sent_at, d.lease_until, d.lease_token, d.last_error = "sent", utcnow(), None, None, None
            d.message_id, d.note, d.error_kind = mid, note, None
            s.add(d)
            s.commit()

    def _failed(
        self, delivery_id: int, token: str, exc: DeliveryError, stats: DeliveryStats, alert: Alert | None = None
    ) -> None:
        now = utcnow()
        with Session(self.engine, expire_on_commit=False) as s:
            if (d := self._held(s, delivery_id, token)) is None:
                return
            status, when = next_state(d.attempts, d.created_at, now, exc, self.max_attempts, self.max_age, self.rng)
            d.status, d.next_attempt_at, d.lease_until, d.last_error = status, when, None, str(exc)
            d.lease_token = None
            d.error_kind = "permanent" if exc.permanent else "transient"
            s.add(d)
            s.commit()
        if exc.permanent:
            log.error(
                "channel %s is unhealthy: delivery %s failed permanently and will not be retried: %s",
                d.channel,
                delivery_id,
                exc,
            )
        self.observe(d.channel, "dead" if status == "dead" else "retry", None)
        if alert is not None and (exc.permanent or status == "dead"):
            what = "is dead" if status == "dead" else "failed permanently: the channel is unhealthy"
            self.notify_ops(alert, f"delivery {delivery_id} to channel {d.channel} {what} ({exc})")
        if status == "dead":
            stats.dead += 1
            log.error(
                "delivery %s to channel %s is dead after %s attempts: %s", delivery_id, d.channel, d.attempts, exc
            )
        else:
            stats.retried += 1
            log.warning(
                "delivery %s to channel %s failed (attempt %s), retry at %s: %s",
                delivery_id,
                d.channel,
                d.attempts,
                when.isoformat(timespec="seconds"),
                exc,
            )


def _alert_of(s: Session, d: Delivery) -> Alert:
    assert d.id is not None
    item = s.get(Item, d.item_id)
    assert item is not None and item.id is not None
    feed = s.get(Feed, item.feed_id)
    match = s.exec(select(Match).where(Match.rule == d.rule, Match.item_id == d.item_id)).first()
    story = s.get(Story, d.story_id)
    sources = [
        Source(title or url, url, name, language)
        for title, url, name, language in s.exec(
            select(Item.title, ItemSource.url, Feed.name, Item.language)
            .join(Item, col(Item.id) == col(ItemSource.item_id))
            .join(Feed, col(Feed.id) == col(ItemSource.feed_id))
            .where(col(Item.story_id) == d.story_id)
            .order_by(col(ItemSource.id))
            .limit(SOURCES_SHOWN + 1)
        ).all()
    ]
    count = s.exec(
        select(func.count())
        .select_from(ItemSource)
        .join(Item, col(Item.id) == col(ItemSource.item_id))
        .where(col(Item.story_id) == d.story_id)
    ).one()
    return Alert(
        delivery_id=d.id,
        rule=d.rule,
        channel=d.channel,
        story_id=d.story_id,
        item_id=item.id,
        title=item.title or item.url,
        url=item.canonical_url or item.url,
        feed=feed.name if feed else "?",
        language=item.language,
        published_at=item.published_at,
        terms=tuple(json.loads(match.terms)) if match else (),
        snippet=match.snippet if match else None,
        kind=d.kind,
        sources=tuple(sources) if len(sources) > 1 else (),
        source_count=max(1, count),
        languages=tuple(story.languages.split(",")) if story and story.languages else (),
        created_at=d.created_at,
        message_id=d.message_id,
    )


@dataclass(frozen=True)
class DeliveryRow:
    delivery: Delivery
    title: str | None


def list_deliveries(engine: Engine, status: str | None = None, limit: int = 50) -> list[DeliveryRow]:
    """Newest deliveries first, with their item's title: what `monitor alerts` shows."""
    with Session(engine, expire_on_commit=False) as s:
        q = select(Delivery, Item.title).join(Item, col(Item.id) == col(Delivery.item_id))
        if status:
            q = q.where(col(Delivery.status) == status)
        rows = s.exec(q.order_by(col(Delivery.id).desc()).limit(limit)).all()
        return [DeliveryRow(d, title) for d, title in rows]


def channel_health(engine: Engine) -> dict[str, str | None]:
    """Per channel: None when healthy, else the permanent error of its most
    recent attempted delivery (a channel is healthy again once something is sent)."""
    out: dict[str, str | None] = {}
    with Session(engine) as s:
        for channel in s.exec(select(Delivery.channel).distinct()).all():
            last = s.exec(
                select(Delivery.error_kind, Delivery.last_error)
                .where(col(Delivery.channel) == channel, col(Delivery.attempts) > 0, col(Delivery.status) != "sending")
                .order_by(col(Delivery.id).desc())
                .limit(1)
            ).first()
            if last is not None:
                out[channel] = last[1] if last[0] == "permanent" else None
    return out


def requeue(engine: Engine, delivery_id: int, now: datetime | None = None) -> str | None:
    """Put a dead delivery back in the queue; None if done, else why not."""
    now = now or utcnow()
    with Session(engine) as s:
        d = s.get(Delivery, delivery_id)
        if d is None:
            return f"no delivery {delivery_id}"
        if d.status != "dead":
            return f"delivery {delivery_id} is {d.status}, not dead"
        # A re-queued alert is a new attempt: its age limit counts from now.
        d.status, d.attempts, d.next_attempt_at, d.lease_until, d.created_at = "pending", 0, now, None, now
        s.add(d)
        s.commit()
    return None
