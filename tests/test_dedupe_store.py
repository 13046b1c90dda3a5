"""Near-duplicates, stories across languages and updates through the Store and
the Pipeline (issue 5), on SQLite and PostgreSQL: real HTTP server, real
extraction, real database; several processes for the races."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from httpserver import LocalServer, Route
from newssite import FIXTURES, config_toml
from sqlalchemy import text
from sqlmodel import Session, select

from monitor.config import FetchConfig, load_config
from monitor.dedupe import StoryIndex, StoryRow, entry_hash, is_update, revises
from monitor.fetch import Fetcher
from monitor.parse import Entry
from monitor.pipeline import Pipeline
from monitor.rules import compile_rules
from monitor.service import Monitor
from monitor.stories import Profile, best_story, profile, story_profile
from storage.db import alembic_config, make_engine, upgrade
from storage.models import Delivery, Item, Story
from storage.repository import FeedSpec, MatchRecord, NewItem, Store

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "dedupe"))
import make_set  # noqa: E402
from itemfactory import new_item as build_item  # noqa: E402

pytestmark = pytest.mark.slow
ATOM = "application/atom+xml"

RULES = """
[[rules]]
name = "ukraine"
query = 'Ukraine OR Україна OR Украина'
channels = ["console"]

[[rules]]
name = "drones"
query = 'drone OR drones OR Drohnen OR дрони OR дроны'
channels = ["console"]

