"""Page metadata: structured data first, where present and sane."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import lxml.html
import pytest

from monitor.extract import extract_article
from monitor.metadata import page_metadata, parse_date

NOW = datetime(2026, 1, 8, tzinfo=UTC)
URL = "https://news.example.org/europe/2026/01/06/paris-summit"


def page(head: str = "", body: str = "<h1>Body headline</h1>", lang: str = 'lang="fr-FR"') -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(f"<html {lang}><head>{head}</head><body>{body}</body></html>")


def ld(obj: Any) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


OG = (
    '<meta property="og:title" content="OG headline">'
    '<meta property="og:site_name" content="OG Site">'
    '<meta property="og:url" content="https://news.example.org/og-url">'
    '<meta property="og:image" content="/img/og.jpg">'
    '<meta property="article:published_time" content="2026-01-06T18:00:00+01:00">'
    '<meta name="author" content="Meta Author">'
)
NEWS = {
    "@context": "https://schema.org",
    "@type": "NewsArticle",
    "headline": "  Coalition of the willing   signs the Paris declaration ",
    "author": [{"@type": "Person", "name": "Camille Durand"}, {"@type": "Person", "name": "Jonas Weber"}],
    "datePublished": "2026-01-06T19:30:00+01:00",
    "publisher": {"@type": "Organization", "name": "Example News"},
    "image": {"@type": "ImageObject", "url": "https://cdn.example.org/summit.jpg"},
    "mainEntityOfPage": "https://news.example.org/ld-url",
    "inLanguage": "en",
}


def test_json_ld_is_preferred_over_open_graph_and_meta() -> None:
    meta = page_metadata(page(OG + ld(NEWS)), URL, NOW)
    assert meta.title == "Coalition of the willing signs the Paris declaration"
    assert meta.author == "Camille Durand, Jonas Weber"
    assert meta.published_at == datetime(2026, 1, 6, 18, 30, tzinfo=UTC)
    assert meta.site_name == "Example News"
    assert meta.image_url == "https://cdn.example.org/summit.jpg"
    assert meta.sources == {
        "title": "json-ld",
        "author": "json-ld",
        "published_at": "json-ld",
        "site_name": "json-ld",
        "image_url": "json-ld",
        "canonical_url": "og",
        "language": "html",
    }
    # The page's own <html lang> wins over the structured data's inLanguage.
    assert meta.language == "fr"


def test_open_graph_when_there_is_no_structured_data() -> None:
    meta = page_metadata(page(OG), URL, NOW)
    assert meta.title == "OG headline"
    assert meta.site_name == "OG Site"
    assert meta.author == "Meta Author"
    assert meta.published_at == datetime(2026, 1, 6, 17, 0, tzinfo=UTC)
    assert meta.canonical_url == "https://news.example.org/og-url"
    assert meta.image_url == "https://news.example.org/img/og.jpg"  # made absolute


def test_rel_canonical_beats_og_url_and_is_normalised() -> None:
    head = OG + '<link rel="canonical" href="/europe/paris-summit?utm_source=x#top">'
    assert page_metadata(page(head), URL, NOW).canonical_url == "https://news.example.org/europe/paris-summit"


def test_graph_and_news_type_win_over_a_plain_web_page() -> None:
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "name": "Home page name"},
            {"@type": ["ReportageNewsArticle"], "headline": "From the graph"},
        ],
    }
    assert page_metadata(page(ld(graph)), URL, NOW).title == "From the graph"


@pytest.mark.parametrize(
    "bad",
    [
        {"datePublished": "1970-01-01T00:00:00Z"},  # a template's zero date
        {"datePublished": "2031-01-01T00:00:00Z"},  # in the future
        {"datePublished": "yesterday"},
        {"author": "https://news.example.org/authors/camille"},  # a URL, not a name
        {"image": "javascript:alert(1)"},
        {"headline": ""},
        {"headline": 42},
    ],
)
def test_insane_structured_values_fall_back_to_open_graph(bad: dict[str, Any]) -> None:
    doc = {"@type": "NewsArticle", **bad}
    meta = page_metadata(page(OG + ld(doc)), URL, NOW)
    key, field = next(iter(bad)), None
    field = {"datePublished": "published_at", "author": "author", "image": "image_url", "headline": "title"}[key]
    assert meta.sources[field] != "json-ld"
    assert getattr(meta, field) is not None


def test_broken_json_ld_is_ignored() -> None:
    head = '<script type="application/ld+json">{"@type": "NewsArticle", "headline": </script>' + OG
    assert page_metadata(page(head), URL, NOW).title == "OG headline"


def test_title_from_the_document_without_the_site_suffix() -> None:
    head = (
        "<title>Paris summit: what was signed | Example News</title>"
        '<meta property="og:site_name" content="Example News">'
    )
    meta = page_metadata(page(head, body="<p>no heading</p>"), URL, NOW)
    assert meta.title == "Paris summit: what was signed"
    assert meta.sources["title"] == "html"


def test_language_from_og_locale_when_html_has_none() -> None:
    head = '<meta property="og:locale" content="uk_UA">'
    assert page_metadata(page(head, lang=""), URL, NOW).language == "uk"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-06", datetime(2026, 1, 6, tzinfo=UTC)),
        ("2026-01-06T10:00:00Z", datetime(2026, 1, 6, 10, tzinfo=UTC)),
        ("2026-01-06T10:00:00.000+02:00", datetime(2026, 1, 6, 8, tzinfo=UTC)),
        ("2026-01-06 10:00 CET", datetime(2026, 1, 6, tzinfo=UTC)),  # the date part survives
        ("", None),
        (None, None),
    ],
)
def test_parse_date(value: str | None, expected: datetime | None) -> None:
    assert parse_date(value, NOW) == expected


def test_extract_article_carries_the_metadata() -> None:
    body = "<article><h1>Body headline</h1>" + "".join(
        f"<p>Paragraph {i} of the report on the multinational force and the ceasefire monitoring plan.</p>"
        for i in range(8)
    )
    html = f'<html lang="en"><head>{OG}{ld(NEWS)}</head><body>{body}</article></body></html>'.encode()
    art = extract_article(html, URL)
    assert art.title == "Coalition of the willing signs the Paris declaration"
    assert art.site_name == "Example News"
    assert art.image_url == "https://cdn.example.org/summit.jpg"
    assert art.published_at == datetime(2026, 1, 6, 18, 30, tzinfo=UTC)
    assert art.text and "Paragraph 7" in art.text
    assert art.meta_sources["title"] == "json-ld"


def test_page_without_canonical_uses_the_fetched_url() -> None:
    html = b"<html><body><article><p>" + b"word " * 50 + b"</p></article></body></html>"
    assert extract_article(html, "HTTP://Example.org:80/a?utm_source=x").canonical_url == "http://example.org/a"
    assert extract_article(html, "file:///tmp/page.html").canonical_url is None
