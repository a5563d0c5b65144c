"""Bounces and complaints that arrive after sending: classification, VERP, the policy, and the
whole path from a digest sent over real SMTP to a bounce read from a Maildir or an mbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import json
import mailbox
import re
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from paperwire import dispatch
from paperwire.bounces import verp
from paperwire.bounces.classify import AUTO_REPLY, COMPLAINT, DIAGNOSTIC_CHARS, HARD, KINDS, SOFT, UNKNOWN, classify
from paperwire.errors import ConfigError
from paperwire.models import BounceEvent
from paperwire.store import BouncePolicy, Store

from . import bounce_mail
from .test_dispatch import NOON, Inbox, readers_store, smtp_server, smtp_settings  # noqa: F401  (a fixture)

SECRET = "test-secret-for-verp"
BOUNCES = "bounces@example.org"
VERP = re.compile(r"bounces\+d(\d+)-[0-9a-f]{16}@example\.org")


# -- VERP -------------------------------------------------------------------------------------


def test_a_verp_address_names_its_delivery_and_cannot_be_forged():
    readers = {42: 7, 43: 8}  # delivery -> its reader, as stored
    address = verp.envelope_sender(BOUNCES, 42, 7, SECRET)
    assert VERP.fullmatch(address)
    assert verp.delivery_of(address, BOUNCES, SECRET, readers.get) == (42, 7)
    assert verp.delivery_of(f"<{address.upper()}>", BOUNCES, SECRET, readers.get) == (42, 7)  # some systems shout
    assert verp.delivery_of(address, BOUNCES, "another secret", readers.get) is None
    assert verp.delivery_of(address.replace("d42-", "d43-"), BOUNCES, SECRET, readers.get) is None  # per delivery
    assert verp.delivery_of(address.replace("example.org", "example.net"), BOUNCES, SECRET, readers.get) is None
    assert verp.delivery_of(BOUNCES, BOUNCES, SECRET, readers.get) is None
    assert verp.delivery_of(address, BOUNCES, SECRET, {}.get) is None  # a delivery no longer stored
    # SQLite reuses the highest id once its row is deleted: a late bounce to the old address is
    # not the new delivery's reader's.
    assert verp.delivery_of(address, BOUNCES, SECRET, {42: 9}.get) is None


@given(st.text(max_size=120))
def test_any_text_is_never_taken_for_a_verp_address_it_is_not(text: str):
    found = verp.delivery_of(text, BOUNCES, SECRET, lambda delivery: 1)
    assert found is None or verp.envelope_sender(BOUNCES, found[0], 1, SECRET).lower() == text.strip().strip("<>").strip().lower()


def test_verp_refuses_the_public_development_secret():
    from paperwire.config import Settings

    with pytest.raises(ConfigError, match="PAPERWIRE_SECRET_KEY"):
        verp.check(Settings(bounce_address=BOUNCES))
    verp.check(Settings(bounce_address=BOUNCES, secret_key=SECRET))
    verp.check(Settings())  # VERP off: nothing to guard


# -- classification ---------------------------------------------------------------------------

TO = "bounces+d7-0123456789abcdef@example.org"


@pytest.mark.parametrize(("raw", "kind", "status"), [
    (bounce_mail.dsn(TO, "ada@example.net"), HARD, "5.1.1"),
    (bounce_mail.dsn(TO, "ada@example.net", action="delayed", status="4.4.1", diagnostic="smtp; 451 4.4.1 later"),
     SOFT, "4.4.1"),
    (bounce_mail.dsn(TO, "ada@example.net", action="failed", status="4.2.2", diagnostic="smtp; 452 4.2.2 full"),
     SOFT, "4.2.2"),
    (bounce_mail.dsn(TO, "ada@example.net", action="delivered", status="2.0.0", diagnostic="smtp; 250 ok"),
     AUTO_REPLY, "2.0.0"),
    (bounce_mail.complaint(TO, "ada@example.net"), COMPLAINT, ""),
    (bounce_mail.complaint(TO, "ada@example.net", rcpt_field=False), COMPLAINT, ""),
    (bounce_mail.exim_bounce(TO, "ada@example.net"), HARD, "5.1.1"),
])  # fmt: skip
def test_reports_are_read_for_kind_recipient_status_and_original(raw: bytes, kind: str, status: str):
    report = classify(raw)
    assert (report.kind, report.status) == (kind, status)
    assert report.recipients == ("ada@example.net",)
    assert report.message_ids == ("<orig@example.org>",)
    assert report.addressed_to == (TO,)


def test_auto_replies_and_ordinary_mail_are_not_bounces():
    assert classify(bounce_mail.out_of_office(TO)).kind == AUTO_REPLY
    plain = classify(b"From: someone@example.net\r\nSubject: hello\r\n\r\nAre you there?\r\n")
    assert plain.kind == UNKNOWN and plain.diagnostic == "hello"


HEADER_NAMES = st.sampled_from(["Content-Type", "Subject", "To", "Delivered-To", "Auto-Submitted", "From",
                                "Action", "Status", "Final-Recipient", "Message-ID", "X-Foo"])
HEADER_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(['multipart/report; report-type=delivery-status; boundary="B"',
                     'multipart/report; report-type=feedback-report; boundary="B"', "message/delivery-status",
                     "rfc822; a@b.c", "failed", "5.1.1", "auto-replied", "<x@y>", "=?utf-8?q?=FF?="]))
BODY_LINES = st.lists(st.one_of(st.text(max_size=80), st.sampled_from(
    ["--B", "--B--", "Content-Type: message/delivery-status", "Action: failed", "Status: 5.1.1",
     "Final-Recipient: rfc822; a@b.c", "Feedback-Type: abuse", "Content-Type: message/feedback-report",
     "Content-Type: message/rfc822", "550 5.1.1 user unknown", ""])), max_size=30)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8), BODY_LINES)
def test_any_message_gives_a_report_never_an_exception(headers, lines):
    raw = "\r\n".join([f"{name}: {value}" for name, value in headers] + [""] + lines).encode("utf-8", "surrogatepass")
    report = classify(raw)
    assert report.kind in KINDS
    assert "\n" not in report.diagnostic and len(report.diagnostic) <= DIAGNOSTIC_CHARS


@given(st.binary(max_size=2000))
def test_any_bytes_give_a_report(raw: bytes):
    assert classify(raw).kind in KINDS


# -- the policy -------------------------------------------------------------------------------


def _reader(store: Store, email_address: str = "ada@example.org") -> int:
    from paperwire.models import Topic
    from paperwire.subscribers import build_subscriber

    stored, _ = store.save_subscriber(build_subscriber(email_address, topics=[Topic("All", "*")]))
    return stored.id


def _event(reader: int | None, kind: str, reference: str, days_ago: float = 0) -> BounceEvent:
    at = dt.datetime(2026, 12, 4, 12, tzinfo=dt.timezone.utc) - dt.timedelta(days=days_ago)
    return BounceEvent(reference=reference, kind=kind, source="mbox", received_at=at, status="",
                       recipient="ada@example.org", subscriber_id=reader)


def test_a_hard_bounce_stops_the_mail_and_each_event_counts_once(store):
    reader = _reader(store)
    assert store.record_bounce(_event(reader, HARD, "mail:1"), BouncePolicy()).status == "bouncing"
    again = store.record_bounce(_event(reader, HARD, "mail:1"), BouncePolicy())
    assert not again.new and again.status is None
    assert store.subscriber("ada@example.org").status == "bouncing"
    assert store.bounce_counts() == {HARD: 1}


def test_soft_bounces_stop_the_mail_at_the_nth_within_the_window(store):
    reader = _reader(store)
    rule = BouncePolicy(soft_limit=3, soft_days=7)
    assert store.record_bounce(_event(reader, SOFT, "s:old", days_ago=8), rule).status is None  # outside the window
    assert store.record_bounce(_event(reader, SOFT, "s:1", days_ago=3), rule).status is None
    assert store.record_bounce(_event(reader, SOFT, "s:2", days_ago=1), rule).status is None
    assert store.subscriber("ada@example.org").status == "active"
    assert store.record_bounce(_event(reader, SOFT, "s:3"), rule).status == "bouncing"


def test_a_complaint_unsubscribes_and_nothing_later_brings_the_reader_back(store):
    reader = _reader(store)
    assert store.record_bounce(_event(reader, COMPLAINT, "c:1"), BouncePolicy()).status == "unsubscribed"
    for number, kind in enumerate((SOFT, SOFT, SOFT, HARD, AUTO_REPLY, UNKNOWN)):
        assert store.record_bounce(_event(reader, kind, f"x:{number}"), BouncePolicy(soft_limit=1)).status is None
    assert store.subscriber("ada@example.org").status == "unsubscribed"


def test_soft_bounces_count_messages_not_reports(store):
    """A message's "delayed" notice, its final 4.x.x failure and a provider's report of each
    retry are one soft-bouncing message."""
    from paperwire.store.deliveries import SENT

    reader = _reader(store)
    run = store.start_run("dispatch")
    sent = []
    for day in (1, 2, 3):
        delivery = store.claim(reader, dt.date(2026, 12, day), f"2026-12-0{day}", run, f"<{day}@x>", [])
        store.record_outcome(delivery, SENT, attempts=1, code=250, detail="ok", give_up_after=5)
        sent.append(delivery)
    rule = BouncePolicy(soft_limit=3, soft_days=7)
    for attempt in range(4):  # four reports about the first message
        event = dataclasses.replace(_event(reader, SOFT, f"first:{attempt}"), delivery_id=sent[0])
        assert store.record_bounce(event, rule).status is None
    assert store.record_bounce(dataclasses.replace(_event(reader, SOFT, "second"), delivery_id=sent[1]),
                               rule).status is None
    assert store.record_bounce(dataclasses.replace(_event(reader, SOFT, "third"), delivery_id=sent[2]),
                               rule).status == "bouncing"


def test_events_tied_to_no_reader_are_kept_and_erasing_a_reader_erases_theirs(store):
    reader = _reader(store)
    assert store.record_bounce(_event(None, UNKNOWN, "u:1"), BouncePolicy()).new
    store.record_bounce(_event(reader, HARD, "h:1"), BouncePolicy())
    assert store.latest_bounces([reader])[reader].kind == HARD
    assert store.delete_subscriber("ada@example.org")
    assert store.bounce_counts() == {}  # its recipient named the reader too


# -- the whole path: a digest over SMTP, its bounce in a mailbox, the reader stopped ----------


def _send_with_verp(store: Store, tmp_path: Path, smtp_server, expected: int = 3) -> tuple[Inbox, object]:
    inbox = Inbox()
    settings = smtp_settings(tmp_path, smtp_server(inbox), bounce_address=BOUNCES, secret_key=SECRET)
    report = dispatch.dispatch(store, settings, now=NOON)
    assert report.sent == expected
    return inbox, settings


def _cli_env(tmp_path: Path, db_url: str) -> dict:
    return {"PAPERWIRE_DB": db_url, "PAPERWIRE_SECRET_KEY": SECRET, "PAPERWIRE_BOUNCE_ADDRESS": BOUNCES,
            "PAPERWIRE_OUT_DIR": str(tmp_path / "out")}


def test_verp_bounce_in_a_maildir_stops_that_reader_and_is_read_once(db_url, tmp_path, smtp_server, run_cli,
                                                                      monkeypatch):
    store = readers_store(db_url, 3)
    inbox, settings = _send_with_verp(store, tmp_path, smtp_server)
    assert all(VERP.fullmatch(sender) for sender in inbox.senders)  # on the wire: MAIL FROM names the delivery
    by_reader = {rcpts[0]: sender for (rcpts, _), sender in zip(inbox.messages, inbox.senders)}
    assert len(set(by_reader.values())) == 3
    # The receiving side accepted reader001's digest, then bounced it to its envelope sender. The DSN
    # names neither the reader's address nor the Message-ID we sent: only the VERP address says who.
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(bounce_mail.dsn(by_reader["reader001@example.org"], "forwarded-to@elsewhere.example",
                            message_id="<rewritten@relay.example>"))
    box.add(bounce_mail.out_of_office(by_reader["reader002@example.org"]))
    for name, value in _cli_env(tmp_path, db_url).items():
        monkeypatch.setenv(name, value)
    result = run_cli("bounces", "--maildir", str(tmp_path / "bounces"), "--json")
    assert result.exit_code == 0, result.output
    tally = json.loads(result.stdout)
    assert tally["kinds"][HARD] == 1 and tally["kinds"][AUTO_REPLY] == 1 and tally["unmatched"] == 0
    assert tally["changed"] == [{"email": "reader001@example.org", "status": "bouncing"}]
    assert {reader.email: reader.status for reader in store.subscribers()} == {
        "reader000@example.org": "active", "reader001@example.org": "bouncing", "reader002@example.org": "active"}
    assert json.loads(run_cli("bounces", "--maildir", str(tmp_path / "bounces"), "--json").stdout)["read"] == 0
    assert all("S" in message.get_flags() and message.get_subdir() == "cur" for message in box)
    # The next digests go to the others only.
    inbox.messages.clear()
    again = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(days=1, hours=1), everyone=True)
    assert "reader001@example.org" not in inbox.count_by_recipient() and again.failed == 0
    listed = json.loads(run_cli("subscribers", "--json").stdout)
    bounced = next(reader for reader in listed if reader["email"] == "reader001@example.org")
    assert bounced["status"] == "bouncing" and bounced["last_bounce"]["kind"] == HARD
    assert bounced["last_bounce"]["status"] == "5.1.1" and bounced["last_bounce"]["source"] == "maildir"
    status = json.loads(run_cli("status", "--json").stdout)
    assert status["bounces"]["kinds"] == {HARD: 1, AUTO_REPLY: 1}


def test_with_verp_on_a_mailed_report_naming_a_reader_changes_nobody(db_url, tmp_path, smtp_server, run_cli,
                                                                      monkeypatch):
    """Anyone can mail the bounce mailbox: with VERP on, a report that came to no VERP address
    and quotes none of our Message-IDs is kept, tied to nobody, and stops nobody's mail."""
    store = readers_store(db_url, 2)
    _send_with_verp(store, tmp_path, smtp_server, expected=2)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(bounce_mail.dsn(BOUNCES, "reader000@example.org", message_id="<made-up@example.org>"))
    box.add(bounce_mail.complaint(BOUNCES, "reader001@example.org", message_id="<made-up@example.org>"))
    for name, value in _cli_env(tmp_path, db_url).items():
        monkeypatch.setenv(name, value)
    tally = json.loads(run_cli("bounces", "--maildir", str(tmp_path / "bounces"), "--json").stdout)
    assert (tally["new"], tally["unmatched"], tally["changed"]) == (2, 2, [])
    assert {reader.status for reader in store.subscribers()} == {"active"}


