"""The papers each digest left to its "And N more", recorded as offered.

What is new to a reader is what no digest has offered them. Papers shown were recorded
(sent_papers); those under "And N more" were not, so a later digest offered them again as
new: one email a day while no newer listing came (weekends), or when they were listed again.
A delivery now records them (``deliveries.left_out``; NULL for those made before: not known)
and so does sent_papers, as rows with ``shown`` false.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("left_out", sa.JSON, nullable=True))
    op.add_column("sent_papers", sa.Column("shown", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("sent_papers", recreate="never") as batch:  # SQLite: its own DROP COLUMN (3.35+)
        batch.drop_column("shown")
    with op.batch_alter_table("deliveries", recreate="never") as batch:  # recreating it would break its foreign keys
        batch.drop_column("left_out")
