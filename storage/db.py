"""Engines and migrations.

SQLite is the embedded default, set up so a user can run `sqlite3
monitor.db` while the daemon writes: WAL journal (readers never block the
writer), a busy timeout instead of instant "database is locked" errors, and
foreign keys enforced. PostgreSQL needs nothing special here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# Storing an item reads and writes index pages all over a database of a few GB
# (32 random `lsh_bands` keys per item, the URL and hash indexes, FTS5): with
# SQLite's default 2 MiB page cache most of them are read again for each item.
# The cache is per connection and grows only as pages are used; mmap lets reads
# of pages not in it skip a system call and a copy (issue 5; benchmarks/dedupe.py:
# about 0.5 ms less per stored item at 100k items). Writes still go through the WAL.
CACHE_MIB = 64
MMAP_BYTES = 256 * 2**20
# A checkpoint every 8,000 WAL pages (32 MiB) rather than 1,000: an item dirties
# about 80 pages, half of them the same tail pages of tables and indexes as
# the item before (one copy per checkpoint), and each checkpoint ends with an
# fsync of the database. The WAL file is cut back to 64 MiB after one.
WAL_CHECKPOINT_PAGES = 8000
WAL_SIZE_LIMIT = 64 * 2**20


class NoDatabase(Exception):
    """The database has no schema yet (or, for SQLite, no file)."""


def make_engine(url: str, create: bool = True, pool_size: int = 5) -> Engine:
    """An engine for `url`; with `create=False` a SQLite file is opened
    read-only and never created."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = u.database
        on_disk = bool(path) and path != ":memory:"
        if create and on_disk:
            Path(str(path)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if not create and on_disk:
            target = Path(str(path)).expanduser().absolute()
            engine = create_engine(
                f"sqlite:///file:{target}?mode=ro&uri=true",
                connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
                pool_size=pool_size,
            )
        else:
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if create:  # setting the journal mode writes to the file
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA cache_size=-{CACHE_MIB * 1024}")
            cur.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            cur.close()

        return engine
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2, which we do not install.
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, pool_pre_ping=True, pool_size=pool_size)


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()
