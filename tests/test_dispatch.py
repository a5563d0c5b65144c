"""Sending for real: an aiosmtpd server on 127.0.0.1, the outbox, crashes and concurrent runs."""

from __future__ import annotations

import collections
import datetime as dt
import email
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from paperwire import dispatch
from paperwire.config import Settings
from paperwire.models import Paper
from paperwire.store import Store
from paperwire.subscribers import build_subscriber, parse_topic_spec

from .conftest import SEED, TODAY
from .ports import free_port

EDITION = dt.date(2024, 3, 11)
NOON = dt.datetime(2024, 3, 11, 12, 0, tzinfo=dt.timezone.utc)


class Inbox:
    """An aiosmtpd handler that keeps every message, optionally refusing or slowing some."""

    def __init__(self, refuse: set[str] = frozenset(), delay: float = 0.0, busy: set[str] = frozenset()):
        self.refuse = set(refuse)
        self.busy = set(busy)  # answered "452 mailbox full" (a temporary failure) while listed
        self.delay = delay
        self.messages: list[tuple[tuple[str, ...], bytes]] = []
        self.senders: list[str] = []  # MAIL FROM of each message, as it came on the wire
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        if address in self.busy:
            return "452 4.2.2 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            import asyncio
            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append((tuple(envelope.rcpt_tos), envelope.original_content or envelope.content))
            self.senders.append(envelope.mail_from)
        return "250 Message accepted"

    def count_by_recipient(self) -> collections.Counter:
        return collections.Counter(r for rcpts, _ in self.messages for r in rcpts)


@pytest.fixture
def smtp_server():
    servers = []

    def start(handler: Inbox, **smtp_options) -> int:
        """A server on a free port; ``smtp_options`` go to aiosmtpd (e.g. enable_SMTPUTF8=False)."""
        port = free_port()  # aiosmtpd checks readiness by connecting to it
        controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
        controller.start()
        servers.append(controller)
        return port

    yield start
    for controller in servers:
        controller.stop()


def readers_store(db_url: str, count: int, *, topics=("*",)) -> Store:
    store = Store(db_url)
    from paperwire import sources
    store.save_listings(sources.read_path(SEED, today=TODAY))
    store.save_subscribers([build_subscriber(f"reader{i:03d}@example.org", name=f"Reader {i}",
                                             topics=[parse_topic_spec(t) for t in topics], max_papers=3)
                            for i in range(count)])
    return store


def smtp_settings(tmp_path: Path, port: int, **extra) -> Settings:
    values = {"smtp_max_attempts": 3, "smtp_timeout": 5.0, **extra}
    return Settings(smtp_host="127.0.0.1", smtp_port=port, out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox",
                    **values)


def test_messages_arrive_intact_once_per_reader(db_url, tmp_path, smtp_server):
    inbox = Inbox()
    port = smtp_server(inbox)
    store = readers_store(db_url, 5)
    settings = smtp_settings(tmp_path, port)
    report = dispatch.dispatch(store, settings, now=NOON)
    assert (report.sent, report.failed, report.skipped) == (5, 0, 0)
    again = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(hours=1), everyone=True)
    assert again.sent == 0 and again.skipped == 5
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(5)}
    rcpts, data = inbox.messages[0]
    message = email.message_from_bytes(data, policy=policy.default)
    assert message["To"] == f"Reader {rcpts[0][6:9].lstrip('0') or '0'} <{rcpts[0]}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = message.get_payload()
    assert "ScaleDepth" in text.get_content() and "ScaleDepth" in html.get_content()
    sent = store.deliveries_of(rcpts[0])
    assert [d["status"] for d in sent] == ["sent"] and sent[0]["message_id"] == message["Message-ID"]


def test_hard_failures_are_recorded_and_repeated_ones_mark_the_reader_bouncing(db_url, tmp_path, smtp_server):
    bad = "reader001@example.org"
    inbox = Inbox(refuse={bad})
    port = smtp_server(inbox)
    store = readers_store(db_url, 3)
    settings = smtp_settings(tmp_path, port)
    for day in range(3):
        report = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=day), everyone=True)
        assert report.failed == 1 and report.failures[0]["email"] == bad and report.failures[0]["code"] == 550
    assert [d["status"] for d in store.deliveries_of(bad)] == ["failed"] * 3
    assert store.subscriber(bad).status == "bouncing"
    assert inbox.count_by_recipient()[bad] == 0
    later = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=3), everyone=True)
    assert later.failed == 0  # a bouncing reader is skipped


def test_failures_of_our_own_relay_never_mark_a_reader_bouncing(db_url, tmp_path, smtp_server):
    """"needs SMTPUTF8" is our relay's limit, not the reader's address: three in a row leave them active."""
    inbox = Inbox()
    port = smtp_server(inbox, enable_SMTPUTF8=False)
    store = readers_store(db_url, 2)
    store.save_subscriber(build_subscriber("jörg@example.org", topics=[parse_topic_spec("*")]))
    settings = smtp_settings(tmp_path, port)
    for day in range(3):
        report = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=day), everyone=True)
        # The others had their digest of the one listing on the first day; nothing is new after it.
        assert (report.sent, report.skipped) == ((2, 0) if day == 0 else (0, 2)), report
        assert [f["email"] for f in report.failures] == ["jörg@example.org"]
        assert report.failures[0]["code"] is None and "needs SMTPUTF8" in report.failures[0]["detail"]
    assert [d["status"] for d in store.deliveries_of("jörg@example.org")] == ["failed"] * 3
    assert store.subscriber("jörg@example.org").status == "active"


def _tables(store: Store) -> dict:
    import sqlalchemy as sa
    with store.engine.connect() as conn:
        return {name: conn.execute(sa.text(f"SELECT * FROM {name}")).all() for name in ("runs", "deliveries")}


def test_outbox_and_dry_run(db_url, tmp_path):
    store = readers_store(db_url, 3)
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    before = _tables(store)
    dry = dispatch.dispatch(store, settings, now=NOON, dry_run=True)
    assert dry.dry_run == 3 and _tables(store) == before  # a dry run writes nothing at all
    assert sorted(dry.would_send) == [f"reader00{n}@example.org" for n in range(3)]  # and says who
    real = dispatch.dispatch(store, settings, now=NOON)
    assert real.sent == 3 and len(list((tmp_path / "outbox").glob("*.eml"))) == 3
    assert dispatch.dispatch(store, settings, now=NOON, everyone=True).sent == 0


@pytest.mark.parametrize(("base_url", "said"), [("http://127.0.0.1:8000", "points at this machine"),
                                              ("http://papers.example.org", "not https"),
                                              ("https://papers.example.org", None)])
def test_sending_real_mail_with_links_readers_cannot_use_is_warned_about(caplog, tmp_path, base_url, said):
    """The default base_url (this machine) or plain http in every email: said once a run, in the log."""
    caplog.set_level("WARNING", logger="paperwire.dispatch")
    dispatch.warn_about_links.cache_clear()
    for _ in range(3):  # a worker makes a transport per batch: said once
        dispatch.make_transport(Settings(smtp_host="127.0.0.1", base_url=base_url))
    dispatch.make_transport(Settings(base_url=base_url, outbox_dir=tmp_path))  # the outbox: no real mail
    warnings = [r.getMessage() for r in caplog.records if r.name == "paperwire.dispatch"]
    assert warnings == ([] if said is None else [next(w for w in warnings if said in w)])


