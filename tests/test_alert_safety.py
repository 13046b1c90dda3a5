"""Hostile text in alerts: whatever a publisher puts in a title, a snippet or
a URL ends up inert and within each channel's limits."""

from __future__ import annotations

import email
import html
import re
import unicodedata
from datetime import datetime
from email import policy
from typing import Any

import pytest
from alertfactory import make_alert
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerts.email import EmailChannel
from alerts.render import (
    SLACK_MAX_BLOCKS,
    SLACK_TEXT_LIMIT,
    Alert,
    Source,
    message_id,
    render_html,
    render_slack,
    render_text,
    snippet_parts,
    subject,
)
from alerts.safety import (
    ELLIPSIS,
    fit_escaped,
    header_safe,
    one_line,
    safe_link,
    slack_escape,
    slack_unescape,
    strip_invisible,
    truncate,
    utf16_len,
)
from alerts.webhook import payload

CVE_2024_6923 = "=?UTF-8?Q?=0A?=Bcc: victim@example.com"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
HOSTILE_TITLES = [
    "<!channel> Summit in Paris",
    "<!here> ceasefire",
    "<!everyone> <!subteam^S123|@team> <#C123> <!date^1392734382^x|y>",
    "<@U123> look at this",
    "<https://evil.example|your bank> login",
    "&amp;lt;!here&amp;gt; double-encoded",
    "&" * 3000,
    "<" * 3000,
    "a\u202egnp.exe\u202c and z\u200bero\u2060width\ufeff",
    CVE_2024_6923,
    "Line one\r\nBcc: victim@example.com\nX-Injected: 1",
    "NUL\x00 and ESC\x1b[2J and \u2028 and \u2029 and \x85",
    "**not** a **match** `code` *bold* _it_ ~strike~",
]
HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https://ex.com/a|<!channel>",
    "https://ex.com/<script>",
    "https://ex.com/\u202eevil",
    "http://[::1",
    "//no-scheme.example/x",
]


def alert(**kw: Any) -> Alert:
    return make_alert(
        **{
            **dict(
                channel="ops",
                title="Garanties de sécurité: le sommet de Paris",
                url="https://news.example/a?x=1&y=2",
            ),
            **kw,
        }
    )


def section_texts(payload: dict[str, Any]) -> list[str]:
    out = []
    for b in payload["blocks"]:
        if "text" in b:
            out.append(b["text"]["text"])
        for e in b.get("elements", []):
            out.append(e["text"])
    return out


def assert_slack_inert(p: dict[str, Any]) -> None:
    """Within limits; no `<` but our own links to http(s) URLs."""
    assert len(p["blocks"]) <= SLACK_MAX_BLOCKS
    texts = [p["text"], *section_texts(p)]
    for t in texts:
        assert utf16_len(t) <= SLACK_TEXT_LIMIT and len(t) <= SLACK_TEXT_LIMIT
        for m in re.finditer(r"<([^>]*)>", t):
            target = m.group(1).split("|", 1)[0]
            assert re.match(r"https?://", target), t
            assert safe_link(slack_unescape(target)) is not None
        # Any `<` left is the start of one of our links.
        assert t.count("<") == len(re.findall(r"<https?://[^|<>]*\|", t)), t
    for b in p["blocks"]:
        if b.get("text", {}).get("type") == "mrkdwn":
            assert b["text"]["verbatim"] is True


# Pure functions --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,escaped",
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil|your bank>", "&lt;https://evil|your bank&gt;"),
        ("&amp;lt;!here&amp;gt;", "&amp;amp;lt;!here&amp;amp;gt;"),
        ("a & b", "a &amp; b"),
    ],
)
def test_slack_escape_examples(raw: str, escaped: str) -> None:
    assert slack_escape(raw) == escaped
    assert slack_unescape(escaped) == raw


@given(st.text())
@example("&amp;lt;!here&amp;gt;")
@example("&lt;")
def test_slack_escape_is_inert_and_reversible(s: str) -> None:
    out = slack_escape(s)
    assert "<" not in out and ">" not in out
    assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*", out, re.S)
    assert slack_unescape(out) == s


@given(st.text(), st.integers(min_value=1, max_value=300))
@example(CVE_2024_6923, 200)
@example("a=?b", 10)
@example("==??", 10)
def test_header_safe_properties(s: str, limit: int) -> None:
    out = header_safe(s, limit)
    assert len(out) <= limit
    assert "=?" not in out
    assert not any(c in out for c in "\r\n\x00\x85\u2028\u2029")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in out)
    assert out == out.strip()


def test_header_safe_neutralises_the_cve_subject() -> None:
    assert header_safe(CVE_2024_6923, 200) == "= ?UTF-8?Q?=0A?=Bcc: victim@example.com"
    assert header_safe("a\r\nBcc: x@example.com", 200) == "a Bcc: x@example.com"


