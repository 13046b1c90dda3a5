"""`monitor search` asks the database's full-text index (FTS5 on SQLite, the
tsvector on PostgreSQL) which items to read, and must still find exactly
what reading every item finds: checked on random queries, on both engines."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from itemfactory import new_item
from sqlalchemy import Engine, text
from test_rules import IN_DOCS, SEPARATORS, our_queries

from monitor.rules import QuerySyntaxError, RuleSpec, compile_rules, match_rules, parse_query
from monitor.search import candidate_ids, fts5_expression, necessary, search
from storage.db import make_engine, upgrade
from storage.repository import FeedSpec, Store

LANGUAGES = ("fr", "en", "uk", "de", None)


def corpus(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)

    def words(k: int) -> str:
        return "".join(rng.choice(IN_DOCS) + rng.choice(SEPARATORS) for _ in range(rng.randint(k // 3, k)))

    return [(words(6), words(30)) for _ in range(n)]


DOCS = corpus(60)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    upgrade(e)
    store = Store(e)
    store.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    for n, (title, body) in enumerate(DOCS):
        url = f"http://127.0.0.1/{n}"
        store.add_item(
            new_item(feed_id, url, title=title, text=body, language=LANGUAGES[n % len(LANGUAGES)], content_hash=str(n))
        )
    yield e
    e.dispose()


def scanned(query: str) -> list[int]:
    """What reading every item finds: item ids are 1..60 in DOCS order."""
    rules = compile_rules([RuleSpec("q", query)])
    found = [
        n + 1
        for n, (title, body) in enumerate(DOCS)
        if match_rules(rules, title, body, language=LANGUAGES[n % len(LANGUAGES)], site="127.0.0.1", feed="f")
    ]
    return sorted(found, reverse=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=our_queries())
def test_index_assisted_search_finds_what_a_scan_finds(engine: Engine, query: str) -> None:
    try:
        expected = scanned(query)
    except QuerySyntaxError:  # a query no rule may hold (nothing required): refused alike
        with pytest.raises(QuerySyntaxError):
            list(search(engine, query))
        return
    assert [h.item_id for h in search(engine, query)] == expected


def test_the_index_narrows_what_is_read(engine: Engine) -> None:
    cond = necessary(parse_query('"garanties" AND (Київ OR naïve*)').root)
    assert cond == ("and", [("word", "garanties", False), ("or", [("word", "Київ", False), ("word", "naïve", True)])])
    assert fts5_expression(cond) == '("garanties" AND ("Київ" OR "naïve"*))'
    ids = candidate_ids(engine, cond, None)
    assert ids is not None and set(scanned('"garanties" AND (Київ OR naïve*)')) <= set(ids) < set(range(1, 61))


def test_negations_and_filters_are_left_to_the_matcher() -> None:
    assert necessary(parse_query("garanties NOT feu lang:fr").root) == ("word", "garanties", False)
    assert necessary(parse_query('title:"cessez le feu" OR feu').root) == (
        "or",
        [("and", [("word", "cessez", False), ("word", "le", False), ("word", "feu", False)]), ("word", "feu", False)],
    )


def test_stems_and_typos_read_every_item(engine: Engine) -> None:
    rules = compile_rules([RuleSpec("q", "garantie", stem=True)])
    expected = sorted(
        (
            n + 1
            for n, (title, body) in enumerate(DOCS)
            if match_rules(rules, title, body, language=LANGUAGES[n % len(LANGUAGES)])
        ),
        reverse=True,
    )
    assert expected and [h.item_id for h in search(engine, "garantie", stem=True)] == expected


def test_metadata_and_since_filters(engine: Engine) -> None:
    assert [h.item_id for h in search(engine, "garanties lang:fr")] == scanned("garanties lang:fr")
    with engine.begin() as conn:
        conn.execute(text("UPDATE items SET fetched_at = :t WHERE id <= 30"), {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    since = datetime.now(UTC) - timedelta(days=1)
    recent = [i for i in scanned("garanties") if i > 30]
    assert recent and [h.item_id for h in search(engine, "garanties", since)] == recent


def test_index_follows_updates_and_deletes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE items SET text = 'zyxwv qwertz', title = '' WHERE id IN (5, 6)"))
    assert candidate_ids(engine, ("word", "qwertz", False), None) == [6, 5]
    with engine.begin() as conn:
        conn.execute(text("UPDATE items SET text = 'zyxwv' WHERE id = 5"))
        conn.execute(text("DELETE FROM item_sources WHERE item_id = 6"))
        conn.execute(text("DELETE FROM items WHERE id = 6"))
    assert [h.item_id for h in search(engine, "zyxwv")] == [5]
    assert candidate_ids(engine, ("word", "qwertz", False), None) == []
