"""Scheduling decisions are pure: tested on plain values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.schedule import MAX_INTERVAL, after_error, after_success, retry_after_seconds, server_floor

NOW = datetime(2026, 1, 6, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("120", 120.0),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(minutes=5), usegmt=True), 300.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
        ("1.5", None),
        ("99999999999", None),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), None),
        ("172800", float(MAX_INTERVAL)),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def test_server_floor() -> None:
    assert server_floor({}, NOW) == 0
    assert server_floor({"cache-control": "public, max-age=900"}, NOW) == 900
    assert server_floor({"expires": format_datetime(NOW + timedelta(hours=2), usegmt=True)}, NOW) == 7200
    assert server_floor({"cache-control": "max-age=60"}, NOW, ttl_minutes=30) == 1800
    assert server_floor({"cache-control": "max-age=9999999"}, NOW) == MAX_INTERVAL
    assert server_floor({"expires": "0"}, NOW) == 0


@settings(deadline=None)
@given(interval=st.integers(60, 86400), floor=st.floats(0, MAX_INTERVAL), seed=st.integers())
def test_success_never_polls_before_the_server_allows(interval: int, floor: float, seed: int) -> None:
    when = after_success(NOW, interval, random.Random(seed), floor)
    assert (when - NOW).total_seconds() >= floor
    assert (when - NOW).total_seconds() <= max(interval * 1.1, floor) + 1


@settings(deadline=None)
@given(interval=st.integers(60, 86400), errors=st.integers(1, 60), seed=st.integers())
def test_backoff_is_capped_and_never_gives_up(interval: int, errors: int, seed: int) -> None:
    delay = (after_error(NOW, interval, errors, random.Random(seed)) - NOW).total_seconds()
    assert 0 < delay <= MAX_INTERVAL


def test_backoff_grows() -> None:
    rng = random.Random(3)
    first = max((after_error(NOW, 600, 1, rng) - NOW).total_seconds() for _ in range(100))
    fifth = max((after_error(NOW, 600, 5, rng) - NOW).total_seconds() for _ in range(100))
    assert first <= 600 < fifth <= 600 * 16


def test_retry_after_is_honoured() -> None:
    delay = (after_error(NOW, 600, 3, random.Random(1), retry_after=120) - NOW).total_seconds()
    assert 120 <= delay <= 132


@pytest.mark.slow
def test_429_honours_retry_after_end_to_end(tmp_path: Path) -> None:
    from httpserver import LocalServer, Route
    from newssite import config_toml

    from monitor.config import load_config
    from monitor.service import Monitor
    from storage.models import utcnow

    server = LocalServer().start()
    try:
        server.routes["/busy.rss"] = Route(
            b"slow down", 429, headers={"Retry-After": "3600"}, content_type="text/plain"
        )
        server.routes["/junk.rss"] = Route(b"", 503, headers={"Retry-After": "tomorrow-ish"}, content_type="text/plain")
        cfg = tmp_path / "feeds.toml"
        cfg.write_text(
            config_toml(
                f"sqlite:///{tmp_path / 'm.db'}", {"busy": server.url("/busy.rss"), "junk": server.url("/junk.rss")}
            ),
            encoding="utf-8",
        )
        with Monitor.open(load_config(cfg)) as m:
            before = utcnow()
            reports = {r.feed: r for r in m.poll(force=True)}
            assert "HTTP 429" in (reports["busy"].error or "") and "'3600'" in (reports["busy"].error or "")
            feeds = {f.name: f for f in m.store.feeds()}
            assert feeds["busy"].next_poll_at >= before + timedelta(seconds=3600)
            # Garbage Retry-After: ordinary backoff, within one interval for a first error.
            assert feeds["junk"].next_poll_at <= utcnow() + timedelta(seconds=1800)
            assert feeds["busy"].error_count == feeds["junk"].error_count == 1
    finally:
        server.stop()
