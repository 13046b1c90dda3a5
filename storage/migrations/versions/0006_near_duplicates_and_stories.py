"""near-duplicates, stories across languages, updates (issue 5)

items.revision, items.signature and items.signature_scheme; the lsh_bands
index; stories.source_count, languages and profile, and an index on
stories.last_seen_at; item_sources.entry_hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("signature", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("signature_scheme", sa.String(), nullable=True))

    with op.batch_alter_table("item_sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(), nullable=True))

    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_count", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("languages", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("profile", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_stories_last_seen_at"), ["last_seen_at"], unique=False)

    # Until now every story had exactly one item: its languages are that item's, its
    # feeds those of the item's sources. (Old stories get no profile: new items do not
    # join them, and old items have no signature: they are nobody's near-duplicate.)
    op.execute(
        "UPDATE stories SET "
        "languages = (SELECT min(i.language) FROM items i WHERE i.story_id = stories.id), "
        "source_count = coalesce((SELECT count(DISTINCT s.feed_id) FROM item_sources s "
        "JOIN items i ON i.id = s.item_id WHERE i.story_id = stories.id), 1)"
    )

    op.create_table(
        "lsh_bands",
        sa.Column("band_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("band_key", "item_id"),
    )
    with op.batch_alter_table("lsh_bands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lsh_bands_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    # recreate="never": SQLite (3.35+) drops these plain columns in place. Batch mode's
    # copy-and-move would drop the old table, which other tables' foreign keys refuse.
    with op.batch_alter_table("lsh_bands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lsh_bands_item_id"))
    op.drop_table("lsh_bands")

    with op.batch_alter_table("stories", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_stories_last_seen_at"))
        batch_op.drop_column("profile")
        batch_op.drop_column("languages")
        batch_op.drop_column("source_count")

    with op.batch_alter_table("item_sources", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("entry_hash")

    with op.batch_alter_table("items", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("signature_scheme")
        batch_op.drop_column("signature")
        batch_op.drop_column("revision")
