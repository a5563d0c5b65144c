"""From a classified report to a stored event: which delivery and reader it is about, and
the run's tally (what ``paperwire bounces --json`` prints)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from ..config import Settings
from ..logs import printable
from ..models import BounceEvent
from ..store import BouncePolicy, Recorded, Store
from . import verp, webhooks
from .classify import KINDS, Report, classify

log = logging.getLogger(__name__)


def policy(settings: Settings) -> BouncePolicy:
    return BouncePolicy(soft_limit=settings.bounces_soft_limit, soft_days=settings.bounces_soft_days)


@dataclass
class Tally:
    """One run over a mailbox: messages read, events by kind, what changed, what failed."""

    read: int = 0
    new: int = 0  # events recorded for the first time (the rest were recorded before)
    kinds: Counter = field(default_factory=Counter)
    unmatched: int = 0  # new events tied to no reader: kept, reported
    changed: list[dict] = field(default_factory=list)  # {"email", "status"} of readers whose status changed
    failed: list[dict] = field(default_factory=list)  # {"message", "error"}: left in the mailbox, tried again

    def add(self, event: BounceEvent, recorded: Recorded, email: str | None) -> None:
        self.read += 1
        if not recorded.new:
            return
        self.new += 1
        self.kinds[event.kind] += 1
        if event.subscriber_id is None:
            self.unmatched += 1
        if recorded.status is not None:
            self.changed.append({"email": email or "", "status": recorded.status})

    def as_dict(self) -> dict:
        return {"read": self.read, "new": self.new, "kinds": {kind: self.kinds.get(kind, 0) for kind in KINDS},
                "unmatched": self.unmatched, "changed": self.changed, "failed": self.failed}

    def describe(self) -> str:
        kinds = ", ".join(f"{self.kinds[kind]} {kind}" for kind in KINDS if self.kinds.get(kind))
        text = f"read {self.read} message(s), {self.new} new" + (f": {kinds}" if kinds else "")
        if self.unmatched:
            text += f"; {self.unmatched} tied to no reader"
        for change in self.changed:
            text += f"; {printable(change['email'])} is now {change['status']}"
        if self.failed:
            text += f"; {len(self.failed)} failed (left in the mailbox)"
        return text


def record_message(store: Store, settings: Settings, raw: bytes, source: str,
                   received_at: dt.datetime | None = None) -> tuple[BounceEvent, Recorded]:
    """Classify one message and record it once (its reference is the sha256 of its bytes)."""
    report = classify(raw)
    delivery_id, reader_id = tie(store, settings, report)
    event = BounceEvent(
        reference="mail:" + hashlib.sha256(raw).hexdigest(), kind=report.kind, source=source,
        received_at=received_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        status=report.status, diagnostic=report.diagnostic,
        recipient=report.recipients[0] if report.recipients else "", subscriber_id=reader_id, delivery_id=delivery_id)
    return event, record(store, settings, event)


def record_webhook(store: Store, settings: Settings, source: str, events: list[webhooks.Event],
                   received_at: dt.datetime | None = None) -> list[Recorded]:
    """Record a provider's events, each once (by its reference), tied like a bounce message is:
    by our Message-ID where the provider reports it, else by the recipient."""
    received_at = received_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    recorded = []
    for found in events:
        report = Report(found.kind, (found.recipient,) if found.recipient else (), found.status, found.diagnostic,
                        (found.message_id,) if found.message_id else ())
        delivery_id, reader_id = tie(store, settings, report, trusted=True)  # its signature was checked
        recorded.append(record(store, settings, BounceEvent(
            reference=found.reference, kind=found.kind, source=source, received_at=received_at, status=found.status,
            diagnostic=found.diagnostic, recipient=found.recipient, subscriber_id=reader_id, delivery_id=delivery_id)))
    return recorded


def record(store: Store, settings: Settings, event: BounceEvent) -> Recorded:
    """Store ``event`` with the policy applied; log what changed (webhooks come here too)."""
    recorded = store.record_bounce(event, policy(settings))
    if recorded.new and recorded.status is not None:
        log.warning("reader is now %s after a %s event", recorded.status, event.kind,
                    extra={"fields": {"event": "bounce", "kind": event.kind, "status": event.status,
                                      "recipient": event.recipient, "reader": event.subscriber_id,
                                      "now": recorded.status}})
    return recorded


def tie(store: Store, settings: Settings, report: Report, *, trusted: bool = False) -> tuple[int | None, int | None]:
    """(delivery id, reader id) a report is about: by the VERP address it came to, then by the
    original Message-ID it quotes (a hash of the reader's secret: unguessable), then by the
    recipient it names (reader only).

    Anyone can mail the bounce mailbox a report naming any address, so with VERP on
    (``bounce_address``) a mailed report is tied by the recipient alone only when ``trusted``
    (a provider's signed webhook); otherwise it is kept, tied to nobody, and changes nobody."""
    if settings.bounce_address:
        for address in report.addressed_to:
            found = verp.delivery_of(address, settings.bounce_address, settings.secret_key, store.delivery_reader)
            if found is not None:
                return found
    found = store.delivery_by_message_id(report.message_ids)
    if found is not None:
        return found
    if settings.bounce_address and not trusted:
        return None, None
    return None, store.reader_id_by_email(report.recipients)
