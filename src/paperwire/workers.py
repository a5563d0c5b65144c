"""Sending on workers: procrastinate jobs in paperwire's own PostgreSQL database.

With ``workers.enabled``, a dispatch (``paperwire send``, the daemon's dispatch job) finds the
due readers exactly as in-process (``dispatch.find_due``) and enqueues them as batches: the
ids of up to ``workers.batch_size`` readers owed one slot. ``paperwire worker`` processes run
each batch through ``dispatch.deliver_batch``, which is the in-process code (match, render,
claim, send, record) for those readers.

The queue only hands out work; the delivery claims decide who is sent. A batch run twice (its
worker was killed and the batch given to another, or two dispatches overlapped) sends nobody
twice: each reader's (reader, slot) claim is taken once, and a dead run's open claims are
settled as `unknown`, never sent again. A worker that stops beating its procrastinate
heartbeat for ``workers.stalled_seconds`` is dead: every worker, and ``send --wait`` while it
waits, puts the jobs of dead workers back in the queue (procrastinate's stalled-job retry).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import dispatch
from .bounces import verp
from .config import Settings
from .errors import ConfigError, PaperwireError
from .store import Store, schema_lock
from .store.deliveries import RunInfo

log = logging.getLogger(__name__)

QUEUE = "paperwire-send"
TASK = "paperwire.deliver_batch"
BATCH_RUN = "batch"  # the kind of a batch's run row; its summary names the dispatch and the batch
# pg_advisory_xact_lock key held while a dispatch looks at the queue and enqueues ("paperwq").
_ENQUEUE_LOCK_KEY = 0x7061706572777071
_UNFINISHED = ("todo", "doing")
# Batch runs are found by their dispatch id among the runs started since the dispatch, less this
# much: their start times come from the clocks of the workers' hosts.
_CLOCK_SKEW = dt.timedelta(hours=1)


def _procrastinate():
    try:
        import procrastinate
    except ImportError as exc:  # pragma: no cover - a dependency; named for installs that lack it
        raise PaperwireError(f"workers need procrastinate and psycopg ({exc}); pip install 'paperwire[workers]'")
    return procrastinate


def conninfo(db_url: str) -> str:
    """libpq's URI for paperwire's SQLAlchemy URL: procrastinate opens its own connections."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def require(settings: Settings, what: str) -> None:
    """``what`` (a command) only makes sense with workers on."""
    if not settings.workers_enabled:
        raise ConfigError(f"{what} needs setting 'workers.enabled' = true (PAPERWIRE_WORKERS_ENABLED=1) and a "
                          "PostgreSQL database")


def make_app(settings: Settings, *, pool_size: int = 2):
    """A procrastinate App on paperwire's database with the one task registered."""
    procrastinate = _procrastinate()
    if not log.isEnabledFor(logging.DEBUG):  # a line per job and per defer: paperwire logs each batch run itself
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=conninfo(settings.db), min_size=1, max_size=max(2, pool_size)))
    app.task(name=TASK, queue=QUEUE)(deliver_batch_job)
    return app


def ensure_schema(store: Store) -> None:
    """procrastinate's tables and functions, installed on first use, once, under paperwire's schema
    lock (so of two processes starting at once one installs and the other finds them).
    procrastinate's own ``schema --apply`` is for an empty database only, hence the look first."""
    with schema_lock(store.engine) as connection:
        if connection.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
            return
        # The driver's own connection, in the same transaction: the schema is many statements,
        # which psycopg runs in one call only without parameters.
        connection.connection.driver_connection.execute(_procrastinate().schema.SchemaManager.get_schema())
        log.info("procrastinate schema installed", extra={"fields": {"event": "workers-schema"}})


# -- the dispatching side ------------------------------------------------------------------


@dataclass
class Enqueued:
    """What one dispatch put in the queue: its own report (readers not due, dead claims settled)."""

    report: dispatch.SendReport
    dispatch_id: str | None
    started_at: dt.datetime
    jobs: list[int] = field(default_factory=list)
    readers: int = 0

    def as_dict(self) -> dict:
        return {**self.report.as_dict(), "dispatch": self.dispatch_id, "batches": len(self.jobs),
                "queued": self.readers}


