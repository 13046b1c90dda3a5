"""The webhook channel: each alert POSTed as JSON to a URL of yours.

The body is a JSON object (UTF-8): kind, rule, story_id, title, url,
snippet, terms, sources [{title, url, feed, language}], languages,
source_count, published_at (ISO 8601, UTC), message_id, and for a digest
its entries (objects of the same shape). `url`s are null unless http(s).

Signature, when a secret is configured (`secret_env`, default
$MONITOR_WEBHOOK_SECRET):

    X-Monitor-Timestamp: 1767711600
    X-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The HMAC covers the timestamp (decimal Unix seconds, as in the header),
a dot, and the raw body bytes exactly as received. A receiver recomputes it,
compares with hmac.compare_digest, and rejects timestamps more than a few
minutes off to stop replays (`verify_signature` does all three).
`X-Monitor-Message-Id` is the same on every attempt of one alert: a
receiver that has seen it can drop the repeat (we retry when unsure).

Status codes: 2xx delivered; 408, 429 (honouring Retry-After) and 5xx are
retried; redirects and other 4xx are permanent failures (the URL or the
payload is wrong and retrying will not fix it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from alerts.channels import DeliveryError
from alerts.render import Alert, languages_of, message_id, source_count, sources_of
from alerts.safety import one_line, safe_link, truncate
from monitor.schedule import retry_after_seconds

log = logging.getLogger(__name__)

USER_AGENT = "news-monitor/0.1 (alerts)"
BODY_CAP = 4096  # bytes of an answer kept for the error message
SIGNATURE_TOLERANCE = 300.0  # seconds


# HTTP delivery, shared with the Slack channel --------------------------------


@dataclass
class Reply:
    status: int
    body: str
    headers: httpx.Headers


def http_client(timeout: float, ssl_context: ssl.SSLContext | None = None) -> httpx.Client:
    """A client that ignores proxy variables of the environment (trust_env),
    does not follow redirects (a webhook that moved is a configuration
    error to report, not a POST to replay elsewhere) and checks certificates."""
    return httpx.Client(
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
        verify=ssl_context if ssl_context is not None else True,
        headers={"User-Agent": USER_AGENT},
    )


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def post(client: httpx.Client, url: str, content: bytes, headers: Mapping[str, str], what: str) -> Reply:
    """POST and read at most BODY_CAP bytes of the answer; transport failures
    become DeliveryError (the URL never appears in messages: a Slack webhook
    URL is a secret)."""
    try:
        with client.stream("POST", url, content=content, headers=dict(headers)) as r:
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) >= BODY_CAP:
                    break
            return Reply(r.status_code, bytes(body[:BODY_CAP]).decode("utf-8", "replace"), r.headers)
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        if cert := _cert_failure(exc):
            raise DeliveryError(
                f"{what}: TLS certificate did not verify ({cert.verify_message})", permanent=True
            ) from exc
        detail = one_line(str(exc)).replace(url, "<url>")
        permanent = isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL)
        raise DeliveryError(f"{what}: {type(exc).__name__}: {detail}", permanent=permanent) from exc


def http_failure(reply: Reply, what: str, now: datetime | None = None) -> DeliveryError | None:
    """None for a 2xx; else the DeliveryError the status calls for, with the
    status and the start of the answer's body in its message."""
    status = reply.status
    if 200 <= status < 300:
        return None
    body = truncate(one_line(reply.body), 200)
    message = f"{what}: HTTP {status}" + (f" {body}" if body else "")
    if status in (429, 503):
        raw = reply.headers.get("retry-after")
        retry_after = retry_after_seconds(raw, now or datetime.now(UTC))
        if raw is not None and retry_after is None:
            log.warning("%s: ignoring unusable Retry-After %r", what, raw)
        if retry_after is not None:
            message += f" (Retry-After {retry_after:g} s)"
        return DeliveryError(message, permanent=False, retry_after=retry_after)
    if status == 408 or status >= 500:
        return DeliveryError(message, permanent=False)
    if 300 <= status < 400:
        location = reply.headers.get("location", "")
        host = urlsplit(location).hostname or "?"
        return DeliveryError(f"{message} (redirected to {host}: update the URL)", permanent=True)
    return DeliveryError(message, permanent=True)


# The webhook channel -----------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)).isoformat()


def payload(alert: Alert) -> dict[str, Any]:
    """The JSON object for one alert (a digest carries its entries)."""
    out: dict[str, Any] = {
        "kind": alert.kind,
        "rule": alert.rule,
        "story_id": alert.story_id,
        "title": alert.title,
        "url": safe_link(alert.url),
        "snippet": alert.snippet,
        "terms": list(alert.terms),
        "sources": [
            {"title": s.title, "url": safe_link(s.url), "feed": s.feed, "language": s.language}
            for s in sources_of(alert)
        ],
        "languages": list(languages_of(alert)),
        "source_count": source_count(alert),
        "published_at": _iso(alert.published_at),
        "message_id": message_id(alert),
    }
    if alert.kind == "digest":
        out["entries"] = [payload(e) for e in alert.entries]
    return out


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, now: float, tolerance: float = SIGNATURE_TOLERANCE
) -> bool:
    """What a receiver does: constant-time comparison, and a timestamp within
    `tolerance` seconds of its clock."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self.clock = clock
        self.client = http_client(timeout, ssl_context)
        self.what = f"webhook {name} ({urlsplit(url).hostname})"

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, signed={self._secret is not None})"

    def body(self, alert: Alert) -> bytes:
        return json.dumps(payload(alert), ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def send(self, alert: Alert) -> str | None:
        body = self.body(alert)
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Monitor-Message-Id": message_id(alert),
            "X-Monitor-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-Monitor-Signature"] = sign(self._secret, timestamp, body)
        reply = post(self.client, self.url, body, headers, self.what)
        if err := http_failure(reply, self.what):
            raise err
        return None

    def close(self) -> None:
        self.client.close()
