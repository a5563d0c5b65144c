"""Internationalized addresses (RFC 6531/6532, IDNA): headers, envelope, SMTPUTF8, every way out.

Headers are checked on the raw bytes: Python's parser decodes encoded words and would hide
an address written as one. The SMTP server is a real aiosmtpd on 127.0.0.1, with and
without SMTPUTF8.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator

import dkim
import pytest
from aiosmtpd.controller import Controller

from paperwire import addresses, dispatch, sources
from paperwire.config import Settings
from paperwire.mail import Signer, build_message, message_bytes
from paperwire.models import Digest, Subscriber, Topic
from paperwire.store import Store
from paperwire.subscribers import build_subscriber, normalize_email, parse_topic_spec
from paperwire.transport import DryRunTransport, Outgoing, SmtpConfig, SmtpTransport
from paperwire.web.mailer import Letter, Mailer

from .conftest import SEED, TODAY
from .ports import free_port

NOW = dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.timezone.utc)
NOON = dt.datetime(2024, 3, 11, 12, 0, tzinfo=dt.timezone.utc)
SETTINGS = Settings(base_url="https://papers.example.org", sender_name="paperwire", sender_email="digest@example.org",
                    unsubscribe_email="unsubscribe@example.org", list_id="digest.example.org")
UTF8_LOCAL = "jörg@example.org"
IDN_DOMAIN = "user@exämple.org"
IDN_ASCII = "user@xn--exmple-cua.org"


class Rendered:
    subject = "2 new papers on RAG"
    html = "<p>Hello – ü</p>\n"
    text = "Hello – ü\n"


def raw_header(data: bytes, name: str) -> bytes:
    """The header field ``name`` as it is on the wire, continuation lines included (CRLF kept)."""
    block = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for i, line in enumerate(block):
        if line.lower().startswith(name.lower().encode() + b":"):
            lines = [line]
            for more in block[i + 1:]:
                if more[:1] not in (b" ", b"\t"):
                    break
                lines.append(more)
            return b"\r\n".join(lines)
    raise KeyError(name)


def digest_for(address: str, name: str = "") -> Digest:
    reader = Subscriber(email=normalize_email(address), name=name, token="tok123", topics=[Topic("RAG", "RAG")])
    return Digest(subscriber=reader, edition="2024-03-11", listing_date=dt.date(2024, 3, 11), sections=())


# --- addresses ---------------------------------------------------------------------


def test_stored_addresses_are_one_form_and_go_out_as_a_labels():
    assert normalize_email("user@xn--exmple-cua.org") == normalize_email("User@EXÄMPLE.org") == IDN_DOMAIN
    assert addresses.wire(IDN_DOMAIN) == IDN_ASCII and not addresses.needs_smtputf8(IDN_DOMAIN)
    assert addresses.wire("jörg@exämple.org") == "jörg@xn--exmple-cua.org"
    assert addresses.needs_smtputf8(UTF8_LOCAL) and not addresses.needs_smtputf8("ada@example.org")
    assert addresses.mailto("jörg+x@exämple.org") == "j%C3%B6rg+x@xn--exmple-cua.org"


# --- headers -----------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("Jörg", "To: =?utf-8?b?SsO2cmc=?= <jörg@example.org>"),
    ("", "To: jörg@example.org"),
    ("Smith, \"J\"", 'To: "Smith, \\"J\\"" <jörg@example.org>'),
])
def test_a_utf8_local_part_is_raw_utf8_and_a_name_is_an_encoded_word(name, expected):
    data = message_bytes(build_message(digest_for(UTF8_LOCAL, name), Rendered(), SETTINGS, now=NOW))
    assert raw_header(data, "To") == expected.encode("utf-8")
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.isascii()  # only the address header is UTF-8; the parts stay 7-bit


def test_an_idn_domain_is_punycode_and_the_message_stays_ascii():
    data = message_bytes(build_message(digest_for(IDN_DOMAIN, "Zoë"), Rendered(), SETTINGS, now=NOW))
    assert data.isascii() and b"=?utf-8?q?ex" not in data
    assert raw_header(data, "To") == b"To: =?utf-8?q?Zo=C3=AB?= <user@xn--exmple-cua.org>"


def test_sender_reply_to_unsubscribe_and_message_id_with_idn_settings():
    settings = Settings(**{**SETTINGS.__dict__, "sender_email": "digest@exämple.org", "sender_name": "Pâperwire",
                           "reply_to": "rédaction@example.org", "unsubscribe_email": "désabonner@exämple.org"})
    data = message_bytes(build_message(digest_for("ada@example.org"), Rendered(), settings, now=NOW))
    assert raw_header(data, "From") == b"From: =?utf-8?q?P=C3=A2perwire?= <digest@xn--exmple-cua.org>"
    assert raw_header(data, "Reply-To") == "Reply-To: rédaction@example.org".encode()
    assert raw_header(data, "Message-ID").endswith(b"@xn--exmple-cua.org>")
    assert raw_header(data, "List-Id") == b"List-Id: =?utf-8?q?P=C3=A2perwire?= <digest.example.org>"
    assert b"<mailto:d%C3%A9sabonner@xn--exmple-cua.org?subject=unsubscribe%20tok123>" in raw_header(
        data, "List-Unsubscribe")


def test_dkim_signs_and_verifies_a_message_with_a_utf8_address(dkim_key):
    private, public = dkim_key
    settings = Settings(**{**SETTINGS.__dict__, "dkim_key_file": private, "dkim_selector": "pw",
                           "dkim_domain": "exämple.org"})
    data = message_bytes(build_message(digest_for("jörg@exämple.org", "Jörg"), Rendered(), settings, now=NOW),
                         Signer.from_settings(settings))
    assert b"d=xn--exmple-cua.org" in data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"").replace(b" ", b"")
    assert "jörg@xn--exmple-cua.org".encode() in raw_header(data, "To")

    def dns(name, timeout=5):
        assert name == b"pw._domainkey.xn--exmple-cua.org."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace("jörg@".encode(), "jorg@".encode()), dnsfunc=dns)


# --- SMTP --------------------------------------------------------------------------


class Inbox:
    """Keeps each message with its envelope and MAIL options, exactly as aiosmtpd got them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[str, ...], tuple[str, ...], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, tuple(envelope.rcpt_tos), tuple(envelope.mail_options),
                                  envelope.original_content))
        return "250 Message accepted"

    def by_recipient(self) -> dict[str, tuple]:
        return {rcpt: message for message in self.messages for rcpt in message[1]}


