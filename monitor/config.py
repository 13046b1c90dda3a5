"""Load and validate `feeds.toml`.

Every problem is collected, not just the first, so `monitor check` can list
them all at once; each message names the file, the line where we can find
it, and the key path (`feeds[2].url`, `rules.garanties.channels`).
Validation never touches the network: no DNS look-ups here.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.durations import parse_duration

DEFAULT_CONFIG = "feeds.toml"
DEFAULT_DATABASE_URL = "sqlite:///monitor.db"
CHANNEL_TYPES = ("console", "email", "slack", "webhook")
# Types whose sender exists in this version; the others are accepted by the
# schema but refused at check time rather than silently never delivered.
IMPLEMENTED_CHANNEL_TYPES = CHANNEL_TYPES
CHANNEL_KEYS = {
    "console": {"stream"},
    "email": {
        "smtp_host",
        "smtp_port",
        "security",
        "username",
        "from",
        "to",
        "password_env",
        "timeout",
        "ca_file",
        "local_hostname",
    },
    "slack": {"webhook_url", "webhook_url_env", "timeout", "min_interval"},
    "webhook": {"url", "secret_env", "timeout", "ca_file"},
}
DIGEST_PERIODS = ("hourly", "daily")
DEFAULT_MAX_ALERTS_PER_HOUR = 20
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(Exception):
    """All problems found in one configuration file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str
    interval: int | None = None  # seconds; None = schedule default
    language: str | None = None
    alert_on_backlog: bool = False  # alert on the entries present at the first poll too


@dataclass(frozen=True)
class RuleConfig:
    name: str
    query: str
    channels: tuple[str, ...]
    languages: tuple[str, ...] = ()  # empty: every language
    stem: bool = False
    fuzzy: int = 0
    max_alerts_per_hour: int = DEFAULT_MAX_ALERTS_PER_HOUR  # per channel; beyond it, the hourly digest
    digest: str | None = None  # "hourly" | "daily": a digest instead of one alert per story


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)  # the sender's options (no `type`, no `digest`)
    digest: str | None = None  # "hourly" | "daily": every rule's alerts on this channel as a digest


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 20.0
    max_bytes: int = 10 * 1024 * 1024
    user_agent: str | None = None
    allow_private: tuple[str, ...] = ()
    concurrency: int = 16
    per_host_concurrency: int = 1
    per_host_delay: float = 1.0
    robots: bool = True


@dataclass(frozen=True)
class ExtractConfig:
    processes: int | None = None  # None: one per core; 0: in the polling threads


@dataclass(frozen=True)
class ScheduleConfig:
    tick: int = 60
    default_interval: int = 1800  # before a feed's posting rate is known
    min_interval: int = 300
    max_interval: int = 86400
    # How long a worker's claim on a feed lasts without news from it (extended
    # while its poll goes on); a worker killed mid-poll frees its feeds after this.
    lease: int = 600


