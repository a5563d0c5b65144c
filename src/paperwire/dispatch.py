"""One dispatch run: find the readers who are due, build their digests, send each exactly once.

``deliver`` is the one way digests go out: for a whole dispatch in this process, or for one
batch of readers on a worker (``deliver_batch``; workers.py queues the batches).

The order of events per message is what makes "exactly once" hold across crashes:
render, then claim (reader, slot) in a committed transaction, then hand the message
to the transport, then record the server's answer. A claim is never taken twice; a
claim whose run died is reported as unknown instead of being sent again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from . import due, mail, pipeline
from .bounces import verp
from .config import Settings
from .errors import DeliveryError
from .models import Digest, Subscriber
from .render import EmailRenderer
from .runs import Heartbeat, run_is_dead
from .store import ReaderHistory, Store
from .store.deliveries import DEFERRED, DIED_SENDING, FAILED, SENT, UNKNOWN, Answer, Claim
from .transport import (DryRunTransport, Outcome, Outgoing, OutboxTransport, ServerUnavailable, SmtpConfig,
                        SmtpTransport, Transport, needs_smtputf8, was_delivered)

log = logging.getLogger(__name__)
# A deferred delivery is tried again by later runs until its attempts reach this many
# times smtp.max_attempts; then it is recorded as failed.
GIVE_UP_RUNS = 3
_STATUS_OF = {"sent": SENT, "failed": FAILED, "deferred": DEFERRED, "unknown": UNKNOWN}  # an Outcome's, as recorded


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # not due, nothing new, or claimed by another run
    deferred: int = 0
    dry_run: int = 0
    would_send: list[str] = field(default_factory=list)  # dry runs: the readers a real run would send to
    needs_smtputf8: list[str] = field(default_factory=list)  # dry runs: readers whose message needs an SMTPUTF8 server
    unknown: list[dict] = field(default_factory=list)  # claims of dead runs: may or may not have arrived
    failures: list[dict] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def make_transport(settings: Settings, *, dry_run: bool = False) -> Transport:
    """The transport the settings name: SMTP whenever a host is set, else the outbox folder;
    dry runs send nothing. The only place that picks a concrete class."""
    if dry_run:
        return DryRunTransport()
    if not settings.smtp_host:
        return OutboxTransport(settings.outbox_dir)
    warn_about_links(settings.base_url)
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


@functools.lru_cache(maxsize=None)  # keyed by base_url: once a process, not once a worker's batch
def warn_about_links(base_url: str) -> None:
    """Real mail is about to go out: say so (in the log) when its links cannot work for readers."""
    parts = urlsplit(base_url)
    if parts.hostname in ("localhost", "127.0.0.1", "::1"):
        log.warning("base_url is %s: every link in the mail sent (unsubscribe too) points at this machine; "
                    "set base_url to the address readers reach the web app at", base_url,
                    extra={"fields": {"event": "base-url-local"}})
    elif parts.scheme == "http":
        log.warning("base_url %s is not https: Gmail and Yahoo offer one-click unsubscribe (RFC 8058) only for "
                    "https links", base_url, extra={"fields": {"event": "base-url-http"}})


def _settle_dead_claims(store: Store, settings: Settings, transport: Transport, report: SendReport,
                        among: Sequence[int] | None = None) -> None:
    """Claims left by runs that died (of the readers ``among`` only, if given: a worker's batch),
    settled by what the transport can tell about the place each run delivered to: delivered
    (sent), surely not (owed again), or nobody can say (an SMTP server cannot be asked): those
    are reported and never sent again."""
    now = dt.datetime.now(dt.timezone.utc)
    lease = dt.timedelta(seconds=settings.run_lease_seconds)
    dead = [run["id"] for run in store.runs_with_claims() if run_is_dead(run, lease, now)]
    for delivery_id, email, slot, place, message_id in store.expire_claims(dead, among):
        delivered = was_delivered(transport, place, str(delivery_id), message_id)
        if delivered:
            store.record_outcome(delivery_id, SENT, attempts=1, code=None, detail=f"found at {place} after a crash")
        elif delivered is False:
            store.forget(delivery_id)  # never delivered: the slot is owed again
        else:  # it may have arrived: its papers count as offered (and it is never sent again)
            store.record_outcome(delivery_id, UNKNOWN, attempts=0, code=None, detail=DIED_SENDING)
            report.unknown.append({"email": email, "slot": slot.isoformat(), "delivery": delivery_id})
            log.warning("delivery fate unknown after a crash; not sent again", extra={"fields": {
                "event": "delivery-unknown", "delivery": delivery_id, "email": email, "slot": slot.isoformat()}})


def due_readers(store: Store, readers: Sequence[Subscriber], now: dt.datetime, *, everyone: bool,
                histories: Mapping[int, ReaderHistory] | None = None) -> dict[int, dt.date]:
    """reader id -> the slot to send now: the open slot, or the slot of a deferred digest."""
    histories = histories if histories is not None else store.histories(r.id for r in readers)
    retry = store.deferred_slots(r.id for r in readers)
    slots = {}
    for reader in readers:
        opened = due.current_slot(reader, now) if everyone else due.is_due(reader, now, histories[reader.id].last_slot)
        owed = [slot for slot in (opened, retry.get(reader.id)) if slot is not None]
        if owed:  # a deferred digest rides on the newest open slot: one email, never two
            slots[reader.id] = max(owed)
    return slots


@dataclass
class DueReaders:
    """What one dispatch found: who is owed which slot, of the listing ``edition``."""

    readers: list[Subscriber]  # the due ones
    slots: dict[int, dt.date]
    histories: Mapping[int, ReaderHistory]
    edition: dt.date | None


def find_due(store: Store, now: dt.datetime, report: SendReport, *, only: str | None = None,
             everyone: bool = False) -> DueReaders:
    """The active readers who are due (``everyone``: ignore the schedule, not the history); the
    others count as skipped in ``report``."""
    readers = [r for r in store.subscribers(status="active") if only is None or r.email == only]
    histories = store.histories(r.id for r in readers)
    slots = due_readers(store, readers, now, everyone=everyone, histories=histories)
    report.skipped += len(readers) - len(slots)
    return DueReaders([r for r in readers if r.id in slots], slots, histories, store.latest_listing_date())


@contextlib.contextmanager
def sending_run(store: Store, settings: Settings, transport: Transport, report: SendReport, *, kind: str,
                dry_run: bool = False, among: Sequence[int] | None = None,
                extra: Mapping[str, object] | None = None) -> Iterator[str | None]:
    """The run around any sending: its row and heartbeat, the hourly limit fed with earlier sends,
    the claims of dead runs settled (of ``among`` only, if given), and the run always finished
    with its summary (plus ``extra``), never left "running". Yields the run id (None: dry run).
    An unreachable server ends the run early with ``report.error`` set."""
    run_id = None if dry_run else store.start_run(kind, transport.describe())
    heart = None if run_id is None else Heartbeat(store, run_id)
    try:
        transport.note_earlier_sends(store.handed_over_since)
        if not dry_run:
            _settle_dead_claims(store, settings, transport, report, among)
        yield run_id
    except ServerUnavailable as exc:
        report.error = str(exc)
        log.error("%s stopped: %s", kind, exc, extra={"fields": {"event": f"{kind}-error", "error": str(exc)}})
    finally:
        if heart is not None:
            heart.stop()
        if run_id is not None:
            store.finish_run(run_id, {**report.as_dict(), **(extra or {})})
        log.info(f"{kind} run", extra={"fields": {
            "event": kind, "run": run_id, **(extra or {}), "sent": report.sent, "retried": report.retried,
            "failed": report.failed, "deferred": report.deferred, "skipped": report.skipped,
            "unknown": len(report.unknown), **({"dry_run": report.dry_run} if dry_run else {}),
            **({"error": report.error} if report.error else {})}})


def dispatch(
    store: Store,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    only: str | None = None,
    everyone: bool = False,
    dry_run: bool = False,
    transport: Transport | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send every due reader their digest in this process (``everyone``: ignore the schedule, not
    the history).

    A dry run builds every message and sends, claims and records nothing. When the
    mail server cannot be reached the run ends early with ``report.error`` set.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    verp.check(settings)
    transport = transport or make_transport(settings, dry_run=dry_run)
    dry_run = dry_run or transport.dry_run
    report = SendReport()
    with sending_run(store, settings, transport, report, kind="dispatch", dry_run=dry_run) as run_id:
        found = find_due(store, now, report, only=only, everyone=everyone)
        if found.slots and found.edition is not None:
            deliver(store, settings, transport, found.readers, found.slots, found.edition, run_id, report,
                    histories=found.histories, stop=stop)
    return report


def deliver_batch(store: Store, settings: Settings, reader_ids: Sequence[int], slot: dt.date, edition: dt.date, *,
                  extra: Mapping[str, object] | None = None, transport: Transport | None = None,
                  stop: threading.Event | None = None) -> SendReport:
    """A worker's job: send the readers of one batch their digest for ``slot`` of ``edition``,
    through exactly the code of an in-process dispatch (``deliver``), as a run of kind "batch"
    whose summary carries ``extra`` (which dispatch and batch it was). Readers no longer active
    are skipped; claims decide who is still owed, so a batch run twice sends nobody twice."""
    verp.check(settings)
    transport = transport or make_transport(settings)
    report = SendReport()
    with sending_run(store, settings, transport, report, kind="batch", among=reader_ids, extra=extra) as run_id:
        readers = store.subscribers(status="active", ids=reader_ids)
        report.skipped += len(set(reader_ids)) - len(readers)
        deliver(store, settings, transport, readers, {reader.id: slot for reader in readers}, edition, run_id,
                report, stop=stop)
    return report


def deliver(store: Store, settings: Settings, transport: Transport, readers: Sequence[Subscriber],
            slots: dict[int, dt.date], edition: dt.date, run_id: str | None, report: SendReport, *,
            histories: Mapping[int, ReaderHistory] | None = None, stop: threading.Event | None = None) -> None:
    """Match, render, claim, send and record: the one way digests go out, for a whole dispatch in
    this process or for a worker's batch. ``run_id`` None is a dry run."""
    if not readers:
        return
    failing = _ReaderFailures(store, slots, run_id, report, edition)
    digests = pipeline.plan_digests(store, settings, readers, edition=edition, histories=histories,
                                    on_error=failing)
    _send(store, settings, transport, digests, slots, run_id, report, stop, edition, failing)


class _ReaderFailures:
    """Whatever one reader's digest raises costs that reader only: it is counted in the
    report's ``failed`` and ``failures``, logged, and noted in the database as an "error"
    delivery, which settles nothing: the next run tries again. The traceback is logged the
    first time a slot fails; later runs that fail the same way log one line, so a reader
    the code cannot serve costs a line per run, not a page."""

    def __init__(self, store: Store, slots: dict[int, dt.date], run_id: str | None, report: SendReport,
                 edition: dt.date):
        self.store, self.slots, self.run_id, self.report, self.edition = store, slots, run_id, report, edition
        self.readers: set[int] = set()

    def __call__(self, reader: Subscriber, stage: str, exc: Exception) -> None:
        self.readers.add(reader.id)
        detail = pipeline.reader_error(reader, stage, exc)
        self.report.failed += 1
        self.report.failures.append({"email": reader.email, "code": None, "detail": detail})
        runs = self._note(reader, detail)
        fields = {"event": "delivery-error", "email": reader.email, "stage": stage, "detail": detail}
        if runs is not None and runs > 1:
            log.warning("digest not sent again: %s (%d runs at this slot; the first logged the traceback)", detail,
                        runs, extra={"fields": {**fields, "runs": runs}})
            return
        log.error("digest not sent: %s", detail,
                  extra={"fields": fields, "trace": pipeline.reader_traceback(reader, exc)})

    def _note(self, reader: Subscriber, detail: str) -> int | None:
        """The error note in the database (how many runs failed at this slot), or None."""
        if self.run_id is None:  # a dry run records nothing
            return None
        try:
            return self.store.record_error(reader.id, self.slots[reader.id], self.edition.isoformat(), self.run_id,
                                           detail)
        except Exception:  # e.g. a locked database: this reader's note is lost, the run goes on
            log.exception("could not record the failure of %s", reader.email)
            return None


def _send(store: Store, settings: Settings, transport: Transport, digests: Iterator[Digest], slots: dict[int, dt.date],
          run_id: str | None, report: SendReport, stop: threading.Event | None, edition: dt.date,
          failing: _ReaderFailures) -> None:
    """Render, claim, hand over and record each digest; settle the due readers who had nothing new.

    Each message is whole (rendered, built, signed) before it is claimed, so a digest that
    raises is a failure of that reader with no claim left open."""
    renderer = EmailRenderer(settings.templates_dir)
    signer = mail.Signer.from_settings(settings)
    claimed: dict[str, Digest] = {}
    answered: set[str] = set()
    waiting: list[Outcome] = []  # answers not yet recorded (at most a chunk of them)
    chunk = settings.delivery_chunk
    give_up_after = GIVE_UP_RUNS * settings.smtp_max_attempts

    def outgoing() -> Iterator[Outgoing]:
        produced: set[int] = set()
        built: list[tuple[Digest, str, bytes]] = []  # whole messages waiting to be claimed together
        for item in digests:
            produced.add(item.subscriber.id)
            stage = "rendering"
            try:
                item, rendered = renderer.render_under_clip(item, settings)  # the digest claimed is the one shown
                stage = "building the message"
                message = mail.build_message(item, rendered, settings)
                stage = "signing"
                data = mail.message_bytes(message, signer)
            except Exception as exc:
                failing(item.subscriber, stage, exc)
                continue
            built.append((item, message["Message-ID"], data))
            if len(built) >= chunk:
                yield from claimed_now(built)
                built = []
        yield from claimed_now(built)
        # Only reached when every digest was planned (not when the run was stopped early).
        for subscriber_id in slots.keys() - produced - failing.readers:  # due, but nothing new to send
            report.skipped += 1
            if run_id is not None:
                store.record_empty(subscriber_id, slots[subscriber_id], edition.isoformat(), run_id)

    def claimed_now(built: list[tuple[Digest, str, bytes]]) -> Iterator[Outgoing]:
        """Claim a chunk of whole messages in one transaction, then hand over those claimed."""
        if run_id is None:  # dry run: nothing is claimed or recorded
            keys: list[str | None] = [f"dry-{item.subscriber.id}" for item, _, _ in built]
        else:
            ids = store.claim_many([Claim(item.subscriber.id, slots[item.subscriber.id], item.edition, message_id,
                                          tuple(i.paper.id for section in item.sections for i in section.items),
                                          item.left_out)
                                    for item, message_id, _ in built], run_id)
            keys = [None if delivery_id is None else str(delivery_id) for delivery_id in ids]
        ready = []
        for (item, _, data), key in zip(built, keys, strict=True):
            if key is None:  # another run has this reader, or settled the slot
                report.skipped += 1
                continue
            claimed[key] = item  # all of the chunk before any is handed over: a stop releases the rest
            ready.append(Outgoing(key, verp.sender_of(settings, None if run_id is None else int(key),
                                                      item.subscriber.id), (item.subscriber.email,), data))
            if run_id is None and needs_smtputf8(ready[-1]):  # what a dry run is for: said before sending
                report.needs_smtputf8.append(item.subscriber.email)
        yield from ready

    def on_outcome(outcome: Outcome) -> None:
        answered.add(outcome.key)
        if outcome.status == "dry-run":
            report.dry_run += 1
            report.would_send.append(claimed[outcome.key].subscriber.email)
            return
        waiting.append(outcome)
        if len(waiting) >= chunk:
            record_waiting()

    def record_waiting() -> None:
        """Record the answers received so far, in one transaction, and count them in the report."""
        answers = [Answer(int(outcome.key), _STATUS_OF[outcome.status], outcome.attempts, outcome.code, outcome.detail)
                   for outcome in waiting]
        statuses = store.record_outcomes(answers, give_up_after) if answers else []
        for outcome, status in zip(list(waiting), statuses, strict=True):
            count(outcome, status)
        waiting.clear()

    def count(outcome: Outcome, status: str) -> None:
        reader = claimed[outcome.key].subscriber
        fields = {"email": reader.email, "code": outcome.code, "detail": outcome.detail, "attempts": outcome.attempts}
        if status == SENT:
            report.sent += 1
        elif status == FAILED:
            report.failed += 1
            report.failures.append({"email": reader.email, "code": outcome.code, "detail": outcome.detail})
            log.warning("delivery failed", extra={"fields": {"event": "delivery-failed", **fields}})
        elif status == UNKNOWN:
            report.unknown.append({"email": reader.email, "slot": slots[reader.id].isoformat(),
                                   "delivery": int(outcome.key), "detail": outcome.detail})
            log.warning("delivery fate unknown; not sent again", extra={"fields": {"event": "delivery-unknown",
                                                                                   **fields}})
        else:
            report.deferred += 1
            log.warning("delivery deferred; the next run retries", extra={"fields": {"event": "delivery-deferred",
                                                                                      **fields}})

    try:
        counts = transport.send_all(outgoing(), on_outcome, stop=stop)
        report.retried += counts.retried
    except ServerUnavailable as exc:
        report.retried += exc.counts.retried
        raise
    finally:
        record_waiting()  # the answers of the last chunk
        # Claimed but never handed over (stopped, or the server went away): owed again.
        for key in set(claimed) - answered:
            if run_id is not None:
                store.forget(int(key))
