"""One stored-item builder for the storage-level tests, varied per test by keyword."""

from __future__ import annotations

from typing import Any

from storage.repository import NewItem


def new_item(feed_id: int, url: str, **kw: Any) -> NewItem:
    """A French article at `url` (its own GUID and source URL), unique by URL."""
    base: dict[str, Any] = dict(
        feed_id=feed_id,
        url=url,
        guid=url,
        source_url=url,
        title="Garanties de sécurité",
        author=None,
        published_at=None,
        language="fr",
        language_probability=None,
        text="Les garanties de sécurité pour l'Ukraine.",
        text_source="page",
        content_hash=url,
    )
    base.update(kw)
    return NewItem(**base)
