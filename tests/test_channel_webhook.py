"""The generic webhook channel against a real HTTP(S) server on 127.0.0.1:
the JSON body, the HMAC signature scheme, status codes, TLS."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import slackserver as ss
from alertfactory import make_alert
from smtpserver import LocalCA, closed_port, self_signed_context

from alerts.channels import DeliveryError, build_channels
from alerts.render import Alert, Source, message_id
from alerts.webhook import WebhookChannel, verify_signature

NOW = 1767711600.0  # 2026-01-06 15:00 UTC
SECRET = "whsec-test"


def alert(**kw: Any) -> Alert:
    return make_alert(
        **{
            **dict(
                channel="hook",
                sources=(
                    Source("Garanties de sécurité", "https://news.example/a", "quotidien-fr", "fr"),
                    Source("Security guarantees", "javascript:alert(1)", "world-wire", "en"),
                ),
                source_count=3,
            ),
            **kw,
        }
    )


@pytest.fixture
def hook() -> Iterator[ss.WebhookServer]:
    s = ss.WebhookServer().start()
    yield s
    s.stop()


def webhook(hook: ss.WebhookServer, secret: str | None = SECRET, **kw: Any) -> WebhookChannel:
    return WebhookChannel("hook", hook.url("/alerts"), secret, timeout=5.0, clock=lambda: NOW, **kw)


def test_posts_the_alert_as_json(hook: ss.WebhookServer) -> None:
    assert webhook(hook, secret=None).send(alert()) is None
    assert len(hook.received) == 1
    r = hook.received[0]
    assert r.path == "/alerts"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-monitor-message-id"] == message_id(alert())
    assert "x-monitor-signature" not in r.headers
    assert r.json() == {
        "kind": "alert",
        "rule": "garanties",
        "story_id": 42,
        "title": "Garanties de sécurité : le sommet de Paris",
        "url": "https://news.example/a",
        "snippet": "… les **garanties de sécurité** pour l'Ukraine …",
        "terms": ["garanties de sécurité"],
        "sources": [
            {
                "title": "Garanties de sécurité",
                "url": "https://news.example/a",
                "feed": "quotidien-fr",
                "language": "fr",
            },
            {"title": "Security guarantees", "url": None, "feed": "world-wire", "language": "en"},
        ],
        "languages": ["fr", "en"],
        "source_count": 3,
        "published_at": "2026-01-06T14:30:00+00:00",
        "message_id": message_id(alert()),
    }


def test_signature_scheme(hook: ss.WebhookServer) -> None:
    webhook(hook).send(alert())
    assert len(hook.received) == 1
    r = hook.received[0]
    assert r.headers["x-monitor-timestamp"] == "1767711600"
    expected = hmac.new(SECRET.encode(), b"1767711600." + r.body, hashlib.sha256).hexdigest()
    assert r.headers["x-monitor-signature"] == f"sha256={expected}"
    ts, sig = r.headers["x-monitor-timestamp"], r.headers["x-monitor-signature"]
    assert verify_signature(SECRET, ts, r.body, sig, now=NOW + 10)
    assert not verify_signature(SECRET, ts, r.body + b" ", sig, now=NOW)  # tampered body
    assert not verify_signature("other", ts, r.body, sig, now=NOW)  # wrong secret
    assert not verify_signature(SECRET, ts, r.body, sig, now=NOW + 301)  # replayed later
    assert not verify_signature(SECRET, "soon", r.body, sig, now=NOW)


def test_a_retried_alert_carries_the_same_message_id(hook: ss.WebhookServer) -> None:
    ch = webhook(hook)
    ch.send(alert(delivery_id=1))
    ch.send(alert(delivery_id=1, created_at=datetime.now(UTC)))
    ch.send(alert(story_id=43))
    ids = [r.headers["x-monitor-message-id"] for r in hook.received]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]
    assert [r.json()["message_id"] for r in hook.received] == ids


def test_a_digest_carries_its_entries(hook: ss.WebhookServer) -> None:
    entries = (alert(story_id=1, title="one"), alert(story_id=2, title="two", url="data:text/html,x"))
    webhook(hook).send(alert(kind="digest", entries=entries))
    assert len(hook.received) == 1
    body = hook.received[0].json()
    assert body["kind"] == "digest"
    assert [(e["story_id"], e["title"], e["url"]) for e in body["entries"]] == [
        (1, "one", "https://news.example/a"),
        (2, "two", None),
    ]


def test_hostile_text_is_valid_json_data(hook: ss.WebhookServer) -> None:
    hostile = '"}<script>\u2028\u202e\x00'
    webhook(hook).send(alert(title=hostile))
    assert len(hook.received) == 1
    assert hook.received[0].json()["title"] == hostile
    json.loads(hook.received[0].body.decode("utf-8"))


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(hook: ss.WebhookServer, status: int) -> None:
    hook.replies = [ss.Reply(status, b"" if status == 204 else b"{}")]
    assert webhook(hook).send(alert()) is None
    assert len(hook.received) == 1


@pytest.mark.parametrize(
    "reply,permanent,retry_after",
    [
        (ss.Reply(400, b"bad request"), True, None),
        (ss.Reply(401, b"bad signature"), True, None),
        (ss.Reply(403, b"forbidden"), True, None),
        (ss.Reply(404, b"not found"), True, None),
        (ss.Reply(410, b"gone"), True, None),
        (ss.Reply(422, b"unprocessable"), True, None),
        (ss.Reply(408, b"timeout"), False, None),
        (ss.Reply(429, b"slow down", {"Retry-After": "120"}), False, 120.0),
        (ss.Reply(429, b"slow down", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), False, None),
        (ss.Reply(500, b"oops"), False, None),
        (ss.Reply(502, b"bad gateway"), False, None),
        (ss.Reply(503, b"maintenance", {"Retry-After": "60"}), False, 60.0),
        (ss.Reply(301, b"", {"Location": "https://new.example/alerts"}), True, None),
        (ss.RESET, False, None),
    ],
)
def test_failures_are_classified(
    hook: ss.WebhookServer, reply: ss.Reply, permanent: bool, retry_after: float | None
) -> None:
    hook.replies = [reply]
    with pytest.raises(DeliveryError) as e:
        webhook(hook).send(alert())
    assert e.value.permanent is permanent
    assert e.value.retry_after == retry_after
    assert len(hook.received) == 1
    if not reply.reset:
        assert f"HTTP {reply.status}" in str(e.value) and reply.body.decode() in str(e.value)


def test_connection_refused_is_transient() -> None:
    ch = WebhookChannel("hook", f"http://127.0.0.1:{closed_port()}/alerts", None, timeout=2.0)
    with pytest.raises(DeliveryError) as e:
        ch.send(alert())
    assert not e.value.permanent and "ConnectError" in str(e.value)


def test_an_unsupported_scheme_is_permanent() -> None:
    ch = WebhookChannel("hook", "ftp://127.0.0.1/alerts", None, timeout=2.0)
    with pytest.raises(DeliveryError) as e:
        ch.send(alert())
    assert e.value.permanent


# TLS and build_channels ----------------------------------------------------


def test_https_with_a_private_ca_file(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    server = ss.WebhookServer(tls=ca.server_context()).start()
    try:
        opts = {"url": server.url("/alerts"), "ca_file": str(ca.ca_file), "timeout": 5}
        ch = build_channels({"hook": ("webhook", opts)}, environ={"MONITOR_WEBHOOK_SECRET": SECRET})["hook"]
        assert ch.send(alert()) is None
        assert len(server.received) == 1
        r = server.received[0]
        assert verify_signature(
            SECRET, r.headers["x-monitor-timestamp"], r.body, r.headers["x-monitor-signature"], time.time()
        )
    finally:
        server.stop()


@pytest.mark.parametrize("trust", ["system", "test-ca"])
def test_https_certificate_that_does_not_verify_is_permanent(tmp_path: Path, trust: str) -> None:
    ca = LocalCA(tmp_path)
    server = ss.WebhookServer(tls=self_signed_context(tmp_path) if trust == "test-ca" else ca.server_context())
    server.start()
    try:
        opts: dict[str, Any] = {"url": server.url("/alerts"), "timeout": 5}
        if trust == "test-ca":
            opts["ca_file"] = str(ca.ca_file)
        ch = build_channels({"hook": ("webhook", opts)}, environ={})["hook"]
        with pytest.raises(DeliveryError) as e:
            ch.send(alert())
        assert e.value.permanent and "certificate did not verify" in str(e.value)
        assert len(server.received) == 0
    finally:
        server.stop()


def test_build_channels_webhook_secret(hook: ss.WebhookServer) -> None:
    signed = build_channels(
        {"h": ("webhook", {"url": hook.url("/a"), "secret_env": "HOOK_SECRET"})}, environ={"HOOK_SECRET": "s"}
    )
    unsigned = build_channels({"h": ("webhook", {"url": hook.url("/a")})}, environ={})
    signed["h"].send(alert())
    unsigned["h"].send(alert())
    assert len(hook.received) == 2
    assert "x-monitor-signature" in hook.received[0].headers
    assert "x-monitor-signature" not in hook.received[1].headers
    assert "s" not in repr(signed["h"]).split("(", 1)[0]


@pytest.mark.parametrize(
    "opts,error",
    [
        ({}, "alerts.h.url: required"),
        ({"url": "ftp://x/y"}, "alerts.h.url: must start with http:// or https://"),
        ({"url": "https://x/y", "secret_env": "MISSING"}, "alerts.h.secret_env: $MISSING is empty or not set"),
        ({"url": "https://x/y", "timeout": -1}, "alerts.h.timeout: must be a positive number"),
    ],
)
def test_build_channels_webhook_errors_name_the_option(opts: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError) as e:
        build_channels({"h": ("webhook", opts)}, environ={})
    assert str(e.value).startswith(error)


def test_build_channels_unknown_type() -> None:
    with pytest.raises(ValueError, match=r"alerts\.p: unknown channel type 'pager'"):
        build_channels({"p": ("pager", {})}, environ={})
