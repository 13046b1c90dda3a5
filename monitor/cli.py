"""The `monitor` command: a thin layer over `monitor.service.Monitor`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__
from monitor.config import Config, ConfigError, config_path, load_config
from monitor.durations import format_duration, parse_duration
from monitor.progress import Progress, on_terminal
from storage.db import NoDatabase

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.pipeline import PollReport
    from monitor.service import Monitor

log = logging.getLogger("monitor")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _load(args: argparse.Namespace) -> Config:
    from monitor.logs import protect

    config = load_config(config_path(args.config))
    protect(config)
    return config


def _writer(config: Config) -> Engine:
    """An engine on an existing database, its schema upgraded (under the migration
    lock), for the operator commands that write: they never create a database."""
    from monitor.migrate_lock import upgrade_locked
    from storage.db import make_engine
    from storage.repository import Store

    probe = make_engine(config.database_url, create=False, pool_size=1)
    try:
        if not Store(probe).has_schema():
            raise NoDatabase(
                f"no monitor database at {probe.url.render_as_string(hide_password=True)} yet: "
                "run `monitor poll` or `monitor run` first"
            )
    finally:
        probe.dispose()
    engine = make_engine(config.database_url, pool_size=2)
    upgrade_locked(engine)
    return engine


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    path = config_path(args.config)
    print(
        f"{path}: OK: {_n(len(config.feeds), 'feed')}, {_n(len(config.rules), 'rule')}, "
        f"{_n(len(config.channels), 'channel')}"
    )
    if not config.feeds:
        print(f"{path}: warning: no [[feeds]]: nothing will be polled", file=sys.stderr)
    if not config.rules:
        print(f"{path}: warning: no [[rules]]: items are stored but nothing will alert", file=sys.stderr)
    if config.metrics.listen:
        from monitor.metrics import available

        if not available():
            print(
                f"{path}: warning: [metrics] listen is set but prometheus_client is not installed: "
                "pip install 'news-monitor[metrics]'",
                file=sys.stderr,
            )
    for rule in config.rules:
        if not rule.channels:
            print(
                f"{path}: warning: rule {rule.name!r} has channels = []: matches are recorded, never alerted",
                file=sys.stderr,
            )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.migrate_lock import upgrade_locked
    from storage.db import current_revision, make_engine

    config = _load(args)
    engine = make_engine(config.database_url)
    before = current_revision(engine)
    upgrade_locked(engine)
    after = current_revision(engine)
    print(
        f"database {engine.url.render_as_string(hide_password=True)}: "
        + (f"upgraded {before or 'empty'} -> {after}" if before != after else f"already at {after}")
    )
    return EXIT_OK


def cmd_db_prune(args: argparse.Namespace) -> int:
    from monitor.retention import Outcome, apply, plan
    from storage.models import utcnow

    config = _load(args)
    policy = config.retention
    if policy.keep_text_days is None and policy.keep_items_days is None:
        print(
            f"monitor db prune: {config_path(args.config)}: no [storage] keep_text_days or keep_items_days: "
            "everything is kept",
            file=sys.stderr,
        )
        return EXIT_OK
    engine = _writer(config)

    def work(o: Outcome) -> int:
        return o.texts_pruned + o.items_deleted + o.items_kept_for_alerts

    try:
        now = utcnow()
        p = plan(policy, now)
        for label, cut in (("text", p.text_before), ("items", p.items_before)):
            if cut is not None:
                print(f"{label}: stored before {cut:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
        if args.dry_run:
            outcome = apply(engine, p, now, dry_run=True)
        else:
            # A bar needs the total: a dry run counts it first (only on a terminal; plain lines need none).
            total = work(apply(engine, p, now, dry_run=True)) if on_terminal(sys.stderr) else None
            with Progress("pruning", total) as bar:
                outcome = apply(
                    engine,
                    p,
                    now,
                    progress=lambda o: bar.update(work(o), f"{o.texts_pruned} texts pruned, {o.items_deleted} deleted"),
                )
    finally:
        engine.dispose()
    print(("dry run: " if args.dry_run else "") + outcome.summary())
    return EXIT_OK


def cmd_db_backup(args: argparse.Namespace) -> int:
    from monitor.backup import BackupError, backup

    config = _load(args)
    try:
        result = backup(config.database_url, args.path)
    except BackupError as exc:
        print(f"monitor db backup: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"backup written to {result.path} ({result.size} bytes, {result.pages} pages, checked)")
    return EXIT_OK


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from monitor.health import check

    health = check(_load(args))
    print(("OK: " if health.ok else "UNHEALTHY: ") + health.reason, file=sys.stdout if health.ok else sys.stderr)
    return EXIT_OK if health.ok else EXIT_FAILED


def cmd_feeds_import(args: argparse.Namespace) -> int:
    from monitor.opml import OpmlError, import_opml

    path = config_path(args.config)
    try:
        result = import_opml(args.file, path)
    except OpmlError as exc:
        print(f"monitor feeds import: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in result.skipped:
        print(line, file=sys.stderr)
    for f in result.added:
        category = " / ".join(result.categories.get(f.name, ()))
        print(f"added {f.name}\t{f.url}" + (f"\t[{category}]" if category else ""))
    print(
        f"{path}: {_n(len(result.added), 'feed')} added, {len(result.skipped)} skipped"
        + ("; polled from the next `monitor poll` or daemon start" if result.added else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_feeds_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from monitor.opml import export_opml

    config = _load(args)
    document = export_opml(config.feeds)
    if args.output and args.output != "-":
        Path(args.output).write_text(document, encoding="utf-8")
        print(f"{args.output}: {_n(len(config.feeds), 'feed')} exported", file=sys.stderr)
    else:
        sys.stdout.write(document)
    return EXIT_OK


def _control(args: argparse.Namespace, action: Any) -> int:
    """Run an operator control on the database; its ControlError is the message."""
    from monitor.controls import ControlError

    config = _load(args)
    engine = _writer(config)
    try:
        message: str = action(engine, config)
    except ControlError as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()
    print(message)
    return EXIT_OK


def cmd_feeds_pause(args: argparse.Namespace) -> int:
    from monitor.controls import pause_feed

    return _control(
        args,
        lambda e, _c: (
            f"feed {args.name}: "
            + ("paused: not polled until `monitor feeds resume`" if pause_feed(e, args.name) else "already paused")
        ),
    )


def cmd_feeds_resume(args: argparse.Namespace) -> int:
    from monitor.controls import resume_feed

    return _control(
        args,
        lambda e, _c: f"feed {args.name}: " + ("resumed: due now" if resume_feed(e, args.name) else "was not paused"),
    )


def cmd_feeds_revive(args: argparse.Namespace) -> int:
    from monitor.controls import revive_feed

    def act(engine: Engine, _config: Config) -> str:
        revive_feed(engine, args.name)
        return f"feed {args.name}: revived: status new, polled at the next tick"

    return _control(args, act)


def cmd_rules_mute(args: argparse.Namespace) -> int:
    from monitor.controls import known_rule, mute_rule

    def act(engine: Engine, config: Config) -> str:
        known_rule(config.rules, args.name, str(config_path(args.config)))
        mute = mute_rule(engine, args.name, timedelta(seconds=args.duration), args.reason)
        return (
            f"rule {args.name}: muted until {mute.until:%Y-%m-%d %H:%M} UTC (matches are recorded, no alert is queued)"
        )

    return _control(args, act)


def cmd_rules_unmute(args: argparse.Namespace) -> int:
    from monitor.controls import unmute_rule

    return _control(
        args,
        lambda e, _c: f"rule {args.name}: " + ("unmuted" if unmute_rule(e, args.name) else "was not muted"),
    )


def cmd_rules_backfill(args: argparse.Namespace) -> int:
    from monitor.controls import Backfill, backfill_rule, known_rule

    def act(engine: Engine, config: Config) -> str:
        rule = known_rule(config.rules, args.name, str(config_path(args.config)))
        with Progress(f"backfill {args.name}") as bar:

            def progress(b: Backfill) -> None:
                bar.update(b.matched, f"matching items, {b.recorded} new matches")

            b = backfill_rule(engine, rule, args.since, progress=progress)
        return (
            f"rule {args.name}: {_n(b.matched, 'stored item')} match, {_n(b.recorded, 'new match')} recorded "
            "(no alerts queued)"
        )

    return _control(args, act)


def cmd_stories_merge(args: argparse.Namespace) -> int:
    from monitor.controls import merge_stories

    def act(engine: Engine, _config: Config) -> str:
        r = merge_stories(engine, args.target, args.merged)
        kept = f", {r.kept_alerts} alerts stay with story {args.merged}" if r.kept_alerts else ""
        return (
            f"story {args.merged} merged into story {args.target}: {_n(r.moved_items, 'item')} "
            f"and {_n(r.moved_alerts, 'alert')} moved{kept}"
        )

    return _control(args, act)


def cmd_stories_split(args: argparse.Namespace) -> int:
    from monitor.controls import split_item

    return _control(
        args, lambda e, _c: f"item {args.item}: now in a story of its own, story {split_item(e, args.item)}"
    )


def _open(args: argparse.Namespace, read_only: bool = False) -> Monitor:
    from monitor.service import Monitor

    return Monitor.open(_load(args), read_only=read_only)


def cmd_poll(args: argparse.Namespace) -> int:
    from monitor.service import UnknownFeed

    with _open(args) as m:
        wanted = set(args.feed or ())
        pollable = [
            f
            for f in m.store.feeds()
            if f.status != "gone" and f.paused_at is None and (not wanted or f.name in wanted)
        ]
        # Each feed's report line as it is polled, a bar under them on a terminal.
        with Progress("polling", len(pollable), every=None) as bar:

            def show(r: PollReport) -> None:
                bar.message(_report_line(r))
                bar.advance(detail=r.feed)

            try:
                reports = m.poll(args.feed or None, force=True, on_report=show)
            except UnknownFeed as exc:
                print(f"monitor poll: no feed named {exc.args[0]} in {config_path(args.config)}", file=sys.stderr)
                return EXIT_FAILED
        stats = m.deliver()
    print(f"alerts: {stats.sent} sent, {stats.retried} to retry, {stats.dead} dead", file=sys.stderr)
    if reports and all(r.status == "error" for r in reports):
        return EXIT_FAILED
    return EXIT_OK


def _report_line(r: PollReport) -> str:
    detail = r.error or f"{r.entries} entries, {r.new_items} new, {r.known} known" + (
        f", {r.failed} failed" if r.failed else ""
    )
    return f"{r.feed}: {r.status}: {detail}"


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


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from monitor.demo import run_demo

    result = run_demo(Path.cwd(), sys.stdout)
    if not result.ok:
        print("monitor demo: the sample was not processed as expected: see the lines above", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as m:
        feeds = m.store.feeds(include_removed=True)
        counts = m.store.item_counts()
    rows = [("NAME", "STATUS", "ERRORS", "ITEMS", "EVERY", "LAST POLL (UTC)", "NEXT POLL (UTC)", "LAST ERROR")]
    for f in feeds:
        assert f.id is not None
        rows.append(
            (
                f.name,
                f.status + (" paused" if f.paused_at else ""),
                str(f.error_count),
                str(counts.get(f.id, 0)),
                format_duration(f.interval_seconds) + ("" if f.configured_interval else "~"),
                f.last_polled_at.strftime("%Y-%m-%d %H:%M") if f.last_polled_at else "never",
                f.next_poll_at.strftime("%Y-%m-%d %H:%M"),
                f.last_error or "",
            )
        )
    _table(rows)
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    import json

    from monitor.config import FetchConfig
    from monitor.service import extract_sources

    path = config_path(args.config)
    # The configuration's [fetch] settings (allow_private, timeouts) when there is one.
    fetch = _load(args).fetch if args.config or path.exists() else FetchConfig()
    failed = 0
    for page in extract_sources(args.sources, fetch):
        failed += page.error is not None
        if args.json:
            print(json.dumps(page.as_json(), ensure_ascii=False))
            continue
        if page.error:
            print(f"{page.source}: {page.error}", file=sys.stderr)
            continue
        lang = f"{page.language} ({page.language_probability:.2f})" if page.language else "unknown"
        print(
            f"== {page.source}\nurl:      {page.url}\ntitle:    {page.title or ''}\nauthor:   {page.author or ''}\n"
            f"date:     {page.published_at.isoformat() if page.published_at else ''}\nlanguage: {lang}\n"
            f"words:    {len(page.text.split())}\n\n{page.text}\n"
        )
    return EXIT_FAILED if failed == len(args.sources) else EXIT_OK


def cmd_items(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as m:
        items = m.store.items(args.limit)
    if not items:
        print("no items stored yet", file=sys.stderr)
    for item, feed in items:
        when = (item.published_at or item.fetched_at).strftime("%Y-%m-%d %H:%M")
        print(f"{item.id}\t{when}\t{item.language or '??'}\t{feed}\t{item.title or ''}\n\t{item.url}")
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    from alerts.outbox import channel_health, list_deliveries, requeue

    with _open(args, read_only=args.retry is None) as m:
        engine = m.store.engine
        if args.retry is not None:
            problem = requeue(engine, args.retry)
            if problem:
                print(f"monitor alerts retry: {problem}", file=sys.stderr)
                return EXIT_FAILED
            print(f"delivery {args.retry} re-queued; it is sent at the next tick")
            return EXIT_OK
        rows = list_deliveries(engine, args.status, args.limit)
        health = channel_health(engine)
    for channel, error in sorted(health.items()):
        if error:
            print(f"channel {channel}: UNHEALTHY: {error}", file=sys.stderr)
    if not rows:
        print("no deliveries" + (f" with status {args.status}" if args.status else ""), file=sys.stderr)
        return EXIT_OK
    table = [["ID", "STATUS", "TRIES", "CHANNEL", "RULE", "KIND", "WHEN", "TITLE / ERROR"]]
    for r in rows:
        d = r.delivery
        when = (d.sent_at or d.next_attempt_at).strftime("%Y-%m-%d %H:%M")
        detail = (r.title or "")[:60]
        if d.last_error and d.status != "sent":
            detail += f"  [{d.error_kind or 'error'}: {d.last_error[:120]}]"
        if d.note:
            detail += f"  [note: {d.note[:120]}]"
        status = f"{d.status}:{d.hold}" if d.hold and d.status in ("held", "digested") else d.status
        table.append([str(d.id), status, str(d.attempts), d.channel, d.rule, d.kind, when, detail])
    _table(table)
    return EXIT_OK


def cmd_stories(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as m:
        stories = m.store.stories(args.limit)
    if not stories:
        print("no stories stored yet", file=sys.stderr)
    for st in stories:
        span = f"{st.first_seen_at:%Y-%m-%d %H:%M} – {st.last_seen_at:%Y-%m-%d %H:%M}"
        print(
            f"story {st.id}\t{span}\t{st.item_count} items, {st.source_count} sources\t"
            f"{','.join(st.languages) or '??'}\t{st.title or ''}"
        )
        for it in st.items:
            dup = f" (copy of {it.duplicate_of})" if it.duplicate_of else ""
            rev = f" rev {it.revision}" if it.revision > 1 else ""
            print(f"\t{it.id}\t{it.language or '??'}\t{it.feed}\t{it.title or ''}{dup}{rev}\n\t\t{it.url}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    import json

    from monitor.explain import explain, load_facts, render

    with _open(args, read_only=True) as m:
        facts = load_facts(m.store.engine, args.item)
        if facts is None:
            print(
                f"monitor explain: no stored item has the id or URL {args.item!r} "
                "(as its URL, canonical URL or a source's URL): it was never stored. "
                "See `monitor feeds` for the feed's last error, and the log for the entry.",
                file=sys.stderr,
            )
            return EXIT_FAILED
        expl = explain(facts, m.pipeline.rules, m.pipeline.policies)
    print(json.dumps(expl.as_json(), ensure_ascii=False, indent=2) if args.json else render(expl))
    return EXIT_OK


def _since(value: str) -> datetime:
    """`2026-01-06` (UTC), an ISO timestamp, or a duration back from now (`7d`, `12h`)."""
    try:
        d = datetime.fromisoformat(value)
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (2026-01-06), a timestamp or a duration back from now (7d, 12h), got {value!r}"
        ) from None


def cmd_query(args: argparse.Namespace) -> int:
    """`monitor rules test` and `monitor search`: the pipeline's matcher over stored items."""
    import json

    from monitor.rules import QuerySyntaxError, parse_query
    from monitor.search import search

    try:
        parse_query(args.query)
    except QuerySyntaxError as exc:
        print(f"monitor {args.command}: query error: {exc.render()}", file=sys.stderr)
        return EXIT_CONFIG
    with _open(args, read_only=True) as m:
        hits = search(
            m.store.engine,
            args.query,
            args.since,
            stem=args.stem,
            fuzzy=args.fuzzy,
            languages=tuple(args.lang or ()),
            limit=args.limit,
        )
        count = 0
        for hit in hits:
            count += 1
            if args.json:
                print(json.dumps(hit.as_json(), ensure_ascii=False))
                continue
            when = hit.published_at.strftime("%Y-%m-%d %H:%M") if hit.published_at else "?"
            print(f"{hit.item_id}\tstory {hit.story_id}\t{when}\t{hit.language or '??'}\t{hit.feed}\t{hit.title or ''}")
            print(f"\t{hit.url}\n\tmatched: {', '.join(hit.terms)}\n\t{hit.snippet}")
    if not args.json:
        print(f"{count} matching item{'s' if count != 1 else ''}", file=sys.stderr)
    return EXIT_OK


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _duration(value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return n


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the command (`monitor check --config x`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="configuration file (default: $MONITOR_CONFIG or ./feeds.toml)"
    )
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    common.add_argument(
        "--log-format",
        default=argparse.SUPPRESS,
        choices=["text", "json"],
        help="log lines as text or as one JSON object per line (default $MONITOR_LOG_FORMAT or text)",
    )
    p = argparse.ArgumentParser(
        prog="monitor", parents=[common], description="Poll news feeds, store articles, alert on keyword rules."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, help: str, func: Any) -> argparse.ArgumentParser:
        s: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=[common]
        )
        s.set_defaults(func=func)
        return s

    command(sub, "run", "run the daemon: poll feeds on schedule and send alerts until SIGTERM or SIGINT", cmd_run)
    s = command(sub, "poll", "poll every feed now (or the named ones), process, deliver alerts, exit", cmd_poll)
    s.add_argument("--once", action="store_true", help="poll once and exit (the only mode; accepted for clarity)")
    s.add_argument("--feed", action="append", metavar="NAME", help="only this feed (repeatable)")
    s = command(
        sub,
        "feeds",
        "list feeds with status, errors, item count and schedule; import, export, pause, resume, revive",
        cmd_feeds,
    )
    fsub = s.add_subparsers(dest="feeds_command", required=False, metavar="FEEDS_COMMAND")
    s = command(fsub, "import", "append the feeds of an OPML file to the configuration file", cmd_feeds_import)
    s.add_argument("file", metavar="FILE.opml", help="an OPML subscription list (from a feed reader)")
    s = command(fsub, "export", "write the configured feeds as OPML 2.0", cmd_feeds_export)
    s.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    for name, help_, func in (
        ("pause", "stop polling a feed until it is resumed", cmd_feeds_pause),
        ("resume", "poll a paused feed again, from now", cmd_feeds_resume),
        ("revive", "put a gone feed (410) back to new, polled at the next tick", cmd_feeds_revive),
    ):
        command(fsub, name, help_, func).add_argument("name", metavar="NAME", help="the feed's name")
    s = command(sub, "items", "list the newest stored items (read-only)", cmd_items)
    s.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    s = command(sub, "stories", "list recent stories with their items and sources; merge, split", cmd_stories)
    s.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    ssub = s.add_subparsers(dest="stories_command", required=False, metavar="STORIES_COMMAND")
    s = command(ssub, "merge", "move every item of story B into story A", cmd_stories_merge)
    s.add_argument("target", metavar="A", type=int, help="the story that stays")
    s.add_argument("merged", metavar="B", type=int, help="the story whose items move into A")
    s = command(ssub, "split", "move an item (and its near-duplicates) into a new story of its own", cmd_stories_split)
    s.add_argument("item", metavar="ITEM_ID", type=int, help="the item to move out of its story")
    s = command(
        sub, "alerts", "list alert deliveries and channel health; `alerts retry ID` re-queues a dead one", cmd_alerts
    )
    s.add_argument("action", nargs="?", choices=["retry"], help="retry: re-queue the dead delivery ID")
    s.add_argument("id", nargs="?", type=int, help="the delivery to retry")
    s.add_argument(
        "--status",
        choices=["pending", "sending", "sent", "dead", "held", "digested"],
        help="only deliveries in this state",
    )
    s.add_argument("--limit", type=_positive, default=50, help="how many (default 50)")

    def query_options(s: argparse.ArgumentParser) -> None:
        s.add_argument("query", metavar="QUERY", help="a rule query, e.g. '\"garanties de sécurité\" AND lang:fr'")
        s.add_argument("--since", type=_since, help="only items fetched since: 2026-01-06, a timestamp, or 7d")
        s.add_argument("--json", action="store_true", help="one JSON object per matching item")
        s.add_argument("--stem", action="store_true", help="stem words in the item's language, as `stem = true`")
        s.add_argument("--fuzzy", type=int, choices=[0, 1], default=0, help="one typo in terms of 5+ letters")
        s.add_argument("--lang", action="append", metavar="CODE", help="only items in this language (repeatable)")
        s.add_argument("--limit", type=_positive, help="stop after N matching items")

    s = command(sub, "rules", "work on keyword rules", lambda _args: EXIT_OK)
    rsub = s.add_subparsers(dest="rules_command", required=True, metavar="RULES_COMMAND")
    query_options(
        command(rsub, "test", "run a query over the stored items and print what would match, with snippets", cmd_query)
    )
    s = command(rsub, "mute", "queue no alerts for a rule for a while (matches are still recorded)", cmd_rules_mute)
    s.add_argument("name", metavar="NAME", help="the rule's name")
    s.add_argument(
        "--for", dest="duration", required=True, type=_duration, metavar="DURATION", help="how long: 30m, 2h, 1d"
    )
    s.add_argument("--reason", help="why, for the record")
    s = command(rsub, "unmute", "end a rule's mute", cmd_rules_unmute)
    s.add_argument("name", metavar="NAME", help="the rule's name")
    s = command(
        rsub,
        "backfill",
        "match a configured rule over the stored items and record its matches (no alerts)",
        cmd_rules_backfill,
    )
    s.add_argument("name", metavar="NAME", help="the rule's name in the configuration")
    s.add_argument("--since", type=_since, help="only items fetched since: 2026-01-06, a timestamp, or 7d")
    query_options(command(sub, "search", "search the stored items with the rule query language", cmd_query))
    s = command(
        sub,
        "explain",
        "why an article did or did not alert: its feeds, text, language, dedupe, story, rules and alerts",
        cmd_explain,
    )
    s.add_argument("item", metavar="URL_OR_ITEM_ID", help="an item id, or a URL (the article's or a copy's)")
    s.add_argument("--json", action="store_true", help="the same as a JSON object")
    command(sub, "check", "validate the configuration without running (no network, no database)", cmd_check)
    command(
        sub,
        "demo",
        "poll a bundled sample of feeds served on 127.0.0.1 (no network), print the alerts, keep ./demo.db",
        cmd_demo,
    )
    s = command(
        sub,
        "extract",
        "extract pages (files or URLs) as the pipeline would, to see why a page came out as it did",
        cmd_extract,
    )
    s.add_argument("sources", nargs="+", metavar="PATH_OR_URL", help="HTML files or http(s) URLs")
    s.add_argument("--json", action="store_true", help="one JSON object per page")
    s = command(sub, "db", "database maintenance", lambda _args: EXIT_OK)
    dbsub = s.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    command(dbsub, "upgrade", "create or upgrade the schema (also done at every start)", cmd_db_upgrade)
    s = command(dbsub, "prune", "apply [storage] keep_text_days and keep_items_days now", cmd_db_prune)
    s.add_argument("--dry-run", action="store_true", help="only count what would be pruned")
    s = command(dbsub, "backup", "copy the SQLite database consistently while the daemon runs", cmd_db_backup)
    s.add_argument("path", metavar="PATH", help="the copy's file (or a directory)")
    command(
        sub,
        "healthcheck",
        "exit 0 if the database answers and the daemon's heartbeat is recent, else 1 with the reason",
        cmd_healthcheck,
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "alerts":
        if (args.action is None) != (args.id is None):
            parser.error("usage: monitor alerts retry ID")
        args.retry = args.id
    args.config = getattr(args, "config", None)
    args.log_level = getattr(args, "log_level", "INFO")
    args.log_format = getattr(args, "log_format", None) or os.environ.get("MONITOR_LOG_FORMAT") or "text"
    if args.log_format not in ("text", "json"):
        parser.error(f"MONITOR_LOG_FORMAT must be text or json, got {args.log_format!r}")
    from monitor.logs import setup

    setup(args.log_level, args.log_format)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print("configuration errors:" if len(exc.problems) > 1 else "configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except NoDatabase as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        # A database that does not answer, or a driver that is not installed.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"monitor {args.command}: database error: {message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
