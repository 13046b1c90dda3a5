"""Crash test (issue 7): the daemon delivering a batch of alerts is killed with
SIGKILL at seeded random points, again and again, then left to finish.

Every alert must arrive at least once, and an alert arrives twice only when
it was in flight at a kill: the webhook had it, the process died before
committing `sent`. That is the one window the outbox cannot close (README,
"Delivery"); a receiver drops the repeat by its `message_id`.

The daemon is `monitor run` in a subprocess (tests/crash_sender.py, which
only shortens the outbox lease). The receiver is a real HTTP server in this
process that records each POST when it arrives and answers 20 ms later, so
kills land mid-send. Each run of the daemon posts to its own path
(/hook/RUN), which tells which run sent each receipt without relying on
timing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from itemfactory import new_item
from slackserver import Reply, WebhookServer
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from storage.db import make_engine, upgrade
from storage.models import Delivery
from storage.repository import FeedSpec, MatchRecord, Store

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
SENDER = TESTS / "crash_sender.py"
SITECUSTOM = str(TESTS / "sitecustom")  # the network guard, in the subprocess too

ALERTS = 60
KILLS = 5
# Seconds a claim is leased: what a killed run claimed is due again soon after
# the next run starts. It may be shorter than sending a whole batch: one daemon
# never runs two ticks at once (APScheduler max_instances=1), so only a new run
# ever takes over an expired lease.
LEASE = 2.0
REPLY_DELAY = 0.02  # seconds between a POST arriving and its answer: the window a kill can hit
# A quarter of the kills come at a random time after the daemon logged RUNNING
# (its first ticks: a claim whose lease has not expired yet, a claim, the first
# sends); the others at a random time after the run's first POST arrived.
EARLY_KILLS, EARLY_WINDOW, SENDING_WINDOW = 0.25, 1.5, 0.25
RUNNING = "monitor running"  # monitor.daemon's log line once the scheduler started
CHANNEL = "hook"


@dataclass(frozen=True)
class Receipt:
    run: int  # from the path the daemon posted to
    story_id: int
    message_id: str  # from the JSON body
    header_message_id: str  # X-Monitor-Message-Id


class Receiver:
    """The webhook endpoint (tests/slackserver.py) answering 200 `ok` after `delay`
    seconds; each run of the daemon posts to its own path, /hook/RUN. A body cut
    short by a kill is counted in `truncated`, not received."""

    def __init__(self, delay: float) -> None:
        self.server = WebhookServer()
        self.server.default = Reply(delay=delay)

    def url(self, run: int) -> str:
        return self.server.url(f"/hook/{run}")

    @property
    def truncated(self) -> int:
        return self.server.truncated

    def all(self) -> list[Receipt]:
        out = []
        for r in self.server.requests():
            doc = r.json()
            out.append(
                Receipt(
                    int(r.path.rsplit("/", 1)[-1]),
                    doc["story_id"],
                    doc["message_id"],
                    r.headers["x-monitor-message-id"],
                )
            )
        return out

    def of_run(self, run: int) -> list[Receipt]:
        return [r for r in self.all() if r.run == run]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(REPLY_DELAY)
    r.server.start()
    yield r
    r.server.stop()


def queue_alerts(engine: Engine, n: int) -> None:
    """n items, each in a story of its own and matching a rule of its own on
    CHANNEL: n pending deliveries, written as the pipeline writes them. (One
    rule per alert: no rule's hourly budget, `max_alerts_per_hour`, holds any back.)"""
    store = Store(engine)
    store.sync_feeds([FeedSpec("crash-feed", "http://127.0.0.1:9/feed.xml", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    for i in range(n):
        url = f"http://127.0.0.1:9/article-{i}"
        item_id = store.add_item(
            new_item(
                feed_id,
                url,
                title=f"Garanties de sécurité, dépêche {i}",
                text=f"Dépêche {i} sur les garanties de sécurité.",
                matches=[MatchRecord(f"rule-{i}", ("garanties",), "les **garanties** de sécurité", (CHANNEL,))],
            )
        )
        assert item_id is not None


def deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(Delivery).order_by(col(Delivery.id))).all())


def write_config(path: Path, db: Path, hook_url: str) -> None:
    path.write_text(
        f"""\
[storage]
url = "sqlite:///{db}"

[schedule]
tick = 1

[extract]
processes = 0

[alerts.{CHANNEL}]
type = "webhook"
url = "{hook_url}"
""",
        encoding="utf-8",
    )


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Runs:
    """Runs of the daemon on one database; run N posts to the receiver's /hook/N."""

    def __init__(self, tmp_path: Path, db: Path, receiver: Receiver) -> None:
        self.tmp_path, self.db, self.receiver = tmp_path, db, receiver
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        self.env["PYTHONPATH"] = SITECUSTOM + os.pathsep + self.env.get("PYTHONPATH", "")

    def start(self, run: int) -> tuple[subprocess.Popen[bytes], Path]:
        config, log = self.tmp_path / f"run-{run}.toml", self.tmp_path / f"run-{run}.log"
        write_config(config, self.db, self.receiver.url(run))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SENDER), str(config), str(LEASE)],
                cwd=self.tmp_path,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return proc, log

    def kill_at_random(self, run: int, rng: random.Random, all_sent: Callable[[], bool]) -> str:
        """Start run `run` and SIGKILL it at a point drawn from `rng`; what that point was."""
        proc, log = self.start(run)
        try:
            if rng.random() < EARLY_KILLS:
                pause = rng.uniform(0.0, EARLY_WINDOW)
                how = f"{pause:.2f} s after it started its scheduler"
                up = wait_for(lambda: RUNNING in log.read_text(errors="replace") or proc.poll() is not None, 60)
                assert up, f"run {run} did not start within 60 s:\n" + log.read_text(errors="replace")
            else:
                pause = rng.uniform(0.0, SENDING_WINDOW)
                how = f"{pause:.2f} s after its first POST"
                posted = wait_for(lambda: bool(self.receiver.of_run(run)) or proc.poll() is not None or all_sent(), 30)
                assert posted, f"run {run} posted nothing within 30 s:\n" + log.read_text(errors="replace")
                if not self.receiver.of_run(run):
                    how = "with nothing left to send"
            time.sleep(pause)
            assert proc.poll() is None, f"run {run} ended by itself:\n" + log.read_text(errors="replace")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        return how

    def finish(self, run: int, done: Callable[[], bool]) -> None:
        """Start run `run`, let it work until `done()`, then stop it with SIGTERM."""
        proc, log = self.start(run)
        try:
            finished = wait_for(done, 60)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)  # a bound for a hung daemon, not a timing assertion
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert finished, "not all sent within 60 s:\n" + log.read_text(errors="replace")
        assert code == 0, log.read_text(errors="replace")


