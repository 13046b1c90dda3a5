"""Digests: one message per rule, channel and period, listing the stories whose
alerts were held for a digest or over the rule's budget (alerts.policy).

Every tick of every worker may call `build_digests`: it runs in the serialised
section (`Store.serialised`), and a held alert joins a digest only while its
`digest_id` is empty, so each held alert goes out in exactly one digest. The
digest itself is an ordinary outbox row (kind "digest"), retried like any alert.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

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


def build_digests(engine: Engine, policies: Mapping[str, RulePolicy], now: datetime | None = None) -> list[int]:
    """Queue the digests that are due; the ids of the digest deliveries created."""
    now = now or utcnow()
    store = Store(engine)
    created: list[int] = []
    with store.session() as s:
        rows = s.exec(
            select(Delivery)
            .where(
                col(Delivery.status) == "held",
                col(Delivery.hold).in_(["budget", "digest"]),
                col(Delivery.digest_id).is_(None),
            )
            .order_by(col(Delivery.id))
        ).all()
        held = [
            Held(d.id, d.rule, d.channel, d.story_id, d.item_id, d.hold or "", d.created_at)
            for d in rows
            if d.id is not None
        ]
    for (rule, channel), group in due_groups(held, policies, now).items():
        with store.serialised() as ingest:
            conn = ingest.conn
            first = group[0]  # its story is in no other digest: the digest's key is unique
            values = dict(
                rule=rule,
                story_id=first.story_id,
                item_id=first.item_id,
                channel=channel,
                kind="digest",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(Delivery)
            digest_id = conn.execute(insert.values(**values).on_conflict_do_nothing().returning(Delivery.id)).scalar()
            if digest_id is None:
                continue
            taken = conn.execute(
                update(Delivery)
                .where(
                    col(Delivery.id).in_([h.id for h in group]),
                    col(Delivery.status) == "held",
                    col(Delivery.digest_id).is_(None),
                )
                .values(status="digested", digest_id=digest_id)
            ).rowcount
            if not taken:  # another worker took them all meanwhile
                conn.execute(Delivery.__table__.delete().where(Delivery.__table__.c.id == digest_id))  # type: ignore[attr-defined]
                continue
        created.append(digest_id)
        log.info("digest %s for rule %s on channel %s: %d stories", digest_id, rule, channel, taken)
    return created