def test_readers_are_due_at_their_own_hour(db_url, tmp_path):
    store = readers_store(db_url, 0)
    for email_address, hour, zone in [("early@example.org", 6, "UTC"), ("late@example.org", 20, "UTC"),
                                      ("tokyo@example.org", 8, "Asia/Tokyo")]:
        store.save_subscriber(build_subscriber(email_address, hour=hour, timezone=zone, topics=[parse_topic_spec("*")]))
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    first = dispatch.dispatch(store, settings, now=NOON)  # first digests go out at once
    assert first.sent == 3
    store.save_listings([_next_listing()])
    at = lambda hour: dt.datetime(2024, 3, 11, hour, 0, tzinfo=dt.timezone.utc)  # noqa: E731
    assert dispatch.dispatch(store, settings, now=at(19)).sent == 0  # nobody's next slot is open yet
    evening = dispatch.dispatch(store, settings, now=at(20))  # late@'s 20:00 UTC slot opens
    assert evening.sent == 1 and store.deliveries_of("late@example.org")[0]["slot"] == dt.date(2024, 3, 11)
    morning = dispatch.dispatch(store, settings, now=dt.datetime(2024, 3, 12, 7, 0, tzinfo=dt.timezone.utc))
    assert morning.sent == 2  # early@ (06:00 UTC) and tokyo@ (16:00 in Tokyo); late@ already has the new paper
    assert [d["slot"] for d in store.deliveries_of("tokyo@example.org")] == [dt.date(2024, 3, 12), dt.date(2024, 3, 11)]


def _next_listing():
    from paperwire.models import Listing, Paper
    from paperwire.normalize import paper_id
    title = "A Brand New Paper About Everything"
    return Listing("daily-papers", dt.date(2024, 3, 12), [Paper(paper_id(None, title), title, "Fresh abstract.")])


def _write_readers(path: Path, count: int) -> None:
    path.write_text(json.dumps([{"email": f"reader{i:03d}@example.org", "topics": [{"name": "all", "query": "*"}],
                                 "max": 3} for i in range(count)]))


def _cli(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "paperwire", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def crash_site(new_db, tmp_path):
    env = {**os.environ, "PAPERWIRE_DB": new_db(tmp_path / "pw.db"), "PAPERWIRE_OUT_DIR": str(tmp_path / "out"),
           "PAPERWIRE_OUTBOX_DIR": str(tmp_path / "outbox")}
    env = {k: v for k, v in env.items() if not k.startswith("PAPERWIRE_SMTP")}
    readers = tmp_path / "readers.json"
    _write_readers(readers, 40)
    for args in (["ingest", "--date", "2024-03-11", str(SEED)], ["subscribers", "import", str(readers)]):
        done = subprocess.run([sys.executable, "-m", "paperwire", *args], cwd=tmp_path, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
    return tmp_path, env


@pytest.mark.parametrize(("chunk", "in_doubt"), [(1, 1), (8, 1 + 2 * 8)])
def test_a_run_killed_mid_send_then_run_again_misses_no_one_and_sends_no_one_twice(crash_site, smtp_server, chunk,
                                                                                   in_doubt):
    """In chunks too (delivery_chunk): a chunk's claims are committed before any of its messages
    is handed over and its answers after, so a kill -9 leaves at most the pool and two chunks in doubt."""
    cwd, env = crash_site
    inbox = Inbox(delay=0.05)
    env = {**env, "PAPERWIRE_SMTP_HOST": "127.0.0.1", "PAPERWIRE_SMTP_PORT": str(smtp_server(inbox)),
           "PAPERWIRE_SMTP_POOL_SIZE": "1", "PAPERWIRE_DELIVERY_CHUNK": str(chunk)}
    run = _cli(["send", "--all", "--json"], cwd, env)
    deadline = time.monotonic() + 60
    while len(inbox.messages) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    killed_run_received = len(inbox.messages)
    assert 10 <= killed_run_received < 40
    again = _cli(["send", "--all", "--json"], cwd, env)
    out, err = again.communicate(timeout=120)
    report = json.loads(out)
    counts = inbox.count_by_recipient()
    unknown = {item["email"] for item in report["unknown"]}
    assert len(unknown) <= in_doubt  # pool of one: at most the message in flight at the kill (and the chunks)
    assert all(n == 1 for n in counts.values()), counts  # nobody twice
    assert set(counts) | unknown == {f"reader{i:03d}@example.org" for i in range(40)}  # nobody missed
    assert report["sent"] == len(counts) - killed_run_received


def test_outbox_crash_is_settled_exactly(crash_site):
    cwd, env = crash_site
    run = _cli(["send", "--all"], cwd, env)
    deadline = time.monotonic() + 60
    while len(list((cwd / "outbox").glob("*.eml"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = subprocess.run([sys.executable, "-m", "paperwire", "send", "--all", "--json"], cwd=cwd, env=env,
                          capture_output=True, timeout=120)
    report = json.loads(done.stdout)
    assert report["unknown"] == []
    files = list((cwd / "outbox").glob("*.eml"))
    recipients = collections.Counter(email.message_from_bytes(f.read_bytes())["To"] for f in files)
    assert len(recipients) == 40 and set(recipients.values()) == {1}


def test_two_runs_at_once_never_both_send_to_one_reader(crash_site, smtp_server):
    cwd, env = crash_site
    inbox = Inbox(delay=0.01)
    env = {**env, "PAPERWIRE_SMTP_HOST": "127.0.0.1", "PAPERWIRE_SMTP_PORT": str(smtp_server(inbox))}
    runs = [_cli(["send", "--all", "--json"], cwd, env) for _ in range(2)]
    reports = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert sum(r["sent"] for r in reports) == 40
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(40)}


def test_a_deferred_digest_is_retried_once_and_rides_on_the_next_slot(db_url, tmp_path, smtp_server):
    busy = "reader001@example.org"
    inbox = Inbox(busy={busy})
    store = readers_store(db_url, 2)
    settings = smtp_settings(tmp_path, smtp_server(inbox), smtp_max_attempts=1)
    first = dispatch.dispatch(store, settings, now=NOON)
    assert (first.sent, first.deferred) == (1, 1)
    again = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=5))  # still full: deferred again
    assert (again.sent, again.deferred) == (0, 1)
    inbox.busy.clear()
    store.save_listings([_next_listing()])
    next_day = NOON + dt.timedelta(days=1)
    late = dispatch.dispatch(store, settings, now=next_day)  # the deferred digest and today's slot: one email
    assert late.sent == 2 and inbox.count_by_recipient()[busy] == 1
    assert [(d["slot"], d["status"]) for d in store.deliveries_of(busy)] == [(next_day.date(), "sent")]
    assert dispatch.dispatch(store, settings, now=next_day + dt.timedelta(minutes=5)).sent == 0


def test_a_digest_deferred_run_after_run_is_given_up_as_failed(db_url, tmp_path, smtp_server):
    busy = "reader000@example.org"
    store = readers_store(db_url, 1)
    settings = smtp_settings(tmp_path, smtp_server(Inbox(busy={busy})), smtp_max_attempts=1)
    outcomes = [dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=5 * n)) for n in range(4)]
    assert [(r.deferred, r.failed) for r in outcomes] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    assert [d["status"] for d in store.deliveries_of(busy)] == ["failed"]
    assert "gave up after 3 attempts" in store.deliveries_of(busy)[0]["detail"]


def test_two_runs_cannot_send_two_slots_to_one_reader(db_url):
    store = readers_store(db_url, 1)
    reader = store.subscriber("reader000@example.org")
    run_a, run_b = store.start_run("dispatch"), store.start_run("dispatch")
    monday, tuesday = dt.date(2024, 3, 11), dt.date(2024, 3, 12)
    first = store.claim(reader.id, monday, "2024-03-11", run_a, "<a@x>", [])
    assert first is not None
    assert store.claim(reader.id, tuesday, "2024-03-12", run_b, "<b@x>", []) is None  # A still sending
    store.record_outcome(first, "deferred", attempts=1, code=451, detail="try later")
    taken = store.claim(reader.id, tuesday, "2024-03-12", run_b, "<b@x>", [])  # B takes the deferred digest over
    assert taken == first and store.claim(reader.id, tuesday, "2024-03-12", run_a, "<a2@x>", []) is None
    assert [(d["slot"], d["status"]) for d in store.deliveries_of(reader.email)] == [(tuesday, "sending")]