def test_strip_invisible_removes_bidi_and_zero_width() -> None:
    assert strip_invisible(f"a{BIDI}b{ZERO_WIDTH}c") == "abc"
    assert one_line("x\u202e\ny\u2028z\x00\x1b[2J") == "x y z [2J"


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_truncate_fits_and_keeps_a_prefix(s: str, n: int) -> None:
    out = truncate(s, n)
    assert len(out) <= n
    if len(s) <= n:
        assert out == s
    elif out:
        assert out.endswith(ELLIPSIS)
        assert s.startswith(out[: -len(ELLIPSIS)])


def test_truncate_keeps_combining_marks_with_their_letter() -> None:
    s = "e\u0301" * 10  # é as e + combining acute
    out = truncate(s, 6)
    body = out[: -len(ELLIPSIS)]
    assert body and not unicodedata.combining(body[0]) and unicodedata.combining(body[-1])


@given(st.text(alphabet="&<>ab", max_size=400), st.integers(min_value=0, max_value=200))
def test_fit_escaped_accounts_for_escape_expansion(s: str, limit: int) -> None:
    out = fit_escaped(s, limit, slack_escape)
    assert len(out) <= limit
    body = out[: -len(ELLIPSIS)] if out.endswith(ELLIPSIS) and slack_escape(s) != out else out
    assert s.startswith(slack_unescape(body))  # never half an entity


def test_fit_escaped_3000_ampersands() -> None:
    out = fit_escaped("&" * 3000, 3000, slack_escape)
    assert len(out) <= 3000
    assert out == "&amp;" * 599 + ELLIPSIS  # the longest prefix that fits, with its ellipsis


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_safe_link_refuses(url: str) -> None:
    if url.startswith("https://ex.com/a|") or url == "https://ex.com/<script>":
        assert safe_link(url) == url  # a legal (if odd) http URL; renderers encode it
    else:
        assert safe_link(url) is None


@pytest.mark.parametrize("url", ["http://ex.com", "https://ex.com/a?b=1&c=2#f", "HTTPS://EX.COM/x"])
def test_safe_link_accepts_http(url: str) -> None:
    assert safe_link(url) == url


def test_snippet_parts() -> None:
    assert snippet_parts("a **b** c **d**") == [("a ", False), ("b", True), (" c ", False), ("d", True)]
    assert snippet_parts("a **b") == [("a **b", False)]


# Slack -----------------------------------------------------------------------


@pytest.mark.parametrize("title", HOSTILE_TITLES)
@pytest.mark.parametrize("url", ["https://news.example/a?x=1&y=2", *HOSTILE_URLS])
def test_slack_payload_is_inert(title: str, url: str) -> None:
    a = alert(title=title, url=url, snippet=f"… {title} **{title}** …", feed=title, rule=title, terms=(title,))
    p = render_slack(a)
    assert_slack_inert(p)
    assert "<!" not in str(p) and "<@" not in str(p) and "<#" not in str(p)


def test_slack_title_of_3000_ampersands_fits() -> None:
    p = render_slack(alert(title="&" * 3000, snippet="&" * 3000))
    assert_slack_inert(p)
    texts = section_texts(p)
    assert max(len(t) for t in texts) <= 3000
    assert any(t.count("&amp;") > 50 for t in texts)  # cut, not dropped


def test_slack_many_sources_are_counted_not_listed() -> None:
    sources = tuple(Source(f"Story {i} " + "&" * 300, f"https://s{i}.example/a", f"feed{i}", "en") for i in range(200))
    p = render_slack(alert(sources=sources, source_count=250))
    assert_slack_inert(p)
    text = section_texts(p)[-1]
    assert text.startswith("*Sources*")
    listed = text.count("\n• ")
    assert 1 <= listed <= 10
    assert text.endswith(f"… and {250 - listed} more")


def test_slack_digest_stays_within_50_blocks() -> None:
    entries = tuple(alert(story_id=i, title=f"<!here> story {i}", snippet="&" * 3000) for i in range(100))
    p = render_slack(alert(kind="digest", entries=entries))
    assert_slack_inert(p)
    assert len(p["blocks"]) <= 50
    last = p["blocks"][-1]["elements"][0]["text"]
    m = re.fullmatch(r"… and (\d+) more stories", last)
    assert m
    shown = sum(1 for b in p["blocks"] if b["type"] == "divider")
    assert shown + int(m.group(1)) == 100


@pytest.mark.parametrize("n", [100, 2900, 5000])
def test_slack_url_too_long_to_link_drops_the_link_not_the_limit(n: int) -> None:
    url = "https://ex.com/?" + "&" * n
    p = render_slack(alert(title="&" * 3000, url=url, sources=(Source("s", url, "f", "en"),) * 3))
    assert_slack_inert(p)
    assert len(section_texts(p)[0]) <= 3000 and "&amp;amp;" not in section_texts(p)[0]


