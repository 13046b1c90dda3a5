"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from storage.db import current_revision, head_revision, make_engine, upgrade

# The database's own objects, not the ORM's (migration 0008): full-text search.
DATABASE_ONLY = ("items_fts", "search_vector", "ix_items_search_vector")


def _orm_only(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (reflected and name is not None and name.startswith(DATABASE_ONLY))


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    upgrade(engine)  # a second run is a no-op
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _orm_only})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    assert set(inspect(engine).get_table_names()) >= {
        "feeds",
        "items",
        "item_sources",
        "stories",
        "matches",
        "deliveries",
    }
    engine.dispose()


def test_sqlite_is_wal_with_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()
