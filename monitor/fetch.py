"""HTTP: the one place where bytes meet the network.

One shared httpx client (keep-alive, compression), a User-Agent naming the
service, a per-request deadline and a body-size cap, redirects followed by
hand so that every hop passes the `NetGuard` and so that we know whether a
feed moved permanently (301/308 all the way) or only for now.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from monitor import __version__
from monitor.config import FetchConfig
from monitor.netguard import BlockedDestination, NetGuard, ResolveError
from monitor.politeness import HostLimiter
from monitor.schedule import retry_after_seconds
from monitor.transport import ACCEPT_ENCODING, GuardedTransport, Inflater, TooLarge, UnsupportedEncoding, set_deadline

DEFAULT_USER_AGENT = f"news-monitor/{__version__} (feed ingestion service; RSS/Atom reader)"
MAX_REDIRECTS = 5
REDIRECT_CODES = {301, 302, 303, 307, 308}
PERMANENT_CODES = {301, 308}

ErrorKind = Literal[
    "dns", "connect", "timeout", "too_large", "blocked", "redirects", "protocol", "rate_limited", "http", "not_html"
]
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
HTML_TYPES = ("text/html", "application/xhtml+xml", "")
# Kinds that say more about our own network than about the feed.
NETWORK_KINDS = frozenset({"dns", "connect"})


class FetchError(Exception):
    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class Response:
    url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    # Where the requested URL now lives if every redirect was permanent.
    moved_to: str | None = None
    # Seconds a 429/503 asked us to wait (a valid Retry-After), parsed once here.
    retry_after: float | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class Fetcher:
    def __init__(
        self,
        config: FetchConfig | None = None,
        guard: NetGuard | None = None,
        transport: httpx.BaseTransport | None = None,
        limiter: HostLimiter | None = None,
    ) -> None:
        self.config = config = config or FetchConfig()
        self.guard = guard or NetGuard(config.allow_private)
        self.limiter = limiter or HostLimiter(config.per_host_concurrency, config.per_host_delay)
        if transport is None:
            transport = GuardedTransport(self.guard, max_connections=max(10, config.concurrency * 2))
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": config.user_agent or DEFAULT_USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, headers: dict[str, str] | None = None, spaced: bool = True) -> Response:
        """GET `url`; HTTP error statuses are returned, transport failures raise FetchError.
        `spaced=False` for robots.txt: it takes no turn in the host's delay."""
        hops: list[str] = []
        permanent = True
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._one(current, headers or {}, spaced)
            if resp.status in REDIRECT_CODES and "location" in resp.headers:
                permanent = permanent and resp.status in PERMANENT_CODES
                hops.append(current)
                current = urljoin(current, resp.headers["location"])
                continue
            if hops and permanent:
                resp.moved_to = current
            return resp
        raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects from {url}")

    def get_page(self, url: str) -> Response:
        """An HTML page, or FetchError saying why not (transport, HTTP status, not HTML)."""
        resp = self.get(url, {"Accept": PAGE_ACCEPT})
        if resp.status != 200:
            raise FetchError("http", f"HTTP {resp.status}")
        if resp.content_type not in HTML_TYPES:
            raise FetchError("not_html", f"{resp.content_type or 'no content type'}, not HTML")
        return resp

    def _one(self, url: str, headers: dict[str, str], spaced: bool = True) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("protocol", f"not an http(s) URL: {url}")
        host = parts.hostname
        self._refuse_if_blocked(host)
        try:
            with self.limiter.slot(host, spaced):
                self._refuse_if_blocked(host)  # it may have been blocked while we waited our turn
                resp = self._stream(url, headers)
        except BlockedDestination as exc:
            raise FetchError("blocked", str(exc)) from None
        except ResolveError as exc:
            raise FetchError("dns", str(exc)) from None
        if resp.status in (429, 503):
            resp.retry_after = retry_after_seconds(resp.headers.get("retry-after"), datetime.now(UTC))
            # Without a usable Retry-After the host still asked for less: back off from it.
            if resp.retry_after:
                self.limiter.block(host, resp.retry_after)
            else:
                self.limiter.penalize(host)
        elif resp.status < 400:
            self.limiter.forgive(host)
        return resp

    def _refuse_if_blocked(self, host: str) -> None:
        if wait := self.limiter.blocked_for(host):
            raise FetchError("rate_limited", f"{host} asked us to slow down (429/503), {wait:.0f} s left", wait)

    def _stream(self, url: str, headers: dict[str, str]) -> Response:
        cap = self.config.max_bytes
        # One deadline for the whole request (DNS, connect, TLS, headers, body),
        # not per read: a server dripping bytes cannot hold us longer than `timeout`.
        set_deadline(time.monotonic() + self.config.timeout)
        try:
            with self.client.stream("GET", url, headers=headers) as r:
                declared = r.headers.get("content-length")
                inflater = Inflater(r.headers.get("content-encoding", ""), cap)
                if declared and declared.isdigit() and int(declared) > cap and inflater.identity:
                    raise FetchError("too_large", f"{url}: body of {declared} bytes exceeds max_bytes={cap}")
                chunks = [inflater.feed(raw) for raw in r.iter_raw()]
                return Response(
                    url=url,
                    status=r.status_code,
                    headers={k.lower(): v for k, v in r.headers.items()},
                    body=b"".join(chunks),
                )
        except TooLarge:
            raise FetchError("too_large", f"{url}: body exceeds max_bytes={cap} (after decompression)") from None
        except UnsupportedEncoding as exc:
            raise FetchError("protocol", f"{url}: {exc}") from None
        except zlib.error as exc:
            raise FetchError("protocol", f"{url}: cannot decompress the body: {exc}") from None
        except (httpcore.ConnectTimeout, httpx.ConnectTimeout) as exc:  # no answer: as good as refused
            raise FetchError("connect", f"{url}: cannot connect: timed out ({exc})") from None
        except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
            raise FetchError("timeout", f"{url}: not answered within {self.config.timeout:g} s ({exc})") from None
        except (httpcore.ConnectError, httpx.ConnectError) as exc:
            raise FetchError("connect", f"{url}: cannot connect: {exc}") from None
        except (FetchError, BlockedDestination, ResolveError):
            raise
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpx.HTTPError,
            httpx.InvalidURL,
            ValueError,
            UnicodeError,
            OSError,
        ) as exc:  # broken connections, odd headers, odd servers
            raise FetchError("protocol", f"{url}: {type(exc).__name__}: {exc}") from None
        finally:
            set_deadline(None)
