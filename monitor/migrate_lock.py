"""Schema upgrades under a lock, so several workers starting at once upgrade once.

Every `monitor run` upgrades the schema at start (`storage.db.upgrade`). Two
workers starting together on a fresh PostgreSQL database would both see no
`alembic_version` and both create the tables; one fails. With the lock, the
second waits, then finds the schema at head and does nothing.

- PostgreSQL: a session-level advisory lock (`pg_advisory_lock`), held on a
  connection of its own around the upgrade and released after it (or by the
  server when the connection drops: a crashed worker cannot leave it held).
- SQLite: an exclusive `flock` on a file next to the database
  (`monitor.db.migrate-lock`); the kernel releases it when the process dies.
  (SQLite's own write lock cannot be held around Alembic, which needs the
  write lock itself on its own connection.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from storage.db import upgrade

# Any 64-bit key no other application uses on the database: "migrate" in ASCII.
MIGRATE_LOCK = int.from_bytes(b"migrate", "big")


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock for the block."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATE_LOCK})
            conn.commit()  # the lock is the session's; do not sit idle in a transaction
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATE_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if backend != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        yield
        return
    lock_path = Path(database).expanduser().absolute().with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def upgrade_locked(engine: Engine, revision: str = "head") -> None:
    """`storage.db.upgrade` under the migration lock."""
    with migration_lock(engine):
        upgrade(engine, revision)
