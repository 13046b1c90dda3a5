"""Polling benchmark: N feeds on a local server, two poll cycles, nothing changed between.

    python benchmarks/poll.py [--feeds 2000] [--entries 20] [--hosts N]

The server runs in its own process (so the client's CPU time is the
monitor's alone) and serves N feeds of E entries over many host names that
a stub resolver maps to 127.0.0.1, so per-host politeness (one request at a
time, 1 s between requests to a host) runs exactly as in production. Half
the feeds honour If-None-Match (304), the other half ignore validators and
resend the same body (caught by the body hash). Entries carry their text in
the feed and link to pages that robots.txt disallows, so cycle 1 measures
the per-entry pipeline (language, dedupe, storage) without page fetches;
`--pages` lets robots.txt allow them, and cycle 1 then fetches and extracts
every page (at one request per second per host, as in production).

Prints, per cycle: wall and CPU seconds, requests, bytes, article pages
fetched, outcomes, peak RSS and feeds per second; then the cycle-2 targets.
Nothing leaves the machine: every name resolves to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WORDS = (
    "garanties sécurité Ukraine coalition volontaires sommet Paris force multinationale cessez-le-feu "
    "surveillance déclaration engagement troupes alliés Europe défense soutien accord paix"
).split()


# Hourly entries up to the hour the server started: live feeds, not stale ones,
# and the same body in both cycles however long they take.
HOUR = int(time.time()) // 3600 * 3600


def feed_body(i: int, entries: int, port: int, host: str) -> bytes:
    hour = HOUR
    items = []
    for j in range(entries):
        text = " ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(40)) + f" dépêche {i}-{j}."
        items.append(
            f"<item><title>Dépêche {i}-{j} sur la coalition</title>"
            f'<link>http://{host}:{port}/articles/{i}/{j}</link><guid isPermaLink="false">{i}-{j}</guid>'
            f"<pubDate>{formatdate(hour - 3600 * (j + 1), usegmt=True)}</pubDate>"
            f"<description>Le texte complet de la dépêche {i}-{j}. {text}</description></item>"
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
        f"<link>http://{host}/</link><description>bench</description>{''.join(items)}</channel></rss>"
    ).encode()


def serve(port_queue: multiprocessing.Queue, entries: int, pages: bool) -> None:  # type: ignore[type-arg]
    stats: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                stats["requests"] += 1
                stats["bytes"] += len(body)

        def do_GET(self) -> None:
            path = self.path
            if path == "/stats":
                with lock:
                    body = json.dumps(stats).encode()
                    stats.clear()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            host = self.headers.get("Host", "").split(":")[0]
            if path == "/robots.txt":
                with lock:
                    stats["robots"] += 1
                rules = b"User-agent: *\nAllow: /\n" if pages else b"User-agent: *\nDisallow: /articles/\n"
                self._send(200, rules, {"Content-Type": "text/plain"})
            elif path.startswith("/feed/"):
                i = int(path.split("/")[2].split(".")[0])
                etag = f'"v1-{i}"'
                if i % 2 == 0 and self.headers.get("If-None-Match") == etag:
                    with lock:
                        stats["not_modified"] += 1
                    self._send(304, b"", {"ETag": etag})
                    return
                headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
                if i % 2 == 0:
                    headers["ETag"] = etag
                self._send(200, feed_body(i, entries, self.server.server_address[1], host), headers)
            elif path.startswith("/articles/"):
                with lock:
                    stats["pages"] += 1
                words = " ".join(WORDS[(len(path) + k) % len(WORDS)] for k in range(300))
                page = (
                    f"<html><head><title>Article</title></head><body><nav>Accueil Monde Europe</nav><article>"
                    f"<h1>Article {path}</h1><p>{words}</p><p>{path} {words[::-1]}</p></article>"
                    "<footer>© 2026</footer></body></html>"
                )
                self._send(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
            else:
                self._send(404, b"", {})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 1024
    port_queue.put(httpd.server_address[1])
    httpd.serve_forever()


def server_stats(port: int) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:  # loopback only
        return {k: int(v) for k, v in json.loads(r.read()).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=0, help="distinct host names (default: feeds / 4)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--pages",
        action="store_true",
        help="let robots.txt allow article pages, so cycle 1 fetches and extracts every page",
    )
    args = ap.parse_args()
    hosts = args.hosts or max(1, args.feeds // 4)

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from monitor.config import parse_config
    from monitor.service import Monitor

    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue, args.entries, args.pages), daemon=True)
    server.start()
    port = queue.get(timeout=30)

    def resolver(host: str, port_: int) -> list[str]:
        if not host.endswith(".bench"):
            raise OSError(f"benchmark resolver: unknown host {host}")
        return ["127.0.0.1"]

    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    feeds = "".join(
        f'[[feeds]]\nname = "f{i}"\nurl = "http://h{i % hosts}.bench:{port}/feed/{i}.rss"\n' for i in range(args.feeds)
    )
    config = parse_config(
        f'[storage]\nurl = "sqlite:///{tmp / "bench.db"}"\n[fetch]\nconcurrency = {args.concurrency}\n'
        f'allow_private = ["127.0.0.1/32"]\n[alerts.console]\n{feeds}',
        "bench.toml",
        {},
    )
    print(
        f"{args.feeds} feeds x {args.entries} entries over {hosts} host names, concurrency {args.concurrency}, "
        f"per-host delay {config.fetch.per_host_delay:g} s; database {tmp / 'bench.db'}"
    )
    results = []
    with Monitor.open(config, resolver=resolver) as m:
        for cycle in (1, 2):
            server_stats(port)  # reset the counters
            wall, cpu = time.perf_counter(), time.process_time()
            reports = m.poll(force=True)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            s = server_stats(port)
            outcomes = Counter(r.status for r in reports)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            results.append((cycle, reports, s, outcomes))
            print(
                f"cycle {cycle}: wall {wall:.1f} s, CPU {cpu:.1f} s, {s.get('requests', 0)} requests "
                f"({s.get('robots', 0)} robots.txt), {s.get('bytes', 0) / 1e6:.1f} MB, "
                f"{s.get('pages', 0)} pages fetched, new items {sum(r.new_items for r in reports)}, "
                f"outcomes {dict(outcomes)}, peak RSS {rss_mb:.0f} MB, {len(reports) / wall:.0f} feeds/s "
                f"({len(reports) / cpu if cpu else 0:.0f} feeds per CPU-second)"
            )
    _, reports, s, outcomes = results[1]
    quiet = outcomes.get("not_modified", 0) + outcomes.get("unchanged", 0)
    print("cycle 2 targets:")
    print(f"  304 or unchanged body: {quiet}/{len(reports)} ({100 * quiet / max(1, len(reports)):.1f} %)")
    print(f"  article pages fetched: {s.get('pages', 0)}")
    print(f"  requests per feed: {(s.get('requests', 0)) / max(1, len(reports)):.2f}")
    server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
