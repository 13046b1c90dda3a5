"""Durations as users write them in `feeds.toml`: `90`, `"45s"`, `"15m"`, `"2h"`, `"1d"`."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_duration(value: Any) -> int:
    """Seconds in `value`; ValueError with a message fit for the user."""
    if isinstance(value, bool):
        raise ValueError(f'must be a duration such as 900, "15m" or "2h", got {value!r}')
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _RE.match(value)):
        seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f'must be a duration such as 900, "15m" or "2h", got {value!r}')
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


def format_duration(seconds: int) -> str:
    """The largest unit that divides it: 900 -> "15m", 7200 -> "2h", 90 -> "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
