"""Several workers on one PostgreSQL (issue 8): three `monitor run` processes
share 300 feeds of 20 entries each (tests/bulksite.py, six loopback
addresses, neighbouring feeds sharing entries) with alerts on for the
backlog. Every article is stored once, every alert delivered once, and no
feed fetched twice within its hourly interval. Then again with one worker
killed (SIGKILL) mid-run: its leased feeds and deliveries are taken over once
the lease expires, and nothing is lost or doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import bulksite
import pytest
from slackserver import WebhookServer
from sqlalchemy import Engine, func, inspect
from sqlmodel import Session, col, select

from storage.db import make_engine, upgrade
from storage.models import Delivery, Feed, Item, ItemSource

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TESTS = Path(__file__).parent
SITECUSTOM = str(TESTS / "sitecustom")  # the network guard, in the workers too
FEEDS, ENTRIES, OVERLAP = 300, 20, 2
WORKERS = 3
DEADLINE = 600.0  # seconds for a run to finish: a hang fails instead of blocking CI


@pytest.fixture(scope="module")
def site() -> Iterator[bulksite.BulkSite]:
    s = bulksite.build(FEEDS, ENTRIES, overlap=OVERLAP)
    yield s
    s.stop()


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    server = WebhookServer().start()
    yield server
    server.stop()


class Workers:
    def __init__(self, tmp_path: Path, config: str) -> None:
        self.config = tmp_path / "feeds.toml"
        self.config.write_text(config, encoding="utf-8")
        self.tmp_path = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        self.env["PYTHONPATH"] = SITECUSTOM + os.pathsep + self.env.get("PYTHONPATH", "")
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int) -> None:
        for i in range(n):
            with (self.tmp_path / f"worker-{i}.log").open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "monitor", "--config", str(self.config), "run"],
                        cwd=self.tmp_path,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, extraction processes included
                    )
                )

    def log(self, i: int) -> str:
        return (self.tmp_path / f"worker-{i}.log").read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            # A worker killed with SIGKILL leaves its extraction processes behind: end them.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def counts(engine: Engine) -> tuple[int, int, int, int]:
    """(items, feeds polled, deliveries, deliveries sent); zeros until the workers made the schema."""
    if not inspect(engine).has_table("deliveries"):
        return 0, 0, 0, 0
    with Session(engine) as s:
        items = s.exec(select(func.count()).select_from(Item)).one()
        polled = s.exec(select(func.count()).select_from(Feed).where(col(Feed.last_polled_at).is_not(None))).one()
        total = s.exec(select(func.count()).select_from(Delivery)).one()
        sent = s.exec(select(func.count()).select_from(Delivery).where(col(Delivery.status) == "sent")).one()
    return items, polled, total, sent


def finished(engine: Engine, site: bulksite.BulkSite) -> bool:
    items, polled, total, sent = counts(engine)
    return items == len(site.articles) and polled == FEEDS and total == len(site.matching) and sent == total


def check_outcome(engine: Engine, site: bulksite.BulkSite, hook: WebhookServer) -> Counter[str]:
    """Everything stored and delivered exactly once; the receipts per message id."""
    with Session(engine) as s:
        urls = list(s.exec(select(Item.url)).all())
        sources = list(s.exec(select(ItemSource.feed_id, ItemSource.url)).all())
        feeds = list(s.exec(select(Feed)).all())
        deliveries = list(s.exec(select(Delivery)).all())
        matched = set(s.exec(select(Item.url).join(Delivery, col(Delivery.item_id) == Item.id)).all())
    assert len(urls) == len(set(urls)) == len(site.articles)
    assert set(urls) == set(site.articles)
    # One source per entry: 20 per feed, the shared entries under both of their feeds.
    assert len(sources) == len(set(sources)) == FEEDS * ENTRIES
    assert all(f.status in ("ok", "stale") and f.lease_token is None for f in feeds)  # stale: entries minutes apart
    assert len(deliveries) == len(site.matching)
    assert matched == site.matching
    assert {d.status for d in deliveries} == {"sent"}
    receipts = Counter(r.json()["message_id"] for r in hook.requests())
    assert set(receipts) == {d.message_id for d in deliveries}
    return receipts


def test_three_workers_share_the_feeds(tmp_path: Path, postgres_url: str, site: bulksite.BulkSite, hook) -> None:
    for s in site.servers:
        s.requests.clear()
    engine = make_engine(postgres_url)
    # No schema yet: the three workers start at once, migrate under a lock and sync the feeds.
    workers = Workers(tmp_path, bulksite.config_toml(postgres_url, site, hook.url("/hook")))
    workers.start(WORKERS)
    try:
        done = wait_for(lambda: finished(engine, site), DEADLINE)
        assert done, f"not finished in {DEADLINE} s: {counts(engine)}\n" + workers.log(0)[-3000:]
    finally:
        workers.stop()
    receipts = check_outcome(engine, site, hook)
    assert set(receipts.values()) == {1}  # each alert delivered exactly once
    hits = site.feed_hits()
    assert set(hits) == set(site.feeds) and set(hits.values()) == {1}  # none fetched twice
    # Each article fetched once, except that one two feeds list may be fetched by both
    # workers polling them at the same moment (the second is then stored as a copy).
    pages = site.article_hits()
    assert set(pages) == set(site.articles)
    assert all(n <= site.listed[url] for url, n in pages.items())
    # The work was shared: each worker polled feeds.
    polled = [sum(1 for line in workers.log(i).splitlines() if "entries," in line) for i in range(WORKERS)]
    assert sum(polled) == FEEDS and all(polled), polled
    engine.dispose()


def test_a_killed_worker_loses_nothing(tmp_path: Path, postgres_url: str, site: bulksite.BulkSite, hook) -> None:
    for s in site.servers:
        s.requests.clear()
    engine = make_engine(postgres_url)
    upgrade(engine)
    # Short leases, so the dead worker's claims are taken over within the test.
    workers = Workers(tmp_path, bulksite.config_toml(postgres_url, site, hook.url("/hook"), lease="5s"))
    workers.start(WORKERS)
    try:
        started = wait_for(lambda: counts(engine)[0] >= len(site.articles) // 4, DEADLINE)
        assert started, f"no progress: {counts(engine)}\n" + workers.log(0)[-3000:]
        victim = workers.procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        mark = f":{victim.pid}:"
        with Session(engine) as s:
            orphans = {f.name for f in s.exec(select(Feed)).all() if f.lease_token and mark in f.lease_token}
            in_flight = {d.id for d in s.exec(select(Delivery)).all() if d.lease_token and mark in d.lease_token}
        done = wait_for(lambda: finished(engine, site), DEADLINE)
        assert done, f"not finished in {DEADLINE} s: {counts(engine)}\n" + workers.log(1)[-3000:]
    finally:
        workers.stop()
    receipts = check_outcome(engine, site, hook)
    # An alert arrives twice only if it was in flight when its sender died.
    with Session(engine) as s:
        twice = {d.id for d in s.exec(select(Delivery)).all() if receipts[d.message_id or ""] > 1}
    assert twice <= in_flight and max(receipts.values()) <= 2
    # A feed is fetched again only if the dead worker held it.
    hits = site.feed_hits()
    assert set(hits) == set(site.feeds)
    again = {name for name, n in hits.items() if n > 1}
    assert again <= orphans and max(hits.values()) <= 2, (again - orphans, orphans)
    engine.dispose()
