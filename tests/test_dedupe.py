"""Dedupe decisions are pure: a dict-backed look-up stands in for storage."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.dedupe import Known, entry_url, known_article, known_entry
from monitor.parse import Entry


@dataclass
class Lookup:
    guids: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)  # (feed, guid) -> (item, url)
    urls: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, int] = field(default_factory=dict)

    def find_by_guid(self, feed_id: int, guid: str, url: str | None = None) -> int | None:
        hit = self.guids.get((feed_id, guid))
        if hit is None or (url is not None and hit[1] != url):
            return None
        return hit[0]

    def find_by_url(self, url: str) -> int | None:
        return self.urls.get(url)

    def find_by_hash(self, content_hash: str) -> int | None:
        return self.hashes.get(content_hash)


def entry(guid: str, url: str | None) -> Entry:
    return Entry(
        guid=guid, url=url, title="t", summary=None, content=None, author=None, published_at=None, updated_at=None
    )


def test_layers_in_order() -> None:
    lk = Lookup(guids={(1, "g"): (10, "http://a/x")}, urls={"http://a/y": 11}, hashes={"h": 12})
    assert known_entry(lk, 1, entry("g", "http://a/x"), "http://a/x") == Known(10, "guid")
    assert known_entry(lk, 2, entry("g", "http://a/x"), "http://a/x") is None  # GUIDs are per feed
    assert known_entry(lk, 1, entry("other", "http://a/y"), "http://a/y") == Known(11, "url")
    assert known_article(lk, "http://a/y", "zzz") == Known(11, "canonical")
    assert known_article(lk, None, "h") == Known(12, "content")
    assert known_article(lk, None, "nope") is None


def test_a_reused_guid_does_not_hide_a_new_article() -> None:
    lk = Lookup(guids={(1, "same"): (10, "http://a/first")})
    assert known_entry(lk, 1, entry("same", "http://a/second"), "http://a/second") is None
    # Without a link, the GUID is all there is.
    assert known_entry(lk, 1, entry("same", None), entry_url(entry("same", None), "http://a/feed")) == Known(10, "guid")


def test_entries_without_links_get_stable_keys() -> None:
    a = entry_url(entry("g1", None), "http://a/feed")
    assert a == entry_url(entry("g1", None), "http://a/feed") != entry_url(entry("g2", None), "http://a/feed")
    assert a.startswith("urn:monitor:entry:")