def test_a_reader_with_nothing_new_is_settled_not_replanned_all_day(db_url, tmp_path):
    store = readers_store(db_url, 0)
    store.save_subscriber(build_subscriber("quiet@example.org", hour=8, topics=[parse_topic_spec("zebrafish")]))
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    morning = dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.timezone.utc)
    first = dispatch.dispatch(store, settings, now=morning)
    assert (first.sent, first.skipped) == (0, 1)
    assert [d["status"] for d in store.deliveries_of("quiet@example.org")] == ["empty"]
    from paperwire.models import Listing, Paper
    zebra = Paper("t-zebrafish", "Zebrafish Swimming Policies", "Zebrafish learn to swim.")
    store.save_listings([Listing("daily-papers", dt.date(2024, 3, 11), [zebra])])
    afternoon = dispatch.dispatch(store, settings, now=morning + dt.timedelta(hours=7))
    assert afternoon.sent == 0  # not at 15:00: the 08:00 slot is settled
    next_morning = dispatch.dispatch(store, settings, now=morning + dt.timedelta(days=1))
    assert next_morning.sent == 1  # at the reader's hour, with the paper that came in meanwhile
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    assert "Zebrafish Swimming Policies" in eml.read_text()


def test_a_day_without_a_new_listing_resends_nothing_but_a_later_paper_of_the_edition_goes_out(db_url, tmp_path):
    """A reader sent three of the Mar 11 papers (the rest under "And N more") must not get the
    rest one email a day while no newer listing comes (weekends): each would say "3 new
    papers (Mar 11)" again. Papers added to the Mar 11 listing afterwards are new, and are
    sent alone (a second digest of the edition: mail.message_id), a paper stored long before
    (listed weeks ago, outside any window since) as well as one never seen."""
    from paperwire.models import Listing, Paper

    store = readers_store(db_url, 1)
    old = Paper("t-old", "An Old Paper Trending Again", "It was listed weeks ago.")
    store.save_listings([Listing("old-papers", EDITION - dt.timedelta(days=30), [old])])

    def subjects_sent(day: int) -> list[str]:
        outbox = tmp_path / f"outbox-{day}"
        report = dispatch.dispatch(store, Settings(out_dir=tmp_path / "out", outbox_dir=outbox),
                                   now=NOON + dt.timedelta(days=day), everyone=True)
        assert not report.failures, report
        return [email.message_from_bytes(eml.read_bytes(), policy=policy.default)["Subject"]
                for eml in outbox.glob("*.eml")]

    (first,) = subjects_sent(0)
    assert first.startswith("3 of 70 new papers"), first
    assert subjects_sent(1) == subjects_sent(2) == []  # Mar 12, Mar 13: no listing after Mar 11's
    late = Paper("t-late", "A Late Addition to the Listing", "It came in after the digest went out.")
    store.save_listings([Listing("late-papers", EDITION, [late, old])])
    (second,) = subjects_sent(3)
    assert second.startswith("2 new papers on") and second.endswith("(Mar 11)"), second
    (eml,) = (tmp_path / "outbox-3").glob("*.eml")
    text = eml.read_text()
    assert "A Late Addition to the Listing" in text and "An Old Paper Trending Again" in text
    assert subjects_sent(4) == []


def _daily_zebrafish_reader(db_url: str, max_papers: int = 1) -> Store:
    store = Store(db_url)
    store.save_subscriber(build_subscriber("zeb@example.org", topics=[parse_topic_spec("words:zebrafish")],
                                           max_papers=max_papers))
    return store


def _zebrafish(title: str, abstract: str = "Zebrafish swim.") -> Paper:
    from paperwire.normalize import paper_id
    return Paper(paper_id(None, title), title, abstract)


def _sent_titles(store: Store, tmp_path: Path, day: int, to: str = "zeb@example.org") -> set[str]:
    """The titles the email of NOON + ``day`` to ``to`` showed (none when none was sent)."""
    outbox = tmp_path / f"outbox-{day}"
    if not outbox.exists():
        report = dispatch.dispatch(store, Settings(out_dir=tmp_path / "out", outbox_dir=outbox),
                                   now=NOON + dt.timedelta(days=day), everyone=True)
        assert not report.failures, report
    titles = ("Zebrafish grow fins", "Zebrafish regrow fins", "Zebrafish regrow hearts", "Zebrafish regrow livers",
              "Zebrafish regrow eyes", "Regrowing gills")
    return {title for eml in outbox.glob("*.eml") if f"\nTo: {to}\n" in (text := eml.read_text()).replace("\r", "")
            for title in titles if title in text}


def test_papers_added_to_an_older_listing_or_matching_only_later_are_offered_once(db_url, tmp_path):
    """Daily Papers pages fill up through the day: a paper added to Mar 11's page after the
    reader's Mar 11 email, once Mar 12's listing is in, is in the Mar 12 email (it was lost:
    the window started the day after the last email). So is a paper that matches only now (its
    abstract came later). Papers under "And N more" are not offered again."""
    from paperwire.models import Listing

    store = _daily_zebrafish_reader(db_url)
    fins, hearts = _zebrafish("Zebrafish regrow fins"), _zebrafish("Zebrafish regrow hearts")
    bare = Paper(_zebrafish("Regrowing gills").id, "Regrowing gills")  # no abstract yet: no zebrafish
    store.save_listings([Listing("daily-papers", EDITION, [fins, hearts, bare])])
    assert len(_sent_titles(store, tmp_path, 0)) == 1  # one shown, one under "And 1 more"
    livers = _zebrafish("Zebrafish regrow livers")
    store.save_listings([Listing("daily-papers", EDITION, [fins, hearts, bare, livers]),  # the afternoon's page
                         Listing("daily-papers", EDITION + dt.timedelta(days=1), [_zebrafish("Zebrafish regrow eyes")]),
                         Listing("hf", EDITION, [Paper(bare.id, "Regrowing gills", "Zebrafish regrow gills.")])])
    store.save_subscriber(build_subscriber("zeb@example.org", topics=[parse_topic_spec("words:zebrafish")],
                                           max_papers=5))
    # Livers: added late to Mar 11; gills: matching only now; not fins nor hearts, offered on Mar 11.
    assert _sent_titles(store, tmp_path, 1) == {"Zebrafish regrow eyes", "Zebrafish regrow livers", "Regrowing gills"}
    (eml,) = (tmp_path / "outbox-1").glob("*.eml")
    assert "in the listings from Mar 11 to Mar 12" in " ".join(eml.read_text().split())
    assert _sent_titles(store, tmp_path, 2) == set()


def test_a_second_digest_is_not_filled_from_before_the_first_nor_from_before_left_out_was_recorded(db_url, tmp_path):
    """What was listed before a reader's first digest is not news to them; and a digest sent
    before deliveries recorded their "And N more" (migration 0010) still counts its days as
    offered, as the old rule had it (for "old", whose delivery is made to look so)."""
    from paperwire.models import Listing
    from paperwire.store.schema import deliveries, sent_papers, subscribers

    store = _daily_zebrafish_reader(db_url)
    store.save_subscriber(build_subscriber("old@example.org", topics=[parse_topic_spec("words:zebrafish")], max_papers=1))
    store.save_listings([Listing("daily-papers", EDITION - dt.timedelta(days=3), [_zebrafish("Zebrafish grow fins")]),
                         Listing("daily-papers", EDITION, [_zebrafish("Zebrafish regrow hearts"),
                                                           _zebrafish("Zebrafish regrow livers")])])
    assert len(_sent_titles(store, tmp_path, 0)) == len(_sent_titles(store, tmp_path, 0, "old@example.org")) == 1
    with store.engine.begin() as conn:
        old = sa.select(subscribers.c.id).where(subscribers.c.email == "old@example.org").scalar_subquery()
        assert conn.execute(deliveries.update().where(deliveries.c.subscriber_id == old).values(left_out=sa.null())).rowcount
        conn.execute(sent_papers.delete().where(sent_papers.c.subscriber_id == old, ~sent_papers.c.shown))
    store.save_listings([Listing("daily-papers", EDITION + dt.timedelta(days=1), [_zebrafish("Zebrafish regrow eyes")])])
    for address in ("zeb@example.org", "old@example.org"):
        store.save_subscriber(build_subscriber(address, topics=[parse_topic_spec("words:zebrafish")], max_papers=5))
    assert _sent_titles(store, tmp_path, 1) == {"Zebrafish regrow eyes"}  # not Mar 8's fins, nor Mar 11's other
    assert _sent_titles(store, tmp_path, 1, "old@example.org") == {"Zebrafish regrow eyes"}