@contextlib.contextmanager
def smtp_server(smtputf8: bool) -> Iterator[tuple[Inbox, int]]:
    port = free_port()  # aiosmtpd 1.4 cannot listen on port 0
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_config(port: int) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, timeout=5.0, backoff_base=0.001, backoff_max=0.01,
                      local_hostname="tests.paperwire.localhost", pool_size=1)


def outgoing(key: str, recipient: str, name: str = "") -> Outgoing:
    data = message_bytes(build_message(digest_for(recipient, name), Rendered(), SETTINGS, now=NOW))
    return Outgoing(key, SETTINGS.sender_email, (normalize_email(recipient),), data)


MIXED = [("a", "ada@example.org", ""), ("j", UTF8_LOCAL, "Jörg"), ("i", IDN_DOMAIN, ""), ("b", "bob@example.org", "")]


def test_smtputf8_server_gets_the_utf8_address_with_the_smtputf8_option():
    with smtp_server(smtputf8=True) as (inbox, port):
        outcomes = []
        counts = SmtpTransport(smtp_config(port)).send_all([outgoing(*m) for m in MIXED], outcomes.append)
    assert counts.sent == 4 and counts.failed == 0
    got = inbox.by_recipient()
    assert set(got) == {"ada@example.org", "jörg@example.org", IDN_ASCII, "bob@example.org"}
    mail_from, _, options, content = got["jörg@example.org"]
    assert mail_from == "digest@example.org" and "SMTPUTF8" in options
    assert raw_header(content, "To") == "To: =?utf-8?b?SsO2cmc=?= <jörg@example.org>".encode()
    assert content == outgoing(*MIXED[1]).data  # byte for byte
    assert "SMTPUTF8" not in got["ada@example.org"][2] and "SMTPUTF8" not in got[IDN_ASCII][2]


