"""The Python API behind the CLI: open a configured monitor, poll, deliver.

with Monitor.open(load_config("feeds.toml")) as m:
    m.poll(force=True)
    m.deliver()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from alerts.channels import build_channels
from alerts.digest import build_digests
from alerts.outbox import DeliveryStats, Outbox
from alerts.policy import RulePolicy
from monitor import metrics
from monitor.config import Config, FetchConfig
from monitor.extract import extract_article
from monitor.fetch import NETWORK_KINDS, Fetcher, FetchError
from monitor.language import choose_language
from monitor.migrate_lock import upgrade_locked
from monitor.netguard import NetGuard, Resolver, system_resolver
from monitor.pipeline import Pipeline, PollReport
from monitor.politeness import HostQueue
from monitor.retention import run_retention_once
from monitor.rules import RuleSet, RuleSpec, compile_rules
from monitor.schedule import is_network_outage
from monitor.urls import host_of
from monitor.workers import ExtractPool, default_processes
from storage.db import NoDatabase, make_engine
from storage.models import Feed, utcnow
from storage.repository import FeedSpec, Store, lease_token

log = logging.getLogger(__name__)


def close_channels(channels: Iterable[object]) -> None:
    """Close the channels that hold connections (Slack, webhook): after a reload, at exit."""
    for channel in channels:
        close = getattr(channel, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing is tidying up: never a reason to fail
                log.debug("closing a channel failed", exc_info=True)


def feed_specs(config: Config) -> list[FeedSpec]:
    d = config.schedule.default_interval
    return [FeedSpec(f.name, f.url, f.interval, d, f.language, f.alert_on_backlog) for f in config.feeds]


def compiled_rules(config: Config) -> RuleSet:
    return compile_rules(RuleSpec(r.name, r.query, r.channels, r.languages, r.stem, r.fuzzy) for r in config.rules)


def rule_policies(config: Config) -> dict[str, RulePolicy]:
    """Each rule's alert budget and digest periods (its own, and its channels')."""
    return {
        r.name: RulePolicy(
            r.max_alerts_per_hour,
            r.digest,
            {c: period for c in r.channels if (period := config.channels[c].digest) is not None},
        )
        for r in config.rules
    }


class UnknownFeed(KeyError):
    pass


@dataclass
class TickReport:
    polls: list[PollReport]
    deliveries: DeliveryStats


class Monitor:
    def __init__(
        self, config: Config, store: Store, fetcher: Fetcher, outbox: Outbox, pipeline: Pipeline, stop: threading.Event
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.outbox = outbox
        self.pipeline = pipeline
        self.stop = stop

    @classmethod
    def open(cls, config: Config, read_only: bool = False, resolver: Resolver = system_resolver) -> Monitor:
        """Connect, upgrade the schema and make the `feeds` table follow the
        configuration. `read_only` does neither: for commands that only look,
        so that a smaller config file cannot mark a running daemon's feeds removed."""
        # One connection per polling worker and a few for the rest, so no worker waits on the pool.
        engine = make_engine(config.database_url, create=not read_only, pool_size=config.fetch.concurrency + 4)
        store = Store(engine)
        if read_only:
            if not store.has_schema():
                engine.dispose()
                raise NoDatabase(
                    f"no monitor database at {engine.url.render_as_string(hide_password=True)} yet: "
                    "run `monitor poll` or `monitor run` first"
                )
        else:
            upgrade_locked(engine)  # two workers starting at once do not both migrate
            store.sync_feeds(feed_specs(config))
        fetcher = Fetcher(config.fetch, guard=NetGuard(config.fetch.allow_private, resolver))
        stop = threading.Event()
        rules = compiled_rules(config)
        channels = build_channels({name: (c.type, c.options) for name, c in config.channels.items()})
        processes = config.extract.processes
        extractor = ExtractPool(default_processes() if processes is None else processes)
        pipeline = Pipeline(
            store,
            fetcher,
            rules,
            stop=stop,
            schedule=config.schedule,
            extractor=extractor,
            policies=rule_policies(config),
        )
        outbox = Outbox(
            engine, channels, lease=timedelta(seconds=config.schedule.lease), observe=metrics.observe_delivery
        )
        return cls(config, store, fetcher, outbox, pipeline, stop)

    def reconfigure(self, config: Config) -> list[str]:
        """Take a new configuration without a restart (SIGHUP): feeds added, changed
        and removed, rules, channels and alert policies replaced. Called between
        ticks. Returns the settings that changed but only apply after a restart."""
        old = self.config
        fixed = {
            "[storage] url": (old.database_url, config.database_url),
            "[fetch]": (old.fetch, config.fetch),
            "[extract]": (old.extract, config.extract),
            "[schedule]": (old.schedule, config.schedule),
            "[metrics]": (old.metrics, config.metrics),
        }
        # The sections the running threads, pools and leases were built from stay as they are.
        config = replace(
            config,
            database_url=old.database_url,
            fetch=old.fetch,
            extract=old.extract,
            schedule=old.schedule,
            metrics=old.metrics,
        )
        channels = build_channels({name: (c.type, c.options) for name, c in config.channels.items()})
        rules = compiled_rules(config)
        self.store.sync_feeds(feed_specs(config))
        self.pipeline.rules = rules
        self.pipeline.policies = rule_policies(config)
        retired, self.outbox.channels = self.outbox.channels, channels
        close_channels(retired.values())
        self.config = config
        return [name for name, (a, b) in fixed.items() if a != b]

    def close(self) -> None:
        close_channels(self.outbox.channels.values())
        self.pipeline.extractor.close()
        self.fetcher.close()
        self.store.engine.dispose()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(
        self,
        names: Iterable[str] | None = None,
        force: bool = False,
        on_report: Callable[[PollReport], None] | None = None,
    ) -> list[PollReport]:
        """Poll feeds (due ones, or all with `force`) until none is left or told to stop.
        `on_report` hears of each feed as soon as it is polled (from the polling threads)."""
        wanted: Sequence[str] | None = list(names) if names is not None else None
        if wanted is not None:
            configured = {f.name for f in self.config.feeds}
            missing = [n for n in wanted if n not in configured]
            if missing:
                raise UnknownFeed(", ".join(missing))
        # Claimed a batch at a time, so several workers share the due feeds; a feed
        # polled in this round is not claimed again in it (even with `force`).
        started = utcnow()
        lease = timedelta(seconds=self.config.schedule.lease)
        batch = max(8, 4 * self.config.fetch.concurrency)
        reports: list[PollReport] = []
        hosts: dict[str, str] = {}
        seen: set[int | None] = set()
        while not self.stop.is_set():
            token = lease_token()
            feeds = self.store.claim_feeds(utcnow(), token, lease, batch, wanted, force, polled_before=started)
            if not feeds or seen.issuperset(f.id for f in feeds):  # the latter: their polls could not be recorded
                self.store.release_feeds([f.id for f in feeds if f.id is not None], token)
                break
            seen.update(f.id for f in feeds)
            hosts.update((f.name, host_of(f.current_url)) for f in feeds)
            reports.extend(self._poll_batch(feeds, token, on_report))
        self._report_network_errors(reports, hosts)
        return reports

    def _poll_batch(
        self, feeds: list[Feed], token: str, on_report: Callable[[PollReport], None] | None = None
    ) -> list[PollReport]:
        queue = HostQueue(
            ((host_of(f.current_url), f) for f in feeds),
            self.fetcher.limiter,
            self.config.fetch.per_host_concurrency,
            self.stop,
        )
        workers = min(self.config.fetch.concurrency, len(feeds))
        reports: list[PollReport] = []
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
                done = pool.map(lambda q: self._worker(q, on_report), [queue] * workers)
                reports = [r for batch in done for r in batch]
        finally:
            polled = {r.feed for r in reports}
            # Claimed but not polled (stopping, the lease lost while queued, a failure): given back.
            self.store.release_feeds([f.id for f in feeds if f.name not in polled and f.id is not None], token)
        return reports

    def _worker(
        self, queue: HostQueue[Feed], on_report: Callable[[PollReport], None] | None = None
    ) -> list[PollReport]:
        reports = []
        while (taken := queue.take()) is not None:
            host, feed = taken
            try:
                if (report := self._poll_one(feed)) is not None:
                    reports.append(report)
                    if on_report is not None:
                        try:
                            on_report(report)
                        except Exception:  # a display problem must not end the round
                            log.exception("reporting the poll of feed %s failed", feed.name)
            finally:
                queue.done(host)
        return reports

    def _poll_one(self, feed: Feed) -> PollReport | None:
        if self.stop.is_set():
            return None
        assert feed.id is not None
        # A feed that waited in the queue renews its lease first: if that expired and
        # another worker took the feed meanwhile, it is that worker's to poll now.
        until = utcnow() + timedelta(seconds=self.config.schedule.lease)
        started = time.monotonic()
        try:
            if feed.lease_token is not None and not self.store.renew_feed_lease(feed.id, feed.lease_token, until):
                log.warning("feed %s: lease expired while queued and another worker took it; skipped", feed.name)
                return None
            report = self.pipeline.poll(feed)
            metrics.observe_poll(report.status, time.monotonic() - started, report.new_items)
            return report
        except Exception as exc:  # one feed's bug must not end the round for the others
            log.exception("feed %s: poll failed", feed.name)
            try:
                return self.pipeline.record_crash(feed, exc)
            except Exception:  # the database itself failed: the feed stays due, the round goes on
                log.exception("feed %s: could not record the failure", feed.name)
                return PollReport(
                    feed.name,
                    "error",
                    error=f"internal: {type(exc).__name__}: {exc}",
                    error_kind="internal",
                    feed_id=feed.id,
                )

    def _report_network_errors(self, reports: list[PollReport], hosts: dict[str, str]) -> None:
        """Connection and DNS failures: one line for an outage of our own, else one per feed."""
        failed = [r for r in reports if r.error_kind in NETWORK_KINDS]
        if not failed:
            return
        if is_network_outage([(hosts.get(r.feed, r.feed), r.error_kind) for r in reports]):
            retry = utcnow() + timedelta(seconds=self.pipeline.rng.uniform(60, 120))
            self.store.defer_after_outage([r.feed_id for r in failed if r.feed_id is not None], retry)
            log.error(
                "%d of %d feeds failed to connect or resolve: our network looks down, not theirs; "
                "retrying them from %s without counting it against the feeds (first: %s)",
                len(failed),
                len(reports),
                retry.isoformat(timespec="seconds"),
                failed[0].error,
            )
            return
        for r in failed:
            log.warning("feed %s: %s", r.feed, r.error)

    def deliver(self) -> DeliveryStats:
        """Queue the digests that are due, then send what is due."""
        try:
            build_digests(self.store.engine, self.pipeline.policies)
        except Exception:  # a digest that cannot be built now is built at the next tick
            log.exception("building digests failed; sending the rest")
        return self.outbox.deliver_due()

    def tick(self) -> TickReport:
        """One scheduler tick: poll what is due, then send what is due
        (alerts go out even when polling fails)."""
        try:
            polls = self.poll()
        except Exception:
            log.exception("polling failed; delivering alerts anyway")
            polls = []
        try:
            deliveries = self.deliver()
        except Exception:  # the next tick tries again; retention still gets its turn
            log.exception("delivering alerts failed")
            deliveries = DeliveryStats()
        report = TickReport(polls, deliveries)
        try:
            run_retention_once(self.store.engine, self.config)  # once a day, whichever worker comes first
        except Exception:
            log.exception("retention failed; it is tried again tomorrow")
        return report


