"""Robustness sweep: serve every document of a feed corpus from loopback and poll them all in one run.

    unshare -n sh -c 'ip link set lo up && python benchmarks/corpus_sweep.py ../shared/corpora/feedparser-tests'

Many corpus entries link to outside hosts (example.com, example.org): run it
where no traffic can leave the machine, as above; the fetcher then gets DNS
errors for those pages and falls back to the feed's text, which is the point.
Prints how many feeds were usable, how many were refused with a per-feed
error (by kind), how many entries failed inside the pipeline (a crash that
was contained), and the run's wall and CPU time. Exit status 1 if any entry
failed: that is a bug to fix, whatever the document.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="folder of feed documents (searched recursively)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N documents")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from monitor.config import parse_config
    from monitor.service import Monitor

    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.name != "LICENSE")
    if args.limit:
        files = files[: args.limit]
    by_path = {f"/{i}": f for i, f in enumerate(files)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            f = by_path.get(self.path)
            body = f.read_bytes() if f else b""
            self.send_response(200 if f else 404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    tmp = Path(tempfile.mkdtemp(prefix="monitor-sweep-"))
    feeds = "".join(f'[[feeds]]\nname = "doc{p[1:]}"\nurl = "http://127.0.0.1:{port}{p}"\n' for p in by_path)
    config = parse_config(
        f'[storage]\nurl = "sqlite:///{tmp / "sweep.db"}"\n[fetch]\ntimeout = 5\nper_host_delay = 0\n'
        f'per_host_concurrency = 16\nallow_private = ["127.0.0.1/32"]\n[alerts.console]\n{feeds}',
        "sweep.toml",
        {},
    )
    wall, cpu = time.perf_counter(), time.process_time()
    with Monitor.open(config) as m:
        reports = m.poll(force=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    statuses = Counter(r.status for r in reports)
    kinds = Counter(r.error_kind for r in reports if r.status == "error")
    failed = [r for r in reports if r.failed]
    print(f"{len(files)} documents, {len(reports)} polled in {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(f"outcomes: {dict(statuses)}; errors by kind: {dict(kinds)}")
    print(
        f"items stored: {sum(r.new_items for r in reports)}; entries that failed in the pipeline: "
        f"{sum(r.failed for r in failed)} in {len(failed)} feeds"
    )
    for r in failed[:20]:
        print(f"  {r.feed}: {by_path['/' + r.feed[3:]]}")
    httpd.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