def test_the_first_message_on_a_new_connection_gets_smtputf8_too():
    """The options of the first MAIL depend on EHLO, which must come before it is written."""
    with smtp_server(smtputf8=True) as (inbox, port):
        outcomes = []
        SmtpTransport(smtp_config(port)).send_all([outgoing(*MIXED[1])], outcomes.append)
    assert [o.status for o in outcomes] == ["sent"] and "SMTPUTF8" in inbox.messages[0][2]


def test_without_smtputf8_only_the_utf8_local_part_fails_and_the_rest_go_out():
    with smtp_server(smtputf8=False) as (inbox, port):
        outcomes = []
        counts = SmtpTransport(smtp_config(port)).send_all([outgoing(*m) for m in MIXED], outcomes.append)
    assert (counts.sent, counts.failed) == (3, 1)
    by_key = {o.key: o for o in outcomes}
    assert by_key["j"].status == "failed" and "needs SMTPUTF8" in by_key["j"].detail
    assert "jörg@example.org" in by_key["j"].detail
    assert set(inbox.by_recipient()) == {"ada@example.org", IDN_ASCII, "bob@example.org"}
    assert [o.key for o in outcomes] == ["a", "j", "i", "b"]  # one connection, in order, and it stayed usable


def test_utf8_in_a_header_alone_needs_smtputf8_too():
    settings = Settings(**{**SETTINGS.__dict__, "reply_to": "rédaction@example.org"})
    data = message_bytes(build_message(digest_for("ada@example.org"), Rendered(), settings, now=NOW))
    for smtputf8 in (True, False):
        with smtp_server(smtputf8) as (inbox, port):
            outcomes = []
            SmtpTransport(smtp_config(port)).send_all([Outgoing("r", "digest@example.org", ("ada@example.org",), data)],
                                                      outcomes.append)
        (outcome,) = outcomes
        if smtputf8:
            assert outcome.status == "sent" and "SMTPUTF8" in inbox.messages[0][2]
        else:
            assert outcome.status == "failed" and outcome.detail.startswith("needs SMTPUTF8 (UTF-8 in its headers)")


def test_a_dry_run_says_which_messages_need_smtputf8():
    outcomes = []
    DryRunTransport().send_all([outgoing(*m) for m in MIXED], outcomes.append)
    assert ["SMTPUTF8" in o.detail for o in outcomes] == [False, True, False, False]


# --- the whole run -----------------------------------------------------------------


def mixed_store(db_url: str) -> Store:
    """Ten ASCII readers with a UTF-8 local part and an IDN domain among them."""
    store = Store(db_url)
    store.save_listings(sources.read_path(SEED, today=TODAY))
    emails = [f"reader{i}@example.org" for i in range(5)] + [UTF8_LOCAL, IDN_DOMAIN] + [
        f"reader{i}@example.org" for i in range(5, 10)]
    store.save_subscribers([build_subscriber(e, name="Jörg" if e == UTF8_LOCAL else None,
                                             topics=[parse_topic_spec("*")], max_papers=3) for e in emails])
    return store


@pytest.mark.parametrize("smtputf8", [True, False])
def test_send_run_with_a_utf8_reader_among_ascii_ones_delivers_to_everyone_else(db_url, tmp_path, smtputf8):
    store = mixed_store(db_url)
    with smtp_server(smtputf8) as (inbox, port):
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5.0, smtp_max_attempts=2,
                            out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
        report = dispatch.dispatch(store, settings, now=NOON)
    got = inbox.by_recipient()
    assert report.error == "" and report.unknown == []
    ascii_readers = {f"reader{i}@example.org" for i in range(10)} | {IDN_ASCII}
    if smtputf8:
        assert (report.sent, report.failed) == (12, 0) and set(got) == ascii_readers | {UTF8_LOCAL}
        assert raw_header(got[UTF8_LOCAL][3], "To") == "To: =?utf-8?b?SsO2cmc=?= <jörg@example.org>".encode()
    else:
        assert (report.sent, report.failed) == (11, 1) and set(got) == ascii_readers
        (failure,) = report.failures
        assert failure["email"] == UTF8_LOCAL and "needs SMTPUTF8" in failure["detail"]
        assert [d["status"] for d in store.deliveries_of(UTF8_LOCAL)] == ["failed"]
    store.close()