@dataclass
class ExtractedPage:
    """What `monitor extract` shows for one page: what the pipeline would store."""

    source: str
    url: str
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    language_probability: float | None
    text: str
    text_source: str
    error: str | None = None
    site_name: str | None = None
    image_url: str | None = None
    language_source: str | None = None
    metadata_sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def failed(cls, source: str, error: str) -> ExtractedPage:
        return cls(source, source, None, None, None, None, None, "", "none", error=error)

    def as_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "title": self.title,
            "author": self.author,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "language": self.language,
            "language_probability": self.language_probability,
            "text": self.text,
            "text_source": self.text_source,
            "site_name": self.site_name,
            "image_url": self.image_url,
            "language_source": self.language_source,
            # where each metadata field came from: json-ld, og, meta or html
            "metadata_sources": self.metadata_sources,
            "error": self.error,
        }


def extract_sources(
    sources: Iterable[str], fetch: FetchConfig, resolver: Resolver = system_resolver
) -> Iterator[ExtractedPage]:
    """Extract pages given as files or URLs, in one process, as the pipeline would."""
    with Fetcher(fetch, guard=NetGuard(fetch.allow_private, resolver)) as fetcher:
        for source in sources:
            if source.startswith(("http://", "https://")):
                try:
                    resp = fetcher.get_page(source)
                except FetchError as exc:
                    yield ExtractedPage.failed(source, f"{exc.kind}: {exc}")
                    continue
                body, url = resp.body, resp.url
            else:
                path = Path(source)
                try:
                    body = path.read_bytes()
                except OSError as exc:
                    yield ExtractedPage.failed(source, f"cannot read: {exc}")
                    continue
                url = path.absolute().as_uri()
            article = extract_article(body, url)
            text = article.text or ""
            language, probability, language_source = choose_language(
                f"{article.title or ''}\n{text}", article.language, None
            )
            yield ExtractedPage(
                source,
                article.canonical_url or url,
                article.title,
                article.author,
                article.published_at,
                language,
                probability,
                text,
                "page" if text else "none",
                site_name=article.site_name,
                image_url=article.image_url,
                language_source=language_source,
                metadata_sources=article.meta_sources,
            )
