"""When to poll a feed next: pure functions of its state and the clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_INTERVAL = 24 * 3600
JITTER = 0.1  # +-10 % so feeds configured alike do not fire together


def after_success(now: datetime, interval: int, rng: random.Random, ttl_minutes: int | None = None) -> datetime:
    """The feed's interval, never shorter than the RSS <ttl> it asked for, with jitter."""
    seconds = float(interval)
    if ttl_minutes:
        seconds = max(seconds, min(ttl_minutes * 60.0, MAX_INTERVAL))
    return now + timedelta(seconds=seconds * rng.uniform(1 - JITTER, 1 + JITTER))


def after_error(
    now: datetime, interval: int, error_count: int, rng: random.Random, max_interval: int = MAX_INTERVAL
) -> datetime:
    """Exponential backoff with full jitter, capped; a feed is never given up on.

    `error_count` counts this error: the first error waits up to one interval.
    """
    ceiling = min(float(max_interval), interval * 2.0 ** max(0, error_count - 1))
    floor = min(60.0, ceiling)
    return now + timedelta(seconds=rng.uniform(floor, ceiling))
