"""Operator controls (issue 9): pause, resume, revive, mute, merge, split, backfill;
on real SQLite files and PostgreSQL, and through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itemfactory import new_item
from sqlalchemy import Engine, text

from monitor.config import RuleConfig
from monitor.controls import (
    ControlError,
    backfill_rule,
    due_feeds_filter,
    merge_stories,
    mute_rule,
    muted_rules,
    mutes,
    pause_feed,
    resume_feed,
    revive_feed,
    split_item,
    unmute_rule,
)
from monitor.migrate_lock import upgrade_locked
from storage.db import make_engine
from storage.models import Feed
from storage.repository import FeedSpec, MatchRecord, Store

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SITECUSTOM = str(Path(__file__).parent / "sitecustom")


def _setup(url: str) -> tuple[Engine, Store, dict[str, int]]:
    engine = make_engine(url)
    upgrade_locked(engine)
    store = Store(engine)
    store.sync_feeds(
        [FeedSpec("a", "http://127.0.0.1/a.xml", None, 1800), FeedSpec("b", "http://127.0.0.1/b.xml", None, 1800)]
    )
    return engine, store, {f.name: f.id for f in store.feeds() if f.id is not None}


def _one(engine: Engine, sql: str, **params: object) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(sql), params).one())


def test_pause_resume_revive(db_url: str) -> None:
    engine, store, _ = _setup(db_url)
    assert pause_feed(engine, "a", NOW)
    assert not pause_feed(engine, "a", NOW)  # already paused
    with engine.connect() as conn:
        unpaused = {r.name for r in conn.execute(Feed.__table__.select().where(due_feeds_filter()))}  # type: ignore[attr-defined, arg-type]
    assert unpaused == {"b"}
    assert resume_feed(engine, "a", NOW)
    assert not resume_feed(engine, "a", NOW)
    assert _one(engine, "SELECT paused_at FROM feeds WHERE name = 'a'") == (None,)
    with pytest.raises(ControlError, match="feed 'a' is new, not gone"):
        revive_feed(engine, "a", NOW)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE feeds SET status = 'gone', error_count = 3, last_error = '410 Gone' WHERE name = 'a'")
        )
    revive_feed(engine, "a", NOW)
    status, errors, last_error = _one(engine, "SELECT status, error_count, last_error FROM feeds WHERE name = 'a'")
    assert (status, errors, last_error) == ("new", 0, None)
    assert "a" in {f.name for f in store.due_feeds(NOW + timedelta(seconds=1))}
    with pytest.raises(ControlError, match="no feed named 'zz' in the database"):
        pause_feed(engine, "zz")
    engine.dispose()


def test_mute_and_unmute(db_url: str) -> None:
    engine, _store, _ = _setup(db_url)
    mute = mute_rule(engine, "garanties", timedelta(hours=2), "summit noise", NOW)
    assert mute.until == NOW + timedelta(hours=2)
    with engine.connect() as conn:
        assert muted_rules(conn, NOW + timedelta(hours=1)) == {"garanties"}
        assert muted_rules(conn, NOW + timedelta(hours=3)) == set()
    # Muting again sets the new end.
    mute_rule(engine, "garanties", timedelta(minutes=30), None, NOW)
    (listed,) = mutes(engine, NOW)
    assert listed.until == NOW + timedelta(minutes=30) and listed.reason is None
    with pytest.raises(ControlError, match="positive time"):
        mute_rule(engine, "garanties", timedelta(0))
    assert unmute_rule(engine, "garanties")
    assert not unmute_rule(engine, "garanties")
    assert mutes(engine, NOW) == []
    engine.dispose()


def _stories(store: Store, feeds: dict[str, int]) -> tuple[int, int, int, int]:
    """Two stories: A (items a1, a2, with an alert for rule r) and B (b1 and
    its near-duplicate b2, with alerts for rules r and s)."""
    a1 = store.add_item(
        new_item(feeds["a"], "http://127.0.0.1/a1", matches=[MatchRecord("r", ("x",), "x", ("console",))])
    )
    assert a1 is not None
    story_a = int(_story_of(store.engine, a1))
    with store.serialised() as ingest:
        ingest.add_item(new_item(feeds["b"], "http://127.0.0.1/a2", language="de"), story_id=story_a)
    b1 = store.add_item(
        new_item(
            feeds["b"],
            "http://127.0.0.1/b1",
            language="en",
            matches=[
                MatchRecord("r", ("x",), "x", ("console",)),
                MatchRecord("s", ("y",), "y", ("console",)),
            ],
        )
    )
    assert b1 is not None
    story_b = int(_story_of(store.engine, b1))
    with store.serialised() as ingest:
        ingest.add_item(new_item(feeds["a"], "http://127.0.0.1/b2", language="en"), story_id=story_b, duplicate_of=b1)
    return story_a, story_b, a1, b1


def _story_of(engine: Engine, item_id: int) -> object:
    return _one(engine, "SELECT story_id FROM items WHERE id = :i", i=item_id)[0]


def test_merge_stories(db_url: str) -> None:
    engine, store, feeds = _setup(db_url)
    story_a, story_b, _a1, b1 = _stories(store, feeds)
    result = merge_stories(engine, story_a, story_b, NOW)
    assert (result.moved_items, result.moved_alerts, result.kept_alerts) == (2, 1, 1)
    count, sources, languages = _one(
        engine, "SELECT item_count, source_count, languages FROM stories WHERE id = :s", s=story_a
    )
    assert (count, sources, languages) == (4, 2, "de,en,fr")
    assert _one(engine, "SELECT count(*) FROM matches WHERE story_id = :s", s=story_a) == (3,)
    # Rule s's alert moved to A; rule r's stays with B, which A had alerted for already.
    rows = _one(engine, "SELECT count(*) FROM deliveries WHERE story_id = :s AND rule = 's'", s=story_a)
    assert rows == (1,)
    assert _one(engine, "SELECT item_count, profile FROM stories WHERE id = :s", s=story_b) == (0, None)
    assert _story_of(engine, b1) == story_a
    with pytest.raises(ControlError, match="no story 999"):
        merge_stories(engine, story_a, 999)
    with pytest.raises(ControlError, match="into itself"):
        merge_stories(engine, story_a, story_a)
    engine.dispose()


def test_split_item(db_url: str) -> None:
    engine, store, feeds = _setup(db_url)
    story_a, story_b, a1, b1 = _stories(store, feeds)
    merge_stories(engine, story_a, story_b, NOW)
    new = split_item(engine, b1, NOW)
    assert new not in (story_a, story_b)
    # b1 moves with its near-duplicate b2; the rest stay.
    assert _one(engine, "SELECT item_count, languages FROM stories WHERE id = :s", s=new) == (2, "en")
    assert _one(engine, "SELECT item_count, languages FROM stories WHERE id = :s", s=story_a) == (2, "de,fr")
    assert _one(engine, "SELECT count(*) FROM matches WHERE story_id = :s", s=new) == (2,)
    assert _one(engine, "SELECT profile IS NOT NULL FROM stories WHERE id = :s", s=new)[0]
    with pytest.raises(ControlError, match=rf"item {b1} is alone in story {new}"):
        split_item(engine, b1, NOW)
    with pytest.raises(ControlError, match="no item 12345"):
        split_item(engine, 12345)
    assert a1 != b1
    engine.dispose()


def test_backfill_records_matches_without_alerts(db_url: str) -> None:
    engine, store, feeds = _setup(db_url)
    for n in range(5):
        store.add_item(new_item(feeds["a"], f"http://127.0.0.1/{n}", text=f"Le cessez-le-feu numéro {n}."))
    store.add_item(new_item(feeds["a"], "http://127.0.0.1/other", text="Rien à voir."))
    rule = RuleConfig("ceasefire", '"cessez-le-feu"', ("console",))
    seen: list[int] = []
    result = backfill_rule(engine, rule, progress=lambda b: seen.append(b.matched), every=2)
    assert (result.matched, result.recorded) == (5, 5)
    assert seen and seen[-1] == 5
    assert _one(engine, "SELECT count(*) FROM matches WHERE rule = 'ceasefire'") == (5,)
    assert _one(engine, "SELECT count(*) FROM deliveries") == (0,)
    again = backfill_rule(engine, rule)
    assert (again.matched, again.recorded) == (5, 0)
    engine.dispose()


@pytest.mark.slow
def test_cli_controls(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text(
        '[storage]\nurl = "sqlite:///monitor.db"\n[alerts.console]\n'
        '[[feeds]]\nname = "a"\nurl = "http://127.0.0.1:9/a.xml"\n'
        '[[rules]]\nname = "r"\nquery = "Ukraine"\nchannels = ["console"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    r = monitor("feeds", "pause", "a")
    assert r.returncode == 1 and "no monitor database" in r.stderr
    assert monitor("db", "upgrade").returncode == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    Store(engine).sync_feeds([FeedSpec("a", "http://127.0.0.1:9/a.xml", None, 1800)])
    feed_id = Store(engine).feeds()[0].id
    assert feed_id is not None
    Store(engine).add_item(new_item(feed_id, "http://127.0.0.1/u", text="Ukraine"))
    engine.dispose()
    r = monitor("feeds", "pause", "a")
    assert r.returncode == 0 and "feed a: paused" in r.stdout, r.stderr
    r = monitor("feeds", "resume", "nope")
    assert r.returncode == 1 and "monitor feeds: no feed named 'nope'" in r.stderr
    r = monitor("rules", "mute", "r", "--for", "2h", "--reason", "noise")
    assert r.returncode == 0 and "rule r: muted until" in r.stdout, r.stderr
    r = monitor("rules", "mute", "zz", "--for", "2h")
    assert r.returncode == 1 and "no rule named 'zz' in feeds.toml" in r.stderr
    r = monitor("rules", "mute", "r", "--for", "soon")
    assert r.returncode == 2 and "--for" in r.stderr
    assert "unmuted" in monitor("rules", "unmute", "r").stdout
    r = monitor("rules", "backfill", "r")
    assert r.returncode == 0 and "1 stored item match, 1 new match recorded" in r.stdout, r.stderr
    r = monitor("stories", "split", "1")
    assert r.returncode == 1 and "alone in story" in r.stderr
