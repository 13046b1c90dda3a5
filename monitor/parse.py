"""Feed documents -> entries.

feedparser only ever sees bytes we fetched: it is given the body and the
response headers (for the encoding and to resolve relative links), never a
URL, so it cannot make requests of its own. The body goes in as a stream:
given plain bytes, feedparser first tries them as a *file name*, so a server
answering "/etc/passwd" would have us parse a local file.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.urls import normalize_url


@dataclass(frozen=True)
class Entry:
    guid: str  # the feed's id for the entry, else its link
    url: str | None  # absolute link to the article page
    title: str | None
    summary: str | None  # HTML as the feed gives it
    content: str | None  # HTML of the fullest content element
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    entries: list[Entry]
    bozo: str | None  # why the document is ill-formed, if it is
    version: str | None
    ttl: int | None  # RSS <ttl>, minutes


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _spread(word: bytes) -> re.Pattern[bytes]:
    # The word in UTF-8/ASCII, UTF-16 or UTF-32: up to three NULs between letters.
    return re.compile(rb"\x00{0,3}".join(re.escape(bytes([c])) for c in word), re.I)


_ENTITY_DECLARATION = _spread(b"<!ENTITY")


def declares_entities(body: bytes) -> bool:
    """Whether the document defines XML entities (a DOCTYPE internal subset).

    feedparser resolves no external entities, but it expands internal ones,
    even after its strict parser refused them: a 200 KB feed defining one
    large entity referenced thousands of times builds a title of hundreds of
    millions of characters. No real feed defines entities, so such a
    document is refused whole; searching all of it (not a prefix, not a
    parsed DOCTYPE) leaves no room for padding or quoting tricks.
    """
    return _ENTITY_DECLARATION.search(body) is not None


def _unshared_guids(entries: list[Entry]) -> list[Entry]:
    """A GUID shared by entries with different links identifies none of them:
    those entries are identified by their link instead."""
    links: dict[str, set[str | None]] = {}
    for e in entries:
        links.setdefault(e.guid, set()).add(e.url)
    shared = {g for g, urls in links.items() if len(urls) > 1}
    if not shared:
        return entries
    return [replace(e, guid=e.url) if e.guid in shared and e.url else e for e in entries]


def parse_feed(body: bytes, url: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    response_headers = {"content-location": url}
    if headers and "content-type" in headers:
        response_headers["content-type"] = headers["content-type"]
    if declares_entities(body):
        return ParsedFeed(
            title=None,
            entries=[],
            version=None,
            ttl=None,
            bozo="the document declares XML entities (<!ENTITY in a DOCTYPE): refused, "
            "as entity expansion can exhaust memory",
        )
    d = feedparser.parse(
        io.BytesIO(body), response_headers=response_headers, sanitize_html=True, resolve_relative_uris=True
    )
    entries = []
    for e in d.entries:
        link = _text(e.get("link"))
        if link:
            try:
                link = normalize_url(link, url)
            except ValueError:
                link = None
            if link and not link.startswith(("http://", "https://")):
                link = None
        guid = _text(e.get("id")) or link
        if guid is None:
            # No id and no link: identify it by what it says, so two entries
            # that merely share a title stay apart.
            said = "\n".join(str(e.get(k) or "") for k in ("title", "summary", "published", "updated"))
            if not said.strip():
                continue
            guid = "sha256:" + hashlib.sha256(said.encode("utf-8")).hexdigest()
        content = None
        for c in e.get("content", []) or []:
            value = _text(c.get("value"))
            if value and (content is None or len(value) > len(content)):
                content = value
        entries.append(
            Entry(
                guid=guid,
                url=link,
                title=_text(e.get("title")),
                summary=_text(e.get("summary")),
                content=content,
                author=_text(e.get("author")),
                published_at=_time(e.get("published_parsed")),
                updated_at=_time(e.get("updated_parsed")),
            )
        )
    entries = _unshared_guids(entries)
    ttl = None
    raw_ttl = d.feed.get("ttl")
    if isinstance(raw_ttl, str) and raw_ttl.strip().isdigit():
        ttl = int(raw_ttl.strip())
    bozo = None
    if d.get("bozo"):
        bozo = str(d.get("bozo_exception") or "ill-formed feed")
    return ParsedFeed(
        title=_text(d.feed.get("title")), entries=entries, bozo=bozo, version=d.get("version") or None, ttl=ttl
    )
