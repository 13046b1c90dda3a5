"""Users read the SQLite file while the daemon writes (WAL): a long read
transaction in another connection neither fails an ingest nor sees half of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from itemfactory import new_item

from storage.db import make_engine, upgrade
from storage.repository import FeedSpec, MatchRecord, Store


def test_a_long_read_neither_blocks_nor_sees_a_half_written_article(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = Store(engine)
    store.sync_feeds([FeedSpec("f", "http://127.0.0.1/f", 600, 1800)])
    feed_id = store.feeds()[0].id
    assert feed_id is not None

    def add(n: int) -> int | None:
        url = f"http://127.0.0.1/{n}"
        return store.add_item(
            new_item(
                feed_id,
                url,
                title=f"Garanties {n}",
                text="garanties de sécurité",
                matches=[MatchRecord("r", ("garanties",), "**garanties**", ("console",))],
            )
        )

    add(1)
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    reader.execute("BEGIN")
    seen = "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM item_sources), (SELECT count(*) FROM matches), "
    seen += "(SELECT count(*) FROM deliveries), (SELECT count(*) FROM items_fts WHERE items_fts MATCH 'garanties')"
    assert reader.execute(seen).fetchone() == (1, 1, 1, 1, 1)
    rows = reader.execute("SELECT id, text FROM items")  # a read in progress, cursor open
    assert add(2) is not None  # the writer is not blocked by the reader
    assert add(3) is not None
    assert reader.execute(seen).fetchone() == (1, 1, 1, 1, 1)  # the reader's snapshot: none of it
    assert len(rows.fetchall()) == 1
    reader.execute("COMMIT")
    assert reader.execute(seen).fetchone() == (3, 3, 3, 3, 3)  # then all of it, never a part
    reader.close()
    engine.dispose()
