"""`monitor demo`: the whole pipeline on a bundled sample web, without network access.

A newcomer (or a machine that must not reach the internet) sees what the
monitor does before pointing it at real feeds: the sample feeds and article
pages in `monitor/demo_data` are served by a stdlib HTTP server on
127.0.0.1, on a port the system picks, and one full cycle runs over them
through the same `Monitor` API as `monitor poll` (fetch, extract, language,
dedupe, stories, rules, alerts), with the shipped rules and the console
channel. The result stays in `demo.db` for SQL, with `demo.toml` beside it
so that `monitor --config demo.toml stories` works too.

Nothing but loopback is ever contacted: every URL of the sample is on the
local server, `[fetch] allow_private` opens only 127.0.0.1/32, and the
monitor is given a resolver that refuses every name, so not even a DNS
query leaves the machine.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import TextIO

from alerts.outbox import DeliveryStats
from monitor.config import Config, parse_config
from monitor.pipeline import PollReport
from storage.repository import StorySummary

DB_NAME = "demo.db"
CONFIG_NAME = "demo.toml"
# How the sample's files write the server's address; replaced by the real one (with its port).
PLACEHOLDER = "http://127.0.0.1/"


def data() -> Traversable:
    """The bundled sample (package data, so it is in the wheel too)."""
    return resources.files("monitor") / "demo_data"


@dataclass(frozen=True)
class SampleFeed:
    name: str
    path: str
    language: str | None


@dataclass(frozen=True)
class Resource:
    file: str  # relative to demo_data
    content_type: str


@dataclass(frozen=True)
class Sample:
    """The sample web as `demo_data/site.toml` lists it: its feeds, and what is served at each path."""

    feeds: list[SampleFeed]
    resources: dict[str, Resource]

    @classmethod
    def load(cls) -> Sample:
        site = tomllib.loads((data() / "site.toml").read_text(encoding="utf-8"))
        feeds, served = [], {}
        for f in site["feeds"]:
            feeds.append(SampleFeed(f["name"], f["path"], f.get("language")))
            served[f["path"]] = Resource(f["file"], f["content_type"])
        for p in site["pages"]:
            served[p["path"]] = Resource(p["file"], p.get("content_type", "text/html; charset=utf-8"))
        return cls(feeds, served)

    def bodies(self, base: str) -> dict[str, tuple[bytes, str]]:
        """Each path's body, its URLs pointing at the server at `base`, and its content type."""
        out = {}
        for path, r in self.resources.items():
            text = (data() / r.file).read_text(encoding="utf-8").replace(PLACEHOLDER, base + "/")
            out[path] = (text.encode("utf-8"), r.content_type)
        return out


@dataclass(frozen=True)
class Request:
    client: str  # the peer's address, as the server saw it
    path: str


class SampleServer:
    """The sample web on 127.0.0.1 (never another interface), on a port the system
    picks, served from a daemon thread. Records every request it gets."""

    def __init__(self, sample: Sample) -> None:
        self.requests: list[Request] = []
        lock = threading.Lock()
        routes: dict[str, tuple[bytes, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the demo tells what happened itself

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                with lock:
                    server.requests.append(Request(str(self.client_address[0]), self.path))
                found = routes.get(self.path.split("?")[0])
                content, content_type = found or (b"not found", "text/plain; charset=utf-8")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        routes.update(sample.bodies(self.base))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="demo-server", daemon=True)

    def __enter__(self) -> SampleServer:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _toml(value: str) -> str:
    # A JSON string is a TOML basic string (the same escapes).
    return json.dumps(value, ensure_ascii=False)


def config_text(sample: Sample, base: str, db: Path) -> str:
    """The demo's feeds.toml: the sample feeds on the local server, backlog alerts
    on (every entry is in the first poll), the console channel, the shipped rules."""
    feeds = "".join(
        f"\n[[feeds]]\nname = {_toml(f.name)}\nurl = {_toml(base + f.path)}\n"
        + (f"language = {_toml(f.language)}\n" if f.language else "")
        + "alert_on_backlog = true\n"
        for f in sample.feeds
    )
    return (
        "# monitor demo: written by `monitor demo` for `monitor --config demo.toml stories` and the like.\n"
        "# Its feeds were served by the demo's own server, which is gone now.\n\n"
        f"[storage]\nurl = {_toml('sqlite:///' + str(db))}\n\n"
        "[fetch]\n"
        "timeout = 10\n"
        'allow_private = ["127.0.0.1/32"]   # the demo server; nothing else private, and nothing public is linked\n'
        "per_host_delay = 0                # every sample site is on 127.0.0.1: no politeness delay needed\n\n"
        "[extract]\nprocesses = 0                     # in the polling threads: a handful of pages\n\n"
        "[alerts.console]\n"
        f"{feeds}\n" + (data() / "rules.toml").read_text(encoding="utf-8")
    )


def no_lookups(host: str, port: int) -> list[str]:
    """The demo's resolver. Its URLs are all 127.0.0.1, so a name to look up can only
    be a mistake: refused before any DNS query leaves the machine."""
    raise OSError(f"monitor demo looks up no host names (asked for {host!r})")


def fresh_database(db: Path) -> bool:
    """Remove an earlier demo's database (and its WAL files); True if there was one."""
    existed = db.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    return existed


@dataclass
class DemoResult:
    db: Path
    polls: list[PollReport]
    deliveries: DeliveryStats
    stories: list[StorySummary]
    requests: list[Request] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.polls) and all(r.status == "ok" for r in self.polls) and self.deliveries.sent > 0