def enqueue(store: Store, settings: Settings, *, now: dt.datetime | None = None, only: str | None = None,
            everyone: bool = False) -> Enqueued:
    """One dispatch on workers: find the due readers and enqueue them in batches of one slot.

    The look at the queue and the enqueue are one transaction under an advisory lock: readers
    already in a batch that is queued or running are left out (counted as skipped), so
    dispatches every few minutes, or two at once, never queue a reader twice. All batches of a
    dispatch are queued at once or not at all."""
    now = now or dt.datetime.now(dt.timezone.utc)
    verp.check(settings)  # here, not only in the batches: a batch that cannot send must not be queued at all
    ensure_schema(store)
    app = make_app(settings)
    transport = dispatch.make_transport(settings)  # what dead claims are settled against
    report = dispatch.SendReport()
    extra: dict = {}
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    result = Enqueued(report, None, started)
    with dispatch.sending_run(store, settings, transport, report, kind="dispatch", extra=extra) as run_id:
        result.dispatch_id = run_id
        found = dispatch.find_due(store, now, report, only=only, everyone=everyone)
        if found.slots and found.edition is not None:
            _enqueue(store, app, settings, result, found.slots, found.edition)
        extra.update(batches=len(result.jobs), queued=result.readers)
    return result


def _enqueue(store: Store, app, settings: Settings, result: Enqueued, slots: dict[int, dt.date],
             edition: dt.date) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ENQUEUE_LOCK_KEY})
        queued = _readers_in_queue(conn)
        owed = sorted((slot, reader) for reader, slot in slots.items() if reader not in queued)
        result.report.skipped += len(slots) - len(owed)
        batches = []
        for slot, group in groupby(owed, key=lambda pair: pair[0]):
            readers = [reader for _, reader in group]
            for start in range(0, len(readers), settings.workers_batch_size):
                batches.append({"dispatch": result.dispatch_id, "since": result.started_at.isoformat(),
                                "batch": len(batches), "edition": edition.isoformat(), "slot": slot.isoformat(),
                                "readers": readers[start:start + settings.workers_batch_size]})
        if batches:
            deferrer = app.tasks[TASK].configure(connection=conn.connection.driver_connection)
            result.jobs = list(deferrer.batch_defer(*batches))
        result.readers = len(owed)
    log.info("batches queued", extra={"fields": {"event": "workers-enqueue", "dispatch": result.dispatch_id,
                                                 "batches": len(result.jobs), "readers": result.readers}})


def _readers_in_queue(conn) -> set[int]:
    rows = conn.execute(sa.text("SELECT args FROM procrastinate_jobs WHERE task_name = :task AND status IN "
                                "('todo', 'doing')"), {"task": TASK})
    return {reader for (args,) in rows for reader in args.get("readers", ())}


def wait(store: Store, settings: Settings, enqueued: Enqueued, *, stop: threading.Event | None = None,
         poll: float = 0.2, on_slow=None) -> dispatch.SendReport:
    """Wait until every batch of ``enqueued`` is done, then add up the reports: the dispatch's own
    and those of the batches' runs, in the shape of an in-process dispatch. While waiting, the jobs
    of dead workers are put back in the queue. ``on_slow(pending)`` is called once when nothing has
    moved for a while (is a worker running?)."""
    return asyncio.run(_wait(store, settings, enqueued, stop, poll, on_slow))


async def _wait(store: Store, settings: Settings, enqueued: Enqueued, stop: threading.Event | None, poll: float,
                on_slow) -> dispatch.SendReport:
    failed: list[int] = []
    pending = list(enqueued.jobs)
    if pending:
        app = make_app(settings)
        async with app.open_async():
            last_sweep = last_change = time.monotonic()
            warned = False
            while pending and not (stop is not None and stop.is_set()):
                await asyncio.sleep(poll)
                states = _job_states(store, pending)
                done = [job for job in pending if states.get(job) not in _UNFINISHED]
                failed += [job for job in done if states.get(job) in ("failed", "cancelled", "aborted")]
                if done:
                    pending = [job for job in pending if job not in done]
                    last_change = time.monotonic()
                if time.monotonic() - last_sweep >= settings.workers_heartbeat_seconds:
                    last_sweep = time.monotonic()
                    await retry_stalled(app, settings)
                if not warned and on_slow is not None and time.monotonic() - last_change > 10 * poll + 10:
                    warned = True
                    on_slow(len(pending))
    return _total(store, enqueued, failed, pending)


