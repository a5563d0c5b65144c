"""At most one open delivery (sending or deferred) per reader, and a transport per run.

The unique (reader, slot) key stops two runs from sending one slot twice; this partial
unique index stops two runs from sending two *different* slots to one reader at once
(one retrying yesterday's deferred slot, the other claiming today's).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "status IN ('sending', 'deferred')"


def upgrade() -> None:
    conn = op.get_bind()
    # Older databases may hold several open rows for one reader: keep the newest.
    rows = conn.execute(sa.text(f"SELECT id, subscriber_id FROM deliveries WHERE {OPEN} ORDER BY slot DESC, id DESC"))
    seen: set[int] = set()
    for delivery_id, subscriber_id in rows.all():
        if subscriber_id in seen:
            conn.execute(sa.text("UPDATE deliveries SET status = 'failed', detail = 'superseded by a newer slot' "
                                 "WHERE id = :id"), {"id": delivery_id})
        seen.add(subscriber_id)
    op.create_index("uq_deliveries_one_open", "deliveries", ["subscriber_id"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.add_column("runs", sa.Column("transport", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("runs", "transport")
    op.drop_index("uq_deliveries_one_open", "deliveries")
