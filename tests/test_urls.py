from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.urls import is_tracking_param, normalize_url


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("HTTP://WWW.Example.COM:80/a?utm_source=rss&id=3&fbclid=x#top", "http://www.example.com/a?id=3"),
        ("https://example.org:443/fr/article?gclid=1&xtor=RSS-3208", "https://example.org/fr/article"),
        ("https://example.org/caf%C3%A9?q=a b", "https://example.org/caf%C3%A9?q=a%20b"),
        ("https://example.org/café", "https://example.org/caf%C3%A9"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org:8443/x?b=2&a=1", "https://example.org:8443/x?b=2&a=1"),
        ("https://example.org/x?utm_campaign=a&mc_cid=1&_ga=2&msclkid=3&at_medium=4&ocid=5", "https://example.org/x"),
    ],
)
def test_examples(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


def test_relative_links_resolve_against_base() -> None:
    assert normalize_url("../b/c?utm_medium=x", "http://127.0.0.1:8000/a/feed.xml") == "http://127.0.0.1:8000/b/c"


segment = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8)
param = st.tuples(st.sampled_from(["id", "page", "utm_source", "fbclid", "q", "gclid", "lang", "xtor"]), segment)


@settings(deadline=None, max_examples=300)
@given(
    host=st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}(\.[A-Za-z]{2,5}){1,2}", fullmatch=True),
    path=st.lists(segment, max_size=4),
    params=st.lists(param, max_size=5),
    frag=segment,
)
def test_idempotent_and_free_of_tracking(host: str, path: list[str], params: list[tuple[str, str]], frag: str) -> None:
    from urllib.parse import parse_qsl, quote, urlsplit

    url = f"https://{host}/" + "/".join(quote(p, safe="") for p in path)
    if params:
        url += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params)
    url += "#" + quote(frag)
    once = normalize_url(url)
    assert normalize_url(once) == once
    parts = urlsplit(once)
    assert parts.fragment == "" and parts.hostname == host.lower()
    kept = parse_qsl(parts.query, keep_blank_values=True)
    assert not any(is_tracking_param(k) for k, _ in kept)
    assert kept == [(k, v) for k, v in params if not is_tracking_param(k)]
