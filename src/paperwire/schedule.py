"""The ``paperwire schedule`` daemon: ingest on an interval, dispatch every few minutes.

APScheduler 3 runs two jobs from a SQLAlchemy job store in paperwire's own database,
one at a time on a single worker thread, so an ingest and a dispatch never race.
Jobs are stored by reference (``paperwire.schedule:dispatch_job``) and read the
running daemon's settings from this module, so a changed config file takes effect
on restart. Missed runs are coalesced into one: after downtime the dispatch job runs
once, and ``due.is_due`` sends each reader only their latest owed slot.

Stopping (Ctrl-C, SIGTERM) sets one event: the dispatch in progress finishes the
messages already handed to the server, releases what it claimed but did not send,
and the scheduler waits for it before the process exits.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp

from . import leader, pipeline, redact
from .config import Settings
from .errors import PaperwireError
from .runs import Heartbeat
from .store import Store, insert_unless_taken, schema_lock

log = logging.getLogger(__name__)
LOCK_CHECK_SECONDS = 5.0  # how often the running daemon checks it still holds the scheduler lock
JOB_TABLE = "apscheduler_jobs"
INGEST_JOB, DISPATCH_JOB, BOUNCES_JOB = "ingest", "dispatch", "bounces"


@dataclass
class _Daemon:
    store: Store
    settings: Settings
    stop: threading.Event
    feeds_written_for: tuple | None = None  # what the feeds on disk were made from


_daemon: _Daemon | None = None


def _running() -> _Daemon:
    if _daemon is None:
        raise RuntimeError("paperwire jobs run inside `paperwire schedule` only")
    return _daemon


def ingest_job() -> pipeline.IngestReport | None:
    """Read every configured source; URLs only when they changed. One log line per run and per failure."""
    daemon = _running()
    if daemon.stop.is_set():
        return None
    store, settings = daemon.store, daemon.settings
    run_id = store.start_run("ingest")
    heart = Heartbeat(store, run_id)  # slow sources must not make `status` call a live run dead
    report = pipeline.IngestReport()
    try:
        report = pipeline.ingest(store, list(settings.schedule_sources), timeout=settings.schedule_fetch_timeout,
                                 stop=daemon.stop, max_bytes=settings.max_listing_bytes)
    finally:  # a run that raised is finished too, never left "running" in `status`
        heart.stop()
        summary = report.as_dict()
        store.finish_run(run_id, summary)
    for error in report.errors:
        log.warning("ingest failed for %s", error.file,
                    extra={"fields": {"event": "ingest-error", "source": error.file, "line": error.line,
                                      "error": error.message}})
    log.info("ingest run", extra={"fields": {"event": "ingest", "run": run_id,
                                             "not_modified": report.not_modified,
                                             **{k: v for k, v in summary.items() if k != "errors"},
                                             "errors": len(report.errors)}})
    embed_recent(daemon)
    return report


def embed_recent(daemon: _Daemon) -> None:
    """After each ingest: vectors for the papers the next runs match (a month of listings) and
    for every topic, so dispatch never waits on the model. One log line; a failure is logged."""
    store = daemon.store
    edition = store.latest_listing_date()
    if edition is None or daemon.stop.is_set():
        return
    try:
        report = pipeline.embed(store, daemon.settings, since=pipeline.matching_window(edition), until=edition,
                                stop=daemon.stop)
    except Exception as exc:  # the database, say: dispatch embeds what it needs itself
        log.error("embedding failed: %r", exc, exc_info=exc, extra={"fields": {"event": "embed-error",
                                                                              "error": repr(exc)}})
        return
    summary = report.as_dict()
    log.info("embed run", extra={"fields": {"event": "embed", **{k: v for k, v in summary.items() if k != "failed"},
                                            "failed": len(report.failed)}})


def dispatch_job():
    """Send what is due, then rewrite the feeds from what is stored."""
    from . import dispatch  # the render and mail stack

    daemon = _running()
    if daemon.stop.is_set():
        return None
    store, settings = daemon.store, daemon.settings
    report = None
    try:  # an unreachable SMTP server is in report.error (and logged); the next run tries again
        if settings.workers_enabled:  # queued for `paperwire worker` processes, not sent here
            from . import workers

            report = workers.enqueue(store, settings).report
        else:
            report = dispatch.dispatch(store, settings, stop=daemon.stop)
    except PaperwireError as exc:  # a bad setting, an unreadable password file: logged, retried next time
        log.error("dispatch failed: %s", exc, extra={"fields": {"event": "dispatch-error", "error": str(exc)}})
    except Exception as exc:  # anything else: logged with its traceback; the feeds are still rewritten
        log.error("dispatch failed: %r", exc, exc_info=exc,
                  extra={"fields": {"event": "dispatch-error", "error": repr(exc)}})
    _rewrite_feeds(daemon)  # feeds do not depend on the mail server
    return report


def bounces_job():
    """Read the bounce mailbox (when one is configured) and act on what came back."""
    from .bounces import mailboxes

    daemon = _running()
    if daemon.stop.is_set() or not daemon.settings.bounces_imap_host:  # a job stored when one was configured
        return None
    try:
        with mailboxes.imap_session(daemon.settings) as imap:
            tally = mailboxes.read(daemon.store, daemon.settings, mailboxes.imap_messages(imap, daemon.settings), "imap")
    except PaperwireError as exc:  # the mailbox is down or refuses the login: logged, tried next time
        log.error("reading bounces failed: %s", exc, extra={"fields": {"event": "bounces-error", "error": str(exc)}})
        return None
    except Exception as exc:
        log.error("reading bounces failed: %r", exc, exc_info=exc,
                  extra={"fields": {"event": "bounces-error", "error": repr(exc)}})
        return None
    summary = tally.as_dict()
    log.info("bounces run", extra={"fields": {"event": "bounces", **{k: v for k, v in summary.items()
                                                                   if k not in ("changed", "failed")},
                                             "changed": len(tally.changed), "failed": len(tally.failed)}})
    return tally


def _rewrite_feeds(daemon: _Daemon) -> None:
    """Feeds change only with the stored papers or the public topics: rewrite them then."""
    store = daemon.store
    edition = store.latest_listing_date()
    made_from = (store.data_stamp(), tuple((t.name, t.query) for t in store.public_topics()), edition)
    if edition is None or made_from == daemon.feeds_written_for:
        return
    failed: list[str] = []

    def feed_failed(slug: str, exc: Exception) -> None:  # that feed keeps its old files; the others go on
        failed.append(slug)
        pipeline.log_feed_error(slug, exc)

    pipeline.write_feeds(store, daemon.settings, daemon.settings.out_dir, edition=edition, on_error=feed_failed)
    if not failed:  # otherwise the next run tries the failed ones again
        daemon.feeds_written_for = made_from


def build_scheduler(store: Store, settings: Settings, *, start_at: dt.datetime | None = None) -> BackgroundScheduler:
    """The scheduler with both jobs (re)registered; the first runs start at ``start_at`` (now)."""
    start_at = start_at or dt.datetime.now(dt.timezone.utc)
    scheduler = BackgroundScheduler(
        jobstores={"default": _job_store(store)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=dt.timezone.utc,
    )
    # Ingest first, dispatch a moment later: one worker runs them in that order.
    scheduler.add_job(f"{__name__}:ingest_job", "interval", minutes=settings.schedule_ingest_minutes,
                      id=INGEST_JOB, name="ingest sources", replace_existing=True, next_run_time=start_at)
    scheduler.add_job(f"{__name__}:dispatch_job", "interval", minutes=settings.schedule_dispatch_minutes,
                      id=DISPATCH_JOB, name="dispatch due digests", replace_existing=True,
                      next_run_time=start_at + dt.timedelta(seconds=1))
    if settings.bounces_imap_host:
        scheduler.add_job(f"{__name__}:bounces_job", "interval", minutes=settings.bounces_check_minutes,
                          id=BOUNCES_JOB, name="read the bounce mailbox", replace_existing=True,
                          next_run_time=start_at + dt.timedelta(seconds=2))
    return scheduler


def _job_store(store: Store) -> SQLAlchemyJobStore:
    """APScheduler's job store in paperwire's database, its table made under the schema lock.

    APScheduler checks for its table, then creates it: of two daemons starting at once
    on a new database, the second would die on "table apscheduler_jobs already exists".
    """
    jobstore = _JobStore(engine=store.engine, tablename=JOB_TABLE)
    with schema_lock(store.engine) as connection:
        jobstore.jobs_t.create(connection, checkfirst=True)
    return jobstore


class _JobStore(SQLAlchemyJobStore):
    """APScheduler's job store, whose INSERT of a job already stored adds nothing instead of failing.

    ``build_scheduler`` adds both jobs at every start with ``replace_existing``, which
    APScheduler does as an INSERT and, on ConflictingIdError, an UPDATE: the INSERT of the
    jobs the last start stored failed at every restart (an error in PostgreSQL's log each time).
    """

    def add_job(self, job) -> None:
        try:
            with self.engine.begin() as connection:
                added = connection.execute(insert_unless_taken(connection, self.jobs_t).values(
                    id=job.id, next_run_time=datetime_to_utc_timestamp(job.next_run_time),
                    job_state=pickle.dumps(job.__getstate__(), self.pickle_protocol)
                ).returning(self.jobs_t.c.id)).first()
        except sa.exc.IntegrityError:  # a database without ON CONFLICT
            added = None
        if added is None:
            raise ConflictingIdError(job.id)


def _scheduler_alive(scheduler: BackgroundScheduler) -> bool:
    # APScheduler 3 has no public health check; its BackgroundScheduler keeps the thread here.
    thread = getattr(scheduler, "_thread", None)
    return thread is None or thread.is_alive()


def _log_job_error(event) -> None:
    """A job that raised: one line, and the daemon goes on to the next run."""
    log.error("%s job failed: %r", event.job_id, event.exception,
              extra={"fields": {"event": f"{event.job_id}-error", "error": repr(event.exception)}})


def run(store: Store, settings: Settings, stop: threading.Event) -> None:
    """Hold the database's scheduler lock (waiting as a hot standby while another daemon holds
    it), then run the jobs until ``stop`` is set, then wait for the job in progress to wind down.

    Raises PaperwireError if APScheduler's own thread dies (its job store could not be
    written, say), or if the lock is lost: a daemon that silently runs no jobs, or runs them
    beside another, is worse than one that exits.
    """
    lock = leader.scheduler_lock(store.engine)
    try:
        if _wait_for_lock(lock, store, stop):
            _run_holding(lock, store, settings, stop)
    finally:
        lock.release()


def _wait_for_lock(lock, store: Store, stop: threading.Event) -> bool:
    """True once this daemon holds the lock; False when stopped while waiting for it."""
    waited = False
    while not lock.try_acquire():
        if not waited:
            waited = True
            holder = lock.holder()
            log.warning("another scheduler holds %s (%s); waiting as a hot standby to take over",
                        redact.url(store.url), holder, extra={"fields": {
                            "event": "schedule-standby", "db": redact.url(store.url), "holder": holder}})
        if stop.wait(leader.STANDBY_POLL):
            log.info("schedule stopped", extra={"fields": {"event": "schedule-stop"}})
            return False
    if waited:
        log.warning("the other scheduler is gone; taking over", extra={"fields": {
            "event": "schedule-takeover", "db": redact.url(store.url)}})
    return True


def _run_holding(lock, store: Store, settings: Settings, stop: threading.Event) -> None:
    global _daemon
    _daemon = _Daemon(store, settings, stop)
    scheduler = build_scheduler(store, settings)
    scheduler.add_listener(_log_job_error, EVENT_JOB_ERROR)
    scheduler.start()
    log.info("schedule started", extra={"fields": {
        "event": "schedule-start", "db": redact.url(store.url), "sources": len(settings.schedule_sources),
        "ingest_minutes": settings.schedule_ingest_minutes, "dispatch_minutes": settings.schedule_dispatch_minutes,
        "delivery": "smtp" if settings.smtp_host else "outbox"}})
    checked = time.monotonic()
    try:
        while not stop.wait(0.5):
            if not _scheduler_alive(scheduler):
                log.error("the scheduler thread stopped; exiting", extra={"fields": {"event": "schedule-died"}})
                raise PaperwireError("the scheduler stopped running jobs (see the log above); restart it")
            if time.monotonic() - checked >= LOCK_CHECK_SECONDS:
                checked = time.monotonic()
                if not lock.still_held():  # another daemon may take over now: never run beside it
                    log.error("lost the scheduler lock; exiting", extra={"fields": {"event": "schedule-lock-lost"}})
                    raise PaperwireError("lost the scheduler lock (the database connection went away); restart it")
    finally:
        scheduler.shutdown(wait=True)
        _daemon = None
        log.info("schedule stopped", extra={"fields": {"event": "schedule-stop"}})
