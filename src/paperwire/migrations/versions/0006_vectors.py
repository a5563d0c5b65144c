"""Embedding vectors, content-addressed: one row per (model, exact text embedded).

Papers, topics and abstract sentences all store their vectors here under the sha256 of
the text that was embedded, so a paper whose title or abstract changes, or a topic whose
query changes, is simply not found and gets embedded again; a different model (another
``model_id``) never reads the old model's vectors. The vector is float32 bytes
(little-endian), ``dimensions`` long.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vectors",
        sa.Column("model_id", sa.String(200), primary_key=True),
        sa.Column("text_sha256", sa.String(64), primary_key=True),
        sa.Column("dimensions", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vectors")
