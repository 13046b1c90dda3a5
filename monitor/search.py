"""Run a rule query over the stored items: `monitor rules test` and `monitor search`.

Analysts write a rule by trying it on what is already stored, so this uses
the very matcher the pipeline uses (`monitor.rules`), with the same options
(stemming, typo tolerance, languages) and the same snippets. Items are read
in pages of ids, newest first, so memory stays flat on a large database.

The database's full-text index narrows the items to read (`items_fts` on
SQLite, `items.search_vector` on PostgreSQL, migration 0008): the query's
necessary condition (`necessary`: the words every match must contain, with
NOT, metadata filters, stems and typos read as "anything") is translated to
the index's query, and the matcher decides on what it returns. The answer is
the same as reading every item, only faster (tests/test_search.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.rules import And, FieldFilter, Meta, Near, Node, Not, Or, Phrase, RuleSpec, compile_rules, match_rules
from monitor.urls import host_of
from storage.models import Feed, Item

PAGE = 500


@dataclass(frozen=True)
class Hit:
    item_id: int
    story_id: int | None
    title: str | None
    url: str
    feed: str
    language: str | None
    published_at: datetime | None
    terms: tuple[str, ...]
    snippet: str

    def as_json(self) -> dict[str, object]:
        return {
            "item_id": self.item_id,
            "story_id": self.story_id,
            "title": self.title,
            "url": self.url,
            "feed": self.feed,
            "language": self.language,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "terms": list(self.terms),
            "snippet": self.snippet,
        }


# A necessary condition: ("word", surface, prefix), ("and", parts) or ("or", parts); None is "anything".
Cond: TypeAlias = tuple[Any, ...]


def necessary(node: Node) -> Cond | None:
    """A condition on words that every item the query matches satisfies."""
    if isinstance(node, Phrase):
        words = [("word", w, node.prefix and i == len(node.surfaces) - 1) for i, w in enumerate(node.surfaces)]
        return _join("and", words)
    if isinstance(node, Near):
        return _join("and", [_join("or", [necessary(p) for p in slot]) for slot in node.slots])
    if isinstance(node, FieldFilter):
        return necessary(node.child)
    if isinstance(node, Not | Meta):
        return None
    op = "and" if isinstance(node, And) else "or"
    assert isinstance(node, And | Or)
    return _join(op, [necessary(c) for c in node.children])


def _join(op: str, parts: Sequence[Cond | None]) -> Cond | None:
    if op == "or" and (not parts or any(p is None for p in parts)):
        return None
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else (op, kept)


def fts5_expression(cond: Cond) -> str:
    """The condition as an FTS5 MATCH expression (each word a quoted string)."""
    if cond[0] == "word":
        word: str = cond[1]
        return '"' + word.replace('"', '""') + '"' + ("*" if cond[2] else "")
    return "(" + f" {cond[0].upper()} ".join(fts5_expression(c) for c in cond[1]) + ")"


def tsquery_sql(cond: Cond, params: dict[str, str]) -> str:
    """The condition as a PostgreSQL tsquery expression over `items.search_vector`'s
    unstemmed words; the words go into `params`, never into the SQL."""
    if cond[0] == "word":
        name = f"w{len(params)}"
        params[name] = cond[1]
        suffix = " || ':*'" if cond[2] else ""
        return f"to_tsquery('simple', quote_literal(monitor_unaccent(lower(:{name}))){suffix})"
    op = " && " if cond[0] == "and" else " || "
    return "(" + op.join(tsquery_sql(c, params) for c in cond[1]) + ")"


def candidate_ids(engine: Engine, cond: Cond | None, since: datetime | None) -> list[int] | None:
    """Ids of the items that may match, newest first, from the full-text index;
    None when there is no index to ask (a database before version 0008) or nothing to ask it."""
    if cond is None:
        return None
    params: dict[str, Any] = {}
    if engine.dialect.name == "sqlite":
        sql = "SELECT rowid FROM items_fts WHERE items_fts MATCH :expr"
        params["expr"] = fts5_expression(cond)
        if since is not None:
            sql = f"SELECT id FROM items WHERE id IN ({sql}) AND fetched_at >= :since"
    elif engine.dialect.name == "postgresql":
        sql = f"SELECT id FROM items WHERE search_vector @@ {tsquery_sql(cond, params)}"
        if since is not None:
            sql += " AND fetched_at >= :since"
    else:
        return None
    statement = text(sql)
    if since is not None:
        params["since"] = since.astimezone(UTC) if since.tzinfo else since
        statement = statement.bindparams(bindparam("since", type_=Item.__table__.c.fetched_at.type))  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            return sorted((int(i) for (i,) in conn.execute(statement, params)), reverse=True)
    except SQLAlchemyError:
        return None


def search(
    engine: Engine,
    query: str,
    since: datetime | None = None,
    *,
    stem: bool = False,
    fuzzy: int = 0,
    languages: tuple[str, ...] = (),
    limit: int | None = None,
) -> Iterator[Hit]:
    """Stored items the query matches, newest first. Raises QuerySyntaxError."""
    rules = compile_rules([RuleSpec("query", query, (), languages, stem, fuzzy)])
    (rule,) = rules.rules
    cond = None if stem or fuzzy else necessary(rule.query.root)
    candidates = candidate_ids(engine, cond, since)
    found = 0
    last_id: int | None = None
    page = 0
    while True:
        with Session(engine) as s:
            q = select(Item, Feed.name).join(Feed, col(Feed.id) == col(Item.feed_id))
            if candidates is not None:
                wanted = candidates[page * PAGE : (page + 1) * PAGE]
                page += 1
                if not wanted:
                    return
                q = q.where(col(Item.id).in_(wanted))
            else:
                if since is not None:
                    q = q.where(col(Item.fetched_at) >= since)
                if last_id is not None:
                    q = q.where(col(Item.id) < last_id)
                q = q.limit(PAGE)
            rows = s.exec(q.order_by(col(Item.id).desc())).all()
        if not rows:
            if candidates is not None:
                continue
            return
        for item, feed in rows:
            assert item.id is not None
            last_id = item.id
            for _rule, result in match_rules(
                rules,
                item.title,
                item.text,
                language=item.language,
                site=host_of(item.canonical_url or item.url),
                feed=feed,
            ):
                yield Hit(
                    item.id,
                    item.story_id,
                    item.title,
                    item.canonical_url or item.url,
                    feed,
                    item.language,
                    item.published_at,
                    result.terms,
                    result.snippet,
                )
                found += 1
                if limit is not None and found >= limit:
                    return
