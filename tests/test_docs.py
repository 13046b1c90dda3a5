"""Documentation is tested: the README's SQL runs, every command and column is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from newssite import NewsSite, config_toml
from sqlalchemy import text
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from monitor.cli import build_parser
from monitor.config import load_config
from monitor.service import Monitor

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SQL_BLOCKS = re.findall(r"```sql\n(.*?)```", README, re.S)
ENGINE_SQL = re.findall(r"```sql (sqlite|postgresql)\n(.*?)```", README, re.S)


def test_readme_has_sql_examples() -> None:
    assert len(SQL_BLOCKS) >= 5


@pytest.mark.slow
def test_readme_sql_runs_on_a_populated_database(tmp_path: Path, db_url: str, site: NewsSite) -> None:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(config_toml(db_url, {"quotidien-fr": site.rss_url, "world-wire": site.atom_url}), encoding="utf-8")
    with Monitor.open(load_config(cfg)) as m:
        m.poll(force=True)
        with m.store.engine.connect() as conn:
            results = [conn.execute(text(sql.strip().rstrip(";"))).fetchall() for sql in SQL_BLOCKS]
            dialect = conn.dialect.name
            own = [conn.execute(text(sql.strip().rstrip(";"))).fetchall() for d, sql in ENGINE_SQL if d == dialect]
    assert all(results), "every example returns rows on the test data"
    assert len(own) >= 1 and all(own), f"every {dialect} example returns rows"
    languages = dict((r[0], r[1]) for r in results[1])
    assert languages["fr"] == 4
    multi = results[3]
    assert [(r[1], r[2]) for r in multi] == [(3, 2)]  # the main French article: 3 URLs in 2 feeds


def test_every_cli_command_is_in_the_readme() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        assert f"`monitor {name}" in README, name
        assert p.description or sub._choices_actions  # type: ignore[union-attr]
    helps = {a.dest: a.help for a in sub._choices_actions}  # type: ignore[union-attr]
    assert all(helps.values())


def test_every_column_is_documented() -> None:
    schema = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", schema, re.S | re.M))
    for table in SQLModel.metadata.sorted_tables:
        assert table.name in sections, table.name
        for column in table.columns:
            assert f"`{column.name}`" in sections[table.name], f"{table.name}.{column.name}"
