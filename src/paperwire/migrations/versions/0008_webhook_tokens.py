"""Webhook requests already taken: a replayed signed request is refused.

A Mailgun signature covers (timestamp, token) and a SendGrid one (timestamp, body); both
stay valid for the few minutes a timestamp is accepted. One row per request taken (the
provider and a sha256 of what its signature covers, unique), so the same signed request
sent again within those minutes is refused, by every ``serve`` process on the database.
Rows are pruned once their timestamp could no longer be accepted anyway.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(16), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_tokens_seen_at", "webhook_tokens", ["seen_at"])


def downgrade() -> None:
    op.drop_table("webhook_tokens")