def test_a_complaint_in_an_mbox_unsubscribes_by_message_id_without_verp(db_url, tmp_path, smtp_server, run_cli,
                                                                          monkeypatch):
    store = readers_store(db_url, 3)
    inbox = Inbox()
    assert dispatch.dispatch(store, smtp_settings(tmp_path, smtp_server(inbox)), now=NOON).sent == 3
    rcpts, data = inbox.messages[0]
    message_id = email.message_from_bytes(data)["Message-ID"]
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    box.add(bounce_mail.complaint("digest@paperwire.localhost", "someone@elsewhere.example",
                                  message_id=message_id, rcpt_field=False))
    box.add(bounce_mail.dsn("digest@paperwire.localhost", "nobody-we-know@example.net", message_id="<x@y>"))
    box.flush()
    monkeypatch.setenv("PAPERWIRE_DB", db_url)
    tally = json.loads(run_cli("bounces", "--mbox", str(path), "--json").stdout)
    assert tally["kinds"][COMPLAINT] == 1 and tally["kinds"][HARD] == 1 and tally["unmatched"] == 1
    assert store.subscriber(rcpts[0]).status == "unsubscribed"
    assert json.loads(run_cli("bounces", "--mbox", str(path), "--json").stdout)["read"] == 0  # flagged read
    assert all("R" in message.get_flags() for message in mailbox.mbox(path))
    text = run_cli("bounces", "--mbox", str(tmp_path / "missing.mbox"))
    assert text.exit_code != 0 and "no such mbox file" in text.output


