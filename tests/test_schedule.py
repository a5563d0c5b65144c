"""The schedule daemon and ingest from URLs: a real http.server, a real SMTP server, real signals."""

from __future__ import annotations

import collections
import datetime as dt
import email
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from paperwire import pipeline
from paperwire.store import Store

from .conftest import DATA, SEED, TODAY
from .ports import free_port
from .test_dispatch import Inbox, _write_readers, smtp_server  # noqa: F401  (fixture)

ETAG = '"seed-v1"'


class ListingServer(ThreadingHTTPServer):
    """Serves one listing with an ETag; remembers each request's conditional header."""

    def __init__(self, body: bytes):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.etag = ETAG
        self.requests: list[tuple[str, str | None]] = []  # (path, If-None-Match)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ListingServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("If-None-Match")))
        if self.path.split("?")[0] == "/broken":
            self.send_error(500, "Internal Server Error")
            return
        if self.path.startswith("/slow/"):  # a source that takes its time
            time.sleep(1.5)
        if self.headers.get("If-None-Match") == self.server.etag:
            self.send_response(304)
            self.send_header("ETag", self.server.etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", self.server.etag)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


@pytest.fixture
def listing_server() -> Iterator[ListingServer]:
    server = ListingServer(SEED.read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _snapshot(store: Store) -> tuple:
    return store.count_papers(), [(s.date, s.papers) for s in store.listing_summaries()]


def test_ingest_from_a_url_then_304_changes_nothing(store, listing_server):
    url = listing_server.url + "/daily.txt"
    first = pipeline.ingest(store, [url], today=TODAY)
    assert not first.errors and first.counts.added == 70 and first.not_modified == 0
    before = _snapshot(store)
    second = pipeline.ingest(store, [url], today=TODAY)
    assert second.not_modified == 1 and second.counts.added == second.counts.unchanged == 0 and not second.errors
    assert listing_server.requests == [("/daily.txt", None), ("/daily.txt", ETAG)]
    assert _snapshot(store) == before


def test_a_changed_listing_is_fetched_again_and_merged(store, listing_server):
    url = listing_server.url + "/daily.txt"
    pipeline.ingest(store, [url], today=TODAY)
    listing_server.etag = '"seed-v2"'
    again = pipeline.ingest(store, [url], today=TODAY)
    assert again.not_modified == 0 and again.counts.unchanged == 70 and again.counts.added == 0


def test_a_failed_fetch_names_the_url_and_the_other_sources_still_go_in(store, listing_server):
    broken = listing_server.url + "/broken"
    report = pipeline.ingest(store, [broken, DATA / "hf_daily_papers.json"], today=TODAY)
    assert [e.file for e in report.errors] == [broken] and "500" in report.errors[0].message
    assert report.counts.added > 0
    assert store.fetch_validators(broken) is None


def test_a_url_that_does_not_parse_stores_nothing_not_even_its_etag(store, listing_server):
    listing_server.body = b"\x00\x01 binary junk"
    url = listing_server.url + "/daily.txt"
    report = pipeline.ingest(store, [url], today=TODAY)
    assert report.errors and report.errors[0].file == url and "binary" in report.errors[0].message
    assert store.count_papers() == 0 and store.fetch_validators(url) is None
    listing_server.body = SEED.read_bytes()
    fixed = pipeline.ingest(store, [url], today=TODAY)  # unconditional again: nothing was stored
    assert fixed.counts.added == 70 and listing_server.requests[-1] == ("/daily.txt", None)


def test_ingest_command_takes_urls(run_cli, listing_server):
    url = listing_server.url + "/daily.txt"
    assert json.loads(run_cli("ingest", "--date", "2024-03-11", url, "--json").output)["added"] == 70
    again = json.loads(run_cli("ingest", "--date", "2024-03-11", url, "--json").output)
    assert again["not_modified"] == 1 and again["added"] == 0


# -- the daemon ------------------------------------------------------------------------


@pytest.fixture
def site(db_url: str, tmp_path: Path, listing_server: ListingServer) -> tuple[Path, dict]:
    """A working folder whose paperwire.toml reads the listing from the local HTTP server (its
    database: ``db_url``, in ``PAPERWIRE_DB``)."""
    (tmp_path / "paperwire.toml").write_text(
        f'out_dir = "{tmp_path / "out"}"\noutbox_dir = "{tmp_path / "outbox"}"\n'
        f'[schedule]\nsources = ["{listing_server.url}/daily.txt"]\ndispatch_minutes = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    env["PAPERWIRE_RELEVANCE_EMBEDDER"] = "off"  # see conftest: these tests are not about vectors
    env["PAPERWIRE_DB"] = db_url
    readers = tmp_path / "readers.json"
    _write_readers(readers, 6)
    done = subprocess.run([sys.executable, "-m", "paperwire", "subscribers", "import", str(readers)], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp_path, env


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test():
    """A test that failed before stopping its daemon kills it: otherwise it runs on after the
    suite (on PostgreSQL, trying its dropped database again and again)."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def _daemon(cwd: Path, env: dict, *extra: str) -> subprocess.Popen:
    _started.append(subprocess.Popen([sys.executable, "-m", "paperwire", "--log-format", "json", *extra, "schedule"],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return _started[-1]


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> list[dict]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_schedule_ingests_sends_writes_feeds_and_stops_cleanly(site, listing_server):
    cwd, env = site
    daemon = _daemon(cwd, env)
    outbox = cwd / "outbox"
    _wait_for(lambda: len(list(outbox.glob("*.eml"))) == 6 and (cwd / "out" / "feeds" / "trending.atom").exists())
    time.sleep(0.5)
    lines = _stop(daemon)
    events = [line.get("event") for line in lines]
    assert events[0] == "schedule-start" and events[-1] == "schedule-stop"
    assert events.index("ingest") < events.index("dispatch")
    run = next(line for line in lines if line.get("event") == "dispatch")
    assert run["sent"] == 6 and run["failed"] == 0
    assert all(line["level"] in ("info", "warning", "error") and "time" in line for line in lines)
    recipients = collections.Counter(email.message_from_bytes(f.read_bytes())["To"] for f in outbox.glob("*.eml"))
    assert set(recipients.values()) == {1} and len(recipients) == 6
    engine = sa.create_engine(env["PAPERWIRE_DB"])
    with engine.connect() as conn:
        jobs = {row.id for row in conn.execute(sa.text("SELECT id FROM apscheduler_jobs"))}
    engine.dispose()
    assert jobs == {"ingest", "dispatch"}

    again = _daemon(cwd, env)  # a restart: the listing is unchanged (304) and nobody is due again
    _wait_for(lambda: len(listing_server.requests) >= 2)
    time.sleep(2.0)
    lines = _stop(again)
    ingest = next(line for line in lines if line.get("event") == "ingest")
    assert ingest["not_modified"] == 1 and ingest["added"] == 0
    assert next(line for line in lines if line.get("event") == "dispatch")["sent"] == 0
    assert len(list(outbox.glob("*.eml"))) == 6


def test_sigterm_mid_send_finishes_in_flight_and_the_next_run_sends_the_rest_once(site, smtp_server):
    cwd, env = site
    inbox = Inbox(delay=0.4)
    env = {**env, "PAPERWIRE_SMTP_HOST": "127.0.0.1", "PAPERWIRE_SMTP_PORT": str(smtp_server(inbox)),
           "PAPERWIRE_SMTP_POOL_SIZE": "1"}
    daemon = _daemon(cwd, env)
    _wait_for(lambda: len(inbox.messages) >= 1)
    started = time.monotonic()
    lines = _stop(daemon)
    assert time.monotonic() - started < 10
    first = len(inbox.messages)
    assert 1 <= first < 6
    run = next(line for line in lines if line.get("event") == "dispatch")
    assert run["sent"] == first and run["unknown"] == 0
    engine = sa.create_engine(env["PAPERWIRE_DB"])
    with engine.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT status, count(*) FROM deliveries GROUP BY status")).all())
        handed_over = conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE status != 'sent' AND attempts > 0")).scalar_one()
    engine.dispose()
    # Nothing claimed and left behind. A message already taken from the queue when the stop
    # came (more likely on a busy machine) is recorded deferred, never handed to the server.
    assert set(states) <= {"sent", "deferred"} and states["sent"] == first and handed_over == 0

    done = subprocess.run([sys.executable, "-m", "paperwire", "send", "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == 6 - first
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(6)}


def test_schedule_help_names_the_settings(run_cli):
    text = run_cli("schedule", "--help", db=False).output
    assert "schedule.dispatch_minutes" in text and "SIGTERM" in text


@pytest.mark.sqlite_only("a password in the URL's query, which only SQLite ignores (PostgreSQL: tests/test_postgres.py)")
def test_logs_name_the_failure_and_never_the_password(site):
    cwd, env = site
    port = free_port()  # a port nobody listens on: the SMTP server is "down"
    secret, db_secret = "s3cr3t-Pa55word", "db-Pa55word"
    database = env["PAPERWIRE_DB"]
    env = {**env, "PAPERWIRE_SMTP_HOST": "127.0.0.1", "PAPERWIRE_SMTP_PORT": str(port),
           "PAPERWIRE_SMTP_USER": "digest", "PAPERWIRE_SMTP_PASSWORD": secret, "PAPERWIRE_SMTP_TIMEOUT": "2",
           # A password as PostgreSQL's drivers take it; SQLite warns that it ignores it (not a log line).
           "PAPERWIRE_DB": f"{database}?password={db_secret}", "PYTHONWARNINGS": "ignore"}
    daemon = _daemon(cwd, env)
    _wait_for(lambda: (cwd / "out" / "feeds").exists() or daemon.poll() is not None)
    time.sleep(1.0)
    lines = _stop(daemon)
    assert secret not in json.dumps(lines) and db_secret not in json.dumps(lines)
    assert lines[0]["event"] == "schedule-start" and lines[0]["db"] == f"{database}?password=***"
    errors = [line for line in lines if line["level"] == "error"]
    assert errors and any(f"127.0.0.1:{port}" in line["message"] for line in errors)
    assert next(line for line in lines if line.get("event") == "dispatch")["sent"] == 0


def test_status_shows_queued_readers_counts_and_runs(run_cli, tmp_path):
    run_cli("ingest", SEED)
    for address in ("ada@example.org", "lin@example.org"):
        assert run_cli("subscribe", address, "--topic", "*").exit_code == 0
    before = json.loads(run_cli("status", "--json").stdout)
    assert before["queued"] == 2 and before["deliveries"] == {} and before["runs"] == []
    sent = run_cli("send", "--json")
    assert sent.exit_code == 0 and json.loads(sent.stdout)["sent"] == 2
    after = json.loads(run_cli("status", "--json").stdout)
    assert after["queued"] == 0 and after["deliveries"] == {"sent": 2}
    assert after["runs"][0]["kind"] == "dispatch" and after["runs"][0]["summary"]["sent"] == 2
    text = run_cli("status").stdout
    assert "queued: 0 reader(s)" in text and "deliveries: 2 sent" in text


def _run_lines(text: str) -> list[tuple[str, str]]:
    """(kind, state) of each run line of `paperwire status`, sorted."""
    return sorted((line.split()[2], line.split()[3]) for line in text.splitlines() if line[:2] == "20")


def test_status_shows_a_run_killed_with_kill_9_as_dead(run_cli, db_url):
    """A real process starts a run and is killed mid-run: running while it lives, dead after."""
    script = ("import sys, time\nfrom paperwire.store import Store\n"
              "Store(sys.argv[1]).start_run('dispatch')\nprint('started', flush=True)\ntime.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "started"
        (alive,) = json.loads(run_cli("status", "--json").stdout)["runs"]
        assert alive["state"] == "running" and alive["finished_at"] is None
        assert _run_lines(run_cli("status").stdout) == [("dispatch", "running")]
    finally:
        process.kill()  # SIGKILL: no finally, no finish_run
        process.wait()
    (killed,) = json.loads(run_cli("status", "--json").stdout)["runs"]
    assert killed["state"] == "dead" and killed["finished_at"] is None
    assert _run_lines(run_cli("status").stdout) == [("dispatch", "dead")]


def test_status_shows_a_run_whose_heartbeat_is_older_than_the_lease_as_dead(run_cli, store, monkeypatch):
    """On another host the process cannot be asked: the heartbeat alone tells, by run_lease_seconds."""
    from paperwire.store import runs

    now = dt.datetime.now(dt.timezone.utc)
    ingest, dispatch = store.start_run("ingest"), store.start_run("dispatch")
    done = store.start_run("dispatch")
    store.finish_run(done, {"sent": 1})
    with store.engine.begin() as conn:
        conn.execute(runs.update().values(host="elsewhere.example", pid=1))
        conn.execute(runs.update().where(runs.c.id == ingest).values(heartbeat_at=now - dt.timedelta(seconds=700)))
        conn.execute(runs.update().where(runs.c.id == dispatch).values(heartbeat_at=now - dt.timedelta(seconds=60)))
    states = {r["id"]: r["state"] for r in json.loads(run_cli("status", "--json").stdout)["runs"]}
    assert states == {ingest: "dead", dispatch: "running", done: "done"}  # default lease: 600 s
    monkeypatch.setenv("PAPERWIRE_RUN_LEASE_SECONDS", "30")
    states = {r["id"]: r["state"] for r in json.loads(run_cli("status", "--json").stdout)["runs"]}
    assert states == {ingest: "dead", dispatch: "dead", done: "done"}
    assert _run_lines(run_cli("status").stdout) == [("dispatch", "dead"), ("dispatch", "done"), ("ingest", "dead")]


def test_an_ingest_run_beats_its_heartbeat_while_a_slow_source_is_read(store, listing_server, monkeypatch):
    """Else `status` would call a long ingest dead once the lease is over, though it still runs."""
    from paperwire import runs, schedule
    from paperwire.config import Settings

    monkeypatch.setattr(runs, "HEARTBEAT_EVERY", 0.1)
    settings = Settings(schedule_sources=(listing_server.url + "/slow/daily.txt",))
    monkeypatch.setattr(schedule, "_daemon", schedule._Daemon(store, settings, threading.Event()))
    assert schedule.ingest_job().counts.added == 70
    (run,) = store.recent_runs()
    assert run.kind == "ingest" and run.heartbeat_at > run.started_at  # stored to the second; the fetch took 1.5 s


def test_url_credentials_and_tokens_never_reach_errors_or_the_store(store, listing_server):
    port = listing_server.server_address[1]
    broken = f"http://reader:hunter2@127.0.0.1:{port}/broken?token=abc123"
    report = pipeline.ingest(store, [broken], today=TODAY)
    shown = json.dumps(report.as_dict())
    assert "hunter2" not in shown and "abc123" not in shown
    assert report.errors[0].file == f"http://127.0.0.1:{port}/broken?…"
    listing = f"http://reader:hunter2@127.0.0.1:{port}/daily.txt?token=abc123"
    assert pipeline.ingest(store, [listing], today=TODAY).counts.added == 70
    assert not any("hunter2" in s.origin or "abc123" in s.origin for s in store.listing_summaries())


def test_the_daemon_exits_when_the_scheduler_thread_dies(store, tmp_path, monkeypatch):
    import threading as _threading

    from paperwire import schedule
    from paperwire.config import Settings
    from paperwire.errors import PaperwireError

    monkeypatch.setattr(schedule, "_scheduler_alive", lambda scheduler: False)
    settings = Settings(schedule_sources=(str(SEED),), out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    with pytest.raises(PaperwireError, match="scheduler stopped"):
        schedule.run(store, settings, _threading.Event())
    assert schedule._daemon is None


def test_feeds_are_rebuilt_only_when_papers_or_public_topics_change(store, tmp_path, monkeypatch):
    import threading as _threading

    from paperwire import schedule, sources
    from paperwire.config import Settings
    from paperwire.subscribers import make_topic

    calls = []
    monkeypatch.setattr(pipeline, "write_feeds", lambda *args, **kwargs: calls.append(kwargs["edition"]))
    daemon = schedule._Daemon(store, Settings(out_dir=tmp_path / "out"), _threading.Event())
    schedule._rewrite_feeds(daemon)
    assert calls == []  # nothing stored yet
    store.save_listings(sources.read_path(SEED, today=TODAY))
    schedule._rewrite_feeds(daemon)
    schedule._rewrite_feeds(daemon)
    assert len(calls) == 1
    store.add_public_topic(make_topic("MoE", "MoE", public=True))
    schedule._rewrite_feeds(daemon)
    assert len(calls) == 2


@pytest.mark.slow
def test_daemons_starting_at_once_on_a_new_database_all_make_their_job_store(new_db, tmp_path):
    """Four processes set up the scheduler's job store on one database at the same moment,
    twelve times over: none dies on "table apscheduler_jobs already exists"."""
    from paperwire.store import Store

    from . import concurrently

    urls = [new_db(tmp_path / f"pw{i}.sqlite3") for i in range(12)]
    for url in urls:  # migrated first: this race is the job store's own
        Store(url).close()
    outcomes = concurrently.at_once(concurrently.start_scheduler, urls, processes=4)
    assert outcomes == ["ok"] * len(outcomes)
    for url in urls:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert {row.id for row in conn.execute(sa.text("SELECT id FROM apscheduler_jobs"))} == {"ingest", "dispatch"}
        engine.dispose()
