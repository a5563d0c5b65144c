"""The only package that speaks SQL (SQLAlchemy Core), one module per kind of record.

The schema is owned by the Alembic migrations in ``paperwire/migrations``; ``schema``
mirrors it for queries (a test checks they agree). Opening a store upgrades an older
database in place. Everything is portable SQL, so PostgreSQL works as well as the
default SQLite (which runs in WAL mode so readers never block the writer).
"""

from __future__ import annotations

from .base import MIGRATIONS, create_engine, insert_unless_taken, schema_lock, upgrade
from .bounces import BouncePolicy, BounceStore, Recorded
from .deliveries import DeliveryStore, ReaderHistory
from .papers import FetchValidators, IngestCounts, ListingSummary, PaperStore
from .readers import ReaderStore
from .vectors import VectorStore
from .web import DataStamp, WebStore
from .schema import *  # noqa: F403  (tables, for tests and tools)
from .schema import metadata


class Store(PaperStore, ReaderStore, DeliveryStore, BounceStore, WebStore, VectorStore):
    """Papers, listings, readers, topics, deliveries, bounce events and embedding vectors in one database.
    Open once per process."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()
