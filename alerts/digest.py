"""Digests: one message per rule, channel and period, listing the stories whose
alerts were held for a digest or over the rule's budget (alerts.policy).

Every tick of every worker may call `build_digests`: it reads and assigns the
held alerts in the serialised section (`Store.serialised`), so each held alert
goes out in exactly one digest. The
digest itself is an ordinary outbox row (kind "digest"), retried like any alert.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from alerts.policy import RulePolicy, digest_period, period_start
from storage.models import Delivery, utcnow
from storage.repository import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    id: int
    rule: str
    channel: str
    story_id: int
    item_id: int
    hold: str
    created_at: datetime


def due_groups(
    held: list[Held], policies: Mapping[str, RulePolicy], now: datetime
) -> dict[tuple[str, str], list[Held]]:
    """The held alerts whose digest is due now, by (rule, channel): those held
    before the start of the current period (hour or UTC day)."""
    out: dict[tuple[str, str], list[Held]] = defaultdict(list)
    for h in held:
        period = digest_period(h.hold, policies.get(h.rule, RulePolicy()).period(h.channel))
        if period is None:
            continue
        created = h.created_at if h.created_at.tzinfo else h.created_at.replace(tzinfo=UTC)
        if created < period_start(period, now):
            out[(h.rule, h.channel)].append(h)
    return dict(out)


def _held(s: Session, now: datetime) -> list[Held]:
    """Held alerts waiting for a digest, of before the current hour: a digest is due
    only at the end of an hour or a day, and a day ends at an hour's end too."""
    rows = s.exec(
        select(Delivery)
        .where(
            col(Delivery.status) == "held",
            col(Delivery.hold).in_(["budget", "digest"]),
            col(Delivery.digest_id).is_(None),
            col(Delivery.created_at) < period_start("hourly", now),
        )
        .order_by(col(Delivery.id))
    ).all()
    return [Held(d.id, d.rule, d.channel, d.story_id, d.item_id, d.hold or "", d.created_at) for d in rows if d.id]


def build_digests(engine: Engine, policies: Mapping[str, RulePolicy], now: datetime | None = None) -> list[int]:
    """Queue the digests that are due; the ids of the digest deliveries created."""
    now = now or utcnow()
    store = Store(engine)
    with store.session() as s:  # most ticks: nothing due, and no lock taken
        if not due_groups(_held(s, now), policies, now):
            return []
    created: list[tuple[int, str, str, int]] = []
    with store.serialised() as ingest:
        s = ingest.session
        for (rule, channel), group in due_groups(_held(s, now), policies, now).items():
            first = group[0]  # its story is in no other digest: the digest's key is unique
            digest = Delivery(
                rule=rule,
                story_id=first.story_id,
                item_id=first.item_id,
                channel=channel,
                kind="digest",
                next_attempt_at=now,
                created_at=now,
            )
            s.add(digest)
            s.flush()
            assert digest.id is not None
            s.exec(
                update(Delivery)
                .where(col(Delivery.id).in_([h.id for h in group]))
                .values(status="digested", digest_id=digest.id)
            )
            created.append((digest.id, rule, channel, len(group)))
    for digest_id, rule, channel, n in created:
        log.info("digest %s for rule %s on channel %s: %d stories", digest_id, rule, channel, n)
    return [c[0] for c in created]
