"""The `monitor` command: a thin layer over `monitor.service.Monitor`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.config import Config, ConfigError, config_path, load_config

log = logging.getLogger("monitor")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    print(
        f"{config_path(args.config)}: OK: {len(config.feeds)} feeds, {len(config.rules)} rules, "
        f"{len(config.channels)} channels"
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import current_revision, make_engine, upgrade

    config = _load(args)
    engine = make_engine(config.database_url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    print(
        f"database {engine.url.render_as_string(hide_password=True)}: "
        + (f"upgraded {before or 'empty'} -> {after}" if before != after else f"already at {after}")
    )
    return EXIT_OK


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from monitor.service import Monitor

    return Monitor.open(_load(args))


def cmd_poll(args: argparse.Namespace) -> int:
    from monitor.service import UnknownFeed

    with _open(args) as m:
        try:
            reports = m.poll(args.feed or None, force=True)
        except UnknownFeed as exc:
            print(f"monitor poll: no feed named {exc.args[0]} in {config_path(args.config)}", file=sys.stderr)
            return EXIT_FAILED
        stats = m.deliver()
    for r in reports:
        detail = r.error or f"{r.entries} entries, {r.new_items} new, {r.known} known" + (
            f", {r.failed} failed" if r.failed else ""
        )
        print(f"{r.feed}: {r.status}: {detail}", file=sys.stderr)
    print(f"alerts: {stats.sent} sent, {stats.retried} to retry, {stats.dead} dead", file=sys.stderr)
    if reports and all(r.status == "error" for r in reports):
        return EXIT_FAILED
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import run

    with _open(args) as m:
        clean = run(m)
    if not clean:
        # A worker thread is stuck in a fetch: do not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    with _open(args) as m:
        feeds = m.store.feeds()
        counts = m.store.item_counts()
    rows = [("NAME", "STATUS", "ERRORS", "ITEMS", "LAST POLL (UTC)", "NEXT POLL (UTC)", "LAST ERROR")]
    for f in feeds:
        assert f.id is not None
        rows.append(
            (
                f.name,
                f.status,
                str(f.error_count),
                str(counts.get(f.id, 0)),
                f.last_polled_at.strftime("%Y-%m-%d %H:%M") if f.last_polled_at else "never",
                f.next_poll_at.strftime("%Y-%m-%d %H:%M"),
                (f.last_error or "")[:80],
            )
        )
    _table(rows)
    return EXIT_OK


def cmd_items(args: argparse.Namespace) -> int:
    with _open(args) as m:
        items = m.store.items(args.limit)
    for item, feed in items:
        when = (item.published_at or item.fetched_at).strftime("%Y-%m-%d %H:%M")
        print(f"{item.id}\t{when}\t{item.language or '??'}\t{feed}\t{item.title or ''}\n\t{item.url}")
    return EXIT_OK


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor", description="Poll news feeds, store articles, alert on keyword rules.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", help="configuration file (default: $MONITOR_CONFIG or ./feeds.toml)")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("run", help="run the daemon: poll feeds on schedule and send alerts until SIGTERM")
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("poll", help="poll every feed now, process, deliver, exit")
    s.add_argument("--once", action="store_true", required=True, help="poll once and exit (required)")
    s.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)")
    s.set_defaults(func=cmd_poll)
    s = sub.add_parser("feeds", help="list feeds with status, errors, item count and schedule")
    s.set_defaults(func=cmd_feeds)
    s = sub.add_parser("items", help="list the newest stored items")
    s.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    s.set_defaults(func=cmd_items)
    s = sub.add_parser("check", help="validate the configuration without running (no network, no database)")
    s.set_defaults(func=cmd_check)
    s = sub.add_parser("db", help="database maintenance")
    dbsub = s.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    u = dbsub.add_parser("upgrade", help="create or upgrade the schema (also done at every start)")
    u.set_defaults(func=cmd_db_upgrade)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, args.log_level)))
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print("configuration errors:" if len(exc.problems) > 1 else "configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