[[rules]]
name = "garanties-fr"
query = '"garanties de sécurité"'
channels = ["console"]
"""


# --- a small news site of our own ------------------------------------------------------


@dataclass
class Doc:
    path: str
    title: str
    paragraphs: list[str]
    language: str
    published: datetime
    updated: datetime | None = None


def page_html(server: LocalServer, doc: Doc) -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in doc.paragraphs)
    return (
        f'<!doctype html><html lang="{doc.language}"><head><meta charset="utf-8">'
        f"<title>{escape(doc.title)}</title>"
        f'<link rel="canonical" href="{server.url(doc.path)}">'
        f'<meta property="article:published_time" content="{doc.published.isoformat()}">'
        f"</head><body><header><nav><a href='/'>Accueil</a> <a href='/monde'>Monde</a></nav></header>"
        f"<main><article><h1>{escape(doc.title)}</h1>{body}</article></main>"
        f"<footer><p>Tous droits réservés.</p></footer></body></html>"
    ).encode()


def atom(server: LocalServer, docs: list[Doc]) -> bytes:
    entries = "".join(
        f"<entry><title>{escape(d.title)}</title>"
        f'<link rel="alternate" href="{server.url(d.path)}"/><id>urn:test:{escape(d.path)}</id>'
        f"<published>{d.published.isoformat()}</published>"
        f"<updated>{(d.updated or d.published).isoformat()}</updated>"
        f"<summary>{escape(d.paragraphs[0])}</summary></entry>"
        for d in docs
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>t</title><id>urn:test:feed</id><updated>2026-01-07T10:00:00Z</updated>{entries}</feed>"
    ).encode()


def serve(server: LocalServer, feed_path: str, docs: list[Doc]) -> str:
    for d in docs:
        server.routes[d.path] = Route(page_html(server, d))
    server.routes[feed_path] = Route(atom(server, docs), content_type=ATOM)
    return server.url(feed_path)


def fixture_page(server: LocalServer, name: str) -> str:
    """A page of tests/fixtures/articles, its links pointing at the test server."""
    html = (FIXTURES / f"{name}.html").read_text(encoding="utf-8")
    return html.replace("http://127.0.0.1/", server.base + "/")


def from_set(article_id: str) -> Doc:
    a = make_set.articles()[article_id]
    return Doc(f"/{a.site}/{a.id}", a.title, list(a.paragraphs), a.language, a.published_at)


@pytest.fixture
def open_monitor(tmp_path: Path, db_url: str) -> Iterator[Any]:
    opened: list[Monitor] = []

    def make(feeds: dict[str, str]) -> Monitor:
        cfg = tmp_path / "feeds.toml"
        # Extraction in the polling threads: the order of entries is the feed's.
        cfg.write_text(config_toml(db_url, feeds, RULES, extra="[extract]\nprocesses = 0\n"), encoding="utf-8")
        m = Monitor.open(load_config(cfg))
        opened.append(m)
        return m

    yield make
    for m in opened:
        m.close()


def rows(m: Monitor, sql: str, **params: object) -> list[tuple[Any, ...]]:
    with m.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def deliveries(m: Monitor) -> list[tuple[str, int]]:
    return sorted((str(r[0]), int(r[1])) for r in rows(m, "SELECT rule, story_id FROM deliveries"))


# --- through the pipeline ----------------------------------------------------------------


def test_syndicated_copy_with_other_chrome_is_a_near_duplicate(server: LocalServer, open_monitor: Any) -> None:
    """The same article on another site, with a line of that site's own: not an exact
    copy, so its own item, marked as a duplicate, in the same story, and no second alert."""
    html, synd = (fixture_page(server, name) for name in ("fr_summit_main", "fr_summit_main_syndicated"))
    marker = "Réunis mardi 6 janvier"
    assert marker in synd
    synd = synd.replace(
        marker, "Cet article vous est proposé par notre partenaire Le Quotidien, avec son accord. " + marker, 1
    )
    server.routes["/a/main"] = Route(html.encode())
    server.routes["/b/synd"] = Route(synd.encode())
    t0 = datetime(2026, 1, 6, 17, 30, tzinfo=UTC)
    title = "À Paris, la coalition des volontaires s’engage"
    docs = [
        Doc("/a/main", title, ["Le sommet de Paris."], "fr", t0),
        Doc("/b/synd", title, ["Le sommet."], "fr", t0 + timedelta(minutes=20)),
    ]
    server.routes["/feed.atom"] = Route(atom(server, docs), content_type=ATOM)
    m = open_monitor({"mixed": server.url("/feed.atom")})
    (report,) = m.poll(force=True)
    assert report.new_items == 2 and report.failed == 0
    items = rows(m, "SELECT id, story_id, duplicate_of, canonical_url, content_hash FROM items ORDER BY id")
    assert len(items) == 2
    (first, story, dup, _, h1), (second, story2, dup2, canonical, h2) = items
    assert h1 != h2  # not an exact copy
    assert dup is None and dup2 == first and story2 == story
    assert "/fr-fr/actualites/" in str(canonical)
    # Two match rows (one per item), one alert per rule.
    assert sorted(rows(m, "SELECT rule, item_id FROM matches")) == [
        ("garanties-fr", first),
        ("garanties-fr", second),
        ("ukraine", first),
        ("ukraine", second),
    ]
    assert deliveries(m) == [("garanties-fr", story), ("ukraine", story)]
    assert rows(m, "SELECT item_count, source_count, languages FROM stories") == [(2, 1, "fr")]
    m.deliver()
    [summary] = m.store.stories(10)
    assert [(i.id, i.duplicate_of) for i in summary.items] == [(first, None), (second, first)]


def test_reports_in_three_languages_are_one_story(server: LocalServer, open_monitor: Any) -> None:
    """French, English and German reports of the Paris summit: one story, three
    languages, one alert per rule; the next night's drone strike, on the same topic
    and with the same names, is a story of its own with its own alerts."""
    summit = [from_set(f"paris-summit.{x}") for x in ("en-wire", "fr-quotidien", "de-zeitung")]
    strike = from_set("arsenal-strike.fr-quotidien")
    m = open_monitor({"wire": serve(server, "/wire.atom", [*summit, strike])})
    (report,) = m.poll(force=True)
    assert report.new_items == 4 and report.failed == 0
    by_path = {
        str(r[0]).removeprefix(server.base): (r[1], r[2], r[3])
        for r in rows(m, "SELECT url, story_id, language, duplicate_of FROM items")
    }
    stories_of = {path: sid for path, (sid, _, _) in by_path.items()}
    assert {by_path[d.path][1] for d in summit} == {"en", "fr", "de"}
    assert all(dup is None for _, _, dup in by_path.values())  # translations are no copies
    assert len({stories_of[d.path] for d in summit}) == 1
    summit_story = stories_of[summit[0].path]
    strike_story = stories_of[strike.path]
    assert strike_story != summit_story
    assert rows(m, "SELECT item_count, source_count, languages FROM stories WHERE id = :s", s=summit_story) == [
        (3, 1, "de,en,fr")
    ]
    # Every item matched "ukraine" and "drones" (a match row each), but each story alerts once per rule.
    assert len(rows(m, "SELECT id FROM matches WHERE rule = 'ukraine'")) == 4
    matched = rows(m, "SELECT m.rule, i.story_id FROM matches m JOIN items i ON i.id = m.item_id")
    assert len(matched) > len(set(matched))  # several items of a story matched the same rule
    expected = {(str(rule), int(story)) for rule, story in matched}
    assert {("ukraine", summit_story), ("drones", summit_story), ("ukraine", strike_story)} <= expected
    assert set(deliveries(m)) == expected and len(deliveries(m)) == len(expected)
    # In another feed, the English report with a line of its own: a near-duplicate, in the
    # story, which now has two feeds; no new alert.
    en = summit[0]
    copy = Doc("/elsewhere/en", en.title, [*en.paragraphs, "Reporting by our staff."], "en", en.published)
    m2_feed = serve(server, "/wire2.atom", [copy])
    m2 = open_monitor({"wire": server.url("/wire.atom"), "wire2": m2_feed})
    m2.poll(["wire2"], force=True)
    (dup_row,) = rows(m2, "SELECT story_id, duplicate_of FROM items WHERE url = :u", u=server.url(copy.path))
    assert dup_row[0] == summit_story and dup_row[1] is not None
    assert len(deliveries(m2)) == len(expected)
    assert rows(m2, "SELECT item_count, source_count FROM stories WHERE id = :s", s=summit_story) == [(4, 2)]


def test_an_update_is_a_new_revision_not_a_new_item(server: LocalServer, open_monitor: Any) -> None:
    """A known entry is fetched again only when its feed data changes; a changed page
    text is revision 2 of the item (no new item, no new alert); an unchanged known
    entry is never fetched again."""
    article = from_set("kyiv-statement.en-daily")
    other = from_set("black-sea.en-daily")
    url = serve(server, "/feed.atom", [article])
    m = open_monitor({"daily": url})
    assert m.poll(force=True)[0].new_items == 1
    assert server.hits(article.path) == 1
    ((item_id, revision, text_v1),) = rows(m, "SELECT id, revision, text FROM items")
    assert revision == 1
    ((story,),) = rows(m, "SELECT story_id FROM items")
    alerts = deliveries(m)
    assert alerts and {s for _, s in alerts} == {story}

    # Another entry joins the feed (so it is parsed again); ours is unchanged: not fetched.
    serve(server, "/feed.atom", [article, other])
    (r,) = m.poll(force=True)
    assert (r.new_items, r.known, r.updated) == (1, 1, 0)
    assert server.hits(article.path) == 1

    # The feed says the entry was updated, and the page changed: revision 2.
    article.updated = article.published + timedelta(hours=2)
    article.paragraphs.append("Update: the Rada will vote on the ratification bill on Friday, the speaker said.")
    serve(server, "/feed.atom", [article, other])
    (r,) = m.poll(force=True)
    assert (r.new_items, r.updated) == (0, 1)
    assert server.hits(article.path) == 2
    ((same_id, revision, text_v2),) = rows(m, "SELECT id, revision, text FROM items WHERE id = :i", i=item_id)
    assert same_id == item_id and revision == 2 and "Rada will vote" in str(text_v2) and text_v2 != text_v1
    assert len(rows(m, "SELECT id FROM items")) == 2
    assert [d for d in deliveries(m) if d[1] == story] == alerts
    assert rows(m, "SELECT story_id FROM items WHERE id = :i", i=item_id) == [(story,)]

    # Updated again in the feed, but the page did not change: fetched, no new revision.
    article.updated = article.published + timedelta(hours=3)
    serve(server, "/feed.atom", [article, other])
    (r,) = m.poll(force=True)
    assert (r.new_items, r.updated, r.known) == (0, 0, 2)
    assert server.hits(article.path) == 3
    assert rows(m, "SELECT revision FROM items WHERE id = :i", i=item_id) == [(2,)]

    # And once recorded, the same feed data does not fetch it again.
    serve(server, "/feed.atom", [other, article])  # the body changes, the entries do not
    m.poll(force=True)
    assert server.hits(article.path) == 3


# --- two workers, two processes ------------------------------------------------------------


def _texts(n: int) -> list[tuple[str, str, str]]:
    """(title, original text, near-copy) of `n` distinct articles."""
    ids = sorted(a for a in make_set.articles() if make_set.articles()[a].language == "en")[:n]
    out = []
    for article_id in ids:
        base = make_set.base_document(article_id)
        spec = make_set.variant_specs()[f"{article_id}~chrome_swap~0"]
        out.append((base.title, base.text, make_set.variant_document(spec).text))
    return out


def _worker(db_url: str, which: int, n: int, barrier: Any) -> None:
    """One polling worker of its own process, storing one copy of each of `n` stories,
    each at the same moment as the other worker stores the other copy."""
    engine = make_engine(db_url)
    store = Store(engine)
    feed = next(f for f in store.feeds() if f.name == f"w{which}")
    rules = compile_rules([("ukraine", "Ukraine OR Ukrainian OR Kyiv", ("console",))])
    fetcher = Fetcher(FetchConfig(robots=False))
    pipeline = Pipeline(store, fetcher, rules)
    published = datetime.now(UTC) - timedelta(hours=1)
    for k, (title, original, near) in enumerate(_texts(n)):
        entry = Entry(
            guid=f"w{which}-{k}",
            url=None,  # the feed's content is the text: no page to fetch
            title=title,
            summary=None,
            content=escape(original if which == 0 else near).replace("\n", "<br>"),
            author=None,
            published_at=published,
            updated_at=None,
        )
        barrier.wait(timeout=60)
        assert pipeline.process_entry(feed, entry) == "new"
    fetcher.close()
    engine.dispose()


def test_two_processes_storing_copies_at_once_make_one_story(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    store.sync_feeds(
        [FeedSpec("w0", "http://127.0.0.1/w0", 600, 1800), FeedSpec("w1", "http://127.0.0.1/w1", 600, 1800)]
    )
    n = 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_worker, args=(db_url, i, n, barrier)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=180)
    assert [w.exitcode for w in workers] == [0, 0]
    with Session(engine) as s:
        items = s.exec(select(Item).order_by(Item.id)).all()
        stories = s.exec(select(Story)).all()
        alerts = s.exec(select(Delivery)).all()
    assert len(items) == 2 * n
    assert len(stories) == n, [(i.id, i.story_id, i.duplicate_of, i.title) for i in items]
    by_story: dict[int | None, list[Item]] = {}
    for item in items:
        by_story.setdefault(item.story_id, []).append(item)
    for pair in by_story.values():
        assert len(pair) == 2 and pair[0].duplicate_of is None and pair[1].duplicate_of == pair[0].id
        assert {i.feed_id for i in pair} == {f.id for f in store.feeds()}
    assert sorted(st.item_count for st in stories) == [2] * n
    assert sorted(st.source_count for st in stories) == [2] * n
    assert sorted(a.story_id for a in alerts) == sorted(by_story)  # one alert per story
    engine.dispose()


# --- the Store ----------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    s = Store(engine)
    s.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800), FeedSpec("g", "http://127.0.0.1/g", 600, 1800)])
    yield s
    engine.dispose()


def new_item(store: Store, url: str, rules: tuple[str, ...] = ("r",), feed: str = "f", **kw: Any) -> NewItem:
    feed_id = next(f.id for f in store.feeds() if f.name == feed)
    assert feed_id is not None
    fields: dict[str, Any] = dict(
        title=f"Title of {url}",
        language_probability=0.99,
        text=f"text of {url}",
        matches=[MatchRecord(r, ("t",), "**t**", ("console", "desk")) for r in rules],
    )
    return build_item(feed_id, url, **(fields | kw))


def test_a_story_alerts_once_per_rule_and_channel(store: Store) -> None:
    with store.serialised() as ingest:
        first = ingest.add_item(new_item(store, "http://127.0.0.1/1", ("r", "s")))
    with Session(store.engine) as s:
        story_id = s.exec(select(Item.story_id).where(Item.id == first)).one()
    assert story_id is not None
    with store.serialised() as ingest:
        second = ingest.add_item(
            new_item(store, "http://127.0.0.1/2", ("r", "t"), feed="g", language="en"), story_id=story_id
        )
    with Session(store.engine) as s:
        alerts = sorted((d.rule, d.channel, d.item_id) for d in s.exec(select(Delivery)).all())
        story = s.get(Story, story_id)
    # Rule r alerted with the first item; rule t, new to the story, alerts with the second.
    assert alerts == [
        ("r", "console", first),
        ("r", "desk", first),
        ("s", "console", first),
        ("s", "desk", first),
        ("t", "console", second),
        ("t", "desk", second),
    ]
    assert story is not None and (story.item_count, story.source_count, story.languages) == (2, 2, "en,fr")
    # A copy seen in a third place is a source; the story's feeds do not grow twice.
    assert store.add_source(second, next(f.id for f in store.feeds() if f.name == "f") or 0, "http://x/3", "g3")
    with Session(store.engine) as s:
        story = s.get(Story, story_id)
        assert story is not None and story.source_count == 2


def test_stories_lists_recent_stories_with_their_items(store: Store) -> None:
    a = store.add_item(new_item(store, "http://127.0.0.1/a", canonical_url="http://127.0.0.1/canonical-a"))
    assert a is not None
    with Session(store.engine) as s:
        story_a = s.exec(select(Item.story_id).where(Item.id == a)).one()
    with store.serialised() as ingest:
        b = ingest.add_item(new_item(store, "http://127.0.0.1/b", feed="g"), story_id=story_a, duplicate_of=a)
    c = store.add_item(new_item(store, "http://127.0.0.1/c", language="de"))
    listed = store.stories(10)
    assert [len(st.items) for st in listed] == [1, 2]  # the latest story first
    newest, older = listed
    assert [i.id for i in newest.items] == [c] and newest.languages == ("de",)
    assert [(i.id, i.duplicate_of, i.feed, i.url) for i in older.items] == [
        (a, None, "f", "http://127.0.0.1/canonical-a"),
        (b, a, "g", "http://127.0.0.1/b"),
    ]
    assert older.item_count == 2 and older.source_count == 2 and older.title == "Title of http://127.0.0.1/a"
    assert len(store.stories(1)) == 1


def test_near_candidates_come_from_the_band_index(store: Store) -> None:
    from monitor.minhash import SCHEME, band_keys, pack, shingles, signature

    doc = make_set.base_document("paris-summit.en-wire")
    sig = signature(shingles(doc.title + "\n" + doc.text))
    keys = band_keys(sig)
    item = store.add_item(
        new_item(store, "http://127.0.0.1/a", signature=pack(sig), signature_scheme=SCHEME, band_keys=keys)
    )
    with store.serialised() as ingest:
        [row] = ingest.near_candidates(keys[:3] + [12345], SCHEME)
        assert row.item_id == item and row.signature == pack(sig)
        assert ingest.near_candidates(keys, "another-scheme") == []
        assert ingest.near_candidates([1, 2, 3], SCHEME) == []
    with Session(store.engine) as s:
        assert len(s.exec(text("SELECT band_key FROM lsh_bands")).all()) == len(set(keys))  # type: ignore[call-overload]


# --- the migration ---------------------------------------------------------------------------


def test_migration_0006_keeps_and_completes_existing_stories(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0005")
    t = "2026-01-06 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO feeds (id, name, url, current_url, interval_seconds, status, error_count, "
                "next_poll_at, created_at) VALUES (1, 'f', 'u', 'u', 60, 'ok', 0, :t, :t), "
                "(2, 'g', 'v', 'v', 60, 'ok', 0, :t, :t)"
            ),
            {"t": t},
        )
        conn.execute(
            text("INSERT INTO stories (id, title, first_seen_at, last_seen_at, item_count) VALUES (1, 'x', :t, :t, 1)"),
            {"t": t},
        )
        conn.execute(
            text(
                "INSERT INTO items (id, feed_id, url, fetched_at, language, text_source, content_hash, story_id) "
                "VALUES (1, 1, 'http://a', :t, 'uk', 'page', 'h', 1)"
            ),
            {"t": t},
        )
        conn.execute(
            text(
                "INSERT INTO item_sources (item_id, feed_id, url, first_seen_at) "
                "VALUES (1, 1, 'http://a', :t), (1, 2, 'http://b', :t)"
            ),
            {"t": t},
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT languages, source_count, profile FROM stories")).one() == ("uk", 2, None)
        assert conn.execute(text("SELECT revision, signature FROM items")).one() == (1, None)
        assert conn.execute(text("SELECT count(*) FROM item_sources WHERE entry_hash IS NULL")).scalar() == 2
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stories")).scalar() == 1
    engine.dispose()


# --- pure decisions -----------------------------------------------------------------------------


def test_entry_hash_and_updates() -> None:
    e = Entry("g", "http://a/x", "Title", "Summary", None, None, None, None)
    later = Entry("g", "http://a/x", "Title", "Summary", None, None, None, datetime(2026, 1, 7, tzinfo=UTC))
    assert entry_hash(e) == entry_hash(Entry("g", "http://a/y", "Title", "Summary", "<p>c</p>", "a", None, None))
    assert entry_hash(e) != entry_hash(later)
    assert entry_hash(e) != entry_hash(Entry("g", "http://a/x", "Title!", "Summary", None, None, None, None))
    assert not is_update(None, entry_hash(e))  # recorded before hashes were kept: not fetched again
    assert not is_update(entry_hash(e), entry_hash(e))
    assert is_update(entry_hash(e), entry_hash(later))
    assert revises("a", "page", "b", "page") and not revises("a", "page", "a", "page")
    assert not revises("a", "page", "b", "feed_summary")  # the page failed this time
    assert revises("a", "feed_summary", "b", "page")


def test_story_index_finds_what_scoring_every_story_finds() -> None:
    """Online grouping of the labelled set with the index (pruned) and by scoring every
    active story: the same stories, with far fewer full scores."""
    arts = sorted(make_set.articles().values(), key=lambda a: (a.published_at, a.id))
    profiles = [profile(a.title, "\n\n".join(a.paragraphs), a.language, a.published_at) for a in arts]
    brute: dict[int, Profile] = {}
    expected = []
    for p in profiles:
        found = best_story(p, sorted(brute.items()))
        sid = len(brute) + 1 if found is None else found[0]
        brute[sid] = p if found is None else story_profile([brute[sid], p])
        expected.append(sid)
    index = StoryIndex()
    stored: dict[int, tuple[datetime, int, str]] = {}
    got = []
    now = datetime(2026, 1, 20, tzinfo=UTC)
    for n, p in enumerate(profiles):
        since = index.changed_since(timedelta(minutes=5))
        index.refresh(
            (StoryRow(i, seen, count) for i, (seen, count, _) in stored.items() if since is None or seen >= since),
            lambda ids: {i: stored[i][2] for i in ids},
            now - timedelta(days=3),
        )
        found = index.best(p)
        seen = now + timedelta(seconds=n)
        if found is None:
            sid = len(stored) + 1
            stored[sid] = (seen, 1, p.to_json())
        else:
            sid = found[0]
            _, count, old = stored[sid]
            stored[sid] = (seen, count + 1, story_profile([Profile.from_json(old), p]).to_json())
        got.append(sid)
    assert got == expected
    brute_scores = sum(len(set(expected[:i])) for i in range(len(expected)))
    assert index.scored < brute_scores / 2, (index.scored, brute_scores)
    # Stories not seen for ACTIVE_DAYS leave the index.
    index.refresh([], dict, now + timedelta(days=10))
    assert len(index) == 0


def test_story_index_scores_a_story_published_years_apart() -> None:
    """A page dated years before the active story (an old page in a feed) makes the
    time factor underflow to 0: no story for it, and no ZeroDivisionError that fails the entry."""
    art = sorted(make_set.articles().values(), key=lambda a: (a.published_at, a.id))[0]
    text = "\n\n".join(art.paragraphs)
    story = profile(art.title, text, art.language, datetime(2026, 1, 6, tzinfo=UTC))
    now = datetime(2026, 1, 7, tzinfo=UTC)
    index = StoryIndex()
    index.refresh([StoryRow(1, now, 1)], lambda ids: {1: story.to_json()}, now - timedelta(days=3))
    assert index.best(profile(art.title, text, art.language, datetime(2026, 1, 6, 12, tzinfo=UTC))) is not None
    assert index.best(profile(art.title, text, art.language, datetime(2014, 1, 6, tzinfo=UTC))) is None
    assert best_story(profile(art.title, text, art.language, datetime(2014, 1, 6, tzinfo=UTC)), [(1, story)]) is None
