from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import netblock  # noqa: E402
from httpserver import LocalServer  # noqa: E402
from newssite import NewsSite, build_site  # noqa: E402

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture(autouse=True)
def _no_traffic_off_machine() -> Iterator[None]:
    netblock.install()
    yield
    netblock.uninstall()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer().start()
    yield s
    s.stop()


@pytest.fixture
def site(server: LocalServer) -> NewsSite:
    return build_site(server)


def _postgres_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN):
            return None
    except Exception as exc:  # any failure means: no server to test against
        return f"no PostgreSQL server at 127.0.0.1:5432 ({exc.__class__.__name__}: {exc})"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    reason = _postgres_unavailable()
    if reason:
        if os.environ.get("MONITOR_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " and MONITOR_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    import psycopg

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on both engines."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))
