"""Is this entry, or this article, one we already have?

Layers, cheapest first: the feed's GUID for the entry, the normalised URL
(the entry's link, or the page's canonical URL), then the hash of the
normalised text (an exact copy published under another URL). The decision
is pure: storage look-ups come in through the `Lookup` protocol.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

from monitor.parse import Entry

Layer = Literal["guid", "url", "canonical", "content"]


class Lookup(Protocol):
    def find_by_guid(self, feed_id: int, guid: str, url: str | None = None) -> int | None: ...
    def find_by_url(self, url: str) -> int | None: ...
    def find_by_hash(self, content_hash: str) -> int | None: ...


@dataclass(frozen=True)
class Known:
    item_id: int
    layer: Layer


def entry_url(entry: Entry, feed_url: str) -> str:
    """The URL key of an entry; entries without a link get a stable URN."""
    if entry.url:
        return entry.url
    digest = hashlib.sha256(f"{feed_url}\n{entry.guid}".encode()).hexdigest()[:32]
    return f"urn:monitor:entry:{digest}"


def known_entry(lookup: Lookup, feed_id: int, entry: Entry, url: str) -> Known | None:
    """Before fetching the page: do we know the entry by GUID or URL?"""
    # The GUID counts with the URL it was seen with: a feed that reuses one GUID
    # for every post (or per slot) would otherwise hide each new article behind the first.
    if (found := lookup.find_by_guid(feed_id, entry.guid, url if entry.url else None)) is not None:
        return Known(found, "guid")
    if (found := lookup.find_by_url(url)) is not None:
        return Known(found, "url")
    return None


def known_article(lookup: Lookup, canonical_url: str | None, content_hash: str) -> Known | None:
    """After extraction: do we know the page's canonical URL or its exact text?"""
    if canonical_url and (found := lookup.find_by_url(canonical_url)) is not None:
        return Known(found, "canonical")
    if (found := lookup.find_by_hash(content_hash)) is not None:
        return Known(found, "content")
    return None
