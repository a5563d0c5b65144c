"""What the web app needs beyond the other mixins: readers by token, erasure, a data stamp."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..models import Subscriber
from .base import _now
from .schema import deliveries, listings, papers, sent_papers, subscribers


@dataclass(frozen=True)
class DataStamp:
    """Changes whenever stored papers or listings change: the key of the web app's caches.

    ``changed_at`` is the newest ingest or paper update (UTC); feeds send it as
    Last-Modified. It is None for an empty database.
    """

    listings: int
    changed_at: dt.datetime | None


class WebStore:
    """Mixin of Store: reads and writes only the web app makes."""

    engine: Engine

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        """The reader whose link secret is ``token``; None for anything else (also empty)."""
        if not token:
            return None
        with self.engine.connect() as conn:
            found = self._subscribers(conn, subscribers.c.token == token)  # type: ignore[attr-defined]
        return found[0] if found else None

    def delete_subscriber(self, email: str) -> bool:
        """Erase a reader and everything recorded about them (topics, deliveries, sent papers).

        One transaction: a failure leaves the reader whole. False when no such reader.
        """
        with self.engine.begin() as conn:
            reader_id = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.email == email)).scalar()
            if reader_id is None:
                return False
            conn.execute(sent_papers.delete().where(sent_papers.c.subscriber_id == reader_id))
            conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == reader_id))
            self._replace_topics(conn, reader_id, (), _now())  # type: ignore[attr-defined]
            conn.execute(subscribers.delete().where(subscribers.c.id == reader_id))
            return True

    def data_stamp(self) -> DataStamp:
        with self.engine.connect() as conn:
            count, ingested = conn.execute(sa.select(sa.func.count(), sa.func.max(listings.c.ingested_at))).one()
            updated = conn.execute(sa.select(sa.func.max(papers.c.updated_at))).scalar()
        times = [t for t in (ingested, updated) if t is not None]
        return DataStamp(count, max(times) if times else None)

