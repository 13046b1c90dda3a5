"""Whole-pipeline ingest throughput against bare trafilatura on one core, in one run.

    python benchmarks/ingest.py --data ../shared/benchmarks/zyte-article-extraction [--pages 500]

A local server (its own process) serves N article pages, the benchmark's
real pages repeated as needed, each on its own host name (a stub resolver
maps them all to 127.0.0.1, so the 1 s per-host delay never binds and the
figure is the pipeline's, not politeness'), behind feeds of 20 entries.
Prints, from the same run: bare single-core trafilatura pages per second
(same pages, same settings as the pipeline's first pass), the whole
pipeline's pages per second on this machine's cores, their ratio (target
>= 1.6 on 2 cores), and the CPU milliseconds per page of each stage.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENTRIES = 20


def load_pages(data: Path, n: int) -> list[bytes]:
    files = sorted((data / "html").glob("*.html.gz"))
    pages = [gzip.decompress(f.read_bytes()) for f in files]
    # Repeat the corpus; a marker keeps each copy a distinct URL (its text may still be a copy).
    return [pages[i % len(pages)] + f"<!-- copy {i} -->".encode() for i in range(n)]


def serve(data: str, n: int, port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    pages = load_pages(Path(data), n)
    feeds = (n + ENTRIES - 1) // ENTRIES

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            port = self.server.server_address[1]
            if self.path.startswith("/feed/"):
                i = int(self.path.split("/")[2])
                items = "".join(
                    f"<item><title>Article {j}</title><link>http://f{i}.bench:{port}/a/{j}</link>"
                    f'<guid isPermaLink="false">a{j}</guid><description>Article {j}</description></item>'
                    for j in range(i * ENTRIES, min(n, (i + 1) * ENTRIES))
                )
                body = f'<rss version="2.0"><channel><title>f{i}</title>{items}</channel></rss>'.encode()
                ctype = "application/rss+xml"
            elif self.path.startswith("/a/"):
                body, ctype = pages[int(self.path.split("/")[2])], "text/html; charset=utf-8"
            elif self.path == "/cpu":
                body, ctype = str(time.process_time()).encode(), "text/plain"
            else:
                body, ctype = b"", "text/plain"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 1024
    port_queue.put((httpd.server_address[1], feeds))
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
    with Monitor.open(config, resolver=lambda host, port: ["127.0.0.1"]) as m:
        m.pipeline.extractor.start()  # as `monitor run` does when it starts
        wall, cpu = time.perf_counter(), time.process_time()
        reports = m.poll(force=True)
        run_wall = time.perf_counter() - wall
        main_cpu = time.process_time() - cpu
        stages = dict(m.pipeline.stages.cpu)
    done = sum(r.new_items + r.known for r in reports)
    rate = done / run_wall
    print(
        f"pipeline, {default_processes()} extraction processes, 16 polling threads: {done} pages "
        f"({sum(r.new_items for r in reports)} new items) in {run_wall:.1f} s wall: {rate:.1f} pages/s"
    )
    print(
        f"ratio pipeline / bare single-core trafilatura: {rate / bare_rate:.2f} (target >= 1.6 on 2 cores; "
        f"this machine has {os.cpu_count()} cores)"
    )
    print(f"main process CPU: {1000 * main_cpu / max(1, done):.1f} ms per page (fetching, parsing, storage, threads)")
    print(
        "CPU ms per page by stage: " + ", ".join(f"{s} {1000 * stages.get(s, 0.0) / max(1, done):.1f}" for s in STAGES)
    )
    import httpx

    server_cpu = float(httpx.get(f"http://127.0.0.1:{port}/cpu").text)
    print(
        f"the local web server (part of the harness, not the pipeline) used {1000 * server_cpu / done:.1f} ms per page"
    )
    server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
