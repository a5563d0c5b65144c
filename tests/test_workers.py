"""Sending on procrastinate workers: a real PostgreSQL server, real `paperwire worker` processes,
a real aiosmtpd server that counts messages per recipient.

Needs PAPERWIRE_TEST_DB (an SQLAlchemy URL of a PostgreSQL database the role may connect to and
CREATE DATABASE from); each test gets a fresh database, dropped afterwards. Without it they skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from paperwire import workers
from paperwire.config import load_settings
from paperwire.errors import ConfigError
from paperwire.store import Store

from .conftest import SEED
from .test_dispatch import Inbox, readers_store, smtp_server  # noqa: F401  (fixture)

# Fast enough for tests: a worker silent for 2 s is dead (the defaults are 10 s and 30 s).
FAST = {"PAPERWIRE_WORKERS_HEARTBEAT_SECONDS": "0.5", "PAPERWIRE_WORKERS_STALLED_SECONDS": "2"}


@pytest.fixture
def pg_url(postgres, tmp_path: Path):
    """A fresh PostgreSQL database for this test (the shared ``postgres`` fixture), dropped after."""
    url = postgres.new(tmp_path / "unused.sqlite3")
    yield url
    postgres.drop(url)


def _env(pg_url: str, tmp_path: Path, port: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    return {**env, "PAPERWIRE_DB": pg_url, "PAPERWIRE_WORKERS_ENABLED": "1", "PAPERWIRE_SMTP_HOST": "127.0.0.1",
            "PAPERWIRE_SMTP_PORT": str(port), "PAPERWIRE_SMTP_TIMEOUT": "5", "PAPERWIRE_OUT_DIR": str(tmp_path / "out"),
            "PAPERWIRE_OUTBOX_DIR": str(tmp_path / "outbox"), "PAPERWIRE_RELEVANCE_EMBEDDER": "off", **FAST, **extra}


def _paperwire(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "paperwire", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _live_workers(store: Store) -> int:
    with store.engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('procrastinate_workers')")).scalar() is None:
            return 0
        return conn.execute(sa.text("SELECT count(*) FROM procrastinate_workers")).scalar()


def _start_workers(store: Store, env: dict, cwd: Path, count: int) -> list[subprocess.Popen]:
    started = [_paperwire(["worker"], env, cwd) for _ in range(count)]
    deadline = time.monotonic() + 60
    while _live_workers(store) < count:
        assert time.monotonic() < deadline, [p.stderr.read1() if p.poll() is not None else p.pid for p in started]
        time.sleep(0.1)
    return started


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _batch_pids(store: Store) -> set[int]:
    return {run.pid for run in store.recent_runs(1000, kind="batch")}


# -- settings -------------------------------------------------------------------------------


def test_workers_are_refused_on_sqlite_with_the_setting_named(tmp_path):
    environ = {"PAPERWIRE_WORKERS_ENABLED": "1", "PAPERWIRE_DB": f"sqlite:///{tmp_path / 'pw.db'}"}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ, cwd=tmp_path)
    assert "'workers.enabled'" in str(refused.value) and "PostgreSQL" in str(refused.value)
    assert "PAPERWIRE_WORKERS_ENABLED" in str(refused.value)
    (tmp_path / "paperwire.toml").write_text('[workers]\nenabled = true\nbatch_size = 50\n')
    with pytest.raises(ConfigError, match="'workers.enabled'"):
        load_settings(environ={}, cwd=tmp_path)
    done = subprocess.run([sys.executable, "-m", "paperwire", "send", "--all"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **environ})
    assert done.returncode == 1 and "Error: setting 'workers.enabled'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_workers_settings_from_the_file_and_a_heartbeat_slower_than_the_stall_limit_is_refused(tmp_path):
    url = "postgresql+psycopg://u:secret@127.0.0.1/db"
    (tmp_path / "paperwire.toml").write_text(f'db = "{url}"\n[workers]\nenabled = true\nbatch_size = 50\n')
    settings = load_settings(environ={}, cwd=tmp_path)
    assert (settings.workers_enabled, settings.workers_batch_size) == (True, 50)
    assert (settings.workers_heartbeat_seconds, settings.workers_stalled_seconds) == (10.0, 30.0)
    with pytest.raises(ConfigError, match="'workers.stalled_seconds'"):
        load_settings(environ={"PAPERWIRE_WORKERS_HEARTBEAT_SECONDS": "20"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="'workers.batch_size'"):
        load_settings(environ={"PAPERWIRE_WORKERS_BATCH_SIZE": "0"}, cwd=tmp_path)


def test_a_worker_without_workers_enabled_says_which_setting(tmp_path):
    done = subprocess.run([sys.executable, "-m", "paperwire", "--db", f"sqlite:///{tmp_path / 'pw.db'}", "worker"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_WORKERS")})
    assert done.returncode == 1 and "'workers.enabled'" in done.stderr, done.stderr


# -- the queue ------------------------------------------------------------------------------


def test_schema_is_installed_once_and_a_second_dispatch_never_queues_a_queued_reader(pg_url, tmp_path):
    store = readers_store(pg_url, 30)
    settings = load_settings(environ={"PAPERWIRE_DB": pg_url, "PAPERWIRE_WORKERS_ENABLED": "1",
                                      "PAPERWIRE_WORKERS_BATCH_SIZE": "8"}, cwd=tmp_path)
    workers.ensure_schema(store)
    workers.ensure_schema(store)  # idempotent: procrastinate's own `schema --apply` would fail here
    first = workers.enqueue(store, settings, everyone=True)
    assert (first.readers, len(first.jobs)) == (30, 4)  # batches of 8: 8 + 8 + 8 + 6
    with store.engine.connect() as conn:
        batches = [row.args for row in conn.execute(sa.text(
            "SELECT args FROM procrastinate_jobs WHERE queue_name = 'paperwire-send' ORDER BY id"))]
    assert sorted(r for b in batches for r in b["readers"]) == sorted(r.id for r in store.subscribers())
    assert {b["dispatch"] for b in batches} == {first.dispatch_id} and [b["batch"] for b in batches] == [0, 1, 2, 3]
    second = workers.enqueue(store, settings, everyone=True)  # nobody has run them yet
    assert (second.readers, second.jobs, second.report.skipped) == (0, [], 30)
    dispatches = store.recent_runs(kind="dispatch")
    assert sorted(r.summary["batches"] for r in dispatches) == [0, 4] and all(r.finished_at for r in dispatches)


# -- real workers ---------------------------------------------------------------------------


def test_two_workers_send_every_reader_exactly_once(pg_url, tmp_path, smtp_server):
    inbox = Inbox()
    env = _env(pg_url, tmp_path, smtp_server(inbox), PAPERWIRE_WORKERS_BATCH_SIZE="25")
    store = readers_store(pg_url, 300)
    workers.ensure_schema(store)
    started = _start_workers(store, env, tmp_path, 2)
    try:
        send = _paperwire(["send", "--all", "--wait", "--json"], env, tmp_path)
        out, err = send.communicate(timeout=180)
        assert send.returncode == 0, err
    finally:
        _stop(started)
    report = json.loads(out)
    assert set(report) == {"sent", "retried", "failed", "skipped", "deferred", "dry_run", "would_send", "needs_smtputf8",
                           "unknown", "failures", "error"}  # the shape of an in-process send
    assert (report["sent"], report["failed"], report["unknown"], report["error"]) == (300, 0, [], "")
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(300)}
    assert _batch_pids(store) == {p.pid for p in started}  # both workers took batches
    assert store.delivery_counts() == {"sent": 300}


def test_a_worker_killed_mid_batch_its_batch_finishes_elsewhere_nobody_twice_nobody_lost(pg_url, tmp_path,
                                                                                         smtp_server):
    inbox = Inbox(delay=0.03)
    env = _env(pg_url, tmp_path, smtp_server(inbox), PAPERWIRE_SMTP_POOL_SIZE="1")
    store = readers_store(pg_url, 80)  # one batch (500 by default)
    workers.ensure_schema(store)
    (doomed,) = _start_workers(store, env, tmp_path, 1)
    send = _paperwire(["send", "--all", "--wait", "--json"], env, tmp_path)
    rescuer = []
    try:
        deadline = time.monotonic() + 90
        while len(inbox.messages) < 10:
            assert time.monotonic() < deadline and send.poll() is None
            time.sleep(0.01)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed_at, received_by_the_dead = time.monotonic(), len(inbox.messages)
        assert received_by_the_dead < 80
        rescuer = _start_workers(store, env, tmp_path, 1)
        out, err = send.communicate(timeout=120)
        finished_in = time.monotonic() - killed_at
    finally:
        _stop(rescuer)
        if send.poll() is None:
            send.kill()
    report = json.loads(out)
    counts = inbox.count_by_recipient()
    unknown = {item["email"] for item in report["unknown"]}
    assert all(n == 1 for n in counts.values()), counts  # nobody twice
    assert set(counts) | unknown == {f"reader{i:03d}@example.org" for i in range(80)}  # nobody lost
    assert len(unknown) <= 1  # pool of one: at most the message in flight at the kill
    assert report["sent"] == len(counts) - received_by_the_dead  # what the second worker sent
    assert finished_in < 60, finished_in
    assert _batch_pids(store) == {doomed.pid, rescuer[0].pid}
    assert store.delivery_counts().get("sending", 0) == 0  # every claim settled


def test_the_daemon_queues_its_dispatches_for_the_workers(pg_url, tmp_path, smtp_server):
    inbox = Inbox()
    env = _env(pg_url, tmp_path, smtp_server(inbox), PAPERWIRE_WORKERS_BATCH_SIZE="10",
               PAPERWIRE_SCHEDULE_SOURCES=str(SEED))
    store = readers_store(pg_url, 40)
    workers.ensure_schema(store)
    started = _start_workers(store, env, tmp_path, 2)
    daemon = _paperwire(["--log-format", "json", "schedule"], env, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while len(inbox.messages) < 40:
            assert time.monotonic() < deadline and daemon.poll() is None, len(inbox.messages)
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
        _stop(started)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    run = next(line for line in lines if line.get("event") == "dispatch")
    assert (run["batches"], run["queued"], run["sent"]) == (4, 40, 0)  # queued, not sent by the daemon
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(40)}
    assert _batch_pids(store) <= {p.pid for p in started} and len(store.recent_runs(100, kind="batch")) == 4


def test_a_batch_runs_the_in_process_code_skips_readers_gone_and_never_runs_twice(pg_url, tmp_path, monkeypatch):
    """The task itself, called as a worker calls it: its readers get what an in-process send
    gives them; a reader who unsubscribed after the dispatch is skipped; a batch whose run
    already finished (its worker died before the queue heard) is not run again."""
    store = readers_store(pg_url, 6)
    settings = load_settings(environ={"PAPERWIRE_DB": pg_url, "PAPERWIRE_WORKERS_ENABLED": "1",
                                      "PAPERWIRE_OUTBOX_DIR": str(tmp_path / "outbox"),
                                      "PAPERWIRE_RELEVANCE_EMBEDDER": "off"}, cwd=tmp_path)
    enqueued = workers.enqueue(store, settings, everyone=True)
    with store.engine.connect() as conn:
        (args,) = [row.args for row in conn.execute(sa.text("SELECT args FROM procrastinate_jobs"))]
    store.set_status("reader002@example.org", "unsubscribed")
    monkeypatch.setattr(workers, "_worker", workers._Worker(store, settings))
    assert workers.deliver_batch_job(**args) == {"batch": 0, "sent": 5, "skipped": 1, "failed": 0}
    assert workers.deliver_batch_job(**args) == {"batch": 0, "already": True}
    assert len(store.recent_runs(kind="batch")) == 1
    total = workers._total(store, enqueued, failed=[], pending=[])
    assert (total.sent, total.skipped, total.error) == (5, 1, "")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 5
    assert store.deliveries_of("reader002@example.org") == []


def test_status_names_the_readers_a_batch_failed(pg_url, tmp_path, smtp_server, monkeypatch):
    inbox = Inbox(refuse={"reader001@example.org"})
    port = smtp_server(inbox)
    store = readers_store(pg_url, 3)
    environ = {"PAPERWIRE_DB": pg_url, "PAPERWIRE_WORKERS_ENABLED": "1", "PAPERWIRE_SMTP_HOST": "127.0.0.1",
               "PAPERWIRE_SMTP_PORT": str(port), "PAPERWIRE_RELEVANCE_EMBEDDER": "off"}
    settings = load_settings(environ=environ, cwd=tmp_path)
    workers.enqueue(store, settings, everyone=True)
    with store.engine.connect() as conn:
        (args,) = [row.args for row in conn.execute(sa.text("SELECT args FROM procrastinate_jobs"))]
    monkeypatch.setattr(workers, "_worker", workers._Worker(store, settings))
    assert workers.deliver_batch_job(**args)["failed"] == 1
    monkeypatch.delenv("PAPERWIRE_TEST_DB")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    from click.testing import CliRunner

    from paperwire.cli import cli

    shown = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
    assert "failed: reader001@example.org (batch): reader001@example.org: 550 5.1.1" in shown.output, shown.output
