"""Per-host politeness: pure limiter logic, then real requests spread over host
names that a stub resolver maps to loopback (no DNS, nothing off the machine)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from httpserver import LocalServer, Request, Route
from newssite import RULES_TOML

from monitor.config import FetchConfig, load_config
from monitor.fetch import Fetcher, FetchError
from monitor.netguard import NetGuard
from monitor.politeness import HostLimiter
from monitor.service import Monitor
from storage.models import utcnow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(round(seconds, 6))


def test_limiter_spaces_requests_per_host_only() -> None:
    clock = FakeClock()
    limiter = HostLimiter(per_host_delay=2.0, clock=clock, sleep=clock.sleep)
    for host in ("a.test", "A.TEST", "a.test", "b.test"):
        with limiter.slot(host):
            pass
    assert clock.slept == [2.0, 4.0]  # a.test waits its turn; b.test does not wait for a.test


def test_limiter_blocks_a_host() -> None:
    clock = FakeClock()
    limiter = HostLimiter(clock=clock, sleep=clock.sleep)
    limiter.block("a.test", 30)
    assert limiter.blocked_for("a.test") == 30 and limiter.blocked_for("b.test") == 0
    clock.now += 31
    assert limiter.blocked_for("a.test") == 0


def loopback(host: str, port: int) -> list[str]:
    """The stub resolver: every *.test name is this machine."""
    if not host.endswith(".test"):
        raise OSError(f"stub resolver: unknown host {host}")
    return ["127.0.0.1"]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    config = FetchConfig(timeout=5, allow_private=("127.0.0.1/32",), per_host_delay=0.2, max_bytes=1024 * 1024)
    f = Fetcher(config, guard=NetGuard(config.allow_private, loopback))
    yield f
    f.close()


def test_names_are_resolved_by_the_guard_and_connected_to_as_checked(server: LocalServer, fetcher: Fetcher) -> None:
    # The system resolver is refused in tests, so reaching the server proves
    # the connection went to the address the guard resolved and checked.
    server.routes["/f"] = Route(b"ok")
    r = fetcher.get(f"http://news-1.test:{server.port}/f")
    assert r.status == 200 and server.requests[-1].headers["host"] == f"news-1.test:{server.port}"


def test_one_request_at_a_time_per_host_spaced_by_the_delay(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/slow"] = Route(b"ok", delay=0.1)
    urls = [f"http://{h}.test:{server.port}/slow" for h in ("a", "a", "a", "b", "b", "c")]
    with ThreadPoolExecutor(6) as pool:
        assert [r.status for r in pool.map(fetcher.get, urls)] == [200] * 6
    assert server.max_in_flight == {"a.test": 1, "b.test": 1, "c.test": 1}
    times = sorted(r.time for r in server.requests if r.headers["host"].startswith("a.test"))
    # Starts are 0.2 s apart; arrival adds a little jitter of its own (connect vs keep-alive).
    assert all(b - a >= 0.15 for a, b in zip(times, times[1:], strict=False))


def test_retry_after_blocks_the_host_not_the_others(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/busy"] = Route(b"", 429, headers={"Retry-After": "600"}, content_type="text/plain")
    server.routes["/ok"] = Route(b"ok")
    assert fetcher.get(f"http://a.test:{server.port}/busy").status == 429
    with pytest.raises(FetchError) as err:
        fetcher.get(f"http://a.test:{server.port}/ok")
    assert err.value.kind == "rate_limited" and err.value.retry_after is not None and err.value.retry_after > 590
    assert fetcher.get(f"http://b.test:{server.port}/ok").status == 200
    assert server.hits("/ok") == 1


def test_gzip_bomb_stops_at_the_cap(server: LocalServer, fetcher: Fetcher) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB on the wire, 50 MB decoded
    server.routes["/bomb"] = Route(bomb, headers={"Content-Encoding": "gzip"}, content_type="application/rss+xml")
    with pytest.raises(FetchError) as err:
        fetcher.get(f"http://a.test:{server.port}/bomb")
    assert err.value.kind == "too_large"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/html,<p>x</p>",
        "javascript:alert(1)",
        "gopher://127.0.0.1:70/",
        "ftp://127.0.0.1/feed",
    ],
)
def test_other_schemes_are_refused(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError) as err:
        fetcher.get(url)
    assert err.value.kind == "protocol"


def test_private_answers_are_refused_and_the_canary_hears_nothing() -> None:
    canary = LocalServer("127.0.0.2").start()  # what a rebinding or private answer would reach
    try:
        config = FetchConfig(timeout=2, allow_private=("127.0.0.1/32",))
        for answer in (["127.0.0.2"], ["127.0.0.1", "127.0.0.2"]):
            f = Fetcher(config, guard=NetGuard(config.allow_private, lambda h, p, a=answer: a))
            with pytest.raises(FetchError) as err:
                f.get(f"http://evil.test:{canary.port}/admin")
            assert err.value.kind == "blocked"
            f.close()
        for url in (
            f"http://2130706434:{canary.port}/",
            f"http://127.2:{canary.port}/",
            f"http://0x7f.0.0.2:{canary.port}/",
            f"http://[::ffff:127.0.0.2]:{canary.port}/",
        ):
            f = Fetcher(config, guard=NetGuard(config.allow_private, loopback))
            with pytest.raises(FetchError) as err:
                f.get(url)
            assert err.value.kind in ("blocked", "protocol"), url
            f.close()
        assert canary.requests == []
    finally:
        canary.stop()


def _feeds_config(tmp_path: Path, feeds: dict[str, str], extra: str = "") -> Path:
    cfg = tmp_path / "feeds.toml"
    tables = "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds.items())
    cfg.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path / "m.db"}"\n\n[fetch]\ntimeout = 5\nconcurrency = 1\n'
        f'per_host_delay = 0\nallow_private = ["127.0.0.1/32"]\n{extra}\n[alerts.console]\n'
        f"{tables}{RULES_TOML}",
        encoding="utf-8",
    )
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("status,headers,paused", [(429, {"Retry-After": "900"}, 880), (503, {}, 50)])
def test_a_rate_limited_host_is_not_hammered_through_its_other_feeds(
    tmp_path: Path, server: LocalServer, status: int, headers: dict[str, str], paused: int
) -> None:
    server.routes["/busy.rss"] = Route(b"", status, headers=headers, content_type="text/plain")
    server.routes["/ok.rss"] = Route(
        b'<rss version="2.0"><channel><title>t</title></channel></rss>', content_type="application/rss+xml"
    )
    p = server.port
    feeds = {"a1": f"http://a.test:{p}/busy.rss", "a2": f"http://a.test:{p}/ok.rss", "b1": f"http://b.test:{p}/ok.rss"}
    with Monitor.open(load_config(_feeds_config(tmp_path, feeds)), resolver=loopback) as m:
        reports = {r.feed: r for r in m.poll(force=True)}
        assert reports["a1"].status == reports["a2"].status == "error"
        assert reports["a2"].error_kind == "rate_limited" and reports["b1"].status == "ok"
        # a2 was never requested: its host had asked us to wait.
        assert [(r.headers["host"].split(":")[0], r.path) for r in server.requests] == [
            ("a.test", "/busy.rss"),
            ("b.test", "/ok.rss"),
        ]
        state = {f.name: f for f in m.store.feeds()}
        # Both feeds of the paused host wait it out (with a Retry-After, at least as long as asked).
        for name in ("a1", "a2"):
            assert state[name].next_poll_at >= utcnow() + timedelta(seconds=paused)


@pytest.mark.slow
def test_our_own_outage_is_not_held_against_the_feeds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Four hosts, none answering (port 9: nothing listens): as when our own link is down.
    feeds = {f"f{i}": f"http://host{i}.test:9/feed{i}.rss" for i in range(4)}
    with Monitor.open(load_config(_feeds_config(tmp_path, feeds)), resolver=loopback) as m:
        m.poll(force=True)
        state = m.store.feeds()
        assert all(f.error_count == 0 and f.status == "error" and f.last_error for f in state)
        soon = max(f.next_poll_at for f in state) - min(f.last_polled_at for f in state if f.last_polled_at)
        assert soon.total_seconds() <= 121
        outage_lines = [r for r in caplog.records if "our network looks down" in r.getMessage()]
        assert len(outage_lines) == 1
        assert not [r for r in caplog.records if r.levelname == "WARNING" and "feed f" in r.getMessage()]


@pytest.mark.slow
def test_one_dead_host_is_that_hosts_problem(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    feeds = {f"f{i}": f"http://dead.test:9/feed{i}.rss" for i in range(4)}
    with Monitor.open(load_config(_feeds_config(tmp_path, feeds)), resolver=loopback) as m:
        m.poll(force=True)
        assert all(f.error_count == 1 for f in m.store.feeds())
        assert not [r for r in caplog.records if "our network looks down" in r.getMessage()]
        assert len([r for r in caplog.records if r.levelname == "WARNING" and "cannot connect" in r.getMessage()]) == 4


def test_host_queue_hands_out_ready_hosts_first() -> None:
    from monitor.politeness import HostQueue

    clock = FakeClock()
    limiter = HostLimiter(per_host_delay=1.0, clock=clock, sleep=clock.sleep)
    items = [("busy.test", f"b{i}") for i in range(4)] + [(f"o{i}.test", f"o{i}") for i in range(3)]
    q = HostQueue(items, limiter, per_host=1)
    first = q.take()
    assert first == ("busy.test", "b0")
    with limiter.slot("busy.test"):  # the request b0 makes
        pass
    # busy.test is occupied (and then in its delay): the other hosts go first, none waits.
    taken = [q.take() for _ in range(3)]
    assert [t[1] for t in taken if t] == ["o0", "o1", "o2"]
    q.done("busy.test")
    for t in taken:
        assert t is not None
        q.done(t[0])
    clock.now += 1.0  # busy.test's delay has passed
    assert q.take() == ("busy.test", "b1")


def test_conditional_get(server: LocalServer, fetcher: Fetcher) -> None:
    def validating(req: Request) -> Route:
        if req.headers.get("if-none-match") == '"v1"' or req.headers.get("if-modified-since") == "Tue, 06 Jan 2026":
            return Route(b"", 304)
        return Route(b"<rss/>", headers={"ETag": '"v1"', "Last-Modified": "Tue, 06 Jan 2026"})

    server.routes["/f"] = validating
    url = f"http://a.test:{server.port}/f"
    first = fetcher.get(url)
    assert first.status == 200 and first.headers["etag"] == '"v1"'
    assert fetcher.get(url, {"If-None-Match": '"v1"'}).status == 304
    assert fetcher.get(url, {"If-Modified-Since": "Tue, 06 Jan 2026"}).status == 304


def test_dripping_headers_are_cut_off_at_the_deadline(server: LocalServer) -> None:
    config = FetchConfig(timeout=1, allow_private=("127.0.0.1/32",), per_host_delay=0)
    f = Fetcher(config, guard=NetGuard(config.allow_private, loopback))
    server.routes["/drip"] = Route(b"x", drip_headers=0.05)  # ~300 header bytes: 15 s if each read may wait 1 s
    with pytest.raises(FetchError) as err:
        f.get(f"http://a.test:{server.port}/drip")
    assert err.value.kind == "timeout"
    f.close()


def test_stacked_encodings_are_refused(server: LocalServer, fetcher: Fetcher) -> None:
    body = gzip.compress(gzip.compress(b"\0" * 10_000_000))
    server.routes["/twice"] = Route(body, headers={"Content-Encoding": "gzip, gzip"})
    with pytest.raises(FetchError) as err:
        fetcher.get(f"http://a.test:{server.port}/twice")
    assert err.value.kind == "protocol" and "one layer" in str(err.value)


def test_slow_dns_times_out(server: LocalServer) -> None:
    import time as _time

    def slow(host: str, port: int) -> list[str]:
        _time.sleep(3)
        return ["127.0.0.1"]

    config = FetchConfig(timeout=0.5, allow_private=("127.0.0.1/32",), per_host_delay=0)
    f = Fetcher(config, guard=NetGuard(config.allow_private, slow))
    with pytest.raises(FetchError) as err:
        f.get(f"http://slow.test:{server.port}/x")
    assert err.value.kind == "dns" and "timed out" in str(err.value)
    f.close()


def test_robots_rules_as_rfc_9309_reads_them(server: LocalServer, fetcher: Fetcher) -> None:
    from monitor.robots import RobotsCache

    server.routes["/robots.txt"] = Route(
        b"User-agent: *\nAllow: /\nDisallow: /private/\nDisallow: /*.pdf$\n", content_type="text/plain"
    )
    robots = RobotsCache(fetcher)
    base = f"http://a.test:{server.port}"
    assert robots.allowed(base + "/news/1") and robots.allowed(base + "/a.pdfx")
    assert not robots.allowed(base + "/private/a") and not robots.allowed(base + "/doc.pdf")
    assert server.hits("/robots.txt") == 1


def test_robots_preflight_takes_no_turn() -> None:
    clock = FakeClock()
    limiter = HostLimiter(per_host_delay=2.0, clock=clock, sleep=clock.sleep)
    with limiter.slot("a.test", spaced=False):  # robots.txt
        pass
    with limiter.slot("a.test"):  # the page right after it
        pass
    with limiter.slot("a.test"):  # the next page waits its turn
        pass
    assert clock.slept == [2.0]
