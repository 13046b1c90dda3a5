"""Scale-out throughput: articles stored per second with 1, 2 and 3 `monitor run`
workers on one PostgreSQL database, and 1 worker on SQLite, same data, one run.

    python benchmarks/workers.py [--feeds 300] [--entries 20] [--runs pg1,pg2,pg3,sqlite1]

The data is tests/bulksite.py's: feeds of short articles on six loopback
addresses (neighbouring feeds share entries), one rule, alerts to a local
webhook. Each run starts from an empty database and ends when every article
is stored and every alert sent. Prints, per run: wall seconds, articles per
second, the CPU seconds of the workers (and their extraction processes) per
article, and the ratio of each run's articles per second to one worker on
PostgreSQL. The machine's cores bound what more workers can give: with 2
cores, two workers already share them.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path[:0] = [str(ROOT), str(TESTS)]

import bulksite  # noqa: E402
import psycopg  # noqa: E402
from slackserver import WebhookServer  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import Delivery, Item  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(label: str, url: str, workers: int, site: bulksite.BulkSite, hook: WebhookServer, tmp: Path) -> float:
    engine = make_engine(url)
    upgrade(engine)
    config = tmp / f"{label}.toml"
    config.write_text(bulksite.config_toml(url, site, hook.url(f"/hook/{label}"), concurrency=8), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = str(TESTS / "sitecustom") + os.pathsep + env.get("PYTHONPATH", "")
    cpu0, t0 = children_cpu(), time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "--log-level", "warning", "run"],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"{label}-{i}.log").open("wb"),
        )
        for i in range(workers)
    ]
    expected, alerts = len(site.articles), len(site.matching)
    stored = 0
    try:
        while True:
            with engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(Item)).scalar_one()
                sent = conn.execute(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "sent")  # type: ignore[arg-type]
                ).scalar_one()
            if stored >= expected and sent >= alerts:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"{label}: a worker exited early; see {tmp}/{label}-*.log")
            time.sleep(0.2)
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
    cpu = children_cpu() - cpu0
    engine.dispose()
    rate = stored / wall
    print(
        f"{label:8} {workers} worker(s): {stored} articles, {sent} alerts in {wall:6.1f} s wall: "
        f"{rate:6.1f} articles/s; workers' CPU {1000 * cpu / stored:5.1f} ms per article",
        flush=True,
    )
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--runs", default="pg1,pg2,pg3,sqlite1", help="pgN (N workers on PostgreSQL) or sqlite1")
    ap.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = ap.parse_args()
    site = bulksite.build(args.feeds, args.entries)
    hook = WebhookServer().start()
    print(f"{args.feeds} feeds x {args.entries} entries: {len(site.articles)} articles, {len(site.matching)} alerts")
    print(f"cores: {os.cpu_count()}")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for label in args.runs.split(","):
            for s in site.servers:
                s.requests.clear()
            if label.startswith("sqlite"):
                rates[label] = run(label, f"sqlite:///{tmp}/{label}.db", int(label[6:] or 1), site, hook, tmp)
                continue
            name = f"bench_workers_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                rates[label] = run(label, url, int(label[2:]), site, hook, tmp)
            finally:
                with psycopg.connect(args.pg, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    hook.stop()
    site.stop()
    base = rates.get("pg1")
    if base:
        print("ratios to 1 worker on PostgreSQL: " + ", ".join(f"{k} {v / base:.2f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
