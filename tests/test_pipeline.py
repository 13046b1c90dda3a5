"""End to end: real HTTP server, real extraction, real database, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from newssite import CHROME, NewsSite, config_toml
from sqlalchemy import text

from monitor.config import load_config
from monitor.service import Monitor

pytestmark = pytest.mark.slow


def _open(tmp_path: Path, db_url: str, site: NewsSite) -> Monitor:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(config_toml(db_url, {"quotidien-fr": site.rss_url, "world-wire": site.atom_url}), encoding="utf-8")
    return Monitor.open(load_config(cfg))


def _rows(m: Monitor, sql: str, **params: object) -> list[tuple[object, ...]]:
    with m.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def test_full_pipeline(tmp_path: Path, db_url: str, site: NewsSite, capsys: pytest.CaptureFixture[str]) -> None:
    with _open(tmp_path, db_url, site) as m:
        reports = m.poll(force=True)
        stats = m.deliver()
        assert sorted(r.status for r in reports) == ["ok", "ok"]
        items = _rows(m, "SELECT url, title, language, text, text_source, story_id FROM items ORDER BY id")
        assert {r[0] for r in _rows(m, "SELECT language_source FROM items")} == {"detected"}
        by_url = {str(r[0]): r for r in items}
        # The main French article and its syndicated copy arrive through two feeds
        # polled concurrently: whichever is seen first is the item, the other a source.
        copies = ("fr_summit_main", "fr_summit_main_syndicated")
        (kept,) = [k for k in copies if site.pages[k].url in by_url]
        expected = {k: p for k, p in site.pages.items() if k not in copies or k == kept}
        # One item per article: the tracking-URL copy and the syndicated copy are not new items.
        assert sorted(by_url) == sorted(p.url for p in expected.values())
        for key, page in expected.items():
            _, title, language, body, source, story = by_url[page.url]
            assert title == page.title
            assert language == page.language, key
            assert source == "page"
            flat = " ".join(str(body).split())
            for para in page.paragraphs:
                assert " ".join(para.split()) in flat, (key, para[:60])
            for chrome in CHROME:
                assert chrome not in str(body), (key, chrome)
        # Every source of the main French article is kept.
        main = site.pages[kept]
        sources = _rows(
            m,
            "SELECT f.name, s.url FROM item_sources s JOIN feeds f ON f.id = s.feed_id "
            "JOIN items i ON i.id = s.item_id WHERE i.url = :u ORDER BY s.id",
            u=main.url,
        )
        assert sorted(s[0] for s in sources) == ["quotidien-fr", "world-wire", "world-wire"]
        assert {s[1] for s in sources} == {site.pages[k].url for k in copies}  # tracking parameters stripped
        # Reports of one event share a story; the unrelated page has its own.
        n_stories = _rows(m, "SELECT COUNT(*) FROM stories")[0][0]
        assert 2 <= n_stories < len(expected)
        story_of = {str(u): s for u, s in _rows(m, "SELECT url, story_id FROM items")}
        unrelated = story_of[site.pages["fr_unrelated"].url]
        assert [u for u, s in story_of.items() if s == unrelated] == [site.pages["fr_unrelated"].url]
        matches = {
            (str(r[0]), str(r[1]))
            for r in _rows(m, "SELECT m.rule, i.url FROM matches m JOIN items i ON i.id = m.item_id")
        }
        p = site.pages
        assert matches == {
            ("garanties-fr", p[kept].url),
            ("garanties-fr", p["fr_summit_analysis"].url),
            ("garanties-fr", p["fr_summit_brief"].url),
            ("cessez-le-feu", p[kept].url),
            ("cessez-le-feu", p["fr_summit_analysis"].url),
            ("cessez-le-feu", p["fr_summit_brief"].url),
            ("security-en", p["en_summit"].url),
            ("sicherheit-de", p["de_summit"].url),
            ("bezpeka-uk", p["uk_summit"].url),
            ("vendanges", p["fr_unrelated"].url),
        }
        # One alert per (rule, story), however many items of the story match.
        deliveries = _rows(m, "SELECT rule, story_id, channel, status FROM deliveries")
        pairs = {(rule, story_of[url]) for rule, url in matches}
        assert sorted((str(d[0]), d[1]) for d in deliveries) == sorted(pairs)
        assert {d[3] for d in deliveries} == {"sent"}
        assert stats.sent == len(pairs)
        out = capsys.readouterr().out
        assert out.count("ALERT [") == len(pairs)
        for rule in {r for r, _ in matches}:
            assert out.count(f"ALERT [{rule}]") == len({s for r, s in pairs if r == rule})

        # A second poll: nothing new, no new alert, no article page fetched again.
        page_hits = {k: site.server.hits(pg.path) for k, pg in site.pages.items()}
        again = m.poll(force=True)
        m.deliver()
        assert {r.status for r in again} == {"unchanged"}
        assert {k: site.server.hits(pg.path) for k, pg in site.pages.items()} == page_hits
        assert _rows(m, "SELECT COUNT(*) FROM items")[0][0] == len(expected)
        assert "ALERT [" not in capsys.readouterr().out


def test_feed_text_is_used_when_page_fails(tmp_path: Path, db_url: str, site: NewsSite) -> None:
    from httpserver import Route

    site.server.routes[site.pages["en_summit"].path] = Route(b"oops", 500, content_type="text/plain")
    with _open(tmp_path, db_url, site) as m:
        m.poll(["world-wire"], force=True)
        (row,) = _rows(m, "SELECT text, text_source FROM items WHERE url = :u", u=site.pages["en_summit"].url)
        assert row[1] == "feed_summary"
        assert " ".join(site.pages["en_summit"].paragraphs[0].split()) in " ".join(str(row[0]).split())


def test_backlog_of_a_new_feed_alerts_nobody(
    tmp_path: Path, db_url: str, site: NewsSite, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entries present at a feed's first poll are stored and matched without
    alerting; an entry added before the next poll alerts, and so does fresh news of
    a story first seen in the backlog."""
    from httpserver import Route
    from newssite import rss

    p = site.pages
    listed = [(p[k], p[k].url, f"fr-{k}") for k in ("fr_summit_main", "fr_summit_analysis")]
    site.server.routes["/feeds/fr.rss"] = Route(rss("Le Quotidien", listed), content_type="application/rss+xml")
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(config_toml(db_url, {"quotidien-fr": site.rss_url}, alert_on_backlog=False), encoding="utf-8")
    with Monitor.open(load_config(cfg)) as m:
        m.poll(force=True)
        assert m.deliver().sent == 0
        held = _rows(m, "SELECT DISTINCT rule, story_id, status, hold FROM deliveries")
        assert held and {(str(r[2]), str(r[3])) for r in held} == {("held", "backlog")}
        backlog_matches = _rows(m, "SELECT COUNT(*) FROM matches")[0][0]
        assert backlog_matches == 4  # two rules on each of the two articles: matched, not alerted
        assert "ALERT [" not in capsys.readouterr().out

        listed += [(p[k], p[k].url, f"fr-{k}") for k in ("fr_summit_brief", "fr_unrelated")]
        site.server.routes["/feeds/fr.rss"] = Route(rss("Le Quotidien", listed), content_type="application/rss+xml")
        m.poll(force=True)
        stats = m.deliver()
        fresh = {p["fr_summit_brief"].url, p["fr_unrelated"].url}
        pairs = {
            (str(rule), story)
            for rule, story, url in _rows(
                m, "SELECT m.rule, m.story_id, i.url FROM matches m JOIN items i ON i.id = m.item_id"
            )
            if url in fresh
        }
        assert ("vendanges", _rows(m, "SELECT story_id FROM items WHERE url = :u", u=p["fr_unrelated"].url)[0][0]) in (
            pairs
        )
        assert stats.sent == len(pairs) >= 3  # the brief's two rules and the unrelated page's
        assert capsys.readouterr().out.count("ALERT [") == len(pairs)
        sent = {(str(r[0]), r[1]) for r in _rows(m, "SELECT rule, story_id FROM deliveries WHERE status = 'sent'")}
        assert sent == pairs
        still_held = _rows(m, "SELECT rule, story_id FROM deliveries WHERE status = 'held'")
        assert all((str(r[0]), r[1]) not in pairs for r in still_held)
