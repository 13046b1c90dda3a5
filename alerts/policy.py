"""No floods: when an alert is held instead of sent on its own, and when the
digest that carries held alerts is due. Pure decisions; `storage.repository`
applies them as it queues alerts, `alerts.digest` as it builds digests.

- backlog: the entries a feed lists at its first complete poll are stored and
  matched, but alert nobody (unless the feed says `alert_on_backlog = true`);
  a later item of the same story from a fresh entry releases the alert;
- digest: a rule or channel in digest mode (`digest = "hourly" | "daily"`)
  gets one message per period listing its stories;
- budget: beyond `max_alerts_per_hour` alerts of one rule on one channel in
  the last hour, the rest go to the hourly digest instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Hold = Literal["backlog", "budget", "digest"]
HOLDS: tuple[Hold, ...] = ("backlog", "budget", "digest")
PERIODS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}
BUDGET_WINDOW = timedelta(hours=1)
BUDGET_PERIOD = "hourly"  # where alerts over budget go
DEFAULT_MAX_PER_HOUR = 20


@dataclass(frozen=True)
class RulePolicy:
    """A rule's alert settings, per channel where they differ."""

    max_per_hour: int = DEFAULT_MAX_PER_HOUR
    digest: str | None = None  # the rule's own digest period
    channel_digests: Mapping[str, str] = field(default_factory=dict)  # digest periods of its channels

    def period(self, channel: str) -> str | None:
        """The digest period of this rule's alerts on `channel`, if in digest mode;
        the rule's setting wins over the channel's."""
        return self.digest or self.channel_digests.get(channel)


def hold_for(backlog: bool, period: str | None, sent_last_hour: int, max_per_hour: int) -> Hold | None:
    """Why a new alert is held, or None to send it on its own."""
    if backlog:
        return "backlog"
    if period is not None:
        return "digest"
    if sent_last_hour >= max_per_hour:
        return "budget"
    return None


def digest_period(hold: str | None, period: str | None) -> str | None:
    """The period of the digest a held alert goes into; None: no digest (backlog)."""
    if hold in ("digest", "budget"):
        # A rule whose digest mode was switched off since: its held alerts go out within the hour.
        return period or BUDGET_PERIOD
    return None


def period_start(period: str, now: datetime) -> datetime:
    """The start of the period `now` is in (UTC hours and days): a digest carries
    the alerts held before it, so each goes out at the first boundary after it."""
    if period not in PERIODS:
        raise ValueError(f"unknown digest period {period!r}")
    floor = now.replace(minute=0, second=0, microsecond=0)
    return floor.replace(hour=0) if period == "daily" else floor