def test_a_weekly_reader_gets_what_came_after_their_send_and_not_what_they_were_offered(db_url, tmp_path):
    """A weekly reader (Mondays): papers added to Monday's listing after their email are in
    the next one (they were lost: its week began on Tuesday), and a paper under its "And N
    more" that is listed again on Tuesday is not offered as new a week later."""
    from paperwire.models import Listing

    store = Store(db_url)
    weekly = build_subscriber("zeb@example.org", topics=[parse_topic_spec("words:zebrafish")], cadence="weekly:mon",
                              max_papers=1)
    store.save_subscriber(weekly)
    hearts, livers = _zebrafish("Zebrafish regrow hearts"), _zebrafish("Zebrafish regrow livers")
    store.save_listings([Listing("daily-papers", EDITION, [hearts, livers])])  # Monday, Mar 11
    (shown,) = _sent_titles(store, tmp_path, 0)
    left_out = livers if shown == hearts.title else hearts
    store.save_listings([Listing("daily-papers", EDITION, [hearts, livers, _zebrafish("Zebrafish regrow fins")]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=1), [left_out]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=7), [_zebrafish("Zebrafish regrow eyes")])])
    store.save_subscriber(replace(weekly, max_papers=10))
    assert _sent_titles(store, tmp_path, 7) == {"Zebrafish regrow fins", "Zebrafish regrow eyes"}


def test_a_reader_whose_slots_were_empty_gets_a_late_addition_and_a_cadence_change_brings_no_backlog(db_url, tmp_path):
    """A reader had nothing on Mar 11 (an empty slot: its listing was looked at for them); a
    matching paper added to it later is theirs on Mar 12. Another, daily on Mar 11, turns
    weekly: their next email does not reach back to the week before their first one."""
    from paperwire.models import Listing

    store = _daily_zebrafish_reader(db_url)
    store.save_subscriber(build_subscriber("axolotl@example.org", topics=[parse_topic_spec("words:axolotl")]))
    store.save_listings([Listing("daily-papers", EDITION - dt.timedelta(days=3), [_zebrafish("Zebrafish grow fins")]),
                         Listing("daily-papers", EDITION, [_zebrafish("Zebrafish regrow hearts")])])
    assert _sent_titles(store, tmp_path, 0) == {"Zebrafish regrow hearts"}
    assert [d["status"] for d in store.deliveries_of("axolotl@example.org")] == ["empty"]
    store.save_subscriber(build_subscriber("zeb@example.org", topics=[parse_topic_spec("words:zebrafish")],
                                           cadence="weekly:tue", max_papers=10))
    axolotl = Paper(_zebrafish("Axolotls regrow limbs").id, "Axolotls regrow limbs", "Axolotl limbs regrow.")
    store.save_listings([Listing("daily-papers", EDITION, [_zebrafish("Zebrafish regrow hearts"), axolotl]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=1), [_zebrafish("Zebrafish regrow eyes")])])
    _sent_titles(store, tmp_path, 1)
    assert _sent_titles(store, tmp_path, 1) == {"Zebrafish regrow eyes"}  # not Mar 8's fins
    (mail,) = [p for p in (tmp_path / "outbox-1").glob("*.eml") if "axolotl@" in p.read_text()]
    assert "Axolotls regrow limbs" in mail.read_text()


def test_a_paper_left_out_then_rekeyed_is_still_one_the_reader_was_offered(db_url, tmp_path):
    """Left out as ``t-<hash>`` (a page capture has no arXiv ids), then re-keyed when the HF
    listing gives its arXiv id: the next email must not offer it as new."""
    from paperwire.models import Listing

    store = _daily_zebrafish_reader(db_url)
    hearts, livers = _zebrafish("Zebrafish regrow hearts"), _zebrafish("Zebrafish regrow livers")
    store.save_listings([Listing("daily-papers", EDITION, [hearts, livers])])
    (shown,) = _sent_titles(store, tmp_path, 0)
    other = livers if shown == hearts.title else hearts
    rekeyed = Paper("2403.12345", other.title, other.abstract, arxiv_id="2403.12345")
    store.save_listings([Listing("hf", EDITION, [rekeyed]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=1), [_zebrafish("Zebrafish regrow eyes")])])
    assert other.id not in {p.paper.id for p in store.papers()}  # re-keyed
    store.save_subscriber(build_subscriber("zeb@example.org", topics=[parse_topic_spec("words:zebrafish")],
                                           max_papers=5))
    assert _sent_titles(store, tmp_path, 1) == {"Zebrafish regrow eyes"}


def test_a_paper_rekeyed_while_its_digest_is_out_is_recorded_under_its_new_id(db_url):
    """A page capture's paper is claimed in a digest (shown, or under "And N more") as
    ``t-<hash>``; the HF listing re-keys it before the server answers. Recording the answer
    must not fail on the id that is gone (the whole chunk of answers was lost with it)."""
    from paperwire.models import Listing
    from paperwire.store.deliveries import Claim

    store = _daily_zebrafish_reader(db_url)
    reader = store.subscriber("zeb@example.org")
    hearts, livers = _zebrafish("Zebrafish regrow hearts"), _zebrafish("Zebrafish regrow livers")
    store.save_listings([Listing("daily-papers", EDITION, [hearts, livers])])
    run = store.start_run("dispatch")
    (delivery,) = store.claim_many([Claim(reader.id, EDITION, EDITION.isoformat(), "<x@example.org>",
                                          (hearts.id,), (livers.id,))], run)
    store.save_listings([Listing("hf", EDITION, [
        Paper("2403.00001", hearts.title, hearts.abstract, arxiv_id="2403.00001"),
        Paper("2403.00002", livers.title, livers.abstract, arxiv_id="2403.00002")])])
    assert store.record_outcome(delivery, "sent", attempts=1, code=250, detail="ok") == "sent"
    assert store.sent_papers_among(["2403.00001", "2403.00002"], [reader.id]) == {reader.id: {"2403.00001", "2403.00002"}}
    assert store.sent_papers_among(["2403.00001", "2403.00002"], [reader.id], shown_only=True) == {reader.id: {"2403.00001"}}


def test_a_digest_over_gmails_clip_is_sent_shorter_and_records_only_what_it_showed(db_url, tmp_path):
    """38 papers whose links are long (each under the 2,000 characters a link may have) make
    HTML that Gmail would clip: the email shows fewer and says "And N more", and only the
    papers shown are recorded as sent (the others were never in an email)."""
    from paperwire.models import Link, Listing, Paper

    store = readers_store(db_url, 0)
    long = "x" * 1900
    papers = [Paper(f"t-{n:016x}", f"Paper number {n} about zebrafish", "Zebrafish swim.",
                    links=[Link(f"https://example.org/{kind}/{n}/{long}", kind)
                           for kind in ("abs", "pdf", "code", "project", "model", "dataset")])
              for n in range(38)]
    store.save_listings([Listing("daily-papers", EDITION, papers)])
    reader, _ = store.save_subscriber(build_subscriber("zeb@example.org", topics=[parse_topic_spec("zebrafish")],
                                                       max_papers=38))
    report = dispatch.dispatch(store, Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox"), now=NOON)
    assert report.sent == 1
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    assert len(html.encode()) <= 102_000 and "Unsubscribe</a>" in html
    shown = {paper.id for paper in papers if f'id="p-{paper.id}"' in html}
    recorded = store.sent_papers_among([paper.id for paper in papers], [reader.id], shown_only=True)[reader.id]
    assert 0 < len(shown) < 38 and recorded == shown
    assert f"And {38 - len(shown)} more matching papers" in html
    # Those the clip left out are the "And N more": recorded as such, never offered again as new.
    assert store.sent_papers_among([paper.id for paper in papers], [reader.id]) == {reader.id: {p.id for p in papers}}


def test_no_reply_after_the_body_is_reported_unknown_and_never_resent(db_url, tmp_path, smtp_server):
    inbox = Inbox(delay=1.5)
    store = readers_store(db_url, 1)
    settings = smtp_settings(tmp_path, smtp_server(inbox), smtp_timeout=0.5)
    first = dispatch.dispatch(store, settings, now=NOON)
    assert first.sent == 0 and [u["email"] for u in first.unknown] == ["reader000@example.org"]
    assert [d["status"] for d in store.deliveries_of("reader000@example.org")] == ["unknown"]
    inbox.delay = 0
    later = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=5))
    assert later.sent == 0 and len(inbox.messages) <= 1  # the server may have it; it is not offered again