def test_slack_link_url_cannot_carry_its_own_label() -> None:
    p = render_slack(alert(title="T", url="https://ex.com/a|<!channel>"))
    first = section_texts(p)[0]
    assert first.startswith("*<https://ex.com/a%7C%3C!channel%3E|T>*")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=4000), st.text(max_size=400), st.lists(st.text(max_size=300), max_size=60))
def test_slack_any_text_is_inert(title: str, snippet: str, source_titles: list[str]) -> None:
    sources = tuple(Source(t, "https://ex.com/" + t, t, "en") for t in source_titles)
    a = alert(title=title, snippet=snippet, sources=sources, source_count=len(sources) + 3)
    assert_slack_inert(render_slack(a))
    assert_slack_inert(render_slack(alert(kind="digest", entries=(a,) * 30)))


# HTML and text ---------------------------------------------------------------


@pytest.mark.parametrize("title", HOSTILE_TITLES)
@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_html_is_inert(title: str, url: str) -> None:
    a = alert(
        title=title,
        url=url,
        snippet=f"<script>x</script> **{title}**",
        sources=(Source(title, url, title, "en"), Source("ok", "https://ok.example/", "f", None)),
    )
    out = render_html(a)
    tags = re.findall(r"<(/?[a-zA-Z0-9!]+)", out)
    assert set(tags) <= {
        "!DOCTYPE",
        "html",
        "/html",
        "head",
        "/head",
        "meta",
        "body",
        "/body",
        "h2",
        "/h2",
        "p",
        "/p",
    } | {
        "a",
        "/a",
        "strong",
        "/strong",
        "blockquote",
        "/blockquote",
        "mark",
        "/mark",
        "ul",
        "/ul",
        "li",
        "/li",
    }
    hrefs = re.findall(r'href="([^"]*)"', out)
    assert all(safe_link(html.unescape(h)) for h in hrefs)
    assert "javascript:" not in " ".join(hrefs).lower()
    assert "<script" not in out and "<!channel" not in out
    assert not any(c in out for c in BIDI + ZERO_WIDTH)


def test_html_marks_matched_terms() -> None:
    out = render_html(alert(snippet="a **b<i>** c"))
    assert "a <mark>b&lt;i&gt;</mark> c" in out


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_text_has_no_control_characters(title: str) -> None:
    out = render_text(alert(title=title, snippet=title, url="javascript:alert(1)"))
    assert out.startswith("[garanties] ")
    assert not any(unicodedata.category(c) in ("Cc", "Cf") and c != "\n" for c in out)
    assert "javascript:" not in out
    assert len(out.splitlines()[0]) <= 400


# Email -----------------------------------------------------------------------


def channel() -> EmailChannel:
    return EmailChannel(
        "mail", "127.0.0.1", 25, "none", None, None, "monitor@example.org", ["desk@example.org"], local_hostname="x"
    )


EXPECTED_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"]


def parsed(a: Alert) -> email.message.EmailMessage:
    raw = channel().compose(a).as_bytes(policy=policy.SMTP)
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_cve_2024_6923_subject_makes_no_header() -> None:
    msg = parsed(alert(title=CVE_2024_6923))
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg["Bcc"] is None
    assert "Bcc: victim@example.com" in str(msg["Subject"])  # shown, as text


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_email_headers_are_exactly_ours(title: str) -> None:
    msg = parsed(alert(title=title, rule=title))
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg["To"] == "desk@example.org"
    html_part = msg.get_body(("html",))
    assert html_part is not None
    assert "<!channel" not in html_part.get_content()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=40))
@example(CVE_2024_6923, "r")
@example("a" * 80 + " =?utf-8?b?" + "é" * 40, "r\u2028")
@example("00000000000¡¡𐀀 ¡", "0000000 000¡¡¡𐀀")
def test_email_any_title_parses_back_with_our_headers_only(title: str, rule: str) -> None:
    a = alert(title=title, rule=rule)
    msg = parsed(a)
    assert list(msg.keys()) == EXPECTED_HEADERS
    expected = header_safe(subject(a), 200)
    # The text survives, but for whitespace: the stdlib's folder can drop the
    # space between two encoded words it writes (a fidelity bug, not ours).
    assert "".join(str(msg["Subject"]).split()) == "".join(expected.split())


def test_message_id_is_stable_and_distinct() -> None:
    a = alert()
    assert message_id(a) == message_id(alert(delivery_id=99, created_at=datetime(2030, 1, 1)))
    assert message_id(a) != message_id(alert(channel="other"))
    assert message_id(a) != message_id(alert(kind="update"))
    assert message_id(alert(message_id="<abc.1@host.example>")) == "abc.1@host.example"
    assert re.fullmatch(r"[0-9a-f]{32}@news-monitor", message_id(alert(message_id="bad\r\nid")))


def test_webhook_payload_drops_unsafe_urls() -> None:
    p = payload(alert(url="javascript:alert(1)", sources=(Source("t", "data:x", "f", "en"),)))
    assert p["url"] is None and p["sources"][0]["url"] is None
