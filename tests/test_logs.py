"""Logs (issue 9): JSON lines, levels, and secrets redacted from every line."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.logs import REDACTED, JsonFormatter, RedactSecrets, protect, secrets_of, setup

SITECUSTOM = str(Path(__file__).parent / "sitecustom")
CONFIG = """
[storage]
url = "postgresql+psycopg://monitor:db-pa55word@127.0.0.1/monitor"

[alerts.desk]
type = "email"
smtp_host = "smtp.example.org"
username = "monitor"
password_env = "DESK_SMTP_PASSWORD"
from = "monitor@example.org"
to = ["desk@example.org"]

[alerts.slack]

[alerts.tooling]
type = "webhook"
url = "https://tools.example.org/hook?token=tok-123456"
"""
ENV = {
    "DESK_SMTP_PASSWORD": "smtp-secret-1",
    "MONITOR_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ123",
    "MONITOR_WEBHOOK_SECRET": "hmac-secret-9",
}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_secrets_of_a_config() -> None:
    config = parse_config(CONFIG, "feeds.toml", ENV)
    assert secrets_of(config, ENV) == {
        "smtp-secret-1",
        "https://hooks.slack.com/services/T0/B0/XYZ123",
        "hmac-secret-9",
        "https://tools.example.org/hook?token=tok-123456",
        "db-pa55word",
    }


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("monitor.pipeline", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_with_context() -> None:
    line = JsonFormatter().format(_record("feed %s: %s", "lemonde", "timeout", feed="lemonde"))
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "monitor.pipeline"
    assert data["message"] == "feed lemonde: timeout" and data["feed"] == "lemonde"
    assert data["ts"].endswith("+00:00") and "\n" not in line
    assert "feed" not in json.loads(JsonFormatter().format(_record("no context")))
    # The pipeline's lines name their feed in the message: the field follows from it.
    parsed = json.loads(JsonFormatter().format(_record("feed %s: %d entries, %d new", "kyiv-wire", 20, 3)))
    assert parsed["feed"] == "kyiv-wire"
    assert "feed" not in json.loads(JsonFormatter().format(_record("the feed went quiet: nothing new")))


def test_redaction_in_message_args_and_traceback() -> None:
    redact = RedactSecrets(["hmac-secret-9", "https://hooks.slack.com/services/T0/B0/XYZ123", "ab"])
    record = _record("posting to %s failed", "https://hooks.slack.com/services/T0/B0/XYZ123")
    assert redact.filter(record) and record.getMessage() == f"posting to {REDACTED} failed"
    try:
        raise RuntimeError("signature hmac-secret-9 rejected")
    except RuntimeError:
        record = _record("boom")
        record.exc_info = sys.exc_info()
    redact.filter(record)
    line = JsonFormatter().format(record)
    assert "hmac-secret-9" not in line and REDACTED in json.loads(line)["exc"]
    # Too short to redact sensibly: "ab" stays.
    record = _record("tab")
    redact.filter(record)
    assert record.getMessage() == "tab"


def test_setup_text_and_json(restore_logging: None) -> None:
    stream = io.StringIO()
    setup("WARNING", "json", stream)
    protect(parse_config(CONFIG, "feeds.toml", ENV), ENV)
    log = logging.getLogger("monitor.alerts")
    log.info("hidden at WARNING")
    log.error("smtp login with smtp-secret-1 refused", extra={"channel": "desk"})
    (line,) = stream.getvalue().splitlines()
    data = json.loads(line)
    assert data["message"] == f"smtp login with {REDACTED} refused" and data["channel"] == "desk"
    stream = io.StringIO()
    setup("DEBUG", "text", stream)
    logging.getLogger("monitor").debug("db at postgresql://monitor:db-pa55word@db/monitor")
    assert "db-pa55word" not in stream.getvalue() and " DEBUG monitor: db at" in stream.getvalue()
    with pytest.raises(ValueError, match="log format"):
        setup("INFO", "xml")


@pytest.mark.slow
def test_cli_json_logs(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text('[storage]\nurl = "sqlite:///monitor.db"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-m", "monitor", "--log-format", "json", "--log-level", "DEBUG", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert all(json.loads(line)["level"] for line in r.stderr.splitlines())
    env["MONITOR_LOG_FORMAT"] = "yaml"
    r = subprocess.run(
        [sys.executable, "-m", "monitor", "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "MONITOR_LOG_FORMAT must be text or json" in r.stderr
