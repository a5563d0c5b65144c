"""When a reader last became active: a digest after a pause starts there.

A reader who paused (or unsubscribed) and came back got up to ten days of backlog in their
next digest, papers listed while they were away included: nothing recorded when they came
back (``confirmed_at`` keeps the first confirmation). ``active_since`` is set whenever a
reader becomes active; NULL for readers made before (no floor, as before).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("active_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers", recreate="never") as batch:  # SQLite: its own DROP COLUMN (3.35+)
        batch.drop_column("active_since")
