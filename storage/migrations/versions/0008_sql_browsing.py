"""full-text search in SQL and views for the common questions (issue 8)

SQLite: `items_fts`, an external-content FTS5 table over items.title and
items.text (tokenizer unicode61 remove_diacritics 2), kept in step by
triggers. PostgreSQL: `items.search_vector`, a generated tsvector (stemmed in
the item's language where PostgreSQL has a configuration for it, plus the
unstemmed words, all unaccented) with a GIN index. Both: the views
recent_items, story_overview, rule_hits and delivery_log. These belong to
the database, not to the SQLModel metadata (tests/test_migrations.py lists
them); docs/schema.md documents them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE items_fts USING fts5(title, text, content='items', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN "
    "INSERT INTO items_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN "
    "INSERT INTO items_fts(items_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); END",
    "CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text ON items BEGIN "
    "INSERT INTO items_fts(items_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); "
    "INSERT INTO items_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "INSERT INTO items_fts(items_fts) VALUES ('rebuild')",
]

# Languages with a PostgreSQL text search configuration; others (uk...) get 'simple'.
PG_CONFIGS = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
_CASES = " ".join(f"WHEN '{code}' THEN '{name}'" for code, name in PG_CONFIGS.items())
POSTGRES_FTS = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    # Generated columns need immutable functions: unaccent() is only stable (its
    # dictionary could change), so these wrappers name the dictionary and promise.
    "CREATE OR REPLACE FUNCTION monitor_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT "
    "AS $$ SELECT unaccent('unaccent'::regdictionary, $1) $$",
    "CREATE OR REPLACE FUNCTION monitor_ts_config(text) RETURNS regconfig LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    f"AS $$ SELECT (CASE left($1, 2) {_CASES} ELSE 'simple' END)::regconfig $$",
    "ALTER TABLE items ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector(monitor_ts_config(language), monitor_unaccent(coalesce(title, ''))), 'A') || "
    "setweight(to_tsvector(monitor_ts_config(language), monitor_unaccent(coalesce(text, ''))), 'B') || "
    # Unstemmed, with every run of letters and digits a word, as monitor.rules and FTS5's
    # unicode61 see them (PostgreSQL's parser would keep "example.org" or "6.5" whole).
    "to_tsvector('simple', monitor_unaccent(regexp_replace(coalesce(title, '') || ' ' || coalesce(text, ''), "
    "'[^[:alnum:]]+', ' ', 'g')))"
    ") STORED",
    "CREATE INDEX ix_items_search_vector ON items USING gin (search_vector)",
]


def views(dialect: str) -> list[str]:
    sqlite = dialect == "sqlite"
    week_ago = "datetime('now', '-7 days')" if sqlite else "now() - interval '7 days'"
    day = "date(m.matched_at)" if sqlite else "(m.matched_at AT TIME ZONE 'UTC')::date"
    feeds = "group_concat(DISTINCT f.name)" if sqlite else "string_agg(DISTINCT f.name, ',')"
    return [
        "CREATE VIEW recent_items AS "
        "SELECT i.id, i.fetched_at, i.published_at, f.name AS feed, i.language, i.title, "
        "coalesce(i.canonical_url, i.url) AS url, i.story_id, i.duplicate_of, i.text_source, i.revision "
        f"FROM items i JOIN feeds f ON f.id = i.feed_id WHERE i.fetched_at >= {week_ago}",
        "CREATE VIEW story_overview AS "
        "SELECT st.id AS story_id, st.title, st.first_seen_at, st.last_seen_at, st.item_count, "
        f"st.source_count, st.languages, {feeds} AS feeds, count(DISTINCT s.url) AS urls "
        "FROM stories st JOIN items i ON i.story_id = st.id "
        "JOIN item_sources s ON s.item_id = i.id JOIN feeds f ON f.id = s.feed_id "
        "GROUP BY st.id, st.title, st.first_seen_at, st.last_seen_at, st.item_count, st.source_count, st.languages",
        f"CREATE VIEW rule_hits AS SELECT m.rule, {day} AS day, count(*) AS matches, "
        "count(DISTINCT m.story_id) AS stories FROM matches m GROUP BY m.rule, " + day,
        "CREATE VIEW delivery_log AS "
        "SELECT d.id, d.created_at, d.sent_at, d.status, d.hold, d.kind, d.rule, d.channel, d.attempts, "
        "d.error_kind, d.last_error, d.note, d.digest_id, d.story_id, d.item_id, i.title, "
        "coalesce(i.canonical_url, i.url) AS url "
        "FROM deliveries d JOIN items i ON i.id = d.item_id",
    ]


VIEWS = ("recent_items", "story_overview", "rule_hits", "delivery_log")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in (SQLITE_FTS if dialect == "sqlite" else POSTGRES_FTS) + views(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if dialect == "sqlite":
        for trigger in ("items_fts_insert", "items_fts_delete", "items_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS items_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_items_search_vector")
        op.execute("ALTER TABLE items DROP COLUMN IF EXISTS search_vector")
        op.execute("DROP FUNCTION IF EXISTS monitor_ts_config(text)")
        op.execute("DROP FUNCTION IF EXISTS monitor_unaccent(text)")
