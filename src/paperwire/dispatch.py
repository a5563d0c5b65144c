"""One dispatch run: find the readers who are due, build their digests, send each exactly once.

The order of events per message is what makes "exactly once" hold across crashes:
render, then claim (reader, slot) in a committed transaction, then hand the message
to the transport, then record the server's answer. A claim is never taken twice; a
claim whose run died is reported as unknown instead of being sent again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from . import due, mail, pipeline
from .config import Settings
from .errors import DeliveryError
from .models import Digest, Subscriber
from .render import EmailRenderer
from .store import Store
from .store.deliveries import DEFERRED, FAILED, SENT
from .transport import DryRunTransport, Outcome, Outgoing, OutboxTransport, ServerUnavailable, SmtpConfig, SmtpTransport

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 30.0  # seconds between run heartbeats while sending


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # not due, nothing new, or claimed by another run
    deferred: int = 0
    dry_run: int = 0
    unknown: list[dict] = field(default_factory=list)  # claims of dead runs: may or may not have arrived
    failures: list[dict] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def make_transport(settings: Settings, *, dry_run: bool = False):
    """SMTP whenever a host is set, else the outbox folder; dry runs send nothing."""
    if dry_run:
        return DryRunTransport()
    if not settings.smtp_host:
        return OutboxTransport(settings.outbox_dir)
    password = settings.smtp_password
    if not password and settings.smtp_password_file:
        try:
            password = settings.smtp_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DeliveryError(f"setting 'smtp.password_file': cannot read {settings.smtp_password_file}: "
                                f"{exc.strerror}") from None
    return SmtpTransport(SmtpConfig(
        host=settings.smtp_host, port=settings.smtp_port, tls=settings.smtp_tls, user=settings.smtp_user,
        password=password, pool_size=settings.smtp_pool_size, per_second=settings.smtp_per_second or None,
        per_hour=settings.smtp_per_hour or None, timeout=settings.smtp_timeout,
        max_attempts=settings.smtp_max_attempts))


def _run_is_dead(run: dict, lease: dt.timedelta, now: dt.datetime) -> bool:
    if run["finished_at"] is not None:
        return True
    if run["host"] == socket.gethostname()[:255] and run["pid"] != os.getpid():
        try:
            os.kill(run["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    heartbeat = run["heartbeat_at"]
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=dt.timezone.utc)
    return now - heartbeat > lease


def _settle_dead_claims(store: Store, settings: Settings, transport, report: SendReport) -> None:
    """Claims left by runs that died. The outbox can tell whether the file was written;
    for SMTP nobody can, so those are reported and left alone."""
    now = dt.datetime.now(dt.timezone.utc)
    lease = dt.timedelta(seconds=settings.run_lease_seconds)
    dead = [run["id"] for run in store.runs_with_claims() if _run_is_dead(run, lease, now)]
    for delivery_id, email, slot in store.expire_claims(dead):
        if isinstance(transport, OutboxTransport):
            if (transport.folder / f"{delivery_id}.eml").exists():
                store.record_outcome(delivery_id, SENT, attempts=1, code=None, detail="found in the outbox after a crash")
            else:
                store.forget(delivery_id)  # never written: the slot is owed again
            continue
        report.unknown.append({"email": email, "slot": slot.isoformat(), "delivery": delivery_id})
        log.warning("delivery fate unknown after a crash; not sent again", extra={"fields": {
            "event": "delivery-unknown", "delivery": delivery_id, "email": email, "slot": slot.isoformat()}})


def due_readers(store: Store, readers: Sequence[Subscriber], now: dt.datetime, *, everyone: bool) -> dict[int, dt.date]:
    """reader id -> the slot to send now. Deferred slots come first: they are owed already."""
    histories = store.histories(r.id for r in readers)
    retry = store.deferred_slots(r.id for r in readers)
    slots = {}
    for reader in readers:
        slot = retry.get(reader.id)
        if slot is None:
            slot = due.current_slot(reader, now) if everyone else due.is_due(reader, now, histories[reader.id].last_slot)
        if slot is not None:
            slots[reader.id] = slot
    return slots


def dispatch(
    store: Store,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    only: str | None = None,
    everyone: bool = False,
    dry_run: bool = False,
    transport=None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send every due reader their digest (``everyone``: ignore the schedule, not the history)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    transport = transport or make_transport(settings, dry_run=dry_run)
    report = SendReport()
    run_id = store.start_run("dispatch")
    try:
        _settle_dead_claims(store, settings, transport, report)
        readers = [r for r in store.subscribers(status="active") if only is None or r.email == only]
        slots = due_readers(store, readers, now, everyone=everyone)
        report.skipped += len(readers) - len(slots)
        edition = store.latest_listing_date()
        if slots and edition is not None:
            wanted = [r for r in readers if r.id in slots]
            digests = pipeline.plan_digests(store, settings, wanted, edition=edition)
            _send(store, settings, transport, digests, slots, run_id, report, stop, len(wanted))
    except ServerUnavailable as exc:
        report.error = str(exc)
        raise
    finally:
        store.finish_run(run_id, report.as_dict())
        log.info("dispatch run", extra={"fields": {
            "event": "dispatch", "run": run_id, "sent": report.sent, "retried": report.retried,
            "failed": report.failed, "deferred": report.deferred, "skipped": report.skipped,
            "unknown": len(report.unknown), **({"dry_run": report.dry_run} if report.dry_run else {}),
            **({"error": report.error} if report.error else {})}})
    return report


def _send(store: Store, settings: Settings, transport, digests: Iterator[Digest], slots: dict[int, dt.date],
          run_id: str, report: SendReport, stop: threading.Event | None, planned: int) -> None:
    renderer = EmailRenderer(settings.templates_dir, cache_dir=settings.out_dir / "cache")
    signer = mail.Signer.from_settings(settings)
    claimed: dict[str, Digest] = {}
    answered: set[str] = set()
    last_beat = time.monotonic()

    def outgoing() -> Iterator[Outgoing]:
        nonlocal last_beat
        produced = 0
        for item in digests:
            produced += 1
            rendered = renderer.render(item, settings)
            message = mail.build_message(item, rendered, settings)
            paper_ids = [i.paper.id for section in item.sections for i in section.items]
            delivery_id = store.claim(item.subscriber.id, slots[item.subscriber.id], item.edition, run_id,
                                      message["Message-ID"], paper_ids)
            if delivery_id is None:
                report.skipped += 1
                continue
            claimed[str(delivery_id)] = item
            if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                store.heartbeat(run_id)
                last_beat = time.monotonic()
            yield Outgoing(str(delivery_id), settings.sender_email, (item.subscriber.email,),
                           mail.message_bytes(message, signer))
        report.skipped += planned - produced  # due, but nothing new to send

    def on_outcome(outcome: Outcome) -> None:
        answered.add(outcome.key)
        delivery_id = int(outcome.key)
        if outcome.status == "dry-run":
            store.forget(delivery_id)
            report.dry_run += 1
            return
        status = {"sent": SENT, "failed": FAILED, "deferred": DEFERRED}[outcome.status]
        store.record_outcome(delivery_id, status, attempts=outcome.attempts, code=outcome.code, detail=outcome.detail)
        if status == SENT:
            report.sent += 1
        elif status == FAILED:
            report.failed += 1
            report.failures.append({"email": claimed[outcome.key].subscriber.email, "code": outcome.code,
                                    "detail": outcome.detail})
            log.warning("delivery failed", extra={"fields": {
                "event": "delivery-failed", "email": claimed[outcome.key].subscriber.email, "code": outcome.code,
                "detail": outcome.detail, "attempts": outcome.attempts}})
        else:
            report.deferred += 1

    try:
        counts = transport.send_all(outgoing(), on_outcome, stop=stop)
        report.retried += counts.retried
    except ServerUnavailable as exc:
        report.retried += exc.counts.retried
        raise
    finally:
        # Claimed but never handed over (stopped, or the server went away): owed again.
        for key in set(claimed) - answered:
            store.forget(int(key))