def _relisted_the_next_day_with_one_new_paper(store: Store) -> str:
    """The seed's papers listed again on the next day (a trending page keeps papers for
    days), with one new paper that matches everything; returns the new paper's id."""
    from paperwire.models import Listing

    new = Paper("t-00000000000000aa", "A new paper on the next day", "It came out on March 12.")
    store.save_listings([Listing("daily-papers", EDITION + dt.timedelta(days=1),
                                 [stored.paper for stored in store.papers()] + [new])])
    return new.id


def test_the_papers_of_a_digest_whose_fate_is_unknown_are_not_offered_again(db_url, tmp_path, smtp_server):
    """A digest whose fate is unknown may have arrived and is never sent again, so its papers
    (shown and under "And N more") count as offered: the next day's digest brings only what
    is new, not the same papers a second time."""
    from paperwire.models import Listing

    inbox = Inbox(delay=1.5)
    store = readers_store(db_url, 1)
    settings = smtp_settings(tmp_path, smtp_server(inbox), smtp_timeout=0.5)
    assert [u["email"] for u in dispatch.dispatch(store, settings, now=NOON).unknown] == ["reader000@example.org"]
    (unknown,) = store.deliveries_of("reader000@example.org")
    reader = store.subscriber("reader000@example.org")
    offered = set(unknown["papers"]) | set(unknown["left_out"])
    assert len(offered) > 3 and store.sent_papers_among(sorted(offered), [reader.id]) == {reader.id: offered}
    # It counts as their last digest too: a paper added to its listing after it went out is news.
    late = Paper("t-00000000000000bb", "A paper added late to the March 11 page", "It came in the evening.")
    store.save_listings([Listing("daily-papers", EDITION, [stored.paper for stored in store.papers()] + [late])])
    new = _relisted_the_next_day_with_one_new_paper(store)
    inbox.delay = 0
    assert dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=1)).sent == 1
    (late_id,) = [stored.paper.id for stored in store.papers() if stored.paper.title == late.title]
    assert sorted(store.deliveries_of("reader000@example.org")[0]["papers"]) == sorted([new, late_id])


def test_the_papers_of_a_digest_a_dead_run_left_unknown_are_not_offered_again(db_url, tmp_path, smtp_server):
    """The same when the run died with the digest in flight: the next run settles it as
    unknown, and its papers as offered."""
    store = readers_store(db_url, 1)
    reader = store.subscriber("reader000@example.org")
    shown = [stored.paper.id for stored in store.papers()[:3]]
    left_out = [stored.paper.id for stored in store.papers()[3:]]
    run = store.start_run("dispatch", "smtp")
    store.claim(reader.id, NOON.date(), EDITION.isoformat(), run, "<d@x>", shown, left_out)
    store.finish_run(run, {})  # over, with its claim still open: it died mid-send
    settings = smtp_settings(tmp_path, smtp_server(Inbox()))
    new = _relisted_the_next_day_with_one_new_paper(store)
    report = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=1))
    assert [u["email"] for u in report.unknown] == [reader.email] and report.sent == 1
    assert store.sent_papers_among(shown + left_out, [reader.id]) == {reader.id: set(shown + left_out)}
    assert store.deliveries_of(reader.email)[0]["papers"] == [new]


def test_send_dry_run_names_who_would_be_sent(db_url, run_cli):
    readers_store(db_url, 2)
    result = run_cli("send", "--all", "--dry-run")
    assert result.exit_code == 0 and sorted(result.stdout.splitlines()[1:]) == [
        "would send: reader000@example.org", "would send: reader001@example.org"]


def _settled_unknown(store: Store, email: str, papers: list[str]) -> int:
    """A claim of ``papers`` for the reader's noon slot, answered unknown (which records the
    papers as offered) by a run that is over; returns the delivery's id."""
    run = store.start_run("dispatch", "smtp")
    delivery = store.claim(store.subscriber(email).id, NOON.date(), EDITION.isoformat(), run, f"<{email}>", papers)
    store.record_outcome(delivery, "unknown", attempts=1, code=None, detail="no answer")
    store.finish_run(run, {})
    return delivery


def test_a_claim_another_run_settled_unknown_is_forgotten_with_its_papers(db_url):
    """A slow run gives back a claim it never handed over, which another run has meanwhile
    settled unknown (recording its papers as offered): both go, and the slot is owed again."""
    store = readers_store(db_url, 1)
    reader = store.subscriber("reader000@example.org")
    shown = [stored.paper.id for stored in store.papers()[:2]]
    store.forget(_settled_unknown(store, reader.email, shown))  # failed on the foreign key from sent_papers
    assert store.deliveries_of(reader.email) == [] and store.sent_papers_among(shown, [reader.id]) == {}


def test_an_operator_resends_a_digest_whose_fate_is_unknown(db_url, run_cli, tmp_path):
    """``send --only EMAIL --all --resend-unknown``: the operator checked that a digest whose
    fate is unknown never arrived; it is forgotten with its papers and sent anew, once."""
    store = readers_store(db_url, 2)
    reader = store.subscriber("reader000@example.org")
    shown = [stored.paper.id for stored in store.papers()[:3]]
    _settled_unknown(store, reader.email, shown)
    assert (f"unknown: {reader.email} (slot {NOON.date().isoformat()}): if the mail server's log shows it never "
            f"arrived, paperwire send --only {reader.email} --all --resend-unknown") in run_cli("status").stdout
    assert run_cli("send", "--resend-unknown").exit_code == 2  # one reader, named: never everyone's
    other = run_cli("send", "--only", "reader001@example.org", "--all", "--resend-unknown")
    assert other.exit_code == 1 and "no digest of reader001@example.org has an unknown fate" in other.stderr
    result = run_cli("send", "--only", reader.email, "--all", "--resend-unknown", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["sent"] == 1
    assert f"forgot 1 digest(s) of {reader.email}" in result.stderr
    (again,) = store.deliveries_of(reader.email)
    assert again["status"] == "sent" and set(shown) <= set(again["papers"])
    assert run_cli("send", "--only", reader.email, "--all").stdout.startswith("sent 0")  # once


def test_a_dead_outbox_run_is_settled_against_its_own_folder(db_url, tmp_path):
    from paperwire.transport import outbox_file_name

    store = readers_store(db_url, 3)
    reader = store.subscriber("reader000@example.org")
    other = store.subscriber("reader001@example.org")
    legacy = store.subscriber("reader002@example.org")
    folder = tmp_path / "old-outbox"
    folder.mkdir()
    run = store.start_run("dispatch", f"outbox:{folder.resolve()}")
    written = store.claim(reader.id, NOON.date(), "2024-03-11", run, "<w@x>", [])
    some = [stored.paper.id for stored in store.papers()[:2]]
    lost = store.claim(other.id, NOON.date(), "2024-03-11", run, "<l@x>", some)  # forgotten: its papers are not offered
    before_upgrade = store.claim(legacy.id, NOON.date(), "2024-03-11", run, "<o@x>", [])
    (folder / outbox_file_name(str(written), "<w@x>")).write_bytes(b"Subject: x\r\nMessage-ID: <w@x>\r\n\r\nx\r\n")
    (folder / f"{lost}.eml").write_bytes(b"Subject: x\r\n\r\nx\r\n")  # the old naming, maybe another database's
    # Written under the old naming by a run that died before the upgrade: its own Message-ID says so.
    (folder / f"{before_upgrade}.eml").write_bytes(b"Subject: x\r\nMessage-ID: <o@x>\r\n\r\nx\r\n")
    store.finish_run(run, {})  # the run is over, its claims are still open: it died mid-send
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "new-outbox")
    dry = dispatch.dispatch(store, settings, now=NOON, dry_run=True)
    assert dry.unknown == [] and [d["status"] for d in store.deliveries_of(reader.email)] == ["sending"]
    report = dispatch.dispatch(store, settings, now=NOON)
    assert report.unknown == []
    assert [d["status"] for d in store.deliveries_of(reader.email)] == ["sent"]  # its file was written
    assert report.sent == 1 and [d["status"] for d in store.deliveries_of(other.email)] == ["sent"]  # sent again
    assert set(some) <= set(store.deliveries_of(other.email)[0]["papers"])
    assert [d["status"] for d in store.deliveries_of(legacy.email)] == ["sent"]  # found, not sent a second time
    assert len(list((tmp_path / "new-outbox").glob("*.eml"))) == 1
    assert lost is not None


