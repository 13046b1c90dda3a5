"""A real HTTP server on 127.0.0.1 that receives webhook POSTs and answers
like Slack's incoming webhooks: `ok`, 429 with or without Retry-After,
`400 invalid_blocks`, `404 no_service`, `410 channel_is_archived`, or a reset
connection, as a test scripts it. Also serves the generic webhook tests,
over TLS when given a server context."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # read the request, then close with a TCP RST instead of answering
    delay: float = 0.0  # seconds between receiving the request and answering


OK = Reply()
INVALID_BLOCKS = Reply(400, b"invalid_blocks")
INVALID_PAYLOAD = Reply(400, b"invalid_payload")
NO_SERVICE = Reply(404, b"no_service")
ARCHIVED = Reply(410, b"channel_is_archived")
SERVER_ERROR = Reply(500, b"rollup_error")
RESET = Reply(reset=True)


def rate_limited(retry_after: str | None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return Reply(429, b"rate_limited", headers)


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    time: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.replies: list[Reply] = []  # answered in order, then `default`
        self.default = OK
        self.received: list[Received] = []
        self.truncated = 0  # requests whose body ended before its Content-Length (a sender killed mid-send)
        self._lock = threading.Lock()
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    with server._lock:
                        server.truncated += 1
                    self.close_connection = True
                    return
                with server._lock:
                    server.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    reply = server.replies.pop(0) if server.replies else server.default
                if reply.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/html")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # resets, refused handshakes and killed senders are what some tests ask for

        self.httpd = _Server(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = WEBHOOK_PATH) -> str:
        return self.base + path

    def start(self) -> WebhookServer:
        self.thread.start()
        return self

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