def test_bounces_without_a_mailbox_says_how_to_configure_one(run_cli):
    result = run_cli("bounces")
    assert result.exit_code == 2 and "bounces.imap_host" in result.output


# -- a real IMAP mailbox (Dovecot) -----------------------------------------------------------

from .dovecot import dovecot  # noqa: E402,F401  (a fixture)


def _imap_env(server, db_url: str, **extra: str) -> dict:
    return {"PAPERWIRE_DB": db_url, "PAPERWIRE_BOUNCES_IMAP_HOST": "127.0.0.1",
            "PAPERWIRE_BOUNCES_IMAP_USER": server.user, "PAPERWIRE_BOUNCES_IMAP_PASSWORD": server.password,
            "SSL_CERT_FILE": str(server.ca_file), **extra}


def _append(server, *messages: bytes) -> None:
    import imaplib

    imap = imaplib.IMAP4("127.0.0.1", server.port)
    imap.login(server.user, server.password)
    for raw in messages:
        assert imap.append("INBOX", None, None, raw)[0] == "OK"
    imap.logout()


def _flags(server, folder: str = "INBOX") -> list[bytes]:
    import imaplib

    imap = imaplib.IMAP4("127.0.0.1", server.port)
    imap.login(server.user, server.password)
    _, count = imap.select(folder)
    _, data = imap.fetch("1:*", "(FLAGS)") if int(count[0]) else ("OK", [])
    imap.logout()
    return [item for item in data if item]


