"""Whole-pipeline ingest throughput against bare trafilatura on one core, in one run.

    python benchmarks/ingest.py --data ../shared/benchmarks/zyte-article-extraction [--pages 500]

A local server (its own process, every response built in memory before the
run, so that it takes little of the cores the pipeline runs on) serves N
article pages, the benchmark's real pages repeated as needed, on one host
name per feed (a stub resolver maps them all to 127.0.0.1, and the per-host
delay is 0, so the figure is the pipeline's, not politeness'), behind feeds
of 20 entries. Prints, from the same run: bare single-core trafilatura pages
per second (same pages; `favor_precision`, no comments, its own metadata:
what one would run without this project), the whole pipeline's pages per
second on this machine's cores, their ratio (target >= 1.6 on 2 cores), the
CPU milliseconds per page of each stage and in all, and the server's.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import multiprocessing
import os
import socketserver
import sys
import tempfile
import time
from pathlib import Path

ENTRIES = 20


def load_pages(data: Path, n: int) -> list[bytes]:
    files = sorted((data / "html").glob("*.html.gz"))
    pages = [gzip.decompress(f.read_bytes()) for f in files]
    # Repeat the corpus; a marker keeps each copy a distinct URL (its text may still be a copy).
    return [pages[i % len(pages)] + f"<!-- copy {i} -->".encode() for i in range(n)]


def serve(data: str, n: int, port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Serve the feeds and pages from memory, every response built before the first request:
    the server shares the pipeline's cores, so it should cost as little as a remote one."""
    pages = load_pages(Path(data), n)
    feeds = (n + ENTRIES - 1) // ENTRIES

    def response(body: bytes, ctype: str) -> tuple[bytes, bytes]:
        status = b"200 OK" if body else b"404 Not Found"
        head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (status, ctype.encode(), len(body))
        return head, body

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:  # HTTP/1.1 keep-alive: requests until the client closes
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # the headers: no request of ours needs them
                parts = line.split()
                path = parts[1].decode() if len(parts) > 1 else ""
                if path == "/cpu":
                    head, body = response(str(time.process_time()).encode(), "text/plain")
                else:
                    head, body = responses.get(path) or response(b"", "text/plain")
                self.connection.sendall(head)
                self.connection.sendall(body)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        request_queue_size = 1024
        allow_reuse_address = True

    httpd = Server(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    responses: dict[str, tuple[bytes, bytes]] = {
        f"/a/{j}": response(page, "text/html; charset=utf-8") for j, page in enumerate(pages)
    }
    for i in range(feeds):
        items = "".join(
            f"<item><title>Article {j}</title><link>http://f{i}.bench:{port}/a/{j}</link>"
            f'<guid isPermaLink="false">a{j}</guid><description>Article {j}</description></item>'
            for j in range(i * ENTRIES, min(n, (i + 1) * ENTRIES))
        )
        body = f'<rss version="2.0"><channel><title>f{i}</title>{items}</channel></rss>'.encode()
        responses[f"/feed/{i}"] = response(body, "application/rss+xml")
    port_queue.put((port, feeds))
    httpd.serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the zyte-article-extraction folder")
    ap.add_argument("--pages", type=int, default=500)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import trafilatura

    from monitor.config import parse_config
    from monitor.service import Monitor
    from monitor.stages import STAGES
    from monitor.workers import default_processes

    pages = load_pages(args.data, args.pages)
    wall, cpu = time.perf_counter(), time.process_time()
    for i, html in enumerate(pages):
        trafilatura.bare_extraction(
            html, url=f"http://p{i}.bench/a/{i}", favor_precision=True, include_comments=False, with_metadata=True
        )
    bare_wall, bare_cpu = time.perf_counter() - wall, time.process_time() - cpu
    bare_rate = len(pages) / bare_wall
    print(
        f"bare trafilatura, one core: {len(pages)} pages in {bare_wall:.1f} s wall, {bare_cpu:.1f} s CPU: "
        f"{bare_rate:.1f} pages/s"
    )

    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(str(args.data), args.pages, queue), daemon=True)
    server.start()
    port, feeds = queue.get(timeout=60)
    tmp = Path(tempfile.mkdtemp(prefix="monitor-ingest-"))
    feed_tables = "".join(
        f'[[feeds]]\nname = "f{i}"\nurl = "http://f{i}.bench:{port}/feed/{i}"\n' for i in range(feeds)
    )
    config = parse_config(
        f'[storage]\nurl = "sqlite:///{tmp / "ingest.db"}"\n[fetch]\n'
        f'allow_private = ["127.0.0.1/32"]\nper_host_delay = 0\n[alerts.console]\n{feed_tables}',
        "ingest.toml",
        {},
    )
    import httpx

    def server_cpu() -> float:
        return float(httpx.get(f"http://127.0.0.1:{port}/cpu").text)

    with Monitor.open(config, resolver=lambda host, port: ["127.0.0.1"]) as m:
        m.pipeline.extractor.start()  # as `monitor run` does when it starts
        served = server_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        reports = m.poll(force=True)
        run_wall = time.perf_counter() - wall
        main_cpu = time.process_time() - cpu
        served = server_cpu() - served
        stages = dict(m.pipeline.stages.cpu)
    done = sum(r.new_items + r.known for r in reports)
    failed = sum(r.failed for r in reports)
    rate = done / run_wall
    print(
        f"pipeline, {default_processes()} extraction processes, 16 polling threads: {done} pages "
        f"({sum(r.new_items for r in reports)} new items, {failed} failed) in {run_wall:.1f} s wall: {rate:.1f} pages/s"
    )
    print(
        f"ratio pipeline / bare single-core trafilatura: {rate / bare_rate:.2f} (target >= 1.6 on 2 cores; "
        f"this machine has {os.cpu_count()} cores)"
    )
    print(f"main process CPU: {1000 * main_cpu / max(1, done):.1f} ms per page (fetching, parsing, storage, threads)")
    print(
        "CPU ms per page by stage: " + ", ".join(f"{s} {1000 * stages.get(s, 0.0) / max(1, done):.1f}" for s in STAGES)
    )
    workers = stages.get("extract", 0.0) + stages.get("language", 0.0) if default_processes() > 0 else 0.0
    print(
        f"CPU ms per page in all: pipeline {1000 * (main_cpu + workers) / max(1, done):.1f} "
        f"(main process and extraction workers), bare trafilatura {1000 * bare_cpu / len(pages):.1f}"
    )
    print(
        f"the local web server (part of the harness, not the pipeline) used {1000 * served / max(1, done):.1f} ms "
        "per page during the run"
    )
    server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
