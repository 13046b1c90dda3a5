"""`monitor healthcheck` and the heartbeat (issue 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Config, MetricsConfig, parse_config
from monitor.health import check, heartbeat_health, read_heartbeat, write_heartbeat
from monitor.migrate_lock import upgrade_locked
from storage.db import make_engine

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SITECUSTOM = str(Path(__file__).parent / "sitecustom")


def test_heartbeat_round_trip(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    assert read_heartbeat(beat) is None
    write_heartbeat(beat, "host:1", NOW)
    assert read_heartbeat(beat) == NOW
    assert beat.read_text().strip() == "2026-11-21T12:00:00+00:00 host:1"
    assert heartbeat_health(beat, 900, NOW + timedelta(minutes=5)).ok
    late = heartbeat_health(beat, 900, NOW + timedelta(minutes=20))
    assert not late.ok and late.reason.startswith("last heartbeat 1200s ago in ")
    beat.write_text("garbage")
    assert not heartbeat_health(beat, 900, NOW).ok


def test_config_keys() -> None:
    c = parse_config('[metrics]\nlisten = "127.0.0.1:9464"\nheartbeat = "/data/heartbeat"\nheartbeat_max_age = "5m"\n')
    assert c.metrics == MetricsConfig("127.0.0.1:9464", "/data/heartbeat", 300)
    env = {"MONITOR_HEARTBEAT": "/run/monitor/beat"}
    assert parse_config("", "feeds.toml", env).metrics.heartbeat == "/run/monitor/beat"


def test_check(db_url: str, tmp_path: Path) -> None:
    config = Config(database_url=db_url)
    if db_url.startswith("sqlite"):
        missing = check(config, NOW)
        assert not missing.ok and missing.reason.startswith("database sqlite:///")
    engine = make_engine(db_url)
    upgrade_locked(engine)
    engine.dispose()
    assert check(config, NOW).ok
    beat = tmp_path / "beat"
    with_beat = replace(config, metrics=MetricsConfig(heartbeat=str(beat), heartbeat_max_age=120))
    assert not check(with_beat, NOW).ok
    write_heartbeat(beat, "w", NOW)
    assert check(with_beat, NOW + timedelta(seconds=60)).ok
    stale = check(with_beat, NOW + timedelta(seconds=600))
    assert not stale.ok and "the daemon is stuck or stopped" in stale.reason


@pytest.mark.slow
def test_cli_healthcheck(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text('[storage]\nurl = "sqlite:///monitor.db"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    r = monitor("healthcheck")
    assert r.returncode == 1 and r.stderr.startswith("UNHEALTHY: database sqlite:///") and r.stderr.count("\n") == 1
    assert monitor("db", "upgrade").returncode == 0
    r = monitor("healthcheck")
    assert r.returncode == 0 and r.stdout.startswith("OK: database"), r.stderr
    env["MONITOR_HEARTBEAT"] = str(tmp_path / "beat")
    r = monitor("healthcheck")
    assert r.returncode == 1 and "UNHEALTHY: no heartbeat in" in r.stderr
    write_heartbeat(tmp_path / "beat", "test", datetime.now(UTC))
    assert monitor("healthcheck").returncode == 0


def test_metrics_endpoint(sqlite_url: str, tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    import httpx
    from itemfactory import new_item

    from monitor import metrics
    from storage.repository import FeedSpec, MatchRecord, Store

    engine = make_engine(sqlite_url)
    upgrade_locked(engine)
    store = Store(engine)
    store.sync_feeds(
        [FeedSpec("a", "http://127.0.0.1/a.xml", None, 1800), FeedSpec("b", "http://127.0.0.1/b", None, 60)]
    )
    (feed_a, _b) = store.feeds()
    assert feed_a.id is not None
    store.add_item(new_item(feed_a.id, "http://127.0.0.1/x", matches=[MatchRecord("r", ("x",), "x", ("console",))]))
    from monitor.controls import pause_feed

    pause_feed(engine, "b")
    metrics.observe_poll("ok", 0.2)  # not serving yet: a no-op
    server = metrics.serve(MetricsConfig(), engine, listen="127.0.0.1:0")
    assert server is not None
    try:
        metrics.observe_poll("ok", 0.2, new_items=3)
        metrics.observe_poll("error", 1.5)
        metrics.observe_duplicate("url")
        metrics.observe_match("r")
        metrics.observe_delivery("console", "sent", 42.0)
        metrics.observe_fetch(0.3)
        base = f"http://{server.address}"
        with httpx.Client(trust_env=False) as client:
            body = client.get(f"{base}/metrics").text
            assert 'monitor_polls_total{outcome="ok"} 1.0' in body
            assert 'monitor_polls_total{outcome="error"} 1.0' in body
            assert "monitor_articles_ingested_total 3.0" in body
            assert 'monitor_duplicates_total{layer="url"} 1.0' in body
            assert 'monitor_matches_total{rule="r"} 1.0' in body
            assert 'monitor_deliveries_total{channel="console",status="sent"} 1.0' in body
            assert "monitor_poll_seconds_count 2.0" in body
            assert "monitor_fetch_seconds_count 1.0" in body
            assert "monitor_delivery_lag_seconds_sum 42.0" in body
            assert "monitor_stories 1.0" in body
            assert 'monitor_feeds{status="new"} 1.0' in body and 'monitor_feeds{status="paused"} 1.0' in body
            (oldest,) = [ln for ln in body.splitlines() if ln.startswith("monitor_oldest_pending_delivery_seconds ")]
            assert float(oldest.split()[1]) >= 0
            health = client.get(f"{base}/healthz")
            assert health.status_code == 200 and "no tick yet" in health.text
            metrics.observe_tick()
            fresh = client.get(f"{base}/healthz")
            assert fresh.status_code == 200 and "last tick" in fresh.text
            server.metrics.last_tick = time.monotonic() - 901  # the scheduler stuck for 15 minutes
            stuck = client.get(f"{base}/healthz")
            assert stuck.status_code == 503 and "the scheduler is stuck" in stuck.text
            ready = client.get(f"{base}/readyz")
            assert ready.status_code == 200 and ready.text == "database answers\n"
            assert client.get(f"{base}/nope").status_code == 404
    finally:
        server.close()
    metrics.observe_poll("ok", 0.1)  # stopped: a no-op again
    # Not ready when the database does not answer.
    gone = make_engine(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    down = metrics.serve(MetricsConfig(), gone, listen="127.0.0.1:0")
    assert down is not None
    try:
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://{down.address}/readyz").status_code == 503
    finally:
        down.close()
    assert metrics.serve(MetricsConfig(), engine) is None  # no listen: off
    engine.dispose()