def test_the_bounce_mailbox_over_imap_tls_is_read_once_and_flagged(db_url, tmp_path, dovecot, run_cli, monkeypatch):
    store = readers_store(db_url, 2)
    _append(dovecot, bounce_mail.dsn("bounces@example.org", "reader000@example.org"),
            bounce_mail.complaint("bounces@example.org", "reader001@example.org"),
            bounce_mail.out_of_office("bounces@example.org"))
    for name, value in _imap_env(dovecot, db_url, PAPERWIRE_BOUNCES_IMAP_PORT=str(dovecot.tls_port)).items():
        monkeypatch.setenv(name, value)
    result = run_cli("bounces", "--json")  # implicit TLS, the server's certificate trusted through SSL_CERT_FILE
    assert result.exit_code == 0, result.output
    tally = json.loads(result.stdout)
    assert (tally["read"], tally["kinds"][HARD], tally["kinds"][COMPLAINT], tally["kinds"][AUTO_REPLY]) == (3, 1, 1, 1)
    assert {r.email: r.status for r in store.subscribers()} == {"reader000@example.org": "bouncing",
                                                                 "reader001@example.org": "unsubscribed"}
    assert all(b"$PaperwireDone" in flags and b"\\Seen" in flags for flags in _flags(dovecot))
    assert json.loads(run_cli("bounces", "--json").stdout)["read"] == 0  # never read twice
    assert dovecot.password not in result.output + result.stderr


