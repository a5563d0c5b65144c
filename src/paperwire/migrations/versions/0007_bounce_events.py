"""Bounce and complaint events: what came back about a delivery after it was sent.

One row per event, from any source (a bounce mailbox, a provider's webhook). ``reference``
names the event where it came from (the sha256 of a bounce message, a provider's event id),
unique, so a message or webhook read twice is recorded once. The reader and delivery are
null when the event could not be tied to one: such events are kept and reported.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=True),
        sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=""),
        sa.Column("diagnostic", sa.Text, nullable=False, server_default=""),
        sa.Column("recipient", sa.String(320), nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bounce_events_subscriber_received", "bounce_events", ["subscriber_id", "received_at"])
    op.create_index("ix_bounce_events_received_at", "bounce_events", ["received_at"])


def downgrade() -> None:
    op.drop_table("bounce_events")
