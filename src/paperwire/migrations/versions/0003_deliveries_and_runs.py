"""Delivery records (exactly-once sending), papers sent to each reader, runs, fetch state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON, nullable=True),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
        # The reader's local date the digest was due on: one delivery per reader per slot.
        sa.Column("slot", sa.Date, nullable=False),
        sa.Column("edition", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("papers", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("code", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("subscriber_id", "slot", name="uq_deliveries_subscriber_slot"),
    )
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.create_table(
        "sent_papers",
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
        sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=False),
    )
    op.create_table(
        "fetch_state",
        sa.Column("url", sa.String(2048), primary_key=True),
        sa.Column("etag", sa.String(1024), nullable=True),
        sa.Column("last_modified", sa.String(128), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fetch_state")
    op.drop_table("sent_papers")
    op.drop_table("deliveries")
    op.drop_table("runs")