def test_a_dead_outbox_run_is_settled_when_the_next_run_sends_over_smtp(db_url, tmp_path, smtp_server):
    """The dead run's place decides who can tell: its folder, whatever delivers now."""
    from paperwire.transport import outbox_file_name

    inbox = Inbox()
    store = readers_store(db_url, 2)
    written, lost = (store.subscriber(f"reader00{n}@example.org") for n in range(2))
    folder = tmp_path / "old-outbox"
    folder.mkdir()
    run = store.start_run("dispatch", f"outbox:{folder.resolve()}")
    claim = store.claim(written.id, NOON.date(), "2024-03-11", run, "<w@x>", [])
    store.claim(lost.id, NOON.date(), "2024-03-11", run, "<l@x>", [])
    (folder / outbox_file_name(str(claim), "<w@x>")).write_bytes(b"Subject: x\r\nMessage-ID: <w@x>\r\n\r\nx\r\n")
    store.finish_run(run, {})  # died mid-send, then the operator configured SMTP
    report = dispatch.dispatch(store, smtp_settings(tmp_path, smtp_server(inbox)), now=NOON)
    assert report.unknown == [] and report.sent == 1
    assert [d["status"] for d in store.deliveries_of(written.email)] == ["sent"]  # found in its folder
    assert inbox.count_by_recipient() == {lost.email: 1}  # never written: owed, and sent once


def test_the_hourly_limit_holds_across_runs(db_url, tmp_path, smtp_server):
    inbox = Inbox()
    store = readers_store(db_url, 2)
    settings = smtp_settings(tmp_path, smtp_server(inbox), smtp_per_hour=2)
    assert dispatch.dispatch(store, settings, now=NOON).sent == 2
    store.save_subscriber(build_subscriber("newcomer@example.org", topics=[parse_topic_spec("*")]))
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()  # the budget is spent: the next send would wait ~an hour
    report = dispatch.dispatch(store, settings, now=NOON, stop=stop)
    assert (report.sent, report.deferred) == (0, 1) and len(inbox.messages) == 2


def test_two_databases_sending_to_one_outbox_keep_each_others_messages(new_db, tmp_path):
    """Delivery ids restart at 1 per database: `demo` on a second one used to overwrite the first one's files."""
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    stores = [readers_store(new_db(tmp_path / f"db{n}.sqlite3"), 3) for n in range(2)]
    for store in stores:
        assert dispatch.dispatch(store, settings, now=NOON).sent == 3
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 6
    ids = {email.message_from_bytes(f.read_bytes())["Message-ID"] for f in files}
    sent = {d["message_id"] for store in stores for i in range(3)
            for d in store.deliveries_of(f"reader{i:03d}@example.org")}
    assert ids == sent and len(ids) == 6


class MemoryTransport:
    """A transport written against ``transport.Transport`` alone, like a new one would be:
    dispatch must need no change for it (no class of its own to recognise)."""

    def __init__(self, name: str = "box", *, dry_run: bool = False):
        self.name, self.dry_run = name, dry_run
        self.held: dict[str, bytes] = {}  # Message-ID -> bytes
        self.earlier: list[dt.datetime] | None = None

    def describe(self) -> str:
        return f"memory:{self.name}"

    def note_earlier_sends(self, handed_over_since) -> None:
        self.earlier = handed_over_since(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))

    def was_delivered(self, place: str, key: str, message_id: str) -> bool | None:
        return message_id in self.held if place == self.describe() else None

    def send_all(self, messages, on_outcome, *, stop=None):
        from paperwire.transport import Counts, Outcome, header_message_id

        counts = Counts()
        for msg in messages:
            if not self.dry_run:
                self.held[header_message_id(msg.data)] = msg.data
            outcome = Outcome(msg.key, "dry-run" if self.dry_run else "sent", 1, None, "kept in memory")
            counts.add(outcome)
            on_outcome(outcome)
        return counts


def test_a_transport_that_only_implements_the_protocol_sends_and_settles_crashes(db_url, tmp_path):
    store = readers_store(db_url, 4)
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    held, lost, elsewhere, fresh = (store.subscriber(f"reader{i:03d}@example.org") for i in range(4))
    box = MemoryTransport()
    dead = store.start_run("dispatch", box.describe())
    store.claim(held.id, NOON.date(), "2024-03-11", dead, "<held@x>", [])
    store.claim(lost.id, NOON.date(), "2024-03-11", dead, "<lost@x>", [])
    other = store.start_run("dispatch", "memory:another-box")
    store.claim(elsewhere.id, NOON.date(), "2024-03-11", other, "<elsewhere@x>", [])
    for run in (dead, other):
        store.finish_run(run, {})  # finished with claims open: they died mid-send
    box.held["<held@x>"] = b"Message-ID: <held@x>\r\n\r\nx\r\n"

    report = dispatch.dispatch(store, settings, now=NOON, transport=box)

    assert [d["status"] for d in store.deliveries_of(held.email)] == ["sent"]  # it said it has it
    assert [u["email"] for u in report.unknown] == [elsewhere.email]  # it cannot tell: reported, not resent
    assert report.sent == 2 and len(box.held) == 3  # the lost one again, and the fresh reader
    assert [d["status"] for d in store.deliveries_of(fresh.email)] == ["sent"]
    assert _tables(store)["runs"][-1].transport == "memory:box"  # where this run delivered, for the next crash
    assert box.earlier == []  # asked before sending: nothing was handed over in the last hour yet
    again = MemoryTransport()
    dispatch.dispatch(store, settings, now=NOON, transport=again)
    assert len(again.earlier) == 4  # every hand-over of the last hour, settled and unknown ones too


def test_a_protocol_only_dry_run_transport_claims_and_records_nothing(db_url, tmp_path):
    store = readers_store(db_url, 3)
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    report = dispatch.dispatch(store, settings, now=NOON, transport=MemoryTransport(dry_run=True))
    assert report.dry_run == 3 and report.sent == 0
    assert _tables(store) == {"runs": [], "deliveries": []}


# -- claims and answers in chunks (delivery_chunk) ------------------------------------------------


def test_a_chunk_of_claims_and_answers_is_one_transaction_and_sends_each_reader_once(new_db, tmp_path, smtp_server):
    """With delivery_chunk the database commits once per chunk of messages, not three times a message."""
    import sqlalchemy as sa

    def commits(chunk: int, readers: int) -> tuple[int, collections.Counter]:
        inbox = Inbox()
        store = readers_store(new_db(tmp_path / f"chunk{chunk}.sqlite3"), readers)
        counted = []
        sa.event.listen(store.engine, "commit", lambda conn: counted.append(1))
        report = dispatch.dispatch(store, smtp_settings(tmp_path, smtp_server(inbox), delivery_chunk=chunk), now=NOON)
        assert (report.sent, report.skipped, report.failed) == (readers, 0, 0)
        assert [d["status"] for r in range(readers) for d in store.deliveries_of(f"reader{r:03d}@example.org")] == \
            ["sent"] * readers
        store.close()
        return len(counted), inbox.count_by_recipient()

    one_by_one, sent_singly = commits(1, 30)
    chunked, sent_chunked = commits(25, 30)
    assert sent_singly == sent_chunked == {f"reader{i:03d}@example.org": 1 for i in range(30)}
    assert chunked * 5 < one_by_one, (chunked, one_by_one)


