"""Feed state: the configuration says which feeds exist, the database keeps their state."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpserver import Route
from newssite import NewsSite, config_toml

from monitor.config import load_config
from monitor.service import Monitor
from storage.db import make_engine, upgrade
from storage.models import utcnow
from storage.repository import FeedSpec, PollRecord, Store


@pytest.fixture
def store(db_url: str) -> Store:
    engine = make_engine(db_url)
    upgrade(engine)
    return Store(engine)


def test_sync_adds_resets_and_removes(store: Store) -> None:
    store.sync_feeds([FeedSpec("a", "http://127.0.0.1/a", 600, 1800), FeedSpec("b", "http://127.0.0.1/b", 600, 1800)])
    a = next(f for f in store.feeds() if f.name == "a")
    assert a.id is not None
    now = utcnow()
    store.record_poll(
        a.id, PollRecord("ok", now, etag='"v1"', body_hash="h", save_cache=True, moved_to="http://127.0.0.1/a2"), now
    )
    store.sync_feeds([FeedSpec("a", "http://127.0.0.1/a", 900, 1800), FeedSpec("b", "http://127.0.0.1/b", 600, 1800)])
    a = next(f for f in store.feeds() if f.name == "a")
    assert (a.current_url, a.etag, a.interval_seconds) == ("http://127.0.0.1/a2", '"v1"', 900)
    # A new URL in the file resets the state, a permanent redirect included.
    store.sync_feeds([FeedSpec("a", "http://127.0.0.1/new", 900, 1800)])
    a = next(f for f in store.feeds() if f.name == "a")
    assert (a.url, a.current_url, a.etag, a.body_hash, a.status) == (
        "http://127.0.0.1/new",
        "http://127.0.0.1/new",
        None,
        None,
        "new",
    )
    assert [f.name for f in store.feeds()] == ["a"]
    assert {f.name: f.status for f in store.feeds(include_removed=True)} == {"a": "new", "b": "removed"}
    store.sync_feeds([FeedSpec("a", "http://127.0.0.1/new", 900, 1800), FeedSpec("b", "http://127.0.0.1/b", 600, 1800)])
    assert {f.name: f.status for f in store.feeds()} == {"a": "new", "b": "new"}


def _monitor(tmp_path: Path, site: NewsSite, feeds: dict[str, str]) -> Monitor:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(config_toml(f"sqlite:///{tmp_path / 'm.db'}", feeds), encoding="utf-8")
    return Monitor.open(load_config(cfg))


@pytest.mark.slow
def test_permanent_redirect_moves_the_feed_temporary_does_not(tmp_path: Path, site: NewsSite) -> None:
    srv = site.server
    srv.routes["/moved.rss"] = Route(status=301, headers={"Location": "/feeds/fr.rss"})
    srv.routes["/elsewhere.rss"] = Route(status=302, headers={"Location": "/feeds/world.atom"})
    with _monitor(tmp_path, site, {"moved": srv.url("/moved.rss"), "tmp": srv.url("/elsewhere.rss")}) as m:
        m.poll(force=True)
        state = {f.name: f.current_url for f in m.store.feeds()}
        assert state == {"moved": site.rss_url, "tmp": srv.url("/elsewhere.rss")}


@pytest.mark.slow
def test_broken_feeds_are_reported_and_the_rest_goes_on(tmp_path: Path, site: NewsSite) -> None:
    srv = site.server
    srv.routes["/html"] = Route(b"<html><body><p>Maintenance</p></body></html>")
    srv.routes["/gone.rss"] = Route(b"", status=410)
    srv.routes["/truncated.rss"] = Route(srv.routes["/feeds/fr.rss"].body[:700], content_type="application/rss+xml")
    feeds = {
        "html": srv.url("/html"),
        "gone": srv.url("/gone.rss"),
        "good": site.atom_url,
        "truncated": srv.url("/truncated.rss"),
    }
    with _monitor(tmp_path, site, feeds) as m:
        reports = {r.feed: r for r in m.poll(force=True)}
        assert reports["html"].status == "error" and "not a usable feed" in (reports["html"].error or "")
        assert reports["gone"].status == "gone"
        good, t = reports["good"], reports["truncated"]
        assert good.status == "ok" and good.new_items + good.known == good.entries == 6
        # A truncated feed is ill-formed but its complete entries are kept.
        assert t.status == "ok" and t.entries >= 1 and t.new_items + t.known == t.entries
        # The two feeds share one article (polled concurrently): 5 distinct items from "good".
        assert good.new_items + t.new_items == 5 + t.entries - 1
        state = {f.name: f for f in m.store.feeds()}
        assert state["html"].error_count == 1 and state["html"].next_poll_at > utcnow()
        assert state["gone"].status == "gone" and state["gone"].last_success_at is None
        # Gone feeds are not polled again; erroring ones are, when due.
        assert {r.feed for r in m.poll(force=True)} == {"html", "good", "truncated"}


@pytest.mark.slow
def test_hostile_article_page_falls_back_to_feed_text(tmp_path: Path, site: NewsSite) -> None:
    page = site.pages["de_summit"]
    site.server.routes[page.path] = Route(b"<html>" + b"<div>" * 300_000, content_type="text/html")
    with _monitor(tmp_path, site, {"world": site.atom_url}) as m:
        m.poll(force=True)
        item = next(i for i, _ in m.store.items(50) if i.url == page.url)
        assert item.text_source == "feed_summary" and item.language == "de"
