"""leases for several workers (issue 8); retention, operator controls (issue 9)

feeds.lease_token / lease_until: a worker claims a feed for a while and only
the holder of the token may record its poll. deliveries.lease_token: the same
for a sender. job_runs: one row per periodic job and period, so a job runs
once per period across all workers. feeds.paused_at, rule_mutes: operator
controls. items.text_pruned_at and tombstones: retention.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("deliveries", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(), nullable=True))

    with op.batch_alter_table("items", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("text_pruned_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("worker", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "period"),
    )
    op.create_table(
        "rule_mutes",
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule"),
    )
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("url_hash", sa.String(), nullable=False),
        sa.Column("guid_hash", sa.String(), nullable=True),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_tombstones_url_hash"), "tombstones", ["url_hash"], unique=False)
    op.create_index("ix_tombstones_feed_guid", "tombstones", ["feed_id", "guid_hash"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tombstones_feed_guid", table_name="tombstones")
    op.drop_index(op.f("ix_tombstones_url_hash"), table_name="tombstones")
    op.drop_table("tombstones")
    op.drop_table("rule_mutes")
    op.drop_table("job_runs")
    with op.batch_alter_table("items", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("text_pruned_at")
    with op.batch_alter_table("deliveries", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("lease_token")
    with op.batch_alter_table("feeds", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("paused_at")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_token")
