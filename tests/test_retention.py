"""Retention (issue 9): text pruning, item deletion with tombstones, once per day
across workers; on real SQLite files and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itemfactory import new_item
from newssite import NewsSite
from sqlalchemy import Engine, text, update

from monitor.config import ConfigError, RetentionConfig, parse_config
from monitor.migrate_lock import upgrade_locked
from monitor.retention import (
    Candidate,
    apply,
    plan,
    prunable,
    prune,
    run_retention_once,
)
from storage.db import make_engine
from storage.models import Item
from storage.repository import FeedSpec, MatchRecord, Store, is_tombstoned
from storage.repository import tombstone_hash as digest

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = RetentionConfig(keep_text_days=30, keep_items_days=90)


# -- pure --------------------------------------------------------------------------------


def test_plan_cutoffs() -> None:
    p = plan(POLICY, NOW)
    assert p.text_before == NOW - timedelta(days=30)
    assert p.items_before == NOW - timedelta(days=90)
    assert plan(RetentionConfig(), NOW).empty
    assert plan(RetentionConfig(keep_text_days=7), NOW).items_before is None


def test_items_alerts_refer_to_are_kept() -> None:
    assert prunable([Candidate(1, False), Candidate(2, True), Candidate(3, False)]) == ([1, 3], [2])


# -- configuration -------------------------------------------------------------------------


def test_config_keys() -> None:
    c = parse_config("[storage]\nkeep_text_days = 30\nkeep_items_days = 365\n")
    assert c.retention == RetentionConfig(30, 365)
    assert parse_config("").retention == RetentionConfig()


@pytest.mark.parametrize(
    "body, expected",
    [
        ("keep_text_days = 0", "feeds.toml:3: storage.keep_text_days: must be a whole number of days of at least 1"),
        ('keep_items_days = "1y"', "feeds.toml:3: storage.keep_items_days: must be a whole number of days"),
        ("keep_items_days = true", "feeds.toml:3: storage.keep_items_days: must be a whole number of days"),
        ("keep_text_days = 40\nkeep_items_days = 30", "feeds.toml:3: storage.keep_text_days: 40 is more than"),
        ("keep_txt_days = 4", "feeds.toml:3: storage.keep_txt_days: unknown key"),
    ],
)
def test_config_errors_name_key_and_line(body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(f'[storage]\nurl = "sqlite:///m.db"\n{body}\n')
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems


# -- on a database ---------------------------------------------------------------------------


def _setup(url: str) -> tuple[Engine, Store, dict[str, int]]:
    engine = make_engine(url)
    upgrade_locked(engine)
    store = Store(engine)
    store.sync_feeds(
        [FeedSpec("a", "http://127.0.0.1/a.xml", None, 1800), FeedSpec("b", "http://127.0.0.1/b.xml", None, 1800)]
    )
    feeds = {f.name: f.id for f in store.feeds() if f.id is not None}
    return engine, store, feeds


def _age(engine: Engine, item_id: int, days: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(Item).where(Item.id == item_id).values(fetched_at=NOW - timedelta(days=days)))  # type: ignore[arg-type]


def _populated(url: str) -> tuple[Engine, dict[str, int], dict[str, int]]:
    engine, store, feeds = _setup(url)
    ids: dict[str, int] = {}
    # old: matched, no alert; its story also holds `dup`, a near-duplicate stored later.
    old = store.add_item(
        new_item(
            feeds["a"],
            "http://127.0.0.1/old",
            guid="guid-old",
            text="Les garanties de sécurité pour l'Ukraine, anciennement.",
            matches=[MatchRecord("garanties", ("garanties",), "**garanties**", ())],
            band_keys=[11, 12],
        )
    )
    assert old is not None
    ids["old"] = old
    with store.serialised() as ingest:
        story = ingest.conn.execute(text("SELECT story_id FROM items WHERE id = :i"), {"i": old}).scalar_one()
        ids["dup"] = ingest.add_item(
            new_item(feeds["b"], "http://127.0.0.1/dup", text="Une copie récente du texte.", language="de"),
            story_id=story,
            duplicate_of=old,
        )
    ids["story"] = story
    # alerted: old, but a pending delivery names it.
    alerted = store.add_item(
        new_item(
            feeds["a"],
            "http://127.0.0.1/alerted",
            title="Sommet de Paris",
            text="Le texte alerté parle de multinationale.",
            matches=[MatchRecord("sommet", ("Paris",), "**Paris**", ("console",))],
        )
    )
    assert alerted is not None
    ids["alerted"] = alerted
    # two sources: seen in feed b too, under another URL.
    shared = store.add_item(new_item(feeds["a"], "http://127.0.0.1/shared", guid="guid-shared"))
    assert shared is not None
    ids["shared"] = shared
    assert store.add_source(shared, feeds["b"], "http://127.0.0.1/shared-b", "guid-shared-b")
    # mid: old enough to lose its text, not to be deleted.
    mid = store.add_item(new_item(feeds["b"], "http://127.0.0.1/mid", text="Texte moyen sur la cessation."))
    assert mid is not None
    ids["mid"] = mid
    fresh = store.add_item(new_item(feeds["b"], "http://127.0.0.1/fresh", text="Texte frais et récent."))
    assert fresh is not None
    ids["fresh"] = fresh
    for name, days in (("old", 100), ("alerted", 100), ("shared", 120), ("mid", 45), ("dup", 10), ("fresh", 1)):
        _age(engine, ids[name], days)
    return engine, feeds, ids


def _count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_prune_texts_and_items(db_url: str) -> None:
    engine, feeds, ids = _populated(db_url)
    dry = prune(engine, POLICY, NOW, dry_run=True)
    assert (dry.texts_pruned, dry.items_deleted, dry.items_kept_for_alerts, dry.tombstones) == (4, 2, 1, 3)
    assert _count(engine, "SELECT count(*) FROM items") == 6
    assert _count(engine, "SELECT count(*) FROM items WHERE text IS NULL") == 0

    out = prune(engine, POLICY, NOW)
    assert (out.texts_pruned, out.items_deleted, out.items_kept_for_alerts) == (4, 2, 1)
    # old and shared are gone, with their sources, band keys and matches.
    remaining = {r for (r,) in engine.connect().execute(text("SELECT id FROM items"))}
    assert remaining == {ids["dup"], ids["alerted"], ids["mid"], ids["fresh"]}
    assert (
        _count(engine, "SELECT count(*) FROM item_sources WHERE item_id IN (:a, :b)", a=ids["old"], b=ids["shared"])
        == 0
    )
    assert _count(engine, "SELECT count(*) FROM lsh_bands WHERE item_id = :a", a=ids["old"]) == 0
    assert _count(engine, "SELECT count(*) FROM matches WHERE rule = 'garanties'") == 0
    # The alerted item stays, without its text; its delivery still joins it.
    assert _count(engine, "SELECT count(*) FROM delivery_log WHERE item_id = :a", a=ids["alerted"]) == 1
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(text("SELECT id, text, text_pruned_at, title, duplicate_of, story_id FROM items"))
        }
    assert rows[ids["alerted"]].text is None and rows[ids["alerted"]].text_pruned_at is not None
    assert rows[ids["alerted"]].title == "Sommet de Paris"
    assert rows[ids["mid"]].text is None
    assert rows[ids["fresh"]].text == "Texte frais et récent." and rows[ids["fresh"]].text_pruned_at is None
    # The near-duplicate outlives its original: no dangling pointer; the story is recounted.
    assert rows[ids["dup"]].duplicate_of is None and rows[ids["dup"]].text is not None
    with engine.connect() as conn:
        story = conn.execute(
            text("SELECT item_count, source_count, languages FROM stories WHERE id = :s"), {"s": ids["story"]}
        ).one()
    assert tuple(story) == (1, 1, "de")
    # Tombstones: one per source, by URL anywhere, by GUID in its own feed only.
    with engine.connect() as conn:
        assert is_tombstoned(conn, feeds["a"], "http://127.0.0.1/old", None)
        assert is_tombstoned(conn, feeds["b"], "http://127.0.0.1/shared-b", None)
        assert is_tombstoned(conn, feeds["a"], "http://127.0.0.1/elsewhere", "guid-shared")
        assert is_tombstoned(conn, feeds["b"], "http://127.0.0.1/x", "guid-shared-b")
        assert not is_tombstoned(conn, feeds["b"], "http://127.0.0.1/x", "guid-shared")
        assert not is_tombstoned(conn, feeds["a"], "http://127.0.0.1/fresh", "guid-fresh")
        hashes = {r for (r,) in conn.execute(text("SELECT url_hash FROM tombstones"))}
    assert digest("http://127.0.0.1/shared") in hashes and len(digest("x")) == 64
    # A second run has nothing left to do.
    again = prune(engine, POLICY, NOW)
    assert (again.texts_pruned, again.items_deleted, again.items_kept_for_alerts) == (0, 0, 1)
    engine.dispose()


def test_full_text_index_follows(sqlite_url: str) -> None:
    engine, _feeds, ids = _populated(sqlite_url)
    prune(engine, POLICY, NOW)

    def found(words: str) -> set[int]:
        with engine.connect() as conn:
            return {
                r for (r,) in conn.execute(text("SELECT rowid FROM items_fts WHERE items_fts MATCH :q"), {"q": words})
            }

    assert found("multinationale") == set()  # the alerted item's pruned text
    assert found("Sommet") == {ids["alerted"]}  # its title is still indexed
    assert found("anciennement") == set()  # the deleted item
    assert found("frais") == {ids["fresh"]}
    with engine.begin() as conn:  # the external-content index agrees with items, row for row
        conn.execute(text("INSERT INTO items_fts(items_fts, rank) VALUES ('integrity-check', 1)"))
    engine.dispose()


@pytest.mark.postgres
def test_search_vector_follows(postgres_url: str) -> None:
    engine, _feeds, ids = _populated(postgres_url)
    prune(engine, POLICY, NOW)
    q = "SELECT count(*) FROM items WHERE search_vector @@ to_tsquery('simple', :w) AND id = :i"
    assert _count(engine, q, w="multinationale", i=ids["alerted"]) == 0
    assert _count(engine, q, w="sommet", i=ids["alerted"]) == 1
    engine.dispose()


def test_runs_once_per_day_across_workers(db_url: str) -> None:
    engine, _feeds, _ids = _populated(db_url)
    results: list[object] = []
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        barrier.wait()
        results.append(run_retention_once(engine, POLICY, f"host:{n}", NOW))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = [r for r in results if r is not None]
    assert len(ran) == 1 and len(results) == 4
    with engine.connect() as conn:
        job = conn.execute(text("SELECT job, period, worker, finished_at, outcome FROM job_runs")).one()
    assert job.job == "retention" and job.period == "2026-11-21" and job.finished_at is not None
    assert "delete 2 items" in job.outcome
    assert run_retention_once(engine, POLICY, "host:9", NOW + timedelta(hours=11)) is None  # same UTC day
    nxt = run_retention_once(engine, POLICY, "host:9", NOW + timedelta(days=1))
    assert nxt is not None and nxt.items_deleted == 0
    assert run_retention_once(engine, RetentionConfig(), "host:9", NOW + timedelta(days=2)) is None  # off
    engine.dispose()


def test_apply_with_text_only(tmp_path: Path) -> None:
    engine, _feeds, _ids = _populated(f"sqlite:///{tmp_path / 'm.db'}")
    out = apply(engine, plan(RetentionConfig(keep_text_days=30), NOW), NOW)
    assert out.texts_pruned == 4 and out.items_deleted == 0
    assert _count(engine, "SELECT count(*) FROM items") == 6
    engine.dispose()


def test_pruned_entries_never_come_back(tmp_path: Path, site: NewsSite) -> None:
    """End to end: the daily job deletes the items
    no alert refers to, and their entries, still in the feeds, are not stored again."""
    from newssite import config_toml

    from monitor.config import load_config
    from monitor.service import Monitor

    cfg = tmp_path / "feeds.toml"
    cfg.write_text(
        config_toml(f"sqlite:///{tmp_path / 'm.db'}", {"fr": site.rss_url, "world": site.atom_url}, rules=""),
        encoding="utf-8",
    )
    with Monitor.open(load_config(cfg)) as m:
        m.poll(force=True)
        stored = {i.url for i, _ in m.store.items(100)}
        assert stored
        # Two days later, with keep_items_days = 1 (no rule, so no alert keeps an item).
        policy = RetentionConfig(keep_items_days=1)
        outcome = run_retention_once(m.store.engine, policy, now=datetime.now(UTC) + timedelta(days=2))
        assert outcome is not None and m.store.items(100) == []
        # The feeds still list every entry; the polls read them again (their cache cleared) and store nothing.
        with m.store.engine.begin() as conn:
            conn.execute(text("UPDATE feeds SET etag = NULL, last_modified = NULL, body_hash = NULL"))
        reports = m.poll(force=True)
        assert sum(r.new_items for r in reports) == 0 and sum(r.entries for r in reports) >= len(stored)
        assert m.store.items(100) == []
