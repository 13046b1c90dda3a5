"""Backups while writing, and schema upgrades under a lock (issue 9)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from monitor.backup import BackupError, backup, pg_dump_advice
from monitor.migrate_lock import migration_lock, upgrade_locked
from storage.db import current_revision, head_revision, make_engine


def _writer(path: Path, stop: threading.Event, started: threading.Event, counts: list[int]) -> None:
    """Another connection committing rows as fast as it can, in WAL mode as the daemon does."""
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    n = 0
    while not stop.is_set():
        with conn:
            conn.execute("INSERT INTO t (n, pad) VALUES (?, ?)", (n, "x" * 500))
            conn.execute("UPDATE total SET n = n + 1")
        n += 1
        if n == 200:
            started.set()
    counts.append(n)
    conn.close()


def test_backup_while_another_connection_writes(tmp_path: Path) -> None:
    db = tmp_path / "monitor.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (n INTEGER, pad TEXT)")
    conn.execute("CREATE TABLE total (n INTEGER)")
    conn.execute("INSERT INTO total VALUES (0)")
    conn.commit()
    conn.close()
    stop, started, counts = threading.Event(), threading.Event(), []
    writer = threading.Thread(target=_writer, args=(db, stop, started, counts))
    writer.start()
    try:
        assert started.wait(60)
        copies = [backup(f"sqlite:///{db}", tmp_path / f"copy{i}.db") for i in range(3)]
    finally:
        stop.set()
        writer.join()
    for result in copies:
        assert not Path(str(result.path) + "-wal").exists()
        copy = sqlite3.connect(result.path)
        rows, total = copy.execute("SELECT count(*), (SELECT n FROM total) FROM t").fetchone()
        # One commit's state: the two tables agree.
        assert rows == total and rows >= 200
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copy.close()
    assert counts and counts[0] >= 200
    # No partial files left behind.
    assert not list(tmp_path.glob("*.partial"))
    # A directory as destination: the database's own name in it.
    (tmp_path / "backups").mkdir()
    assert backup(f"sqlite:///{db}", tmp_path / "backups").path == tmp_path / "backups" / "monitor.db"


def test_backup_errors(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such database file"):
        backup(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "copy.db")
    db = tmp_path / "m.db"
    sqlite3.connect(db).close()
    with pytest.raises(BackupError, match="is the database itself"):
        backup(f"sqlite:///{db}", db)
    with pytest.raises(BackupError, match="no such directory"):
        backup(f"sqlite:///{db}", tmp_path / "nope" / "copy.db")
    with pytest.raises(BackupError, match="pg_dump --format=custom") as exc:
        backup("postgresql+psycopg://monitor:s3cret@127.0.0.1/monitor", tmp_path / "x")
    assert "s3cret" not in str(exc.value)
    assert "postgresql://monitor:***@127.0.0.1/monitor" in pg_dump_advice(
        "postgresql+psycopg://monitor:pw@127.0.0.1/monitor"
    )


def _upgrade_in_process(url: str, queue: multiprocessing.Queue[str]) -> None:
    try:
        engine = make_engine(url)
        upgrade_locked(engine)
        engine.dispose()
        queue.put("ok")
    except Exception as exc:  # reported to the test
        queue.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_concurrent_upgrades_of_a_fresh_database(backend: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url"))
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_upgrade_in_process, args=(url, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == ["ok"] * 3
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    assert "tombstones" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.postgres
def test_upgrade_waits_for_the_lock(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    done = threading.Event()

    def other() -> None:
        upgrade_locked(engine)
        done.set()

    with migration_lock(engine):
        t = threading.Thread(target=other)
        t.start()
        assert not done.wait(1.0)  # blocked while we hold the lock
        with engine.connect() as conn:
            assert "alembic_version" not in inspect(conn).get_table_names()
    t.join(120)
    assert done.is_set() and current_revision(engine) == head_revision()
    with engine.connect() as conn:  # the lock was released
        held = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert conn.execute(held).scalar_one() == 0
    engine.dispose()


def test_sqlite_upgrade_lock_serialises_threads(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    done = threading.Event()

    def other() -> None:
        upgrade_locked(engine)
        done.set()

    with migration_lock(engine):
        t = threading.Thread(target=other)
        t.start()
        assert not done.wait(0.5)
    t.join(60)
    assert done.is_set() and current_revision(engine) == head_revision()
    assert (tmp_path / "monitor.db.migrate-lock").exists()
    engine.dispose()
