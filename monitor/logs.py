"""Logging: `--log-format text|json`, `--log-level`, and secrets redacted from every line.

JSON logs are one object per line (`ts`, `level`, `logger`, `message`, and
`feed`, `rule`, `channel` when the record carries them, `exc` for a
traceback), for journald, Docker and log shippers. Whatever the format, a
filter on the handler replaces every configured secret (SMTP passwords,
Slack webhook URLs, webhook secrets and URLs, the database password) with
`[REDACTED]` in the message and the traceback: an exception that quotes a
URL or a connection string must not leak it into the logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.config import Config

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"
# Secrets shorter than this are not redacted: replacing "a" everywhere helps no one.
MIN_SECRET = 6
CONTEXT_FIELDS = ("feed", "rule", "channel", "item_id", "delivery_id")
FEED_PREFIX = re.compile(r"feed (\S+): ")
DEFAULT_SECRET_VARIABLES = ("MONITOR_SMTP_PASSWORD", "MONITOR_SLACK_WEBHOOK_URL", "MONITOR_WEBHOOK_SECRET")
NOISY = ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan", "alembic")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        # Every line about a feed starts "feed NAME: ": the field, for filtering by feed.
        if "feed" not in out and (m := FEED_PREFIX.match(out["message"])):
            out["feed"] = m.group(1)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactSecrets(logging.Filter):
    """Replace every known secret in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET)

    def redact(self, value: str) -> str:
        # Longest first: a webhook URL is redacted whole, not just its token part.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def secrets_of(config: Config | None, environ: Mapping[str, str]) -> set[str]:
    """The secret values a configuration uses: from the variables its channels
    name (or their defaults), secret-looking values written in the file
    (webhook URLs), and the database URL's password."""
    found: set[str] = set()
    variables = set(DEFAULT_SECRET_VARIABLES)
    urls = [environ.get("MONITOR_DATABASE_URL", "")]
    if config is not None:
        urls.append(config.database_url)
        for channel in config.channels.values():
            for key, value in channel.options.items():
                if key.endswith("_env") and isinstance(value, str):
                    variables.add(value)
                elif key in ("webhook_url", "url", "password", "secret") and isinstance(value, str):
                    found.add(value)
    for name in variables:
        if environ.get(name):
            found.add(environ[name])
    for url in urls:
        if url:
            try:
                from sqlalchemy.engine import make_url

                password = make_url(url).password
            except Exception:  # not a URL: nothing to hide in it
                password = None
            if password:
                found.add(str(password))
    return found


_filter = RedactSecrets()


def setup(level: str = "INFO", fmt: str = "text", stream: Any = None) -> logging.Handler:
    """Configure the root logger: one handler on stderr with the secret filter."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_filter)
    _filter.add(secrets_of(None, os.environ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))
    return handler


def protect(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """Redact the secrets of `config` from every log line from now on."""
    _filter.add(secrets_of(config, os.environ if environ is None else environ))