def _job_states(store: Store, jobs: Sequence[int]) -> dict[int, str]:
    """Job id -> status; a job missing was done and deleted (successful jobs are not kept)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, status FROM procrastinate_jobs WHERE id IN :ids")
                            .bindparams(sa.bindparam("ids", expanding=True)), {"ids": list(jobs)})
        return {row.id: str(row.status) for row in rows}


def batch_runs(store: Store, dispatch_id: str, since: dt.datetime) -> list[RunInfo]:
    """The finished batch runs of dispatch ``dispatch_id``, which started at ``since``. Their start
    times come from the clocks of the workers' hosts, so runs that look up to ``_CLOCK_SKEW``
    older are looked at too; the dispatch named in each summary decides."""
    return [run for run in store.recent_runs(None, kind=BATCH_RUN, since=since - _CLOCK_SKEW, finished=True)
            if (run.summary or {}).get("dispatch") == dispatch_id]


def _total(store: Store, enqueued: Enqueued, failed: Sequence[int], pending: Sequence[int]) -> dispatch.SendReport:
    total = dispatch.SendReport(**{**enqueued.report.as_dict()})
    errors = [total.error] if total.error else []
    for run in batch_runs(store, enqueued.dispatch_id, enqueued.started_at):
        summary = run.summary or {}
        for name in ("sent", "retried", "failed", "skipped", "deferred"):
            setattr(total, name, getattr(total, name) + summary.get(name, 0))
        total.unknown += summary.get("unknown", [])
        total.failures += summary.get("failures", [])
        if summary.get("error"):
            errors.append(summary["error"])
    if failed:
        errors.append(f"{len(failed)} batch(es) failed on a worker (jobs {', '.join(map(str, failed))}; "
                      "see the worker's log); their readers are tried again by the next dispatch")
    if pending:
        errors.append(f"stopped waiting: {len(pending)} batch(es) still queued or running; the workers finish them")
    total.error = "; ".join(dict.fromkeys(errors))
    return total


# -- the worker side ---------------------------------------------------------------------


@dataclass
class _Worker:
    store: Store
    settings: Settings


_worker: _Worker | None = None


def deliver_batch_job(*, dispatch: str, since: str, batch: int, edition: str, slot: str,
                      readers: list[int]) -> dict:
    """The procrastinate task: one batch, through ``dispatch.deliver_batch``. A batch whose run
    already finished (its worker died after that, before the queue heard) is not run again."""
    if _worker is None:
        raise RuntimeError("paperwire batches run inside `paperwire worker` only")
    from . import dispatch as sending

    store, settings = _worker.store, _worker.settings
    started = dt.datetime.fromisoformat(since)
    if any((run.summary or {}).get("batch") == batch for run in batch_runs(store, dispatch, started)):
        return {"batch": batch, "already": True}
    report = sending.deliver_batch(store, settings, readers, dt.date.fromisoformat(slot),
                                   dt.date.fromisoformat(edition), extra={"dispatch": dispatch, "batch": batch})
    return {"batch": batch, "sent": report.sent, "skipped": report.skipped, "failed": report.failed}


async def retry_stalled(app, settings: Settings) -> int:
    """Put the batches of workers silent for ``workers.stalled_seconds`` back in the queue
    (procrastinate's stalled jobs). Several sweepers at once are fine: a job is retried once."""
    retried = 0
    for job in await app.job_manager.get_stalled_jobs(queue=QUEUE,
                                                      seconds_since_heartbeat=settings.workers_stalled_seconds):
        try:
            await app.job_manager.retry_job(job)
        except Exception as exc:  # another sweeper was first, or the job just finished
            log.debug("stalled job %s not retried: %s", job.id, exc)
            continue
        retried += 1
        log.warning("batch of a dead worker queued again", extra={"fields": {
            "event": "workers-stalled", "job": job.id, "worker": job.worker_id}})
    return retried


def run_worker(store: Store, settings: Settings, *, concurrency: int = 1) -> None:
    """Process batches until SIGINT/SIGTERM (procrastinate's handlers: the batches in progress
    finish first). Beside the worker, a sweep every heartbeat puts dead workers' batches back."""
    global _worker
    require(settings, "paperwire worker")
    verp.check(settings)
    ensure_schema(store)
    _worker = _Worker(store, settings)
    app = make_app(settings, pool_size=concurrency + 3)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(settings.workers_heartbeat_seconds)
            try:
                await retry_stalled(app, settings)
            except Exception:  # the database away for a moment: the next sweep tries again
                log.warning("stalled-job sweep failed", exc_info=True)

    async def main() -> None:
        async with app.open_async():
            sweeper = asyncio.create_task(sweep())
            try:
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=concurrency, name="paperwire",
                    update_heartbeat_interval=settings.workers_heartbeat_seconds,
                    stalled_worker_timeout=settings.workers_stalled_seconds,
                    fetch_job_polling_interval=min(5.0, settings.workers_heartbeat_seconds),
                    delete_jobs="successful")
            finally:
                sweeper.cancel()

    try:
        asyncio.run(main())
    finally:
        _worker = None
