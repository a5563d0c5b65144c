"""Readers, their topics and the public topics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ValidationError
from ..models import Subscriber, Topic
from ..subscribers import stored_max_papers
from .base import _chunks, _now
from .schema import UtcDateTime, subscriber_topics, subscribers, topics


class ReaderStore:
    """Mixin of Store: readers and topics."""

    engine: Engine

    def save_subscriber(self, subscriber: Subscriber) -> tuple[Subscriber, bool]:
        """Insert or update by email (never a second row); returns (stored, created)."""
        with self.engine.begin() as conn:
            return self._save_subscriber(conn, subscriber)

    def save_subscribers(self, batch: Sequence[Subscriber]) -> tuple[int, int]:
        """Many readers in ONE transaction (an import): (created, updated)."""
        created = 0
        with self.engine.begin() as conn:
            for subscriber in batch:
                created += self._save_subscriber(conn, subscriber)[1]
        return created, len(batch) - created

    def _save_subscriber(self, conn: Connection, subscriber: Subscriber) -> tuple[Subscriber, bool]:
        now = _now()
        existing = conn.execute(sa.select(subscribers.c.id, subscribers.c.confirmed_at, subscribers.c.status)
                                .where(subscribers.c.email == subscriber.email)).first()
        values = {
            "email": subscriber.email, "name": subscriber.name, "status": subscriber.status,
            "cadence": subscriber.cadence, "send_hour": subscriber.hour, "timezone": subscriber.timezone,
            "max_papers": subscriber.max_papers, "token": subscriber.token, "updated_at": now,
            "confirmed_at": subscriber.confirmed_at or (now if subscriber.status == "active" else None),
        }
        if subscriber.status == "active" and (existing is None or existing.status != "active"):
            values["active_since"] = now
        if existing is None:
            values["created_at"] = subscriber.created_at or now
            existing_id = conn.execute(subscribers.insert().values(**values)).inserted_primary_key[0]
            created = True
        else:
            # A reader's token is in every link they were sent: an update never changes it,
            # and the first confirmation time stays.
            existing_id = existing.id
            del values["token"]
            if existing.confirmed_at is not None:
                del values["confirmed_at"]
            conn.execute(subscribers.update().where(subscribers.c.id == existing_id).values(**values))
            created = False
        self._replace_topics(conn, existing_id, subscriber.topics, now)
        return self._subscribers(conn, subscribers.c.id == existing_id)[0], created

    def _replace_topics(self, conn: Connection, subscriber_id: int, wanted: Sequence[Topic], now: dt.datetime) -> None:
        conn.execute(subscriber_topics.delete().where(subscriber_topics.c.subscriber_id == subscriber_id))
        conn.execute(topics.delete().where(topics.c.owner_id == subscriber_id))
        for position, topic in enumerate(wanted):
            if topic.public:
                topic_id = self._public_topic_id(conn, topic.name)
            else:
                topic_id = conn.execute(topics.insert().values(
                    name=topic.name, slug=topic.slug, query=topic.query, public=False, owner_id=subscriber_id,
                    created_at=now)).inserted_primary_key[0]
            conn.execute(subscriber_topics.insert().values(
                subscriber_id=subscriber_id, topic_id=topic_id, position=position))

    @staticmethod
    def _public_topic_id(conn: Connection, name: str) -> int:
        found = conn.execute(sa.select(topics.c.id).where(
            topics.c.public.is_(True), sa.func.lower(topics.c.name) == name.lower())).scalar()
        if found is None:
            raise ValidationError("topic", f"there is no public topic named {name!r} (see 'paperwire topics')")
        return found

    def rewrite_own_topic(self, reader_id: int, name: str, slug: str,
                          rewrite: Callable[[str | None], str | None]) -> str | None:
        """Set the query of the reader's own topic ``name`` (any case) to ``rewrite(its query)`` in one
        transaction: None in means the reader has no such topic (it is added last), None out
        removes it. Returns the new query. ``rewrite`` may raise to change nothing.

        The transaction starts by writing the reader's row, so it holds the write lock
        (SQLite) or the row lock (PostgreSQL) before it reads: two rewrites at once take
        turns, and neither loses the other's change.
        """
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(subscribers.update().where(subscribers.c.id == reader_id).values(updated_at=now))
            found = conn.execute(
                sa.select(topics.c.id, topics.c.query).join(subscriber_topics, subscriber_topics.c.topic_id == topics.c.id)
                .where(subscriber_topics.c.subscriber_id == reader_id, topics.c.owner_id == reader_id,
                       topics.c.public.is_(False), sa.func.lower(topics.c.name) == name.lower())).first()
            query = rewrite(found.query if found else None)
            if found is not None and query is None:
                conn.execute(subscriber_topics.delete().where(subscriber_topics.c.topic_id == found.id))
                conn.execute(topics.delete().where(topics.c.id == found.id))
            elif found is not None:
                conn.execute(topics.update().where(topics.c.id == found.id).values(query=query))
            elif query is not None:
                last = conn.execute(sa.select(sa.func.max(subscriber_topics.c.position))
                                    .where(subscriber_topics.c.subscriber_id == reader_id)).scalar()
                topic_id = conn.execute(topics.insert().values(
                    name=name, slug=slug, query=query, public=False, owner_id=reader_id,
                    created_at=now)).inserted_primary_key[0]
                conn.execute(subscriber_topics.insert().values(
                    subscriber_id=reader_id, topic_id=topic_id, position=(last if last is not None else -1) + 1))
            return query

    def set_status(self, email: str, status: str, now: dt.datetime | None = None) -> bool:
        """Change a reader's status; False when no reader has that email. A reader who becomes
        active (a resume) is active since ``now``: their next digest starts there."""
        now = now or _now()
        values = {"status": status, "updated_at": now}
        if status == "active":  # the literal typed, so that SQLite stores it in UTC as the column does
            values["active_since"] = sa.case((subscribers.c.status != "active", sa.literal(now, UtcDateTime())),
                                             else_=subscribers.c.active_since)
        with self.engine.begin() as conn:
            result = conn.execute(subscribers.update().where(subscribers.c.email == email).values(**values))
            return result.rowcount > 0

    def subscriber(self, email: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            found = self._subscribers(conn, subscribers.c.email == email)
        return found[0] if found else None

    def subscribers(self, status: str | None = None, ids: Sequence[int] | None = None) -> list[Subscriber]:
        """All readers, or those in ``status``, or (also) only those of ``ids`` (a worker's batch)."""
        condition = subscribers.c.status == status if status else sa.true()
        if ids is not None:
            condition = sa.and_(condition, subscribers.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return self._subscribers(conn, condition)

    @staticmethod
    def _subscribers(conn: Connection, condition) -> list[Subscriber]:
        rows = conn.execute(sa.select(subscribers).where(condition).order_by(subscribers.c.email)).all()
        followed: dict[int, list[Topic]] = {}
        ids = [row.id for row in rows]
        for chunk in _chunks(ids):
            query = (sa.select(subscriber_topics.c.subscriber_id, topics)
                     .join(topics, topics.c.id == subscriber_topics.c.topic_id)
                     .where(subscriber_topics.c.subscriber_id.in_(chunk))
                     .order_by(subscriber_topics.c.subscriber_id, subscriber_topics.c.position))
            for row in conn.execute(query):
                followed.setdefault(row.subscriber_id, []).append(
                    Topic(name=row.name, query=row.query, public=row.public, slug=row.slug))
        return [Subscriber(
            id=row.id, email=row.email, name=row.name, status=row.status, cadence=row.cadence, hour=row.send_hour,
            timezone=row.timezone, max_papers=stored_max_papers(row.max_papers), token=row.token, created_at=row.created_at,
            confirmed_at=row.confirmed_at, active_since=row.active_since, topics=followed.get(row.id, [])) for row in rows]

    def add_public_topic(self, topic: Topic) -> bool:
        """Create or update a public topic by name; True when it was created."""
        with self.engine.begin() as conn:
            clash = conn.execute(sa.select(topics.c.name).where(
                topics.c.public.is_(True), topics.c.slug == topic.slug,
                sa.func.lower(topics.c.name) != topic.name.lower())).scalar()
            if clash:
                raise ValidationError("topic name", f"{topic.name!r} would share the feed name '{topic.slug}' with {clash!r}")
            existing = conn.execute(sa.select(topics.c.id).where(
                topics.c.public.is_(True), sa.func.lower(topics.c.name) == topic.name.lower())).scalar()
            if existing is None:
                conn.execute(topics.insert().values(name=topic.name, slug=topic.slug, query=topic.query,
                                                    public=True, owner_id=None, created_at=_now()))
                return True
            conn.execute(topics.update().where(topics.c.id == existing).values(query=topic.query))
            return False

    def remove_public_topic(self, name: str, *, force: bool = False) -> int:
        """Delete a public topic; returns how many readers followed it (refuses unless force)."""
        with self.engine.begin() as conn:
            topic_id = self._public_topic_id(conn, name)
            followers = conn.execute(sa.select(sa.func.count()).select_from(subscriber_topics)
                                     .where(subscriber_topics.c.topic_id == topic_id)).scalar_one()
            if followers and not force:
                raise ValidationError("topic", f"{followers} reader(s) follow {name!r}; use --force to remove it anyway")
            conn.execute(subscriber_topics.delete().where(subscriber_topics.c.topic_id == topic_id))
            conn.execute(topics.delete().where(topics.c.id == topic_id))
            return followers

    def public_topics(self) -> list[Topic]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(topics).where(topics.c.public.is_(True)).order_by(topics.c.name))
            return [Topic(name=r.name, query=r.query, public=True, slug=r.slug) for r in rows]


