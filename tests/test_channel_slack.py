"""The Slack channel against a real HTTP server on 127.0.0.1 answering like
Slack's incoming webhooks: payload limits, pace, 429, error bodies."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import slackserver as ss
from alertfactory import make_alert
from smtpserver import silent_port

from alerts.channels import DeliveryError, build_channels
from alerts.render import Alert, Source
from alerts.slack import Pacer, SlackChannel


def alert(**kw: Any) -> Alert:
    return make_alert(
        **{
            **dict(
                channel="slack",
            ),
            **kw,
        }
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def hook() -> Iterator[ss.WebhookServer]:
    s = ss.WebhookServer().start()
    yield s
    s.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def slack(hook: ss.WebhookServer, clock: FakeClock | None, path: str = ss.WEBHOOK_PATH, **kw: Any) -> SlackChannel:
    pacer = Pacer(clock, clock.sleep) if clock else None
    return SlackChannel("slack", hook.url(path), timeout=kw.pop("timeout", 5.0), pacer=pacer, **kw)


def texts(payload: dict[str, Any]) -> list[str]:
    out = [payload["text"]]
    for b in payload["blocks"]:
        if "text" in b:
            out.append(b["text"]["text"])
        out.extend(e["text"] for e in b.get("elements", []))
    return out


def test_posts_one_block_kit_message(hook: ss.WebhookServer, clock: FakeClock) -> None:
    assert slack(hook, clock).send(alert()) is None
    assert len(hook.received) == 1
    r = hook.received[0]
    assert r.path == ss.WEBHOOK_PATH
    assert r.headers["content-type"].startswith("application/json")
    p = r.json()
    assert p["text"] == "[garanties] Garanties de sécurité : le sommet de Paris"
    assert p["blocks"][0]["text"]["text"].startswith("*<https://news.example/a|Garanties de sécurité")
    assert p["blocks"][1]["text"]["text"] == "… les *garanties de sécurité* pour l'Ukraine …"


def test_hostile_text_arrives_inert(hook: ss.WebhookServer, clock: FakeClock) -> None:
    hostile = "<!channel> <!here> <@U123> <https://evil.example|your bank> &amp;lt;!here&amp;gt; \u202eevil\u200b"
    slack(hook, clock).send(alert(title=hostile, snippet=f"**{hostile}**", feed=hostile, url="javascript:alert(1)"))
    assert len(hook.received) == 1
    body = hook.received[0].body.decode()
    for t in texts(hook.received[0].json()):
        assert "<!" not in t and "<@" not in t and "<https://evil" not in t and "javascript:" not in t
        assert "\u202e" not in t and "\u200b" not in t
    assert "&amp;amp;lt;!here&amp;amp;gt;" in body


def test_a_large_story_fits_slack_limits(hook: ss.WebhookServer, clock: FakeClock) -> None:
    sources = tuple(Source("&" * 500, f"https://s{i}.example/{'x' * 100}", f"feed-{i}", "fr") for i in range(120))
    slack(hook, clock).send(alert(title="&" * 3000, snippet="<" * 3000, sources=sources, source_count=130))
    assert len(hook.received) == 1
    p = hook.received[0].json()
    assert len(p["blocks"]) <= 50
    assert all(len(t) <= 3000 for t in texts(p))
    assert re.search(r"… and \d+ more$", texts(p)[-1])


def test_a_large_digest_fits_slack_limits(hook: ss.WebhookServer, clock: FakeClock) -> None:
    entries = tuple(alert(story_id=i, title=f"Story {i} " + "&" * 2000, snippet="**x** " * 600) for i in range(80))
    slack(hook, clock).send(alert(kind="digest", entries=entries))
    assert len(hook.received) == 1
    p = hook.received[0].json()
    assert len(p["blocks"]) == 50
    assert all(len(t) <= 3000 for t in texts(p))
    assert p["blocks"][-1]["elements"][0]["text"].startswith("… and ")


def test_one_message_per_second_per_webhook_shared_by_channels(hook: ss.WebhookServer, clock: FakeClock) -> None:
    pacer = Pacer(clock, clock.sleep)
    a = SlackChannel("a", hook.url(), pacer=pacer)
    b = SlackChannel("b", hook.url(), pacer=pacer)
    other = SlackChannel("c", hook.url("/services/T0000/B1111/other"), pacer=pacer)
    a.send(alert())
    b.send(alert())
    other.send(alert())  # another webhook: its own pace
    a.send(alert())
    assert len(hook.received) == 4
    assert clock.sleeps == [1.0, 1.0]


def test_module_level_pace_with_the_real_clock(hook: ss.WebhookServer) -> None:
    """Two channel objects for one URL share the module's pacer."""
    path = f"/services/T0000/B2222/{time.monotonic_ns()}"
    a = SlackChannel("a", hook.url(path), min_interval=0.3)
    b = SlackChannel("b", hook.url(path), min_interval=0.3)
    for ch in (a, b, a):
        ch.send(alert())
    times = [r.time for r in hook.received]
    assert len(times) == 3
    # Arrival times: a request delayed on a loaded machine shortens the gap after it, so
    # the bound leaves room for that; unpaced, the three arrive within milliseconds.
    assert all(t2 - t1 >= 0.15 for t1, t2 in zip(times, times[1:], strict=False))
    assert times[-1] - times[0] >= 0.45


