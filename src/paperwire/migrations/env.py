"""Alembic environment: paperwire always hands in an open connection (see store.upgrade)."""

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch lets ALTER-style migrations work on SQLite, which cannot alter columns.
context.configure(connection=connection, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
