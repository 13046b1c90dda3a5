"""`monitor healthcheck` and the daemon's heartbeat.

The daemon writes the heartbeat file (`[metrics] heartbeat`, or
`$MONITOR_HEARTBEAT`) at every tick: one line with the UTC time of the tick
and the worker. The health check, run by Docker's HEALTHCHECK or a
supervisor, is healthy when the database answers and, if a heartbeat is
configured, the last tick is younger than `heartbeat_max_age`. A file, not a
table: the check needs no write access, and a daemon whose database is down
still shows it is alive (the database check reports that separately).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Config


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str  # one line: what is wrong, or what was checked


def write_heartbeat(path: str | Path, worker: str, now: datetime | None = None) -> None:
    """Record a tick: atomically, so a reader never sees half a line."""
    target = Path(path).expanduser().absolute()
    when = (now or datetime.now(UTC)).astimezone(UTC)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"{when.isoformat()} {worker}\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_heartbeat(path: str | Path) -> datetime | None:
    """The time of the last tick written to `path`; None if there is none or it is unreadable."""
    try:
        first = Path(path).expanduser().read_text(encoding="utf-8").split()
        when = datetime.fromisoformat(first[0])
    except (OSError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def heartbeat_health(path: str | Path, max_age: float, now: datetime) -> Health:
    """Whether the heartbeat at `path` is younger than `max_age` seconds at `now` (pure but for the read)."""
    when = read_heartbeat(path)
    if when is None:
        return Health(False, f"no heartbeat in {path}: the daemon has not ticked yet, or is not running")
    age = (now - when).total_seconds()
    if age > max_age:
        return Health(
            False, f"last heartbeat {age:.0f}s ago in {path} (more than {max_age:.0f}s): the daemon is stuck or stopped"
        )
    return Health(True, f"heartbeat {max(age, 0):.0f}s ago")


def check(config: Config, now: datetime | None = None) -> Health:
    """The database answers (and has our schema), and the heartbeat, if configured, is fresh."""
    from storage.db import make_engine

    now = now or datetime.now(UTC)
    engine = make_engine(config.database_url, create=False, pool_size=1)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM feeds LIMIT 1")).all()
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        first = (str(orig or exc).splitlines() or [type(exc).__name__])[0]
        return Health(False, f"database {where}: {first}")
    finally:
        engine.dispose()
    if config.metrics.heartbeat:
        beat = heartbeat_health(config.metrics.heartbeat, config.metrics.heartbeat_max_age, now)
        if not beat.ok:
            return beat
        return Health(True, f"database {where} answers; {beat.reason}")
    return Health(True, f"database {where} answers")
