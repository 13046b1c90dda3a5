"""Run a rule query over the stored items: `monitor rules test` and `monitor search`.

Analysts write a rule by trying it on what is already stored, so this uses
the very matcher the pipeline uses (`monitor.rules`), with the same options
(stemming, typo tolerance, languages) and the same snippets. Items are read
in pages of ids, newest first, so memory stays flat on a large database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from monitor.rules import RuleSpec, compile_rules, match_rules
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
    found = 0
    last_id: int | None = None
    while True:
        with Session(engine) as s:
            q = select(Item, Feed.name).join(Feed, col(Feed.id) == col(Item.feed_id))
            if since is not None:
                q = q.where(col(Item.fetched_at) >= since)
            if last_id is not None:
                q = q.where(col(Item.id) < last_id)
            rows = s.exec(q.order_by(col(Item.id).desc()).limit(PAGE)).all()
        if not rows:
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
