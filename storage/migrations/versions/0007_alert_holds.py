"""held alerts and digests, backlog, how each source was matched (issue 7)

feeds.alert_on_backlog; deliveries.hold and deliveries.digest_id, and an index
for a rule's alerts per hour on a channel; item_sources.via.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # recreate="never": SQLite adds the column in place; a copy of `feeds` would be refused
    # by the foreign keys of the tables that reference it.
    with op.batch_alter_table("feeds", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("alert_on_backlog", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("item_sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_deliveries_digest_id_deliveries", "deliveries", ["digest_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_deliveries_digest_id"), ["digest_id"], unique=False)
        batch_op.create_index("ix_deliveries_budget", ["rule", "channel", "created_at"], unique=False)

    # Until now an item's first source was the entry that brought it.
    op.execute(
        "UPDATE item_sources SET via = 'first' WHERE id IN (SELECT min(s.id) FROM item_sources s GROUP BY s.item_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_budget")
        batch_op.drop_index(batch_op.f("ix_deliveries_digest_id"))
        batch_op.drop_constraint("fk_deliveries_digest_id_deliveries", type_="foreignkey")
        batch_op.drop_column("digest_id")
        batch_op.drop_column("hold")

    with op.batch_alter_table("item_sources", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("via")

    with op.batch_alter_table("feeds", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("alert_on_backlog")