@dataclass(frozen=True)
class RetentionConfig:
    """`[storage] keep_text_days` / `keep_items_days`: None keeps forever (monitor.retention)."""

    keep_text_days: int | None = None  # then items.text is set to NULL; metadata, matches and stories stay
    keep_items_days: int | None = None  # then the item is deleted, leaving a tombstone


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]`: the Prometheus endpoint and the daemon's heartbeat (monitor.health, monitor.metrics)."""

    listen: str | None = None  # "127.0.0.1:9464": serve /metrics, /healthz, /readyz there
    heartbeat: str | None = None  # a file the daemon touches at every tick; `monitor healthcheck` reads it
    heartbeat_max_age: int = 900  # seconds: an older heartbeat means the daemon is stuck or gone


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    feeds: tuple[FeedConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    fetch: FetchConfig = FetchConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    extract: ExtractConfig = ExtractConfig()
    path: str | None = None
    retention: RetentionConfig = RetentionConfig()
    metrics: MetricsConfig = MetricsConfig()

    def feed(self, name: str) -> FeedConfig:
        for f in self.feeds:
            if f.name == name:
                return f
        raise KeyError(name)


def config_path(explicit: str | None = None) -> Path:
    """`--config` wins, then `MONITOR_CONFIG`, then `./feeds.toml`."""
    return Path(explicit or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    p = config_path(str(path) if path is not None else None)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found (set --config or MONITOR_CONFIG)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc}"]) from None
    return replace(parse_config(text, str(p), os.environ if env is None else env), path=str(p))


def parse_config(text: str, filename: str = DEFAULT_CONFIG, env: Any = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{filename}: invalid TOML: {exc}"]) from None
    v = _Validator(filename, text)
    config = v.config(data, env if env is not None else {})
    if v.problems:
        raise ConfigError(v.problems)
    return config


_TABLE_HEADER = re.compile(r"^\s*\[+\s*([^\[\]#]*?)\s*\]+\s*(#.*)?$")


class _Validator:
    def __init__(self, filename: str, text: str) -> None:
        self.environ: Any = {}
        self.filename = filename
        self.lines = text.splitlines()
        self._tables: dict[str, list[int]] | None = None  # header -> lines, see _line_of_table
        self.problems: list[str] = []

    # -- locating keys in the source, for messages users can act on --------

    def _line_of_table(self, header: str, index: int = 0) -> int | None:
        """The line of the `index`-th `[header]` or `[[header]]`, from an index built
        once: a file of thousands of feeds must not be rescanned for each."""
        if self._tables is None:
            self._tables = {}
            for no, line in enumerate(self.lines, 1):
                if m := _TABLE_HEADER.match(line):
                    self._tables.setdefault(m.group(1).strip(), []).append(no)
        found = self._tables.get(header.strip(), [])
        return found[index] if index < len(found) else None

    def _line_of_top_level(self, key: str) -> int | None:
        """First line that opens `key` as a table (`[key]`, `[key.x]`, `[[key]]`) or assigns it."""
        pattern = re.compile(r"^\s*(\[+\s*" + re.escape(key) + r"\s*[.\]]|" + re.escape(key) + r"\s*[.=])")
        for no, line in enumerate(self.lines, 1):
            if pattern.match(line):
                return no
        return None

    def _line_of_key(self, key: str, start: int | None) -> int | None:
        if start is None:
            return None
        pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for no in range(start, len(self.lines) + 1):
            line = self.lines[no - 1]
            if no > start and line.lstrip().startswith("["):
                break
            if pattern.match(line):
                return no
        return start

    def error(self, where: str, message: str, line: int | None) -> None:
        loc = f"{self.filename}:{line}" if line else self.filename
        self.problems.append(f"{loc}: {where}: {message}")

    # -- the schema -------------------------------------------------------

    def config(self, data: dict[str, Any], env: Any) -> Config:
        self.environ = env
        known = {"storage", "fetch", "schedule", "extract", "feeds", "rules", "alerts", "metrics"}
        for key in data:
            if key not in known:
                self.error(
                    key,
                    f"unknown key (expected one of: {', '.join(sorted(known))})",
                    self._line_of_top_level(key),
                )
        storage = self._table(data, "storage", {"url", "keep_text_days", "keep_items_days"})
        url = storage.get("url", DEFAULT_DATABASE_URL)
        problem = database_url_problem(url)
        if problem:
            self.error("storage.url", problem, self._line_of_key("url", self._line_of_table("storage")))
        if env.get("MONITOR_DATABASE_URL"):
            url = env["MONITOR_DATABASE_URL"]
            problem = database_url_problem(url)
            if problem:
                self.problems.append(f"environment: MONITOR_DATABASE_URL: {problem}")
        channels = self.channels(data.get("alerts", {}))
        retention = self.retention(storage)
        metrics = self.metrics(self._table(data, "metrics", {"listen", "heartbeat", "heartbeat_max_age"}), env)
        return Config(
            database_url=url,
            fetch=self.fetch(
                self._table(
                    data,
                    "fetch",
                    {
                        "timeout",
                        "max_bytes",
                        "user_agent",
                        "allow_private",
                        "concurrency",
                        "per_host_concurrency",
                        "per_host_delay",
                        "robots",
                    },
                )
            ),
            schedule=self.schedule(
                self._table(data, "schedule", {"tick", "default_interval", "min_interval", "max_interval", "lease"})
            ),
            extract=self.extract(self._table(data, "extract", {"processes"})),
            feeds=self.feeds(data.get("feeds", [])),
            rules=self.rules(data.get("rules", []), channels),
            channels=channels,
            retention=retention,
            metrics=metrics,
        )

    def _table(self, data: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
        table = data.get(name, {})
        line = self._line_of_table(name)
        if not isinstance(table, dict):
            self.error(name, "must be a table", line)
            return {}
        self._unknown_keys(name, table, allowed, line)
        return table

    def _digest(self, where: str, value: Any, line: int | None) -> str | None:
        """A `digest` setting: None when absent (or wrong, reported here)."""
        if value is None:
            return None
        if value not in DIGEST_PERIODS:
            self.error(
                f"{where}.digest",
                f"must be one of {', '.join(map(repr, DIGEST_PERIODS))}, got {value!r}",
                self._line_of_key("digest", line),
            )
            return None
        return str(value)

    def _duration(self, where: str, value: Any, line: int | None) -> int | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.error(where, str(exc), line)
            return None

    def _unknown_keys(self, where: str, table: dict[str, Any], allowed: set[str], line: int | None) -> None:
        for key in table:
            if key not in allowed:
                self.error(
                    f"{where}.{key}",
                    f"unknown key (expected one of: {', '.join(sorted(allowed))})",
                    self._line_of_key(key, line),
                )

    def _named_tables(
        self, raw: Any, array: str, allowed: set[str]
    ) -> Iterator[tuple[dict[str, Any], str, int | None, bool]]:
        """Each table of a `[[array]]` with its key path, line, and whether its
        name is valid and unique; type, unknown-key and name problems are reported here."""
        if not isinstance(raw, list):
            self.error(array, f"must be an array of tables: write [[{array}]]", self._line_of_table(array))
            return
        seen: dict[str, int] = {}
        for i, t in enumerate(raw):
            line = self._line_of_table(array, i)
            if not isinstance(t, dict):
                self.error(f"{array}[{i}]", "must be a table", line)
                continue
            name = t.get("name")
            where = f"{array}[{i}]" + (f" ({name})" if isinstance(name, str) else "")
            self._unknown_keys(where, t, allowed, line)
            ok = True
            if not isinstance(name, str) or not NAME_RE.match(name):
                message = "required" if name is None else f"{name!r} is not a valid name"
                self.error(
                    f"{where}.name",
                    f"{message}: use letters, digits, '-', '_' or '.' (no spaces)",
                    self._line_of_key("name", line),
                )
                ok = False
            elif name in seen:
                self.error(
                    f"{where}.name",
                    f"duplicate name {name!r} (first at {array}[{seen[name]}])",
                    self._line_of_key("name", line),
                )
                ok = False
            else:
                seen[name] = i
            yield t, where, line, ok

    def _number(
        self, table: str, t: dict[str, Any], key: str, default: float, minimum: float, integer: bool = False
    ) -> float:
        value = t.get(key, default)
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or value < minimum:
            kind = "an integer" if integer else "a number"
            self.error(
                f"{table}.{key}",
                f"must be {kind} of at least {minimum:g}, got {value!r}",
                self._line_of_key(key, self._line_of_table(table)),
            )
            return default
        return float(value)

    def fetch(self, t: dict[str, Any]) -> FetchConfig:
        line = self._line_of_table("fetch")
        d = FetchConfig()
        ua = t.get("user_agent")
        if ua is not None and (not isinstance(ua, str) or not ua.strip()):
            self.error("fetch.user_agent", "must be a non-empty string", self._line_of_key("user_agent", line))
            ua = None
        robots = t.get("robots", d.robots)
        if not isinstance(robots, bool):
            self.error("fetch.robots", "must be true or false", self._line_of_key("robots", line))
            robots = d.robots
        allow: list[str] = []
        raw = t.get("allow_private", [])
        if not isinstance(raw, list):
            self.error(
                "fetch.allow_private", "must be a list of CIDR strings", self._line_of_key("allow_private", line)
            )
            raw = []
        for i, cidr in enumerate(raw):
            try:
                ipaddress.ip_network(str(cidr), strict=False)
                allow.append(str(cidr))
            except ValueError:
                self.error(
                    f"fetch.allow_private[{i}]",
                    f"not a network in CIDR notation: {cidr!r}",
                    self._line_of_key("allow_private", line),
                )
        return FetchConfig(
            timeout=self._number("fetch", t, "timeout", d.timeout, 0.001),
            max_bytes=int(self._number("fetch", t, "max_bytes", d.max_bytes, 1024, integer=True)),
            user_agent=ua,
            allow_private=tuple(allow),
            concurrency=int(self._number("fetch", t, "concurrency", d.concurrency, 1, integer=True)),
            per_host_concurrency=int(
                self._number("fetch", t, "per_host_concurrency", d.per_host_concurrency, 1, integer=True)
            ),
            per_host_delay=self._number("fetch", t, "per_host_delay", d.per_host_delay, 0),
            robots=robots,
        )

    def retention(self, t: dict[str, Any]) -> RetentionConfig:
        line = self._line_of_table("storage")
        days: dict[str, int | None] = {}
        for key in ("keep_text_days", "keep_items_days"):
            value = t.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                self.error(
                    f"storage.{key}",
                    f"must be a whole number of days of at least 1, got {value!r} (leave it out to keep forever)",
                    self._line_of_key(key, line),
                )
                value = None
            days[key] = value
        text, items = days["keep_text_days"], days["keep_items_days"]
        if text is not None and items is not None and text > items:
            self.error(
                "storage.keep_text_days",
                f"{text} is more than keep_items_days ({items}): items are deleted before their text would be pruned",
                self._line_of_key("keep_text_days", line),
            )
        return RetentionConfig(keep_text_days=text, keep_items_days=items)

    def metrics(self, t: dict[str, Any], env: Any) -> MetricsConfig:
        line = self._line_of_table("metrics")
        d = MetricsConfig()
        listen = t.get("listen")
        if listen is not None:
            problem = listen_problem(listen)
            if problem:
                self.error("metrics.listen", problem, self._line_of_key("listen", line))
                listen = None
        heartbeat = t.get("heartbeat")
        if heartbeat is not None and (not isinstance(heartbeat, str) or not heartbeat.strip()):
            self.error("metrics.heartbeat", "must be a file path", self._line_of_key("heartbeat", line))
            heartbeat = None
        if env.get("MONITOR_HEARTBEAT"):
            heartbeat = env["MONITOR_HEARTBEAT"]
        max_age = self._duration(
            "metrics.heartbeat_max_age",
            t.get("heartbeat_max_age", d.heartbeat_max_age),
            self._line_of_key("heartbeat_max_age", line),
        )
        return MetricsConfig(listen=listen, heartbeat=heartbeat, heartbeat_max_age=max_age or d.heartbeat_max_age)

    def extract(self, t: dict[str, Any]) -> ExtractConfig:
        if "processes" not in t:
            return ExtractConfig()
        return ExtractConfig(processes=int(self._number("extract", t, "processes", 0, 0, integer=True)))

    def schedule(self, t: dict[str, Any]) -> ScheduleConfig:
        line = self._line_of_table("schedule")
        d = ScheduleConfig()
        values = {}
        for key in ("tick", "default_interval", "min_interval", "max_interval", "lease"):
            values[key] = self._duration(f"schedule.{key}", t.get(key, getattr(d, key)), self._line_of_key(key, line))
        config = ScheduleConfig(**{k: v or getattr(d, k) for k, v in values.items()})
        if config.min_interval > config.max_interval:
            self.error(
                "schedule.min_interval",
                "must not exceed schedule.max_interval",
                self._line_of_key("min_interval", line),
            )
        return config

    def feeds(self, raw: Any) -> tuple[FeedConfig, ...]:
        out: list[FeedConfig] = []
        for f, where, line, ok in self._named_tables(
            raw, "feeds", {"name", "url", "interval", "language", "alert_on_backlog"}
        ):
            name = f.get("name")
            url = f.get("url")
            problem = url_problem(url)
            if problem:
                self.error(f"{where}.url", problem, self._line_of_key("url", line))
                ok = False
            interval = None
            if "interval" in f:
                interval = self._duration(f"{where}.interval", f["interval"], self._line_of_key("interval", line))
                ok = ok and interval is not None
            lang = f.get("language")
            if lang is not None and (not isinstance(lang, str) or not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z]+)?", lang)):
                self.error(
                    f"{where}.language",
                    "must be a language code such as 'fr' or 'uk'",
                    self._line_of_key("language", line),
                )
                ok = False
            backlog = f.get("alert_on_backlog", False)
            if not isinstance(backlog, bool):
                self.error(
                    f"{where}.alert_on_backlog", "must be true or false", self._line_of_key("alert_on_backlog", line)
                )
                ok = False
            if ok:
                assert isinstance(name, str) and isinstance(url, str)
                out.append(FeedConfig(name=name, url=url, interval=interval, language=lang, alert_on_backlog=backlog))
        return tuple(out)

    def channels(self, raw: Any) -> dict[str, ChannelConfig]:
        line0 = self._line_of_table("alerts")
        if not isinstance(raw, dict):
            self.error("alerts", "must be a table of channels: [alerts.NAME]", line0)
            return {}
        out: dict[str, ChannelConfig] = {}
        for name, t in raw.items():
            line = self._line_of_table(f"alerts.{name}")
            where = f"alerts.{name}"
            if not isinstance(t, dict):
                self.error(where, "must be a table", line)
                continue
            ctype = t.get("type", name if name in CHANNEL_TYPES else None)
            if ctype is None:
                self.error(
                    f"{where}.type",
                    f"required (one of: {', '.join(CHANNEL_TYPES)}) unless the channel is named after its type",
                    line,
                )
                continue
            if ctype not in CHANNEL_TYPES:
                self.error(
                    f"{where}.type",
                    f"unknown channel type {ctype!r} (one of: {', '.join(CHANNEL_TYPES)})",
                    self._line_of_key("type", line),
                )
                continue
            if ctype not in IMPLEMENTED_CHANNEL_TYPES:
                self.error(
                    f"{where}.type",
                    f"channel type {ctype!r} is not available in this version "
                    f"(available: {', '.join(IMPLEMENTED_CHANNEL_TYPES)})",
                    self._line_of_key("type", line),
                )
                continue
            digest = self._digest(where, t.get("digest"), line)
            options = {k: v for k, v in t.items() if k not in ("type", "digest")}
            allowed = CHANNEL_KEYS[ctype]
            bad = [key for key in options if key not in allowed]
            for key in bad:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.error(
                    f"{where}.{key}",
                    f"unknown key for a {ctype} channel ({hint}expected: type, digest, {', '.join(sorted(allowed))})",
                    self._line_of_key(key, line),
                )
            if ctype == "console":
                stream = options.get("stream", "stdout")
                if stream not in ("stdout", "stderr"):
                    self.error(f"{where}.stream", "must be 'stdout' or 'stderr'", self._line_of_key("stream", line))
            elif not bad:
                # Build it once now: missing keys, bad values and unset secrets are
                # reported by `monitor check`, not at the first alert.
                from alerts.channels import build_channels

                try:
                    build_channels({name: (ctype, options)}, self.environ)
                except ValueError as exc:
                    path, _, message = str(exc).partition(": ")
                    if not (path.startswith(where) and message):
                        path, message = where, str(exc)
                    self.error(path, message, self._line_of_key(path.rsplit(".", 1)[-1], line))
            out[name] = ChannelConfig(name=name, type=ctype, options=options, digest=digest)
        return out

    def rules(self, raw: Any, channels: dict[str, ChannelConfig]) -> tuple[RuleConfig, ...]:
        # Imported here: rules.py depends on nothing in config, and config
        # must report query syntax errors with the rule's name.
        from monitor.rules import QuerySyntaxError, parse_query

        out: list[RuleConfig] = []
        for r, where, line, ok in self._named_tables(
            raw,
            "rules",
            {"name", "query", "channels", "languages", "stem", "fuzzy", "max_alerts_per_hour", "digest"},
        ):
            name = r.get("name")
            query = r.get("query")
            if not isinstance(query, str) or not query.strip():
                self.error(f"{where}.query", "required: a non-empty string", self._line_of_key("query", line))
                ok = False
            else:
                try:
                    parse_query(query)
                except QuerySyntaxError as exc:
                    self.error(f"{where}.query", exc.render(), self._line_of_key("query", line))
                    ok = False
            chans = r.get("channels")
            if chans is None:
                self.error(
                    f"{where}.channels",
                    'required: the channels to alert, e.g. ["console"] ([] records matches without alerting)',
                    line,
                )
                ok = False
                chans = []
            elif not isinstance(chans, list) or not all(isinstance(c, str) for c in chans):
                self.error(f"{where}.channels", "must be a list of channel names", self._line_of_key("channels", line))
                ok = False
                chans = []
            for c in chans:
                if c not in channels:
                    close = difflib.get_close_matches(c, list(channels), n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"define [alerts.{c}]"
                    self.error(
                        f"{where}.channels", f"unknown channel {c!r} ({hint})", self._line_of_key("channels", line)
                    )
                    ok = False
            languages = r.get("languages", [])
            if not isinstance(languages, list) or not all(
                isinstance(x, str) and x.isalpha() and 2 <= len(x) <= 3 for x in languages
            ):
                self.error(
                    f"{where}.languages",
                    'must be a list of ISO 639-1 codes, e.g. ["fr", "en", "uk"]',
                    self._line_of_key("languages", line),
                )
                ok = False
                languages = []
            stem = r.get("stem", False)
            if not isinstance(stem, bool):
                self.error(f"{where}.stem", "must be true or false", self._line_of_key("stem", line))
                ok = False
            fuzzy = r.get("fuzzy", 0)
            if isinstance(fuzzy, bool) or fuzzy not in (0, 1):
                self.error(
                    f"{where}.fuzzy",
                    "must be 0 or 1 (edits allowed in terms of 5 letters or more)",
                    self._line_of_key("fuzzy", line),
                )
                ok = False
            budget = r.get("max_alerts_per_hour", DEFAULT_MAX_ALERTS_PER_HOUR)
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                self.error(
                    f"{where}.max_alerts_per_hour",
                    f"must be a whole number of at least 1, got {budget!r} "
                    "(alerts beyond it in an hour go to the hourly digest)",
                    self._line_of_key("max_alerts_per_hour", line),
                )
                ok = False
            digest = self._digest(where, r.get("digest"), line)
            ok = ok and (digest is not None or r.get("digest") is None)
            if ok:
                assert isinstance(name, str) and isinstance(query, str)
                out.append(
                    RuleConfig(
                        name=name,
                        query=query,
                        channels=tuple(chans),
                        languages=tuple(x.lower() for x in languages),
                        stem=bool(stem),
                        fuzzy=int(fuzzy),
                        max_alerts_per_hour=budget,
                        digest=digest,
                    )
                )
        return tuple(out)


def url_problem(url: Any) -> str | None:
    """Why `url` cannot be a feed URL, or None. Syntax only: no DNS."""
    if not isinstance(url, str) or not url.strip():
        return "required: an http:// or https:// URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc}): {url!r}"
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"has no host: {url!r}"
    if any(c.isspace() for c in url):
        return f"contains white space: {url!r}"
    return None


def listen_problem(value: Any) -> str | None:
    """Why `value` cannot be a `host:port` to listen on, or None."""
    if not isinstance(value, str):
        return f"must be a string such as '127.0.0.1:9464', got {value!r}"
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"must be host:port such as '127.0.0.1:9464', got {value!r}"
    return None


SUPPORTED_DATABASES = ("sqlite", "postgresql")


def database_url_problem(url: Any) -> str | None:
    """Why `url` cannot be our database URL, or None. Parsing only: no connection."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str) or not url.strip():
        return "must be a database URL such as sqlite:///monitor.db"
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return f"not a database URL: {url!r} (e.g. sqlite:///monitor.db or postgresql+psycopg://user@host/db)"
    if backend not in SUPPORTED_DATABASES:
        return f"database {backend!r} is not supported (use sqlite or postgresql)"
    return None