def test_processed_bounces_can_be_moved_to_a_folder_over_starttls(db_url, dovecot, run_cli, monkeypatch):
    import imaplib

    readers_store(db_url, 1)
    imap = imaplib.IMAP4("127.0.0.1", dovecot.port)
    imap.login(dovecot.user, dovecot.password)
    imap.create("Processed")
    imap.logout()
    _append(dovecot, bounce_mail.dsn("bounces@example.org", "reader000@example.org"))
    env = _imap_env(dovecot, db_url, PAPERWIRE_BOUNCES_IMAP_PORT=str(dovecot.port), PAPERWIRE_BOUNCES_IMAP_TLS="starttls",
                    PAPERWIRE_BOUNCES_IMAP_MOVE_TO="Processed")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert json.loads(run_cli("bounces", "--json").stdout)["kinds"][HARD] == 1
    assert _flags(dovecot) == [] and len(_flags(dovecot, "Processed")) == 1


def test_a_refused_login_is_a_clear_error_without_the_password(db_url, dovecot, run_cli, monkeypatch):
    env = _imap_env(dovecot, db_url, PAPERWIRE_BOUNCES_IMAP_PORT=str(dovecot.port), PAPERWIRE_BOUNCES_IMAP_TLS="none",
                    PAPERWIRE_BOUNCES_IMAP_PASSWORD="wrong-password-xyz")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run_cli("bounces")
    assert result.exit_code == 1 and "login as 'bounces' refused" in result.output + result.stderr
    assert "wrong-password-xyz" not in result.output + result.stderr
    monkeypatch.setenv("PAPERWIRE_BOUNCES_IMAP_TLS", "implicit")  # TLS to a plain port: a clear error too
    failed = run_cli("bounces")
    assert failed.exit_code == 1 and "cannot connect" in failed.output + failed.stderr


