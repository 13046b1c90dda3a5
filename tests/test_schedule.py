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
        feeds = {"busy": f"http://busy.test:{server.port}/busy.rss", "junk": f"http://junk.test:{server.port}/junk.rss"}
        cfg.write_text(config_toml(f"sqlite:///{tmp_path / 'm.db'}", feeds), encoding="utf-8")
        with Monitor.open(load_config(cfg), resolver=lambda host, port: ["127.0.0.1"]) as m:
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


def test_entry_gap_and_smoothing() -> None:
    from monitor.schedule import entry_gap, smooth_gap

    hourly = [NOW - timedelta(hours=h) for h in range(10)]
    assert entry_gap(hourly) == 3600
    assert entry_gap([NOW, NOW]) is None and entry_gap([]) is None
    assert smooth_gap(None, 3600) == 3600 and smooth_gap(3600, None) == 3600
    assert smooth_gap(3600, 600) == 2100


@settings(deadline=None)
@given(
    gap=st.one_of(st.none(), st.floats(0, 10**8)),
    configured=st.one_of(st.none(), st.integers(60, 10**6)),
    lo=st.integers(60, 3600),
    span=st.integers(0, 86400),
)
def test_adaptive_interval_is_clamped_unless_configured(
    gap: float | None, configured: int | None, lo: int, span: int
) -> None:
    from monitor.schedule import adaptive_interval

    got = adaptive_interval(gap, configured, 1800, lo, lo + span)
    if configured:
        assert got == configured
    else:
        assert lo <= got <= lo + span


def test_adaptive_interval_follows_the_posting_rate() -> None:
    from monitor.schedule import adaptive_interval

    assert adaptive_interval(600, None, 1800, 300, 86400) == 300  # every 10 min: poll at the floor
    assert adaptive_interval(86400, None, 1800, 300, 86400) == 43200  # daily: twice a day
    assert adaptive_interval(10 * 86400, None, 1800, 300, 86400) == 86400  # rarely: at the ceiling
    assert adaptive_interval(None, None, 1800, 300, 86400) == 1800  # unknown: the default


def test_stale() -> None:
    from monitor.schedule import is_stale

    assert not is_stale(NOW, NOW - timedelta(hours=5), 3600)
    assert is_stale(NOW, NOW - timedelta(hours=11), 3600)
    assert not is_stale(NOW, None, 3600) and not is_stale(NOW, NOW - timedelta(days=99), None)


def test_outage_needs_most_hosts_failing_on_the_network() -> None:
    from monitor.schedule import is_network_outage

    assert is_network_outage([("a", "dns"), ("b", "connect"), ("c", "connect"), ("d", None)])
    assert not is_network_outage([("a", "dns"), ("b", "connect"), ("c", None), ("d", None), ("e", "http")])
    assert not is_network_outage([("a", "dns"), ("b", "dns")])  # two hosts are not "most of them" evidence
    # One dead host with many feeds is that host's problem, not ours.
    assert not is_network_outage([("dead", "connect")] * 5 + [("ok", None)])
    assert not is_network_outage([("a", "http"), ("b", "http"), ("c", "http")])


def _rss(dates: list[datetime]) -> bytes:
    items = "".join(
        f"<item><title>t{i}</title><guid>g{i}</guid><pubDate>{format_datetime(d, usegmt=True)}</pubDate>"
        f"<description>texte {i}</description></item>"
        for i, d in enumerate(dates)
    )
    return f'<rss version="2.0"><channel><title>x</title>{items}</channel></rss>'.encode()


@pytest.mark.slow
def test_polling_adapts_to_each_feed(tmp_path: Path) -> None:
    from httpserver import LocalServer, Route

    from monitor.config import load_config
    from monitor.service import Monitor
    from storage.models import utcnow

    now = utcnow()
    server = LocalServer().start()
    try:
        server.routes["/busy.rss"] = Route(
            _rss([now - timedelta(minutes=10 * i) for i in range(20)]), content_type="application/rss+xml"
        )
        server.routes["/daily.rss"] = Route(
            _rss([now - timedelta(days=i, hours=1) for i in range(20)]), content_type="application/rss+xml"
        )
        server.routes["/dead.rss"] = Route(
            _rss([now - timedelta(days=30 + i) for i in range(20)]), content_type="application/rss+xml"
        )
        cfg = tmp_path / "feeds.toml"
        cfg.write_text(
            f'[storage]\nurl = "sqlite:///{tmp_path / "m.db"}"\n[fetch]\nper_host_delay = 0\n'
            f'allow_private = ["127.0.0.1/32"]\n[alerts.console]\n'
            + "".join(
                f'[[feeds]]\nname = "{n}"\nurl = "{server.url("/" + n + ".rss")}"\n' for n in ("busy", "daily", "dead")
            )
            + f'[[feeds]]\nname = "pinned"\nurl = "{server.url("/busy.rss")}"\ninterval = "2h"\n',
            encoding="utf-8",
        )
        with Monitor.open(load_config(cfg)) as m:
            m.poll(force=True)
            feeds = {f.name: f for f in m.store.feeds()}
            assert (feeds["busy"].interval_seconds, feeds["busy"].avg_entry_gap) == (300, 600)
            assert feeds["daily"].interval_seconds == 43200
            assert feeds["pinned"].interval_seconds == 7200 and feeds["pinned"].configured_interval == 7200
            assert {n: f.status for n, f in feeds.items()} == {
                "busy": "ok",
                "daily": "ok",
                "dead": "stale",
                "pinned": "ok",
            }
            for f in feeds.values():
                assert f.next_poll_at - now <= timedelta(seconds=f.interval_seconds * 1.1 + 60)
    finally:
        server.stop()
