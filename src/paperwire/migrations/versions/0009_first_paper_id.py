"""The id a paper was first stored under, kept when its arXiv id re-keys it.

A listing without arXiv ids (a Daily Papers page capture) stores papers as ``t-<title
hash>``; the same paper seen later with its arXiv id is re-keyed to that id. Feed entries
were identified by the current id, so every feed reader showed such a paper twice. The
first id is kept (NULL: never re-keyed) and feed entries use it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("papers", sa.Column("first_id", sa.String(64), nullable=True))
    op.create_index("ix_papers_first_id", "papers", ["first_id"])  # old links to a paper page follow it


def downgrade() -> None:
    op.drop_index("ix_papers_first_id", table_name="papers")
    with op.batch_alter_table("papers", recreate="never") as batch:  # SQLite: its own DROP COLUMN (3.35+), keeping foreign keys
        batch.drop_column("first_id")