# -- a real receiving server (Postfix) that accepts, then bounces -----------------------------

from .postfix import LOCAL_DOMAIN, postfix  # noqa: E402,F401  (a fixture)


def test_a_real_postfix_bounce_to_the_verp_address_stops_that_reader(db_url, tmp_path, smtp_server, postfix, run_cli,
                                                                     monkeypatch):
    """Postfix accepts both digests, delivers one, and later bounces the other (no such user)
    to its envelope sender: our VERP address, relayed to the test's SMTP server like a bounce
    domain's mail exchanger would. The DSN is Postfix's own, byte for byte."""
    from paperwire import sources
    from paperwire.models import Topic
    from paperwire.subscribers import build_subscriber

    from .conftest import SEED, TODAY

    sink = Inbox()
    port = postfix(smtp_server(sink), ("ok.example.net", "bounces.example.org"))
    store = Store(db_url)
    store.save_listings(sources.read_path(SEED, today=TODAY))
    store.save_subscribers([build_subscriber(address, topics=[Topic("All", "*")], max_papers=3)
                            for address in (f"ghost@{LOCAL_DOMAIN}", "ada@ok.example.net")])
    settings = smtp_settings(tmp_path, port, bounce_address="bounces@bounces.example.org", secret_key=SECRET)
    assert dispatch.dispatch(store, settings, now=NOON).sent == 2  # both accepted: the bounce comes later
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while not any(r[0].endswith("@bounces.example.org") for r, _ in sink.messages) and dt.datetime.now() < deadline:
        import time

        time.sleep(0.2)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for (rcpt, *_), data in sink.messages:
        if rcpt.endswith("@bounces.example.org"):  # what the bounce domain's delivery agent writes
            box.add(f"Delivered-To: {rcpt}\r\n".encode() + data)
    assert len(box) == 1, [r for r, _ in sink.messages]
    assert b"Postfix" in box.get_bytes(box.keys()[0])
    for name, value in {"PAPERWIRE_DB": db_url, "PAPERWIRE_SECRET_KEY": SECRET,
                        "PAPERWIRE_BOUNCE_ADDRESS": "bounces@bounces.example.org"}.items():
        monkeypatch.setenv(name, value)
    tally = json.loads(run_cli("bounces", "--maildir", str(tmp_path / "bounces"), "--json").stdout)
    assert tally["kinds"][HARD] == 1 and tally["changed"] == [{"email": f"ghost@{LOCAL_DOMAIN}", "status": "bouncing"}]
    assert {r.email: r.status for r in store.subscribers()} == {f"ghost@{LOCAL_DOMAIN}": "bouncing",
                                                                 "ada@ok.example.net": "active"}
    (event,) = store.recent_bounces()
    assert event.status == "5.1.1" and "unknown user" in event.diagnostic and event.delivery_id is not None
    report = classify(box.get_bytes(box.keys()[0]))
    assert report.message_ids == (store.deliveries_of(f"ghost@{LOCAL_DOMAIN}")[0]["message_id"],)  # not the DSN's own


