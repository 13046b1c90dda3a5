"""A real HTTP server on 127.0.0.1 for tests: serves what a test puts in
`routes`, and misbehaves on request (slow, endless, redirects, errors)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0  # before answering
    drip: float | None = None  # seconds between 1-byte writes (slow body)
    drip_headers: float | None = None  # seconds between 1-byte writes of the status line and headers
    gzip: bool = False


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    time: float = 0.0  # time.monotonic() when it arrived


Handler = Callable[[Request], Route]


class LocalServer:
    def __init__(self, address: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.requests: list[Request] = []
        self.max_in_flight: dict[str, int] = {}  # by Host header
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                req = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                host = req.headers.get("host", "").split(":")[0]
                with server._lock:
                    server.requests.append(req)
                    server._in_flight[host] = server._in_flight.get(host, 0) + 1
                    server.max_in_flight[host] = max(server.max_in_flight.get(host, 0), server._in_flight[host])
                try:
                    self._answer(req)
                finally:
                    with server._lock:
                        server._in_flight[host] -= 1

            def _answer(self, req: Request) -> None:
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if route is None:
                    route = Route(b"not found", 404, content_type="text/plain")
                elif callable(route):
                    route = route(req)
                if route.delay:
                    time.sleep(route.delay)
                body = route.body
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                if route.drip_headers is not None:
                    head = f"HTTP/1.1 {route.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    head += f"Content-Length: {len(body)}\r\n" + "X-Padding: " + "p" * 200 + "\r\n\r\n"
                    try:
                        for i in range(len(head)):
                            self.wfile.write(head[i].encode("latin-1"))
                            self.wfile.flush()
                            time.sleep(route.drip_headers)
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                try:
                    self.send_response(route.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if route.drip is None:
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(route.drip)
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up on purpose (size caps, deadlines) are expected here

        self.httpd = _Server((address, 0), _H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{address}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def start(self) -> LocalServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
