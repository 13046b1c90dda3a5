"""Making untrusted text inert in alerts: pure functions, no I/O.

Titles, snippets, feed names and URLs come from publishers we do not
control. Before they reach a channel they must not be able to ping a whole
Slack workspace (`<!channel>`), forge a link (`<https://evil|your bank>`),
add an email header (CVE-2024-6923), reorder what the reader sees (bidi
controls) or run script (`javascript:` links). Every limit is applied to
the text as the channel receives it, that is after escaping.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

ELLIPSIS = "…"

# Bidi embeddings/overrides/isolates and zero-width characters, named for the
# reader; `strip_invisible` removes every format (Cf) character, these included.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")

# Characters that end a line somewhere: in a header, in a terminal, in a renderer.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def strip_invisible(s: str) -> str:
    """Drop format characters (Cf: bidi controls, zero-width characters, soft
    hyphens, tags) and lone surrogates (Cs, which no encoder accepts).

    A right-to-left override can make `moc.evil` read as `live.com`; a
    zero-width space splits `@here` from what a filter looks for."""
    return "".join(c for c in s if unicodedata.category(c) not in ("Cf", "Cs"))


def one_line(s: str) -> str:
    """Text for a single-line field: invisible characters dropped, control
    characters and line or paragraph separators turned into spaces, runs of
    whitespace collapsed."""
    s = strip_invisible(s)
    s = "".join(" " if c in _LINE_BREAKS or unicodedata.category(c) == "Cc" else c for c in s)
    return " ".join(s.split())


def _cut_point(s: str, k: int) -> int:
    """`k`, moved back so that a combining mark or joiner stays with its base."""
    while 0 < k < len(s) and (unicodedata.combining(s[k]) or s[k] in "\u200d\ufe0e\ufe0f"):
        k -= 1
    return k


def fit_escaped(
    s: str,
    limit: int,
    escape: Callable[[str], str] = lambda x: x,
    measure: Callable[[str], int] = len,
    ellipsis: str = ELLIPSIS,
) -> str:
    """`escape(s)` if it fits in `limit`, else `escape` of the longest prefix
    of `s` that fits once escaped and followed by the ellipsis.

    Truncating after escaping could cut `&amp;` in half; truncating before
    escaping without counting the escapes lets 3,000 `&` grow to 15,000
    characters. So the cut is made on the raw text and measured escaped. The
    result always fits (a binary search that only keeps prefixes it checked),
    even for an `escape` whose length is not monotonic."""
    whole = escape(s)
    if measure(whole) <= limit:
        return whole

    def attempt(k: int) -> str:
        return escape(s[: _cut_point(s, k)].rstrip()) + ellipsis

    def fits(k: int) -> bool:
        return measure(attempt(k)) <= limit

    if not fits(0):
        return ""
    lo, hi = 0, len(s)  # fits(lo), and the whole text does not fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return attempt(lo)


def truncate(s: str, n: int) -> str:
    """At most `n` characters, cut between characters with an ellipsis."""
    return fit_escaped(s, n)


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units, as JavaScript-based services count: an
    emoji counts two. Never less than len(s), so a limit kept in these units
    is kept in code points too."""
    return len(s.encode("utf-16-le")) // 2


def slack_escape(s: str) -> str:
    """Escape `&`, `<` and `>` once, as Slack asks for text it must not parse
    as mentions (`<!channel>`, `<@U123>`) or links (`<url|label>`).

    `&` first, so an entity already in the text (`&amp;lt;!here&amp;gt;`)
    is escaped again and shows literally: we never decode input."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_unescape(s: str) -> str:
    """The inverse of `slack_escape` (for tests and for reading payloads back)."""
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def header_safe(s: str, limit: int = 200) -> str:
    """Text for an email header value: one line, no control or format
    characters, no encoded-word opener, at most `limit` characters.

    CR, LF, NUL and every other control character, U+0085, U+2028 and U+2029
    become spaces. `=?` becomes `= ?`: the email package decodes encoded
    words when it refolds a header, and on Python < 3.11.10/3.12.5 a subject
    carrying `=?UTF-8?Q?=0A?=Bcc: x@example.com` is written out as a real Bcc
    header (CVE-2024-6923, python/cpython#121650)."""
    s = one_line(s).replace("=?", "= ?")
    return truncate(s, limit)


SAFE_SCHEMES = ("http", "https")


def safe_link(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL with a host and nothing
    hidden in it (whitespace, controls, format characters); else None.

    `javascript:`, `data:` and `vbscript:` links run in the reader's client;
    whitespace or a control character lets a renderer see a different URL
    from the one we checked."""
    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in SAFE_SCHEMES or not parts.hostname:
        return None
    return url
