"""URL normalisation: one key per article, whatever tracking was added.

`normalize_url` is the dedupe key stored in `items.url`: lower-case scheme
and host, no default port, no fragment, no tracking parameters (`utm_*`,
`fbclid`, `gclid` and their kind), remaining parameters kept in order.
It is idempotent: normalising a normalised URL changes nothing.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

# Parameters that identify a click, a campaign or a session, never an article.
_TRACKING_EXACT = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "xtor",
        "ocid",
        "cmpid",
        "ncid",
        "sr_share",
        "smid",
        "ito",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "wt_mc",
        "wt.mc_id",
        "ref_src",
        "ref_url",
        "spm",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
    }
)
_TRACKING_PREFIX = ("utm_", "at_", "mc_", "pk_", "mtm_", "hsa_", "__hs", "_hs")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_param(name: str) -> bool:
    n = name.lower()
    return n in _TRACKING_EXACT or n.startswith(_TRACKING_PREFIX)


def _requote(part: str, safe: str) -> str:
    # Decode then encode with one rule so %7E and ~, or é and %C3%A9, agree.
    return quote(unquote(part), safe=safe)


def normalize_url(url: str, base: str | None = None) -> str:
    """The dedupe key for an article URL (absolute; relative ones need `base`)."""
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = _requote(parts.path, safe="/:@!$&'()*+,;=-._~%") or "/"
    path = re.sub(r"/{2,}", "/", path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking_param(k)]
    qs = urlencode(query, quote_via=quote, safe="/:@!$'()*,;-._~")
    return urlunsplit((scheme, netloc, path, qs, ""))


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
