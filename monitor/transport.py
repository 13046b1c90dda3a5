"""The HTTP transport: httpcore's connection pool on the guarded network
backend, with one deadline per request and bounded decompression.

Built from httpcore's public API (a `ConnectionPool` given our
`network_backend`), so that no connection can be opened around the guard,
whatever httpx does inside. A request's deadline lives in a thread-local set
by the fetcher: DNS, connect, TLS, headers and body all share it, so a
server that drips its headers one byte at a time is cut off like one that
drips its body. Bodies are decompressed here, chunk by chunk with a
`max_length`, so a gzip bomb is stopped at the size cap without ever being
inflated in memory; only gzip and deflate (one layer) are accepted.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpcore
import httpx

from monitor.netguard import NetGuard, ResolveError

ACCEPT_ENCODING = "gzip, deflate"
_deadline = threading.local()
_dns = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


class DeadlineExceeded(httpcore.TimeoutException):
    pass


def set_deadline(when: float | None) -> None:
    """The monotonic time by which the current thread's request must be done."""
    _deadline.value = when


def remaining(timeout: float | None) -> float | None:
    """`timeout` shortened to what is left of the request's deadline."""
    when: float | None = getattr(_deadline, "value", None)
    if when is None:
        return timeout
    left = when - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, remaining(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """TCP connections only to addresses the guard resolved and checked."""

    def __init__(self, guard: NetGuard) -> None:
        self.guard = guard
        self.inner = httpcore.SyncBackend()

    def _resolve(self, host: str, port: int, timeout: float | None) -> list[Any]:
        future = _dns.submit(self.guard.resolve, host, port)
        try:
            return future.result(timeout=remaining(timeout))
        except FutureTimeout:
            raise ResolveError(f"cannot resolve {host}: timed out") from None

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port, timeout)
        last: Exception | None = None
        for ip in addresses:
            try:
                stream = self.inner.connect_tcp(str(ip), port, remaining(timeout), local_address, socket_options)
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self.stream

    def close(self) -> None:
        if hasattr(self.stream, "close"):
            self.stream.close()


class GuardedTransport(httpx.BaseTransport):
    def __init__(self, guard: NetGuard, max_connections: int = 32) -> None:
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(guard),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        resp = self.pool.handle_request(req)
        return httpx.Response(
            status_code=resp.status, headers=resp.headers, stream=_Body(resp.stream), extensions=resp.extensions
        )

    def close(self) -> None:
        self.pool.close()


class TooLarge(Exception):
    pass


class UnsupportedEncoding(Exception):
    pass


class Inflater:
    """Decodes one Content-Encoding, never producing more than `limit` bytes in all."""

    def __init__(self, coding: str, limit: int) -> None:
        coding = coding.strip().lower()
        self.limit = limit
        self.produced = 0
        self._deflate_raw = False
        self.identity = coding in ("", "identity")
        if coding in ("", "identity"):
            self._d: Any = None
        elif coding in ("gzip", "x-gzip"):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._d = zlib.decompressobj()
            self._deflate_raw = True  # may turn out to be raw deflate without the zlib header
        else:
            raise UnsupportedEncoding(f"content encoding {coding!r} is not accepted (gzip or deflate, one layer)")

    def feed(self, data: bytes) -> bytes:
        if self._d is None:
            out = data
        else:
            try:
                out = self._d.decompress(data, self.limit - self.produced + 1)
            except zlib.error:
                if not self._deflate_raw or self.produced:
                    raise
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(data, self.limit - self.produced + 1)
            self._deflate_raw = False
        self.produced += len(out)
        if self.produced > self.limit:
            raise TooLarge(f"body exceeds {self.limit} bytes")
        return out