# -- coming back --------------------------------------------------------------------------------


def test_a_bouncing_reader_is_reactivated_by_confirming_again_from_the_web(new_db, tmp_path):
    from .test_web import _confirm, make_site

    site = make_site(new_db, tmp_path)
    try:
        reader = site.reader("ada@example.org", "depth")
        site.store.record_bounce(BounceEvent(reference="mail:x", kind=HARD, source="imap",
                                             received_at=dt.datetime.now(dt.timezone.utc), subscriber_id=reader.id),
                                 BouncePolicy())
        assert site.store.subscriber("ada@example.org").status == "bouncing"
        assert site.subscribe(topics="depth").status_code == 200
        assert _confirm(site, site.confirm_link()).status_code == 303
        assert site.store.subscriber("ada@example.org").status == "active"
        assert site.store.latest_bounces([reader.id])[reader.id].kind == HARD  # the history stays
    finally:
        site.client.close()
        site.store.close()


def test_the_operator_reactivates_a_bouncing_reader_with_subscribe(run_cli, store):
    assert run_cli("subscribe", "ada@example.org", "--topic", "depth").exit_code == 0
    reader = store.subscriber("ada@example.org")
    store.record_bounce(_event(reader.id, HARD, "mail:y"), BouncePolicy())
    assert store.subscriber("ada@example.org").status == "bouncing"
    assert run_cli("subscribe", "ada@example.org").exit_code == 0
    assert store.subscriber("ada@example.org").status == "active"


def test_the_daemon_reads_the_bounce_mailbox_every_check_minutes(db_url, dovecot, monkeypatch):
    import threading

    from paperwire import schedule
    from paperwire.config import Settings

    store = readers_store(db_url, 1)
    _append(dovecot, bounce_mail.dsn("bounces@example.org", "reader000@example.org"))
    settings = Settings(db=db_url, bounces_imap_host="127.0.0.1", bounces_imap_port=dovecot.port,
                        bounces_imap_tls="none", bounces_imap_user=dovecot.user,
                        bounces_imap_password=dovecot.password, bounces_check_minutes=7)
    scheduler = schedule.build_scheduler(store, settings)
    job = scheduler.get_job(schedule.BOUNCES_JOB)
    assert job is not None and job.trigger.interval == dt.timedelta(minutes=7)
    assert schedule.build_scheduler(store, Settings(db=db_url)).get_job(schedule.BOUNCES_JOB) is None  # no mailbox
    monkeypatch.setattr(schedule, "_daemon", schedule._Daemon(store, settings, threading.Event()))
    tally = schedule.bounces_job()
    assert tally.kinds[HARD] == 1 and store.subscriber("reader000@example.org").status == "bouncing"
    assert schedule.bounces_job().read == 0