def run_demo(directory: Path, out: TextIO) -> DemoResult:
    """Serve the sample, poll it once, deliver the alerts (printed by the console
    channel on stdout), tell `out` what was stored. `demo.db` in `directory`
    starts afresh each time, so a second run shows the same thing."""
    from monitor.service import Monitor

    directory = directory.absolute()
    db = directory / DB_NAME
    replaced = fresh_database(db)
    sample = Sample.load()
    with SampleServer(sample) as server:
        text = config_text(sample, server.base, db)
        (directory / CONFIG_NAME).write_text(text, encoding="utf-8")
        # No environment: MONITOR_DATABASE_URL must not send the demo into a real database.
        config: Config = parse_config(text, str(directory / CONFIG_NAME), env={})
        print(
            f"monitor demo: {len(sample.feeds)} sample feeds served at {server.base} (this machine only); "
            f"{DB_NAME} {'replaced by a fresh one' if replaced else 'created'} in {directory}\n",
            file=out,
        )
        with Monitor.open(config, resolver=no_lookups) as m:
            polls = m.poll(force=True)
            for r in polls:
                detail = r.error or f"{r.entries} entries, {r.new_items} new items, {r.known} already known"
                print(f"  feed {r.feed}: {r.status}: {detail}", file=out)
            print("\nAlerts (the console channel):", file=out)
            out.flush()
            stats = m.deliver()
            stories = m.store.stories(limit=50)
        requests = list(server.requests)
    result = DemoResult(db, polls, stats, stories, requests)
    _summary(result, out)
    return result


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _summary(result: DemoResult, out: TextIO) -> None:
    items = sum(s.item_count for s in result.stories)
    entries = sum(r.entries for r in result.polls)
    known = sum(r.known for r in result.polls)
    clients = sorted({r.client for r in result.requests})
    lines = [
        "",
        f"Stored: {_n(items, 'item')} from {_n(entries, 'feed entry', 'feed entries')} "
        f"({known} of them copies of an item already stored: another source of it), "
        f"in {_n(len(result.stories), 'story', 'stories')}; {_n(result.deliveries.sent, 'alert')} sent.",
    ]
    for s in result.stories:
        lines.append(
            f"  story {s.id}: {_n(s.item_count, 'item')} from {_n(s.source_count, 'feed')}, "
            f"in {','.join(s.languages) or '??'}: {s.title or ''}"
        )
    lines.append(
        f"The local server answered {_n(len(result.requests), 'request')}, from {', '.join(clients) or 'nobody'} only."
    )
    lines += [
        "",
        f"Explore {result.db.name} (it stays; the next `monitor demo` starts it afresh):",
        *_examples(result.stories),
    ]
    print("\n".join(lines), file=out)


def _examples(stories: Sequence[StorySummary]) -> list[str]:
    lines = [
        f'  sqlite3 {DB_NAME} "SELECT id, language, title FROM items ORDER BY id"',
        f'  sqlite3 {DB_NAME} "SELECT item_id, url FROM item_sources ORDER BY item_id, id"',
        f'  sqlite3 {DB_NAME} "SELECT story_id, item_count, source_count, languages, title FROM story_overview"',
        f'  sqlite3 {DB_NAME} "SELECT rule, item_id, snippet FROM matches ORDER BY rule"',
        f"  monitor --config {CONFIG_NAME} stories",
    ]
    ranked = sorted((s for s in stories if s.items), key=lambda s: -s.item_count)
    if ranked:  # the big story alerted; a story of one item is one of the unrelated articles
        lines.append(f"  monitor --config {CONFIG_NAME} explain {ranked[0].items[0].id}    # why it alerted")
        if ranked[-1].item_count == 1:
            lines.append(f"  monitor --config {CONFIG_NAME} explain {ranked[-1].items[0].id}    # why it did not")
    return lines
