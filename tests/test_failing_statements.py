"""The normal path runs no statement that fails: each one is an ERROR in PostgreSQL's log and a
rolled-back transaction, and a log full of expected errors hides the real ones.

Every statement error any engine in this process meets passes SQLAlchemy's ``handle_error``
event: the same errors the server logs, read without its log file (whose place differs by
installation). Both backends: SQLite raised the same errors, it just kept no log of them.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from paperwire import schedule
from paperwire.config import Settings
from paperwire.store import Store

from .conftest import SEED


@pytest.fixture
def statement_errors():
    """The statements that failed while the test ran, as (error, SQL) pairs."""
    failed: list[tuple[str, str]] = []

    def record(context) -> None:
        failed.append((repr(context.original_exception), context.statement or ""))

    sa.event.listen(sa.engine.Engine, "handle_error", record)
    yield failed
    sa.event.remove(sa.engine.Engine, "handle_error", record)


def test_send_all_again_skips_the_readers_already_sent_without_a_failing_insert(run_cli, statement_errors):
    assert run_cli("ingest", "--date", "2024-03-11", SEED).exit_code == 0
    for address in ("ada@example.org", "bo@example.org"):
        assert run_cli("subscribe", address, "--topic", "*").exit_code == 0
    # A reader with nothing to send: the slot is settled as "empty", and --all again finds it settled.
    assert run_cli("subscribe", "cy@example.org", "--topic", "xylophone zebra quokka").exit_code == 0
    first = json.loads(run_cli("send", "--all", "--json").stdout)
    assert (first["sent"], first["skipped"]) == (2, 1)
    again = json.loads(run_cli("send", "--all", "--json").stdout)
    assert (again["sent"], again["skipped"]) == (0, 3)
    assert statement_errors == []


def test_restarting_the_scheduler_adds_its_jobs_without_a_failing_insert(db_url, statement_errors):
    store = Store(db_url)
    try:
        for days in (1, 2):  # what `paperwire schedule` does at each start; no job runs in this test
            later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
            scheduler = schedule.build_scheduler(store, Settings(db=db_url), start_at=later)
            scheduler.start(paused=True)
            # The jobs stored by the first start are replaced: they run from this start's time.
            runs = {job.id: job.next_run_time for job in scheduler.get_jobs()}
            assert runs == {schedule.INGEST_JOB: later, schedule.DISPATCH_JOB: later + dt.timedelta(seconds=1)}
            scheduler.shutdown()
    finally:
        store.close()
    assert statement_errors == []


def test_a_slot_settled_by_another_run_is_answered_without_a_failing_insert(store, statement_errors):
    """record_empty, record_error and claim on a slot another run settled: each says so (False,
    None, None) and changes nothing, also the reader's older notes it would have replaced."""
    from paperwire.subscribers import build_subscriber, make_topic

    reader = store.save_subscriber(build_subscriber("ada@example.org", topics=[make_topic("All", "*")]))[0]
    monday, tuesday = dt.date(2024, 3, 11), dt.date(2024, 3, 12)
    first, second = store.start_run("dispatch"), store.start_run("dispatch")
    assert store.record_error(reader.id, monday, "2024-03-11", first, "boom") == 1  # an older slot's note
    assert store.record_empty(reader.id, tuesday, "2024-03-12", first) is True
    before = store.deliveries_of("ada@example.org")
    assert store.record_empty(reader.id, tuesday, "2024-03-12", second) is False
    assert store.record_error(reader.id, tuesday, "2024-03-12", second, "boom again") is None
    assert store.claim(reader.id, tuesday, "2024-03-12", second, "<m@x>", []) is None
    assert store.deliveries_of("ada@example.org") == before  # the monday note is still there
    assert statement_errors == []