@dataclass
class Kill:
    run: int
    how: str
    sent_after: set[int]  # story ids `sent` in the database once the run was dead


@pytest.mark.parametrize("seed", [1, 2])
def test_kills_lose_nothing_and_repeat_only_in_flight(seed: int, tmp_path: Path, receiver: Receiver) -> None:
    started = time.monotonic()
    db = tmp_path / "monitor.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        upgrade(engine)
        queue_alerts(engine, ALERTS)
        stories = {d.story_id for d in deliveries(engine)}
        assert len(stories) == ALERTS

        def sent() -> set[int]:
            return {d.story_id for d in deliveries(engine) if d.status == "sent"}

        runs, rng = Runs(tmp_path, db, receiver), random.Random(seed)
        kills = []
        for run in range(1, KILLS + 1):
            how = runs.kill_at_random(run, rng, lambda: sent() == stories)
            kills.append(Kill(run, how, sent()))  # the run is dead: this is what it committed
        runs.finish(KILLS + 1, lambda: sent() == stories)
        rows = deliveries(engine)
    finally:
        engine.dispose()

    receipts = receiver.all()
    per_story = Counter(r.story_id for r in receipts)
    repeated = {story: n for story, n in sorted(per_story.items()) if n > 1}
    duplicates = len(receipts) - len(per_story)
    delivery_of = {d.story_id: d.id for d in rows}
    confirmed: set[int] = set()
    lines = []
    for k in kills:
        mine = [r.story_id for r in receiver.of_run(k.run)]
        in_flight = [s for s in mine if s not in k.sent_after]
        lines.append(
            f"  kill {k.run} ({k.how}): received from this run {len(mine)}, "
            f"{len(stories - k.sent_after)} alerts left unsent, "
            f"in flight: {[delivery_of[s] for s in in_flight] or 'none'}"
        )
    print(
        f"\ncrash test, seed {seed}: {ALERTS} alerts, {len(kills)} kills, {len(receipts)} receipts, "
        f"{len(per_story)} distinct, {duplicates} duplicates, {receiver.truncated} POSTs cut short, "
        f"{time.monotonic() - started:.1f} s\n"
        + "\n".join(lines)
        + f"\n  final run: received {len(receiver.of_run(KILLS + 1))}"
        + "\n  repeated deliveries (delivery id: times received): "
        + (", ".join(f"{delivery_of[s]}: {n}" for s, n in repeated.items()) or "none")
    )

    assert [d.status for d in rows] == ["sent"] * ALERTS
    assert set(per_story) == stories and len(per_story) == ALERTS  # every alert arrived
    assert duplicates <= len(kills)
    assert max(per_story.values()) <= 1 + len(kills)
    # Per kill: at most one alert of that run was received and not recorded
    # as sent (the one in flight), and nothing recorded as sent before the
    # run started was posted again.
    for k in kills:
        mine = [r.story_id for r in receiver.of_run(k.run)]
        assert len([s for s in mine if s not in k.sent_after]) <= 1, (k, mine)
        assert not set(mine) & confirmed, (k, mine)
        confirmed = k.sent_after
    assert not {r.story_id for r in receiver.of_run(KILLS + 1)} & confirmed
    # A repeat carries the same message id, in the body and the header, as the database records.
    message_ids = {d.story_id: d.message_id for d in rows}
    assert all(r.message_id == r.header_message_id == message_ids[r.story_id] for r in receipts)