def test_two_runs_at_once_in_chunks_never_both_send_to_one_reader(crash_site, smtp_server):
    cwd, env = crash_site
    inbox = Inbox(delay=0.01)
    env = {**env, "PAPERWIRE_SMTP_HOST": "127.0.0.1", "PAPERWIRE_SMTP_PORT": str(smtp_server(inbox)),
           "PAPERWIRE_DELIVERY_CHUNK": "7"}
    runs = [_cli(["send", "--all", "--json"], cwd, env) for _ in range(2)]
    reports = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert sum(r["sent"] for r in reports) == 40
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(40)}


def test_a_run_in_chunks_stopped_mid_chunk_releases_what_it_claimed_and_the_next_sends_it_once(db_url, tmp_path,
                                                                                                 smtp_server):
    """Stopped (Ctrl-C, SIGTERM) in the middle of a chunk: the chunk's claims not yet handed over
    are released, not left open to be called unknown, and the next run sends them, once."""
    stop = threading.Event()

    class StopAfterFive(Inbox):
        async def handle_DATA(self, server, session, envelope):
            answer = await super().handle_DATA(server, session, envelope)
            if len(self.messages) >= 5:
                stop.set()
            return answer

    inbox = StopAfterFive()
    store = readers_store(db_url, 20)
    settings = smtp_settings(tmp_path, smtp_server(inbox), delivery_chunk=8, smtp_pool_size=1)
    first = dispatch.dispatch(store, settings, now=NOON, stop=stop)
    assert 5 <= first.sent < 20 and not first.unknown
    statuses = [d["status"] for r in range(20) for d in store.deliveries_of(f"reader{r:03d}@example.org")]
    assert "sending" not in statuses and statuses.count("sent") == first.sent
    again = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=5))
    assert first.sent + again.sent == 20 and not again.unknown
    assert inbox.count_by_recipient() == {f"reader{i:03d}@example.org": 1 for i in range(20)}


def _statements(store: Store):
    """A list that fills with the SQL each statement sends (an executemany counts once)."""
    import sqlalchemy as sa

    sent: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: sent.append(sql))
    return sent


def test_a_chunk_costs_the_same_few_statements_whatever_its_size(new_db, tmp_path):
    """Claiming a chunk and recording its answers run a fixed handful of statements, not a few
    per message: at 2,000 readers a message's own statements were ~80% of a run's CPU."""
    from paperwire.store.deliveries import Answer, Claim

    def statements(size: int) -> tuple[int, int]:
        store = readers_store(new_db(tmp_path / f"size{size}.sqlite3"), size)
        papers = tuple(item.paper.id for item in store.papers())[:3]
        run = store.start_run("dispatch")
        readers = [store.subscriber(f"reader{i:03d}@example.org").id for i in range(size)]
        claiming = _statements(store)
        ids = store.claim_many([Claim(r, NOON.date(), "2024-03-11", f"<{r}@x>", papers, ()) for r in readers], run)
        claimed = len(claiming)
        recording = _statements(store)
        store.record_outcomes([Answer(i, "sent", 1, 250, "ok") for i in ids])
        recorded = len(recording)
        assert len(set(ids)) == size and store.sent_papers_among(papers, readers) == {r: set(papers) for r in readers}
        store.close()
        return claimed, recorded

    claim, record = statements(40)
    # Recording reads the papers' ids as they are now (a re-key may have renamed one): a fourth.
    assert statements(5) == (claim, record) and claim <= 3 and record <= 4, (claim, record)


def test_a_chunk_of_claims_settles_each_reader_as_claims_one_at_a_time_do(new_db, tmp_path):
    """Every case a claim meets, in one chunk, against the same claims taken one a transaction."""
    from paperwire.store.deliveries import Claim

    monday, tuesday = dt.date(2024, 3, 11), dt.date(2024, 3, 12)

    def claimed(name: str, chunked: bool) -> tuple[list, list]:
        store = readers_store(new_db(tmp_path / f"{name}.sqlite3"), 8)
        reader = [store.subscriber(f"reader{i:03d}@example.org").id for i in range(8)]
        earlier, other = store.start_run("dispatch"), store.start_run("dispatch")
        # 1: deferred on Monday (taken over); 2: an error note today (superseded); 3: sent today already;
        # 4: another run is sending to them; 6: deferred on a later slot (left alone); 7: error note on Monday.
        store.record_outcome(store.claim(reader[1], monday, "2024-03-11", earlier, "<d@x>", []), "deferred",
                             attempts=1, code=451, detail="try later")
        store.record_error(reader[2], tuesday, "2024-03-12", earlier, "rendering raised")
        store.record_outcome(store.claim(reader[3], tuesday, "2024-03-12", earlier, "<s@x>", []), "sent",
                             attempts=1, code=250, detail="ok")
        store.claim(reader[4], tuesday, "2024-03-12", other, "<o@x>", [])
        store.record_outcome(store.claim(reader[6], dt.date(2024, 3, 13), "2024-03-12", earlier, "<l@x>", []),
                             "deferred", attempts=1, code=451, detail="try later")
        store.record_error(reader[7], monday, "2024-03-11", earlier, "rendering raised")
        run = store.start_run("dispatch")
        claims = [Claim(r, tuesday, "2024-03-12", f"<{n}@x>", (), ()) for n, r in enumerate(reader)]
        claims.insert(6, Claim(reader[5], tuesday, "2024-03-12", "<again@x>", (), ()))  # reader 5 twice in the chunk
        ids = store.claim_many(claims, run) if chunked else [store.claim_many([c], run)[0] for c in claims]
        rows = [[(d["slot"], d["status"], d["run_id"] == run) for d in store.deliveries_of(email)]
                for email in (f"reader{i:03d}@example.org" for i in range(8))]
        store.close()
        return [None if i is None else "claimed" for i in ids], rows

    taken = (tuesday, "sending", True)
    expected_rows = [[taken], [taken], [taken], [(tuesday, "sent", False)], [(tuesday, "sending", False)], [taken],
                     [(dt.date(2024, 3, 13), "deferred", False)], [taken]]
    expected_ids = ["claimed", "claimed", "claimed", None, None, "claimed", None, None, "claimed"]
    assert claimed("chunked", True) == (expected_ids, expected_rows)
    assert claimed("singly", False) == (expected_ids, expected_rows)


def test_a_chunk_of_answers_is_recorded_as_answers_one_at_a_time_are(new_db, tmp_path):
    """Sent (with a paper the reader already had), deferred past the give-up limit, and a third
    refusal in a row (bouncing), in one chunk and one a transaction."""
    from paperwire.store.deliveries import Answer

    def recorded(name: str, chunked: bool) -> tuple:
        store = readers_store(new_db(tmp_path / f"{name}.sqlite3"), 3)
        papers = [item.paper.id for item in store.papers()][:3]
        sender, deferred, refused = (store.subscriber(f"reader{i:03d}@example.org") for i in range(3))
        run = store.start_run("dispatch")
        store.record_outcome(store.claim(sender.id, dt.date(2024, 3, 9), "2024-03-09", run, "<0@x>", papers[:1]),
                             "sent", attempts=1, code=250, detail="ok")
        for day in (9, 10):
            store.record_outcome(store.claim(refused.id, dt.date(2024, 3, day), "x", run, f"<r{day}@x>", []),
                                 "failed", attempts=1, code=550, detail="no such user")
        store.record_outcome(store.claim(deferred.id, dt.date(2024, 3, 10), "x", run, "<d@x>", []), "deferred",
                             attempts=2, code=451, detail="full")
        today = NOON.date()
        answers = [Answer(store.claim(sender.id, today, "2024-03-11", run, "<1@x>", papers), "sent", 1, 250, "ok"),
                   Answer(store.claim(deferred.id, today, "2024-03-11", run, "<2@x>", []), "deferred", 1, 451,
                          "full"),
                   Answer(store.claim(refused.id, today, "2024-03-11", run, "<3@x>", []), "failed", 1, 550,
                          "no such user")]
        statuses = store.record_outcomes(answers, 3) if chunked else [store.record_outcomes([a], 3)[0] for a in answers]
        result = (statuses, store.sent_papers_among(papers, [sender.id]) == {sender.id: set(papers)},
                  [(d["status"], d["attempts"], d["detail"][:12]) for d in store.deliveries_of(deferred.email)],
                  store.subscriber(refused.email).status)
        store.close()
        return result

    expected = (["sent", "failed", "failed"], True, [("failed", 3, "gave up afte")], "bouncing")
    assert recorded("chunked", True) == recorded("singly", False) == expected


