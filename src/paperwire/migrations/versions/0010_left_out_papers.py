"""The papers each digest left to its "And N more".

A second digest of one edition (papers added to the day's listing after the first went
out) offered the first one's left-out papers again as new, one email a day while no newer
listing came (weekends). Each delivery now records them, so that second digest leaves
them out. NULL for deliveries made before: not known.

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


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("left_out")
