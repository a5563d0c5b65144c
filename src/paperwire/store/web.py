"""What the web app needs beyond the other mixins: readers by token, erasure, a data stamp,
rate-limit hits and preferences waiting for confirmation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import liked
from ..models import Appearance, StoredPaper, Subscriber, Topic
from ..subscribers import stored_max_papers
from ..ratelimit import RateLimit
from .base import _now
from .papers import _paper_from_row
from .schema import (bounce_events, deliveries, listing_papers, listings, papers, pending_changes, rate_hits, sent_papers,
                     subscribers, topics, vectors)


@dataclass(frozen=True)
class DataStamp:
    """Changes whenever stored papers, listings or vectors change: the key of the web app's caches.

    ``changed_at`` is the newest ingest, paper update or vector (UTC); feeds send it as
    Last-Modified. It is None for an empty database. ``vectors`` counts them: new vectors
    change what matches by meaning (the daemon embeds after it ingests).
    """

    listings: int
    changed_at: dt.datetime | None
    vectors: int = 0


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

    def stored_paper(self, paper_id: str) -> StoredPaper | None:
        """One paper with every listing it appeared in (newest first); None when unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(papers).where(papers.c.id == paper_id)).first()
            if row is None:
                return None
            links = self._links_of(conn, [paper_id]).get(paper_id, [])  # type: ignore[attr-defined]
            seen = conn.execute(
                sa.select(listings.c.date, listing_papers.c.rank, listings.c.source)
                .join(listings, listings.c.id == listing_papers.c.listing_id)
                .where(listing_papers.c.paper_id == paper_id)
                .order_by(listings.c.date.desc(), listings.c.source)).all()
        return StoredPaper(_paper_from_row(row, links), [Appearance(r.date, r.rank, r.source) for r in seen],
                           row.first_id)

    def paper_titles(self, paper_ids: list[str]) -> dict[str, str]:
        """id -> title of those of ``paper_ids`` that are stored (one query: a liked list is short)."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(papers.c.id, papers.c.title).where(papers.c.id.in_(paper_ids))).all())

    def moved_paper_id(self, old_id: str) -> str | None:
        """The id a paper first stored as ``old_id`` (``t-<title hash>``) has now, after its arXiv
        id re-keyed it: recorded since migration 0009 (``papers.first_id``); for a paper re-keyed
        before, found by its title's hash."""
        with self.engine.connect() as conn:
            moved = conn.execute(sa.select(papers.c.id).where(papers.c.first_id == old_id)).scalar()
            if moved is None and old_id.startswith("t-"):
                moved = conn.execute(sa.select(papers.c.id).where(papers.c.title_hash == old_id[2:])
                                     .order_by(papers.c.id).limit(1)).scalar()
            return moved

    def delete_subscriber(self, email: str) -> bool:
        """Erase a reader and everything recorded about them (topics, deliveries, sent papers, bounces).

        One transaction: a failure leaves the reader whole. False when no such reader.
        """
        with self.engine.begin() as conn:
            reader_id = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.email == email)).scalar()
            if reader_id is None:
                return False
            conn.execute(sent_papers.delete().where(sent_papers.c.subscriber_id == reader_id))
            conn.execute(bounce_events.delete().where((bounce_events.c.subscriber_id == reader_id)
                                                      | (bounce_events.c.recipient == email)))
            conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == reader_id))
            conn.execute(pending_changes.delete().where(pending_changes.c.subscriber_id == reader_id))
            self._replace_topics(conn, reader_id, (), _now())  # type: ignore[attr-defined]
            conn.execute(subscribers.delete().where(subscribers.c.id == reader_id))
            return True

    def data_stamp(self) -> DataStamp:
        with self.engine.connect() as conn:
            count, ingested = conn.execute(sa.select(sa.func.count(), sa.func.max(listings.c.ingested_at))).one()
            updated = conn.execute(sa.select(sa.func.max(papers.c.updated_at))).scalar()
            vector_count, embedded = conn.execute(sa.select(sa.func.count(), sa.func.max(vectors.c.created_at))).one()
        times = [t for t in (ingested, updated, embedded) if t is not None]
        return DataStamp(count, max(times) if times else None, vector_count)


    # -- rate limits ---------------------------------------------------------------------

    def count_hit(self, bucket: str, key: str, *, rule: RateLimit, now: float) -> float | None:
        """Count one attempt of ``key`` if ``rule`` allows it now; None when allowed, else the
        seconds until one would be.

        The rule's events are the stored hits, so every process on this database shares the
        count. Insert-then-count in one transaction: SQLite serializes writers, so two
        processes never both take the last slot; a refused attempt is not counted.
        Hits older than the longest window are pruned on the way.
        """
        longest = max((window for _, window in rule.rules), default=0.0)
        with self.engine.begin() as conn:
            conn.execute(rate_hits.delete().where(rate_hits.c.bucket == bucket, rate_hits.c.hit_at <= now - longest))
            hit_id = conn.execute(rate_hits.insert().values(bucket=bucket, key=key, hit_at=now)).inserted_primary_key[0]
            earlier = conn.execute(sa.select(rate_hits.c.hit_at).where(
                rate_hits.c.bucket == bucket, rate_hits.c.key == key, rate_hits.c.id != hit_id)
                .order_by(rate_hits.c.hit_at)).scalars().all()
            wait = rule.earliest(now, earlier) - now
            if wait <= 0:
                return None
            conn.execute(rate_hits.delete().where(rate_hits.c.id == hit_id))
            return max(1.0, wait)

    # -- preferences waiting for confirmation ------------------------------------------------

    def add_pending_change(self, reader_id: int, wanted: Subscriber, *, older_than: dt.datetime) -> int:
        """Keep ``wanted``'s preferences for reader ``reader_id`` until a confirmation applies them.

        Changes created before ``older_than`` (their links have expired) are pruned.
        """
        with self.engine.begin() as conn:
            conn.execute(pending_changes.delete().where(pending_changes.c.created_at < older_than))
            return conn.execute(pending_changes.insert().values(
                subscriber_id=reader_id, preferences=_preferences(wanted), created_at=_now())).inserted_primary_key[0]

    def confirm_subscriber(self, reader: Subscriber, change_id: int | None) -> Subscriber:
        """Make ``reader`` active with the preferences of pending change ``change_id`` (if it still
        exists), in one transaction; every other pending change of the reader is dropped."""
        with self.engine.begin() as conn:
            wanted = reader
            if change_id is not None:
                row = conn.execute(sa.select(pending_changes.c.preferences).where(
                    pending_changes.c.id == change_id, pending_changes.c.subscriber_id == reader.id)).first()
                if row is not None:
                    public = {name.lower() for name in conn.execute(
                        sa.select(topics.c.name).where(topics.c.public.is_(True))).scalars()}
                    wanted = _with_preferences(reader, row.preferences, public)
            conn.execute(pending_changes.delete().where(pending_changes.c.subscriber_id == reader.id))
            stored, _ = self._save_subscriber(conn, replace(wanted, status="active"))  # type: ignore[attr-defined]
            return stored

    def pending_change_count(self, reader_id: int) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(pending_changes)
                                .where(pending_changes.c.subscriber_id == reader_id)).scalar_one()


def _preferences(wanted: Subscriber) -> dict:
    return {"name": wanted.name, "cadence": wanted.cadence, "hour": wanted.hour, "timezone": wanted.timezone,
            "max_papers": wanted.max_papers,
            "topics": [{"name": t.name, "query": t.query, "public": t.public, "slug": t.slug} for t in wanted.topics]}


def _with_preferences(reader: Subscriber, prefs: dict, public_names: set[str]) -> Subscriber:
    """``reader`` with stored preferences applied; public topics removed since are left out
    (and the reader's own topics stay when nothing is left). The reader's liked papers stay:
    the subscribe form never shows them, so it cannot mean to drop them."""
    wanted = [Topic(t["name"], t["query"], bool(t["public"]), t.get("slug", "")) for t in prefs["topics"]
              if not t["public"] or t["name"].lower() in public_names]
    return replace(reader, name=prefs["name"], cadence=prefs["cadence"], hour=prefs["hour"],
                   timezone=prefs["timezone"], max_papers=stored_max_papers(prefs["max_papers"]),
                   topics=liked.keep_liked(wanted, reader.topics) if wanted else reader.topics)
