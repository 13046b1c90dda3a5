"""When to poll a feed next: pure functions of its state, the server's
answer and the clock, so every scheduling rule is tested without a socket."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_INTERVAL = 24 * 3600
JITTER = 0.1  # +-10 % so feeds configured alike do not fire together
# A Retry-After beyond this is not a request, it is a bug: back off instead.
ABSURD_RETRY_AFTER = 30 * 86400
MIN_RETRY = 60.0  # a Retry-After of 0 or 1 s still waits this long


def _http_date(value: str) -> datetime | None:
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks us to wait (delta-seconds or an
    HTTP date, RFC 9110 10.2.3); None for garbage, negative or absurd values."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d{1,12}", value):
        seconds = float(value)
    else:
        when = _http_date(value)
        if when is None:
            return None
        seconds = (when - now).total_seconds()
    if seconds < 0 or seconds > ABSURD_RETRY_AFTER:
        return None
    return min(seconds, float(MAX_INTERVAL))


def server_floor(headers: Mapping[str, str], now: datetime, ttl_minutes: int | None = None) -> float:
    """The shortest interval the publisher asks for: RSS <ttl>,
    `Cache-Control: max-age`, `Expires` (capped at a day)."""
    floor = 0.0
    if ttl_minutes:
        floor = max(floor, ttl_minutes * 60.0)
    m = re.search(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})", headers.get("cache-control", ""), re.I)
    if m:
        floor = max(floor, float(m.group(1)))
    elif expires := headers.get("expires"):
        when = _http_date(expires)
        if when is not None:
            floor = max(floor, (when - now).total_seconds())
    return min(floor, float(MAX_INTERVAL))


def after_success(now: datetime, interval: int, rng: random.Random, floor: float = 0.0) -> datetime:
    """The feed's interval, never shorter than what the server asked for, with jitter."""
    seconds = max(interval * rng.uniform(1 - JITTER, 1 + JITTER), floor)
    return now + timedelta(seconds=math.ceil(seconds))  # whole seconds: never a hair early


def after_error(
    now: datetime,
    interval: int,
    error_count: int,
    rng: random.Random,
    max_interval: int = MAX_INTERVAL,
    retry_after: float | None = None,
) -> datetime:
    """Exponential backoff with full jitter, capped; a feed is never given up on.

    `error_count` counts this error: the first error waits up to one interval.
    A valid `Retry-After` is honoured as given (plus a little jitter).
    """
    if retry_after is not None:
        # Honour it, but neither as a licence to hammer (0 s) nor past our own cap.
        wait = min(max(retry_after, MIN_RETRY), float(max_interval))
        return now + timedelta(seconds=wait * rng.uniform(1, 1 + JITTER))
    ceiling = min(float(max_interval), interval * 2.0 ** min(max(0, error_count - 1), 32))
    floor = min(60.0, ceiling)
    return now + timedelta(seconds=rng.uniform(floor, ceiling))


def is_network_outage(outcomes: Sequence[tuple[str, str | None]], threshold: float = 0.6, minimum: int = 3) -> bool:
    """Connection and DNS failures on most of the hosts of one round (at least
    `minimum` of them) say more about our network than about those hosts.
    `outcomes` are (host, error kind or None) per feed polled."""
    hosts = {host for host, _ in outcomes}
    failing = {host for host, kind in outcomes if kind in ("dns", "connect")}
    return len(failing) >= minimum and len(failing) >= threshold * len(hosts)


def entry_gap(dates: Sequence[datetime], sample: int = 50) -> float | None:
    """Median seconds between consecutive entry dates of one feed document."""
    times = sorted({d for d in dates})[-sample:]
    gaps = sorted(g for a, b in zip(times, times[1:], strict=False) if (g := (b - a).total_seconds()) > 0)
    if not gaps:
        return None
    return gaps[len(gaps) // 2]


def smooth_gap(old: float | None, new: float | None, weight: float = 0.5) -> float | None:
    """Exponentially weighted: a feed that changes pace is followed within a few polls."""
    if new is None:
        return old
    if old is None:
        return new
    return old * (1 - weight) + new * weight


def adaptive_interval(
    gap: float | None, configured: int | None, default: int, min_interval: int, max_interval: int
) -> int:
    """A feed's own `interval` wins; else poll about twice per gap between its
    entries, clamped to [min_interval, max_interval]."""
    if configured:
        return configured
    wanted = default if gap is None else gap / 2
    return int(min(max(wanted, min_interval), max_interval))


def is_stale(now: datetime, last_entry_at: datetime | None, gap: float | None, factor: float = 10) -> bool:
    """Nothing published for `factor` times the feed's usual gap."""
    if last_entry_at is None or gap is None:
        return False
    return (now - last_entry_at).total_seconds() > factor * gap
