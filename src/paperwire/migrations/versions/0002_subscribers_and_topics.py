"""Readers, topics (their own and public ones) and which reader follows which topic.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("send_hour", sa.Integer, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("max_papers", sa.Integer, nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_subscribers_email", "subscribers", ["email"], unique=True)
    op.create_index("ix_subscribers_token", "subscribers", ["token"], unique=True)
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("slug", sa.String(80), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        # A reader's own topic belongs to them; a public topic to nobody.
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_topics_owner_id", "topics", ["owner_id"])
    op.create_index("ix_topics_slug", "topics", ["slug"])
    op.create_table(
        "subscriber_topics",
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_subscriber_topics_topic_id", "subscriber_topics", ["topic_id"])


def downgrade() -> None:
    op.drop_table("subscriber_topics")
    op.drop_table("topics")
    op.drop_table("subscribers")
