"""adaptive schedule: configured interval, posting rate, newest entry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("configured_interval", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("avg_entry_gap", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("last_entry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("last_entry_at")
        batch_op.drop_column("avg_entry_gap")
        batch_op.drop_column("configured_interval")
