"""Dedupe decisions are pure: a dict-backed look-up stands in for storage."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import text
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


# -- the tokenizer: content hashes are stored, so tokens must never change -------------


def reference_tokens(source: str) -> list[tuple[str, int, int]]:
    """The tokenizer as first written, character by character: the oracle."""
    source = unicodedata.normalize("NFC", source)
    tokens: list[tuple[str, int, int]] = []
    start = -1
    for i, c in enumerate(source):
        if text.is_token_char(c):
            if start < 0:
                start = i
        elif start >= 0:
            tokens.append(("".join(text._fold_char(x) for x in source[start:i]), start, i))
            start = -1
    if start >= 0:
        tokens.append(("".join(text._fold_char(x) for x in source[start:]), start, len(source)))
    return tokens


def reference_hash(source: str) -> str | None:
    key = " ".join(t for t, _, _ in reference_tokens(source))
    return hashlib.sha256(key.encode("utf-8")).hexdigest() if key else None


def test_token_regex_is_every_token_character() -> None:
    for start in range(0, 0x110000, 0x1000):
        chunk = [chr(o) for o in range(start, start + 0x1000)]
        expected = [text.is_token_char(c) for c in chunk]
        assert [bool(text._TOKEN.fullmatch(c)) for c in chunk] == expected, hex(start)
        # Without "_", the faster class is the same.
        assert [bool(text._TOKEN_NO_UNDERSCORE.fullmatch(c)) for c in chunk if c != "_"] == [
            e for c, e in zip(chunk, expected, strict=True) if c != "_"
        ], hex(start)


TRICKY = "aàÀlLĺdDqQuU'’ -_.²İΣσςß\u0301ёЁйΟΔΟΣ\ue000\U000f0000\U0010fffd١٢e\u0301\u00a0\n\t"


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=60) | st.text(TRICKY, max_size=60))
def test_tokens_and_content_hash_are_the_reference(source: str) -> None:
    assert [(t.text, t.start, t.end) for t in text.tokenize(source)] == reference_tokens(source)
    assert text.words(source) == [t for t, _, _ in reference_tokens(source)]
    assert text.content_hash(source) == reference_hash(source)


def test_folding_is_per_character() -> None:
    # str.lower() of a whole word is not: a final sigma, a dotted capital I.
    assert text.fold("ΟΔΟΣ") == "οδοσ" and text.fold("İstanbul") == "i̇stanbul"
    assert text.fold("Élysée") == "elysee" and text.fold("Київ") == "київ"
