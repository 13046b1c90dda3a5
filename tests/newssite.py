"""A small news web on the test server: the fixture article pages (our own
text, realistic site chrome) and RSS 2.0 / Atom feeds that list them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from httpserver import LocalServer, Route

FIXTURES = Path(__file__).parent / "fixtures" / "articles"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
CHROME = MANIFEST["chrome_strings"]
ARTICLES = {a["file"].removesuffix(".html"): a for a in MANIFEST["articles"]}


@dataclass
class Page:
    key: str
    path: str
    url: str
    title: str
    language: str
    paragraphs: list[str]
    published: datetime | None
    author: str | None


def serve_articles(server: LocalServer) -> dict[str, Page]:
    """Serve every fixture page at its canonical path, canonical URLs pointing at the server."""
    pages = {}
    for key, a in ARTICLES.items():
        path = urlsplit(a["canonical"]).path
        html = (FIXTURES / a["file"]).read_text(encoding="utf-8").replace("http://127.0.0.1/", server.base + "/")
        server.routes[path] = Route(html.encode("utf-8"))
        pages[key] = Page(
            key,
            path,
            server.url(path),
            a["title"],
            a["language"],
            a["paragraphs"],
            datetime.fromisoformat(a["published"]) if a.get("published") else None,
            a.get("author"),
        )
    return pages


def rss(title: str, items: list[tuple[Page, str, str]]) -> bytes:
    """RSS 2.0; items are (page, link, guid)."""
    parts = [
        f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
        "<link>http://127.0.0.1/</link><description>test feed</description>"
    ]
    for page, link, guid in items:
        date = f"<pubDate>{format_datetime(page.published)}</pubDate>" if page.published else ""
        parts.append(
            f"<item><title>{escape(page.title)}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(guid)}</guid>{date}'
            f"<description>{escape(page.paragraphs[0])}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def atom(title: str, items: list[tuple[Page, str, str]]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test:{escape(title)}</id><updated>2026-01-07T10:00:00Z</updated>"
    ]
    for page, link, guid in items:
        when = page.published.isoformat() if page.published else "2026-01-07T10:00:00+00:00"
        parts.append(
            f"<entry><title>{escape(page.title)}</title>"
            f'<link rel="alternate" href="{escape(link, {chr(34): "&quot;"})}"/><id>{escape(guid)}</id>'
            f"<updated>{when}</updated><published>{when}</published>"
            f"<summary>{escape(page.paragraphs[0])}</summary></entry>"
        )
    parts.append("</feed>")
    return "".join(parts).encode("utf-8")


@dataclass
class NewsSite:
    server: LocalServer
    pages: dict[str, Page]
    rss_url: str
    atom_url: str


def build_site(server: LocalServer) -> NewsSite:
    """Two feeds over the fixture pages.

    `/feeds/fr.rss` (RSS 2.0) carries four French articles. `/feeds/world.atom`
    (Atom) carries the English, German, Ukrainian and Russian reports, plus
    the main French article again under a tracking URL and a different GUID,
    and its syndicated copy (same text, other site, other URL).
    """
    pages = serve_articles(server)
    fr = [
        (pages[k], pages[k].url, f"fr-{k}")
        for k in ("fr_summit_main", "fr_summit_analysis", "fr_summit_brief", "fr_unrelated")
    ]
    tracking = pages["fr_summit_main"].url + "?utm_source=rss&utm_medium=feed&fbclid=IwAR0abc#comments"
    world = [(pages[k], pages[k].url, f"urn:world:{k}") for k in ("en_summit", "de_summit", "uk_summit", "ru_summit")]
    world += [
        (pages["fr_summit_main"], tracking, "urn:world:fr-main-tracked"),
        (pages["fr_summit_main_syndicated"], pages["fr_summit_main_syndicated"].url, "urn:world:fr-synd"),
    ]
    server.routes["/feeds/fr.rss"] = Route(rss("Le Quotidien", fr), content_type="application/rss+xml")
    server.routes["/feeds/world.atom"] = Route(atom("World wire", world), content_type="application/atom+xml")
    return NewsSite(server, pages, server.url("/feeds/fr.rss"), server.url("/feeds/world.atom"))


RULES_TOML = """
[[rules]]
name = "garanties-fr"
query = '"garanties de sécurité" OR "garantie de sécurité"'
channels = ["console"]

[[rules]]
name = "cessez-le-feu"
query = '"cessez-le-feu"'
channels = ["console"]

[[rules]]
name = "security-en"
query = '"security guarantees"'
channels = ["console"]

[[rules]]
name = "sicherheit-de"
query = 'Sicherheitsgarantien'
channels = ["console"]

[[rules]]
name = "bezpeka-uk"
query = '"гарантії безпеки"'
channels = ["console"]

[[rules]]
name = "vendanges"
query = 'vendanges OR millésime'
channels = ["console"]
"""


def config_toml(
    db_url: str,
    feeds: dict[str, str],
    rules: str = RULES_TOML,
    extra: str = "",
    timeout: float = 5,
    alert_on_backlog: bool = True,
) -> str:
    """A feeds.toml for the site; its feeds alert on their backlog unless told not to
    (the tests that count alerts poll each feed once)."""
    backlog = "alert_on_backlog = true\n" if alert_on_backlog else ""
    feed_tables = "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n{backlog}' for n, u in feeds.items())
    return (
        f'[storage]\nurl = "{db_url}"\n\n'
        f'[fetch]\ntimeout = {timeout}\nper_host_delay = 0\nallow_private = ["127.0.0.1/32"]\n\n'
        f"[schedule]\ntick = 1\n\n[alerts.console]\n{extra}{feed_tables}{rules}"
    )