def test_cli_send_all_json_with_outbox_and_dry_run(run_cli, tmp_path):
    assert run_cli("ingest", str(SEED)).exit_code == 0
    for address, name in [("ada@example.org", "Ada"), (UTF8_LOCAL, "Jörg"), (IDN_DOMAIN, ""), ("bob@example.org", "")]:
        assert run_cli("subscribe", address, "--topic", "*", *(["--name", name] if name else [])).exit_code == 0
    dry = run_cli("send", "--all", "--json", "--dry-run")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["dry_run"] == 4
    assert json.loads(dry.stdout)["needs_smtputf8"] == [UTF8_LOCAL]  # as the README says a dry run tells
    said = run_cli("send", "--all", "--dry-run")
    assert f"needs SMTPUTF8: {UTF8_LOCAL}" in said.stderr and IDN_DOMAIN not in said.stderr
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 4 and report["failures"] == []
    files = [p.read_bytes() for p in (tmp_path / "out" / "outbox").glob("*.eml")]
    to_lines = sorted(raw_header(data, "To") for data in files)
    assert to_lines == sorted([b"To: Ada <ada@example.org>", "To: =?utf-8?b?SsO2cmc=?= <jörg@example.org>".encode(),
                               b"To: user@xn--exmple-cua.org", b"To: bob@example.org"])


# --- the web app's mail ------------------------------------------------------------


@pytest.mark.parametrize("address, to_line", [
    (UTF8_LOCAL, "To: jörg@example.org"), (IDN_DOMAIN, "To: user@xn--exmple-cua.org")])
def test_the_confirmation_mail_goes_out_to_an_international_address(address, to_line, dkim_key):
    private, public = dkim_key
    settings = Settings(**{**SETTINGS.__dict__, "dkim_key_file": private, "dkim_selector": "pw"})
    with smtp_server(smtputf8=True) as (inbox, port):
        outcome = Mailer(settings, SmtpTransport(smtp_config(port))).send(
            Letter(normalize_email(address), "Bestätige dein Abo", "Klick.\n", "<p>Klick.</p>"))
    assert outcome.status == "sent"
    ((_, rcpts, _, content),) = inbox.messages
    assert rcpts == (addresses.wire(normalize_email(address)),)
    assert raw_header(content, "To") == to_line.encode()
    assert b"=?" not in raw_header(content, "From").split(b"<")[1]
    assert dkim.verify(content, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public)


def test_the_web_form_mails_a_utf8_address(new_db, tmp_path):
    import re

    from fastapi.testclient import TestClient

    from paperwire.web.app import create_app

    base = "https://papers.example.org"
    with smtp_server(smtputf8=True) as (inbox, port):
        settings = Settings(db=new_db(tmp_path / "web.sqlite3"), out_dir=tmp_path / "out", base_url=base,
                            outbox_dir=tmp_path / "outbox", secret_key="k" * 40, smtp_host="127.0.0.1",
                            smtp_port=port, smtp_timeout=5.0)
        store = Store(settings.db)
        app = create_app(settings, store=store, transport=SmtpTransport(smtp_config(port)))
        with TestClient(app, base_url=base) as client:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
            answer = client.post("/subscribe", data={"csrf_token": csrf, "email": "Jörg@Example.org", "topics": "LLM",
                                                     "cadence": "daily", "hour": "7", "timezone": "UTC",
                                                     "action": "subscribe"})
        store.close()
    assert answer.status_code == 200
    ((_, rcpts, options, content),) = inbox.messages
    assert rcpts == ("jörg@example.org",) and "SMTPUTF8" in options
    assert raw_header(content, "To") == "To: jörg@example.org".encode()
