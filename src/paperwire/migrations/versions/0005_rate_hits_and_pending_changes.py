"""Rate-limit hits shared by every `serve` process, and preferences waiting for confirmation.

``rate_hits`` holds one row per counted attempt (a sliding window), keyed by a keyed
hash of the client address or email, so no address is stored in the clear; rows older
than the window are pruned as new hits come in.

``pending_changes`` holds what a subscribe form asked for an address that already has
a record (pending, unsubscribed, bouncing): nothing about the reader changes until the
owner of the mailbox clicks the confirmation link that names the change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bucket", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("hit_at", sa.Float, nullable=False),  # seconds since the epoch
    )
    op.create_index("ix_rate_hits_bucket_key_hit_at", "rate_hits", ["bucket", "key", "hit_at"])
    op.create_index("ix_rate_hits_hit_at", "rate_hits", ["hit_at"])
    op.create_table(
        "pending_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("preferences", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pending_changes_subscriber_id", "pending_changes", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_changes_subscriber_id", "pending_changes")
    op.drop_table("pending_changes")
    op.drop_index("ix_rate_hits_hit_at", "rate_hits")
    op.drop_index("ix_rate_hits_bucket_key_hit_at", "rate_hits")
    op.drop_table("rate_hits")