@pytest.mark.parametrize(
    "header,expected",
    [("30", 30.0), ("garbage", None), (None, None), ("-5", None)],
)
def test_429_and_retry_after(
    hook: ss.WebhookServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    header: str | None,
    expected: float | None,
) -> None:
    hook.replies = [ss.rate_limited(header)]
    with caplog.at_level(logging.WARNING), pytest.raises(DeliveryError) as e:
        slack(hook, clock).send(alert())
    assert not e.value.permanent
    assert e.value.retry_after == expected
    assert "HTTP 429 rate_limited" in str(e.value)
    assert len(hook.received) == 1
    if header not in (None, "30"):
        assert f"unusable Retry-After {header!r}" in caplog.text


def test_429_pauses_the_webhook_for_every_channel(hook: ss.WebhookServer, clock: FakeClock) -> None:
    pacer = Pacer(clock, clock.sleep)
    hook.replies = [ss.rate_limited("30")]
    a = SlackChannel("a", hook.url(), pacer=pacer)
    b = SlackChannel("b", hook.url(), pacer=pacer)
    with pytest.raises(DeliveryError):
        a.send(alert())
    with pytest.raises(DeliveryError) as e:
        b.send(alert())  # deferred without a request
    assert not e.value.permanent and e.value.retry_after == pytest.approx(30.0)
    assert len(hook.received) == 1
    clock.now += 30
    b.send(alert())
    assert len(hook.received) == 2


@pytest.mark.parametrize(
    "reply,permanent,text",
    [
        (ss.INVALID_BLOCKS, True, "HTTP 400 invalid_blocks"),
        (ss.INVALID_PAYLOAD, True, "HTTP 400 invalid_payload"),
        (ss.Reply(403, b"invalid_token"), True, "HTTP 403 invalid_token"),
        (ss.NO_SERVICE, True, "HTTP 404 no_service"),
        (ss.ARCHIVED, True, "HTTP 410 channel_is_archived"),
        (ss.SERVER_ERROR, False, "HTTP 500 rollup_error"),
        (ss.Reply(503, b"service unavailable"), False, "HTTP 503"),
        (ss.Reply(302, b"", {"Location": "https://elsewhere.example/x"}), True, "redirected to elsewhere.example"),
        (ss.RESET, False, "Slack webhook slack: "),
    ],
)
def test_failures_are_classified_and_explained(
    hook: ss.WebhookServer, clock: FakeClock, reply: ss.Reply, permanent: bool, text: str
) -> None:
    hook.replies = [reply]
    with pytest.raises(DeliveryError) as e:
        slack(hook, clock).send(alert())
    assert e.value.permanent is permanent
    assert text in str(e.value)
    assert hook.url() not in str(e.value) and "XXXXXXXX" not in str(e.value)  # the URL is a secret
    assert len(hook.received) == 1


def test_a_server_that_never_answers_times_out_transiently(clock: FakeClock) -> None:
    sock, port = silent_port()
    try:
        ch = SlackChannel("slack", f"http://127.0.0.1:{port}/hook", timeout=0.5, pacer=Pacer(clock, clock.sleep))
        start = time.monotonic()
        with pytest.raises(DeliveryError) as e:
            ch.send(alert())
        assert not e.value.permanent and "Timeout" in str(e.value)
        assert time.monotonic() - start < 5
    finally:
        sock.close()


def test_proxy_variables_are_ignored(hook: ss.WebhookServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9/")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    slack(hook, clock).send(alert())
    assert len(hook.received) == 1


def test_build_channels_reads_the_webhook_url_from_the_environment(hook: ss.WebhookServer) -> None:
    url = hook.url(f"/services/T0000/B3333/{time.monotonic_ns()}")
    channels = build_channels({"team": ("slack", {})}, environ={"MONITOR_SLACK_WEBHOOK_URL": url})
    ch = channels["team"]
    assert ch.send(alert()) is None
    assert len(hook.received) == 1
    assert url not in repr(ch)
    other = build_channels({"x": ("slack", {"webhook_url_env": "OTHER"})}, environ={"OTHER": url})["x"]
    assert isinstance(other, SlackChannel)


def test_build_channels_slack_without_url_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"^alerts\.team\.webhook_url_env: \$MONITOR_SLACK_WEBHOOK_URL is empty"):
        build_channels({"team": ("slack", {})}, environ={})