def test_the_same_delivery_answered_twice_in_a_chunk_counts_both_attempts(new_db, tmp_path):
    """Answers in a chunk add up as answers one a transaction do: 1 + 2 + 2 = 5 attempts reach
    give_up_after 4, so the second is recorded failed (in a chunk it used to overwrite the first
    with the attempts read before the chunk: deferred, 3)."""
    from paperwire.store.deliveries import Answer
    from paperwire.store.schema import deliveries

    def recorded(chunked: bool) -> tuple[list[str], tuple]:
        store = readers_store(new_db(tmp_path / f"twice{chunked}.sqlite3"), 1)
        reader = store.subscriber("reader000@example.org").id
        delivery = store.claim(reader, NOON.date(), "2024-03-11", store.start_run("dispatch"), "<d@x>", [])
        with store.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery).values(attempts=1))
        answers = [Answer(delivery, "deferred", 2, 451, "mailbox full")] * 2
        statuses = (store.record_outcomes(answers, 4) if chunked
                    else [store.record_outcomes([answer], 4)[0] for answer in answers])
        row = next(d for d in store.deliveries_of("reader000@example.org"))
        store.close()
        return statuses, (row["status"], row["attempts"])

    assert recorded(chunked=True) == recorded(chunked=False) == (["deferred", "failed"], ("failed", 5))


def test_two_runs_claiming_the_same_readers_in_crossed_lock_order_both_finish(postgres, tmp_path):
    """Run B looks while run C sends to reader 2 (nothing to take over); C's answer "deferred"
    comes in; run A looks (reader 2 deferred) and takes that delivery over before inserting
    reader 1, while B inserts reader 1 then reader 2: crossed locks. PostgreSQL ends one of the
    two transactions as deadlocked; that chunk is then claimed one reader a transaction. Before,
    the deadlock escaped claim_many and ended the run."""
    import sqlalchemy as sa

    from paperwire.store.deliveries import Claim

    url = postgres.new(tmp_path / "unused.sqlite3")
    setup = readers_store(url, 2)
    first, second = (setup.subscriber(f"reader{i:03d}@example.org").id for i in range(2))
    sending = setup.claim(second, dt.date(2024, 3, 11), "e", setup.start_run("dispatch"), "<c@x>", [])
    store_a, store_b = Store(url), Store(url)
    run_a, run_b = store_a.start_run("dispatch"), store_b.start_run("dispatch")
    gates = {name: (threading.Event(), threading.Event()) for name in "ab"}  # (paused before its insert, go on)

    def pause_before_insert(name: str):
        def hook(conn, cursor, statement, *rest):
            if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES") and not gates[name][1].is_set():
                gates[name][0].set()
                gates[name][1].wait(10)
        return hook

    for name, one in (("a", store_a), ("b", store_b)):
        sa.event.listen(one.engine, "before_cursor_execute", pause_before_insert(name))
    results, errors = {}, {}

    def claim(name: str, store: Store, run: str) -> None:
        try:
            results[name] = store.claim_many([Claim(first, NOON.date(), "e", f"<{name}1@x>", (), ()),
                                              Claim(second, NOON.date(), "e", f"<{name}2@x>", (), ())], run)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors[name] = exc

    b = threading.Thread(target=claim, args=("b", store_b, run_b))
    b.start()
    assert gates["b"][0].wait(10)  # B looked: reader 2 is being sent by C, nothing to take over
    setup.record_outcome(sending, "deferred", attempts=1, code=451, detail="mailbox full")
    a = threading.Thread(target=claim, args=("a", store_a, run_a))
    a.start()
    assert gates["a"][0].wait(10)  # A looked and took reader 2's deferred delivery over, uncommitted
    gates["b"][1].set()  # B inserts reader 1, then waits for A on reader 2
    time.sleep(0.5)
    gates["a"][1].set()  # A inserts reader 1: waits for B
    a.join(30)
    b.join(30)
    owners = collections.Counter(name for name, ids in results.items() for delivery in ids if delivery is not None)
    for one in (store_a, store_b, setup):
        one.close()
    postgres.drop(url)
    assert not errors and set(results) == {"a", "b"}, (errors, results)
    assert sum(owners.values()) == 2  # each reader claimed by exactly one of the runs


def test_a_reader_back_from_a_pause_gets_what_came_since_and_not_what_was_listed_while_away(db_url, tmp_path):
    """Paused after Mar 11's email and back on Mar 14: their next email had the papers of
    Mar 12-13 too (up to ten days of backlog), listed while they had asked for none. A weekly
    reader (Mondays) back mid-week still gets their whole week."""
    from paperwire.models import Listing

    store = _daily_zebrafish_reader(db_url, max_papers=5)
    store.save_subscriber(build_subscriber("wk@example.org", topics=[parse_topic_spec("words:zebrafish")],
                                           cadence="weekly:mon", max_papers=5))
    store.save_listings([Listing("daily-papers", EDITION, [_zebrafish("Zebrafish grow fins")])])  # Monday
    assert _sent_titles(store, tmp_path, 0) == _sent_titles(store, tmp_path, 0, "wk@example.org") == {
        "Zebrafish grow fins"}
    for address in ("zeb@example.org", "wk@example.org"):
        assert store.set_status(address, "paused", now=NOON)
    store.save_listings([Listing("daily-papers", EDITION + dt.timedelta(days=1), [_zebrafish("Zebrafish regrow fins")]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=2), [_zebrafish("Zebrafish regrow hearts")]),
                         Listing("daily-papers", EDITION + dt.timedelta(days=3), [_zebrafish("Zebrafish regrow eyes")])])
    assert _sent_titles(store, tmp_path, 2) == set()  # paused: nothing
    back = NOON + dt.timedelta(days=3, hours=-6)  # Thursday Mar 14, 06:00: before the day's send hour
    for address in ("zeb@example.org", "wk@example.org"):
        assert store.set_status(address, "active", now=back)
    assert store.subscriber("zeb@example.org").active_since == back
    assert store.set_status("zeb@example.org", "active", now=back + dt.timedelta(hours=1))  # active already: kept
    assert store.subscriber("zeb@example.org").active_since == back
    berlin = back.astimezone(dt.timezone(dt.timedelta(hours=2)))  # any offset: stored as the same moment
    assert store.set_status("zeb@example.org", "paused", now=berlin) and store.set_status("zeb@example.org", "active", now=berlin)
    assert store.subscriber("zeb@example.org").active_since == back
    assert _sent_titles(store, tmp_path, 3) == {"Zebrafish regrow eyes"}  # not Mar 12's fins nor Mar 13's hearts
    store.save_listings([Listing("daily-papers", EDITION + dt.timedelta(days=7), [_zebrafish("Zebrafish regrow livers")])])
    assert _sent_titles(store, tmp_path, 7, "wk@example.org") == {
        "Zebrafish regrow fins", "Zebrafish regrow hearts", "Zebrafish regrow eyes", "Zebrafish regrow livers"}
