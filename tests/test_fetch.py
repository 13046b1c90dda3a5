"""The fetcher against a real local server that misbehaves on purpose."""

from __future__ import annotations

import pytest
from httpserver import LocalServer, Route

from monitor.config import FetchConfig
from monitor.fetch import DEFAULT_USER_AGENT, Fetcher, FetchError
from monitor.netguard import NetGuard


@pytest.fixture
def fetcher() -> Fetcher:
    f = Fetcher(FetchConfig(timeout=2, max_bytes=64 * 1024, allow_private=("127.0.0.1/32",)))
    yield f
    f.close()


def test_user_agent_and_gzip(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Route(b"<rss/>" * 100, gzip=True, content_type="application/rss+xml")
    r = fetcher.get(server.url("/f"))
    assert r.status == 200 and r.body == b"<rss/>" * 100
    assert server.requests[-1].headers["user-agent"] == DEFAULT_USER_AGENT
    assert "gzip" in server.requests[-1].headers["accept-encoding"]


def test_size_cap_declared_and_streamed(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/big"] = Route(b"x" * 200_000)
    with pytest.raises(FetchError) as err:
        fetcher.get(server.url("/big"))
    assert err.value.kind == "too_large"
    # Without Content-Length (dripped body) the cap still holds while streaming.
    small_cap = Fetcher(FetchConfig(timeout=5, max_bytes=1024, allow_private=("127.0.0.1/32",)))
    server.routes["/drip"] = Route(b"y" * 2000, drip=0.0005)
    with pytest.raises(FetchError) as err:
        small_cap.get(server.url("/drip"))
    assert err.value.kind == "too_large"
    small_cap.close()


def test_slow_server_times_out(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/slow"] = Route(b"late", delay=4)
    with pytest.raises(FetchError) as err:
        fetcher.get(server.url("/slow"))
    assert err.value.kind == "timeout"


def test_endless_slow_body_hits_the_deadline(server: LocalServer) -> None:
    f = Fetcher(FetchConfig(timeout=0.5, max_bytes=10_000_000, allow_private=("127.0.0.1/32",)))
    server.routes["/endless"] = Route(b"z" * 100_000, drip=0.01)  # each byte in time, the whole never
    with pytest.raises(FetchError) as err:
        f.get(server.url("/endless"))
    assert err.value.kind == "timeout"
    f.close()


def test_redirects_permanent_and_temporary(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/old"] = Route(status=301, headers={"Location": "/new"})
    server.routes["/new"] = Route(b"ok")
    r = fetcher.get(server.url("/old"))
    assert r.body == b"ok" and r.moved_to == server.url("/new")
    server.routes["/tmp"] = Route(status=302, headers={"Location": "/old"})
    r = fetcher.get(server.url("/tmp"))
    assert r.body == b"ok" and r.moved_to is None


def test_redirect_loop(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError) as err:
        fetcher.get(server.url("/loop"))
    assert err.value.kind == "redirects"


def test_error_statuses_are_returned(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/gone"] = Route(b"", status=410)
    assert fetcher.get(server.url("/gone")).status == 410


def test_private_addresses_refused_unless_allowed(server: LocalServer) -> None:
    f = Fetcher(FetchConfig(timeout=2))
    with pytest.raises(FetchError) as err:
        f.get(server.url("/x"))
    assert err.value.kind == "blocked" and "allow_private" in str(err.value)
    assert server.requests == []
    f.close()


def test_redirect_to_a_private_address_is_refused(server: LocalServer) -> None:
    # Allowed: this server. Not allowed: where it redirects (127.0.0.2).
    f = Fetcher(FetchConfig(timeout=2, allow_private=("127.0.0.1/32",)))
    server.routes["/r"] = Route(status=302, headers={"Location": "http://127.0.0.2:1/admin"})
    with pytest.raises(FetchError) as err:
        f.get(server.url("/r"))
    assert err.value.kind == "blocked"
    f.close()


@pytest.mark.parametrize(
    "ip,public",
    [
        # Classified only: a stub resolver answers, nothing is ever contacted.
        ("10.1.2.3", False),  # classified by the stub resolver
        ("192.168.0.1", False),  # classified by the stub resolver
        ("169.254.169.254", False),  # classified by the stub resolver
        ("::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("fec0::1", False),
        ("3fff::1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_address_classes(ip: str, public: bool) -> None:
    # A stub resolver: nothing is looked up, nothing is contacted.
    guard = NetGuard(resolver=lambda host, port: [ip])
    if public:
        guard.resolve("news.invalid", 443)
    else:
        with pytest.raises(Exception, match="private or reserved"):
            guard.resolve("news.invalid", 443)


def test_unresolvable_host(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as err:
        fetcher.get("http://no-such-host.invalid/feed")
    assert err.value.kind == "dns"
