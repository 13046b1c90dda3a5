"""`monitor db backup PATH`: a consistent copy of the SQLite database while the daemon runs.

SQLite's online backup API (`sqlite3.Connection.backup`) copies the pages of
one read transaction, so the copy is the database as of one commit, however
much the daemon writes meanwhile; in WAL mode the daemon is not blocked. The
whole copy is done in one step (`pages=-1`): a stepwise copy restarts each
time another connection writes, and may never finish on a busy database.
The copy goes to a temporary file next to PATH, is checked
(`PRAGMA quick_check`), and then replaces PATH, so PATH is never half written.

PostgreSQL has its own tool for this, which we do not reimplement:
`pg_dump` (see `BackupError` for the advice printed).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(Exception):
    """A backup that cannot be made; the message says why and what to do instead."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    pages: int
    size: int


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL; None for another database."""
    u = make_url(database_url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise BackupError(f"{database_url}: an in-memory database cannot be backed up")
    return Path(u.database).expanduser()


def pg_dump_advice(database_url: str) -> str:
    u = make_url(database_url)
    target = u.set(drivername="postgresql").render_as_string(hide_password=True)
    return (
        "PostgreSQL databases are backed up with PostgreSQL's own tools, while the daemon runs: "
        f"pg_dump --format=custom --file=monitor.dump '{target}' "
        "(restore with pg_restore --clean --dbname=...), or continuous archiving for point-in-time recovery"
    )


def backup(database_url: str, dest: str | Path) -> BackupResult:
    """Copy the SQLite database of `database_url` to `dest`. Raises BackupError
    (with pg_dump advice for PostgreSQL)."""
    source = sqlite_path(database_url)
    if source is None:
        raise BackupError(pg_dump_advice(database_url))
    if not source.exists():
        raise BackupError(f"{source}: no such database file")
    target = Path(dest).expanduser().absolute()
    if target.is_dir():
        target = target / source.name
    if target.exists() and os.path.samefile(target, source):
        raise BackupError(f"{target}: is the database itself; choose another path")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{source.absolute()}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst, pages=-1)
                # A self-contained file: no -wal next to it, readable by any SQLite.
                dst.execute("PRAGMA journal_mode=DELETE")
                check = dst.execute("PRAGMA quick_check").fetchone()
                if not check or check[0] != "ok":
                    raise BackupError(f"{target}: the copy does not pass PRAGMA quick_check: {check}")
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, target)
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: backup failed: {exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return BackupResult(target, pages, target.stat().st_size)
