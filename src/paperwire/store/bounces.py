"""Bounce and complaint events, and what they do to a reader, in one transaction each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..errors import ValidationError
from ..models import BounceEvent
from .base import _chunks, _now
from .schema import bounce_events, deliveries, subscribers, webhook_tokens

# A reader in one of these states is still being mailed, so a bounce can stop that.
_MAILED = ("active", "pending", "paused")


@dataclass(frozen=True)
class BouncePolicy:
    """When events stop the mail (``[bounces]`` settings; the README's "Bounces and complaints")."""

    soft_limit: int = 3  # soft bounces ...
    soft_days: int = 7  # ... within this many days mark the reader bouncing


@dataclass(frozen=True)
class Recorded:
    """What recording one event did: whether it was new, and the reader's status if it changed."""

    new: bool
    status: str | None = None


class BounceStore:
    """Mixin of Store: bounce events."""

    engine: Engine

    def delivery_by_message_id(self, message_ids: Sequence[str]) -> tuple[int, int] | None:
        """(delivery id, reader id) of the delivery sent with one of these Message-IDs."""
        if not message_ids:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(deliveries.c.id, deliveries.c.subscriber_id)
                               .where(deliveries.c.message_id.in_(list(message_ids)[:50]))
                               .order_by(deliveries.c.id.desc()).limit(1)).first()
        return (row.id, row.subscriber_id) if row else None

    def delivery_reader(self, delivery_id: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(deliveries.c.subscriber_id).where(deliveries.c.id == delivery_id)).scalar()

    def reader_email(self, reader_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(subscribers.c.email).where(subscribers.c.id == reader_id)).scalar()

    def reader_id_by_email(self, emails: Sequence[str]) -> int | None:
        """The reader with one of these addresses (compared as stored)."""
        wanted = [_as_stored(email) for email in emails if "@" in email][:50]
        if not wanted:
            return None
        with self.engine.connect() as conn:
            return conn.execute(sa.select(subscribers.c.id).where(subscribers.c.email.in_(wanted)).limit(1)).scalar()

    def record_bounce(self, event: BounceEvent, policy: BouncePolicy) -> Recorded:
        """Store ``event`` once (by its reference) and apply the policy to its reader:

        * a complaint unsubscribes the reader at once, from any state;
        * a hard bounce marks a reader who is still mailed ``bouncing``;
        * a soft bounce does when it is the ``soft_limit``-th within ``soft_days``;
        * nothing else, and nothing ever changes an unsubscribed reader back.
        """
        try:
            with self.engine.begin() as conn:
                known = conn.execute(sa.select(bounce_events.c.id)
                                     .where(bounce_events.c.reference == event.reference)).first()
                if known is not None:
                    return Recorded(False)
                conn.execute(bounce_events.insert().values(
                    reference=event.reference, subscriber_id=event.subscriber_id, delivery_id=event.delivery_id,
                    kind=event.kind, status=event.status[:16], diagnostic=event.diagnostic,
                    recipient=event.recipient[:320], source=event.source, received_at=event.received_at))
                if event.subscriber_id is None:
                    return Recorded(True)
                current = conn.execute(sa.select(subscribers.c.status)
                                       .where(subscribers.c.id == event.subscriber_id)).scalar()
                wanted = None
                if event.kind == "complaint" and current != "unsubscribed":
                    wanted = "unsubscribed"
                elif event.kind == "hard" and current in _MAILED:
                    wanted = "bouncing"
                elif event.kind == "soft" and current in _MAILED:
                    wanted = "bouncing" if self._soft_messages(conn, event, policy) >= policy.soft_limit else None
                if wanted is not None:
                    conn.execute(subscribers.update().where(subscribers.c.id == event.subscriber_id)
                                 .values(status=wanted, updated_at=_now()))
                return Recorded(True, wanted)
        except IntegrityError:  # another process recorded the same event at the same moment
            return Recorded(False)

    def take_webhook_token(self, provider: str, digest: str, now: float, keep_seconds: float) -> bool:
        """Note a signed webhook request as taken; False when it was taken before (a replay).

        Atomic (the row's key is unique), so of two copies sent at once only one is taken.
        Rows older than ``keep_seconds`` are dropped first: their timestamps are refused as
        stale anyway."""
        try:
            with self.engine.begin() as conn:
                conn.execute(webhook_tokens.delete().where(webhook_tokens.c.seen_at < now - keep_seconds))
                conn.execute(webhook_tokens.insert().values(provider=provider, digest=digest, seen_at=now))
            return True
        except IntegrityError:
            return False

    def release_webhook_token(self, provider: str, digest: str) -> None:
        """Forget a request taken whose events could not be recorded, so the provider's retry is taken."""
        with self.engine.begin() as conn:
            conn.execute(webhook_tokens.delete().where(webhook_tokens.c.provider == provider,
                                                       webhook_tokens.c.digest == digest))

    @staticmethod
    def _soft_messages(conn: sa.Connection, event: BounceEvent, policy: BouncePolicy) -> int:
        """How many of the reader's messages bounced softly within the window: one message's
        "delayed" notice, its final 4.x.x failure and a provider's report of each retry are
        one message, not three (events tied to no delivery count one each)."""
        since = event.received_at - dt.timedelta(days=policy.soft_days)
        soft = (bounce_events.c.subscriber_id == event.subscriber_id, bounce_events.c.kind == "soft",
                bounce_events.c.received_at > since)
        deliveries_hit = conn.execute(sa.select(sa.func.count(sa.distinct(bounce_events.c.delivery_id)))
                                      .where(*soft)).scalar_one()
        untied = conn.execute(sa.select(sa.func.count()).select_from(bounce_events)
                              .where(*soft, bounce_events.c.delivery_id.is_(None))).scalar_one()
        return deliveries_hit + untied

    def bounce_counts(self, since: dt.datetime | None = None) -> dict[str, int]:
        """kind -> number of events (received since ``since``)."""
        query = sa.select(bounce_events.c.kind, sa.func.count()).group_by(bounce_events.c.kind)
        if since is not None:
            query = query.where(bounce_events.c.received_at >= since)
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def latest_bounces(self, reader_ids: Sequence[int]) -> dict[int, BounceEvent]:
        """The newest event of each of these readers, by reader id."""
        found: dict[int, BounceEvent] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(reader_ids)):
                rows = conn.execute(sa.select(bounce_events).where(bounce_events.c.subscriber_id.in_(chunk))
                                    .order_by(bounce_events.c.received_at, bounce_events.c.id))
                for row in rows:
                    found[row.subscriber_id] = _event(row)
        return found

    def recent_bounces(self, limit: int = 20) -> list[BounceEvent]:
        """The newest events, newest first (``paperwire status``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(bounce_events).order_by(bounce_events.c.received_at.desc(),
                                                                  bounce_events.c.id.desc()).limit(limit))
            return [_event(row) for row in rows]


def _event(row: sa.Row) -> BounceEvent:
    return BounceEvent(reference=row.reference, kind=row.kind, source=row.source, received_at=row.received_at,
                       status=row.status, diagnostic=row.diagnostic, recipient=row.recipient,
                       subscriber_id=row.subscriber_id, delivery_id=row.delivery_id)


def _as_stored(email: str) -> str:
    """An address as readers are stored (``subscribers.normalize_email``), or as it came."""
    from ..subscribers import normalize_email

    try:
        return normalize_email(email)
    except ValidationError:
        return email.strip().lower()
