"""Hostile and broken feeds and servers: each gets a clear per-feed result,
nothing crashes, every other feed is unaffected. And robots.txt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import LocalServer, Route
from newssite import NewsSite, config_toml
from sqlalchemy import text

from monitor.config import load_config
from monitor.service import Monitor

pytestmark = pytest.mark.slow
RSS = "application/rss+xml"


def rss(items: str, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return f'{prolog}<rss version="2.0"><channel><title>t</title><link>http://127.0.0.1/</link>{items}</channel></rss>'


def item(i: int, link: str | None = None, guid: str | None = None, title: str | None = None) -> str:
    # Each entry says something of its own: identical texts would be exact copies of one item.
    words = f"{title or ''} {link or ''} {guid or ''} {i}"
    return (
        f"<item><title>{title or f'Entrée {i}'}</title>"
        + (f"<link>{link}</link>" if link else "")
        + (f"<guid>{guid}</guid>" if guid else "")
        + f"<description>Texte de l'entrée {words}.</description></item>"
    )


@pytest.fixture
def monitor_for(tmp_path: Path, server: LocalServer) -> Iterator[object]:
    opened: list[Monitor] = []

    def make(feeds: dict[str, str]) -> Monitor:
        cfg = tmp_path / "feeds.toml"
        cfg.write_text(config_toml(f"sqlite:///{tmp_path / 'm.db'}", feeds), encoding="utf-8")
        m = Monitor.open(load_config(cfg))
        opened.append(m)
        return m

    yield make
    for m in opened:
        m.close()


def titles(m: Monitor, feed: str) -> list[str]:
    with m.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.title FROM items i JOIN item_sources s ON s.item_id = i.id "
                "JOIN feeds f ON f.id = s.feed_id WHERE f.name = :f ORDER BY i.id"
            ),
            {"f": feed},
        )
        return [r[0] for r in rows]


def test_broken_feeds_side_by_side(server: LocalServer, monitor_for) -> None:  # type: ignore[no-untyped-def]
    p = server.url
    routes = {
        "/bom.rss": ("\ufeff" + rss(item(1, p("/a/1"), "b1", "Sécurité"))).encode("utf-8"),
        "/cp1252.rss": rss(
            item(1, p("/b/1"), "c1", "Sécurité garantie"), '<?xml version="1.0" encoding="windows-1252"?>'
        ).encode("cp1252"),
        "/nul.rss": rss(item(1, p("/c/1"), "n1", "Avec\x00NUL")).encode("utf-8"),
        "/bigtitle.rss": rss(item(1, p("/d/1"), "t1", "x" * 1_000_000)).encode("utf-8"),
        "/nolink.rss": rss(item(1) + item(2)).encode("utf-8"),
        "/sharedguid.rss": rss("".join(item(i, p(f"/e/{i}"), "same-guid") for i in range(3))).encode("utf-8"),
        "/empty.rss": b"",
        "/html.rss": b"<html><body>Not found</body></html>",
    }
    for path, body in routes.items():
        server.routes[path] = Route(body, content_type=RSS)
    m = monitor_for({path.strip("/").replace(".rss", ""): p(path) for path in routes})
    reports = {r.feed: r for r in m.poll(force=True)}
    assert {k: r.status for k, r in reports.items()} == {
        "bom": "ok",
        "cp1252": "ok",
        "nul": "ok",
        "bigtitle": "ok",
        "nolink": "ok",
        "sharedguid": "ok",
        "empty": "error",
        "html": "error",
    }
    assert "parse: not a usable feed" in (reports["empty"].error or "")
    assert titles(m, "bom") == ["Sécurité"]
    assert titles(m, "cp1252") == ["Sécurité garantie"]
    assert len(titles(m, "bigtitle")[0]) == 1000
    assert titles(m, "nolink") == ["Entrée 2", "Entrée 1"]  # oldest (last listed) first
    assert len(titles(m, "sharedguid")) == 3  # one GUID for three links identifies none of them
    # A second poll of unchanged feeds finds nothing new.
    again = m.poll(force=True)
    assert all(r.new_items == 0 for r in again)


def test_guids_that_change_on_every_fetch(server: LocalServer, monitor_for) -> None:  # type: ignore[no-untyped-def]
    fetches = iter(range(100))
    server.routes["/pages/1"] = Route(b"<html><body><p>page</p></body></html>")

    def changing(_req: object) -> Route:
        n = next(fetches)
        # The same entry each time, but for its GUID.
        entry = item(1, server.url("/pages/1")).replace("</item>", f"<guid>guid-{n}</guid></item>")
        return Route(rss(entry).encode(), content_type=RSS)

    server.routes["/changing.rss"] = changing
    m = monitor_for({"changing": server.url("/changing.rss")})
    assert [r.new_items for r in m.poll(force=True)] == [1]
    assert [(r.new_items, r.known) for r in m.poll(force=True)] == [(0, 1)]  # same URL: known
    assert server.hits("/pages/1") == 1


def test_fifty_thousand_entries(server: LocalServer, monitor_for) -> None:  # type: ignore[no-untyped-def]
    body = rss(
        "".join(
            f'<item><title>e{i}</title><guid isPermaLink="false">g{i}</guid><description>d{i}</description></item>'
            for i in range(50_000)
        )
    ).encode()
    server.routes["/huge.rss"] = Route(body, content_type=RSS)
    m = monitor_for({"huge": server.url("/huge.rss")})
    (r,) = m.poll(force=True)
    assert r.status == "ok" and r.entries == 1000 and r.new_items == 1000


def test_robots_txt_is_honoured_for_article_pages(site: NewsSite, monitor_for) -> None:  # type: ignore[no-untyped-def]
    site.server.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /fr/\nDisallow: /world/\n", content_type="text/plain"
    )
    m = monitor_for({"quotidien-fr": site.rss_url, "world-wire": site.atom_url})
    m.poll(force=True)
    assert site.server.hits("/robots.txt") == 1  # cached per host
    for key in ("fr_summit_main", "en_summit"):
        assert site.server.hits(site.pages[key].path) == 0
    assert site.server.hits(site.pages["de_summit"].path) == 1
    with m.store.engine.connect() as conn:
        sources = dict(conn.execute(text("SELECT url, text_source FROM items")).all())
    assert sources[site.pages["en_summit"].url] == "feed_summary"
    assert sources[site.pages["de_summit"].url] == "page"


def test_unreachable_robots_txt_means_no_page_fetches(site: NewsSite, monitor_for) -> None:  # type: ignore[no-untyped-def]
    site.server.routes["/robots.txt"] = Route(b"", 503, content_type="text/plain")
    m = monitor_for({"world-wire": site.atom_url})
    (r,) = m.poll(force=True)
    assert r.status == "ok" and r.new_items >= 4
    assert all(site.server.hits(p.path) == 0 for p in site.pages.values())
