"""Delivery against a real SMTP server (aiosmtpd on 127.0.0.1), a real folder, and faults.

The fault-injecting server refuses or drops each message a planned number of times
(seeded), always BEFORE accepting it, so "delivered exactly once" is checkable; a drop
after acceptance can duplicate a message in real life (see transport's docstring).
"""

from __future__ import annotations

import asyncio
import logging
import contextlib
import email
import email.policy
import random
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import given
from hypothesis import strategies as st

from paperwire.transport import (
    Counts,
    DryRunTransport,
    OutboxTransport,
    Outcome,
    Outgoing,
    ServerUnavailable,
    SmtpConfig,
    SmtpTransport,
    header_message_id,
    outbox_file_name,
    send_all,
    smtp_pace,
)

HOST = "127.0.0.1"
SENDER = "digest@paperwire.localhost"


# --- servers -----------------------------------------------------------------------


def free_port() -> int:
    """aiosmtpd 1.4 cannot listen on port 0 (aio-libs/aiosmtpd#388): ask the OS for one."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: tuple
    tls: bool


@dataclass
class Recorder:
    """A handler that accepts everything and keeps what arrived."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                      session.peer, _uses_tls(server, session)))
        return "250 2.0.0 queued"


def _uses_tls(server, session) -> bool:
    """session.ssl is only set by STARTTLS; an implicit-TLS transport says so itself."""
    return session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None


@contextlib.contextmanager
def running(handler, **kwargs) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    with running(handler) as port:
        yield handler, port


def config(port: int, **overrides) -> SmtpConfig:
    """Fast retries and a fixed EHLO name (no DNS lookup) for tests."""
    values = dict(host=HOST, port=port, timeout=5.0, backoff_base=0.001, backoff_max=0.01,
                  local_hostname="tests.paperwire.localhost")
    values.update(overrides)
    return SmtpConfig(**values)


class Collector:
    """on_outcome that also checks it is only ever called from the caller's thread."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.thread = threading.get_ident()

    def __call__(self, outcome: Outcome) -> None:
        assert threading.get_ident() == self.thread
        self.outcomes.append(outcome)

    def by_key(self) -> dict[str, Outcome]:
        keys = Counter(o.key for o in self.outcomes)
        assert max(keys.values(), default=1) == 1, f"outcome reported twice: {keys.most_common(3)}"
        return {o.key: o for o in self.outcomes}


def simple(n: int, prefix: str = "m") -> Iterator[Outgoing]:
    for i in range(n):
        data = f"Subject: {prefix} {i}\r\nMessage-ID: <{prefix}{i}@t>\r\n\r\nbody {i}\r\n".encode()
        yield Outgoing(f"{prefix}{i}", SENDER, (f"reader{i}@example.org",), data)


# --- content -----------------------------------------------------------------------


def digest_like(i: int) -> bytes:
    """A multipart/alternative message with the lines SMTP transparency must survive."""
    msg = EmailMessage()
    msg["Subject"] = f"Your papers, issue {i} — ünïcode"
    msg["From"] = SENDER
    msg["To"] = f"reader{i}@example.org"
    msg["Message-ID"] = f"<2024-11-26.{i}@paperwire.localhost>"
    text = f"Hello {i}\n.\n.leading dot\n..two dots\n" + "long line " * 40 + "\nüber\n"
    msg.set_content(text)
    msg.add_alternative(f"<p>Hello {i}</p>\n<p>.dot</p>", subtype="html")
    return msg.as_bytes(policy=email.policy.SMTP)


def test_messages_arrive_intact(recorder) -> None:
    handler, port = recorder
    sent = [Outgoing(f"k{i}", SENDER, (f"reader{i}@example.org",), digest_like(i)) for i in range(5)]
    collect = Collector()
    counts = send_all(sent, collect, config(port))
    assert counts == Counts(sent=5)
    got = {r.rcpt_tos[0]: r for r in handler.received}
    for i, out in enumerate(sent):
        arrived = got[f"reader{i}@example.org"]
        assert arrived.mail_from == SENDER
        assert arrived.content == out.data  # byte for byte: CRLF kept, dot-stuffing undone
        parsed = email.message_from_bytes(arrived.content, policy=email.policy.default)
        assert parsed["Subject"] == f"Your papers, issue {i} — ünïcode"
        assert parsed["Message-ID"] == f"<2024-11-26.{i}@paperwire.localhost>"
        text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert "\n.\n.leading dot\n..two dots\n" in text and "über" in text
        assert parsed.get_body(("html",)).get_content().startswith(f"<p>Hello {i}</p>")
    outcome = collect.by_key()["k0"]
    assert (outcome.status, outcome.attempts, outcome.code, outcome.uncertain) == ("sent", 1, 250, False)


def test_bare_newlines_are_sent_as_crlf(recorder) -> None:
    handler, port = recorder
    data = b"Subject: lf\n\nline one\nline two\n"
    send_all([Outgoing("lf", SENDER, ("a@example.org",), data)], Collector(), config(port))
    assert handler.received[0].content == data.replace(b"\n", b"\r\n")


def test_connections_are_reused_across_messages(recorder) -> None:
    handler, port = recorder
    counts = send_all(simple(40), Collector(), config(port, pool_size=3))
    assert counts.sent == 40
    peers = {r.peer for r in handler.received}
    assert 1 <= len(peers) <= 3  # one connection per pool member, not one per message


def test_partial_recipient_refusal_still_sends() -> None:
    class Picky(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, options) -> str:
            if address.startswith("gone"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    handler = Picky()
    with running(handler) as port:
        collect = Collector()
        msg = Outgoing("two", SENDER, ("here@example.org", "gone@example.org"), b"Subject: x\r\n\r\nx\r\n")
        send_all([msg], collect, config(port))
    outcome = collect.by_key()["two"]
    assert outcome.status == "sent" and "gone@example.org: 550" in outcome.detail
    assert [r.rcpt_tos for r in handler.received] == [["here@example.org"]]


# --- faults ------------------------------------------------------------------------

FAULTS = ("rcpt451", "rcpt_drop", "data421", "data451")  # all before the server can have the message
AMBIGUOUS = ("data_drop", "data_timeout_like")  # after our final ".": did the server take it?


class Faulty(Recorder):
    """Fails each good message a planned number of times before accepting it; 550 for bad ones.

    Every fault happens before the server accepts, so nothing may arrive twice.
    """

    def __init__(self, plan: dict[str, list[str]]):
        super().__init__()
        self.plan = plan
        self.tries: Counter[str] = Counter()

    async def _drop(self, server) -> str:
        server.transport.close()
        await asyncio.sleep(10)  # connection_lost cancels this coroutine: no reply is ever sent
        return "421 unreachable"

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        self.tries[address] += 1
        if address.startswith("bad"):
            return "550 5.1.1 mailbox unavailable"
        planned = self.plan.get(address, [])
        fault = planned[self.tries[address] - 1] if self.tries[address] <= len(planned) else ""
        if fault == "rcpt451":
            return "451 4.3.0 try again later"
        if fault == "rcpt_drop":
            return await self._drop(server)
        envelope.fault = fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        fault = getattr(envelope, "fault", "")
        if fault == "data421":
            return "421 4.3.2 service shutting down"
        if fault == "data451":
            return "451 4.3.0 local problem"
        if fault in ("data_drop", "data_timeout_like"):
            return await self._drop(server)
        return await super().handle_DATA(server, session, envelope)


def test_faults_every_good_message_exactly_once_bad_ones_fail_without_retry() -> None:
    rng = random.Random(20241126)
    good = [f"good{i}@example.org" for i in range(180)]
    bad = [f"bad{i}@example.org" for i in range(20)]
    plan = {address: [rng.choice(FAULTS) for _ in range(rng.choice([0, 0, 1, 2, 3]))] for address in good}
    addresses = good + bad
    rng.shuffle(addresses)
    messages = (Outgoing(f"d{n}", SENDER, (address,), f"Subject: {address}\r\n\r\nhi\r\n".encode())
                for n, address in enumerate(addresses))
    handler = Faulty(plan)
    collect = Collector()
    with running(handler) as port:
        counts = send_all(messages, collect, config(port, pool_size=4, max_attempts=5))

    outcomes = collect.by_key()
    assert len(outcomes) == 200
    arrived = Counter(r.rcpt_tos[0] for r in handler.received)
    assert arrived == Counter(good)  # each good address exactly once, no bad one
    for n, address in enumerate(addresses):
        outcome = outcomes[f"d{n}"]
        if address in plan:
            assert (outcome.status, outcome.attempts, outcome.code) == ("sent", len(plan[address]) + 1, 250)
        else:
            assert (outcome.status, outcome.attempts, outcome.code) == ("failed", 1, 550)
            assert handler.tries[address] == 1  # no retry of a permanent failure
    assert counts == Counts(sent=180, failed=20, retried=sum(map(len, plan.values())))
    assert counts.retried > 50  # the plan really did inject faults
    assert not any(outcome.uncertain for outcome in outcomes.values())


@pytest.mark.parametrize("fault", AMBIGUOUS)
def test_a_drop_after_the_body_is_unknown_and_never_retried(fault: str) -> None:
    handler = Faulty({"maybe@example.org": [fault], "fine@example.org": []})
    messages = [Outgoing(k, SENDER, (k + "@example.org",), f"Subject: {k}\r\n\r\nhi\r\n".encode())
                for k in ("maybe", "fine")]
    collect = Collector()
    with running(handler) as port:
        counts = send_all(messages, collect, config(port, pool_size=1, max_attempts=5))
    outcome = collect.by_key()["maybe"]
    assert (outcome.status, outcome.attempts, outcome.uncertain) == ("unknown", 1, True)
    assert handler.tries["maybe@example.org"] == 1  # no second copy offered
    assert collect.by_key()["fine"].status == "sent"  # the pool carries on after the drop
    assert counts == Counts(sent=1, unknown=1)


def test_permanent_reject_in_data_is_not_retried() -> None:
    class Rejecting(Recorder):
        calls = 0

        async def handle_DATA(self, server, session, envelope) -> str:
            self.calls += 1
            return "554 5.7.1 message refused"

    handler = Rejecting()
    with running(handler) as port:
        collect = Collector()
        counts = send_all(simple(3), collect, config(port))
    assert counts == Counts(failed=3) and handler.calls == 3
    assert {(o.status, o.code, o.attempts) for o in collect.outcomes} == {("failed", 554, 1)}


def test_refused_sender_stops_the_run_instead_of_failing_every_message() -> None:
    class NeedsLogin(Recorder):
        async def handle_MAIL(self, server, session, envelope, address, options) -> str:
            return "530 5.7.0 Authentication required"

    with running(NeedsLogin()) as port:
        collect = Collector()
        with pytest.raises(ServerUnavailable, match="530"):
            send_all(simple(20), collect, config(port))
    assert collect.outcomes and {o.status for o in collect.outcomes} == {"deferred"}
    assert len(collect.outcomes) < 20


def test_message_without_recipients_fails_alone(recorder) -> None:
    handler, port = recorder
    collect = Collector()
    msgs = [Outgoing("none", SENDER, (), b"Subject: x\r\n\r\nx\r\n"), *simple(1)]
    assert send_all(msgs, collect, config(port)) == Counts(sent=1, failed=1)
    assert collect.by_key()["none"].status == "failed" and len(handler.received) == 1


def test_temporary_failures_give_up_as_deferred_after_max_attempts() -> None:
    class Busy(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, options) -> str:
            return "452 4.2.2 mailbox full"

    with running(Busy()) as port:
        collect = Collector()
        counts = send_all(simple(2), collect, config(port, max_attempts=3))
    assert counts == Counts(deferred=2, retried=4)
    assert {(o.status, o.attempts, o.code) for o in collect.outcomes} == {("deferred", 3, 452)}


def test_timeout_waiting_for_the_data_reply_is_unknown_not_retried() -> None:
    class Slow(Recorder):
        async def handle_DATA(self, server, session, envelope) -> str:
            await asyncio.sleep(2.0)
            return await super().handle_DATA(server, session, envelope)

    handler = Slow()
    with running(handler) as port:
        collect = Collector()
        started = time.monotonic()
        counts = send_all(simple(1), collect, config(port, timeout=0.3, max_attempts=3))
        elapsed = time.monotonic() - started
    (outcome,) = collect.outcomes
    assert (outcome.status, outcome.attempts, outcome.uncertain) == ("unknown", 1, True)
    assert "Timeout" in outcome.detail or "timed out" in outcome.detail.lower()
    assert counts == Counts(unknown=1)
    assert elapsed < 1.5


def test_timeout_before_data_is_retried_then_deferred() -> None:
    class SlowRcpt(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, options) -> str:
            await asyncio.sleep(2.0)
            envelope.rcpt_tos.append(address)
            return "250 OK"

    with running(SlowRcpt()) as port:
        collect = Collector()
        counts = send_all(simple(1), collect, config(port, timeout=0.3, max_attempts=2))
    (outcome,) = collect.outcomes
    assert (outcome.status, outcome.attempts, outcome.uncertain) == ("deferred", 2, False)
    assert counts == Counts(deferred=1, retried=1)


def test_unreachable_server_stops_the_run_with_an_error() -> None:
    port = free_port()  # nothing listens there
    taken: list[str] = []

    def messages() -> Iterator[Outgoing]:
        for msg in simple(50):
            taken.append(msg.key)
            yield msg

    collect = Collector()
    with pytest.raises(ServerUnavailable, match="unreachable") as caught:
        send_all(messages(), collect, config(port, max_attempts=2, pool_size=2))
    assert set(collect.by_key()) == set(taken)  # everything taken got its outcome
    assert len(taken) < 50  # and the run stopped taking messages
    assert all(o.status == "deferred" for o in collect.outcomes)
    assert caught.value.counts.deferred == len(taken)


# --- rate limits -------------------------------------------------------------------


def test_per_second_limit_spreads_the_sends(recorder) -> None:
    _, port = recorder
    started = time.monotonic()
    counts = send_all(simple(100), Collector(), config(port, per_second=50, pool_size=4))
    elapsed = time.monotonic() - started
    assert counts.sent == 100
    assert 1.9 <= elapsed < 4.0


class FakeClock:
    """Time that moves only when someone sleeps: an hour passes in microseconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, delay: float) -> Awaitable[None]:
        """The wake-up time is fixed when called, as with a real clock, not when first run."""
        return self._until(self.now + delay)

    async def _until(self, wake: float) -> None:
        self.now = max(self.now, wake)
        await asyncio.sleep(0)


def test_rate_limiter_slots() -> None:
    pace = smtp_pace(per_second=2, per_hour=3)
    assert [pace.reserve(0.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert pace.reserve(0.0) == 3600.0  # the 4th waits until the 1st is an hour old
    assert pace.reserve(3600.0) == 3600.5  # an hour after the 2nd
    assert smtp_pace(None, None).reserve(7.0) == 7.0


class Stamping(Recorder):
    """Notes the fake clock's time at each DATA."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.clock = clock
        self.stamps: list[float] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.stamps.append(self.clock.now)
        return await super().handle_DATA(server, session, envelope)


def test_per_hour_limit_with_an_injected_clock() -> None:
    clock = FakeClock()

    handler = Stamping(clock)
    with running(handler) as port:
        transport = SmtpTransport(config(port, per_hour=10, pool_size=3), clock=clock, sleep=clock.sleep)
        started = time.monotonic()
        counts = transport.send_all(simple(25), Collector())
    assert counts.sent == 25
    assert time.monotonic() - started < 5  # two fake hours, no real ones
    stamps = sorted(handler.stamps)
    assert 7200 <= stamps[-1] < 7300
    for i, stamp in enumerate(stamps):  # never more than 10 in any hour
        assert sum(1 for s in stamps[i:] if s < stamp + 3600) <= 10


def test_per_hour_limit_counts_sends_of_earlier_runs() -> None:
    clock = FakeClock()

    handler = Stamping(clock)
    with running(handler) as port:
        transport = SmtpTransport(config(port, per_hour=3, pool_size=1), clock=clock, sleep=clock.sleep)
        transport.sent_earlier = [600.0, 1200.0, 5000.0]  # two in the last hour, one before it
        assert transport.send_all(simple(2), Collector()).sent == 2
    first, second = sorted(handler.stamps)
    assert first < 60  # one slot of the hour was left
    assert 2400 <= second < 2460  # the next frees when the 20-minute-old send turns an hour old


# --- stopping and caller errors ----------------------------------------------------


def test_stop_event_finishes_in_flight_and_takes_nothing_new() -> None:
    class Sluggish(Recorder):
        async def handle_DATA(self, server, session, envelope) -> str:
            await asyncio.sleep(0.01)
            return await super().handle_DATA(server, session, envelope)

    handler = Sluggish()
    stop = threading.Event()
    taken: list[str] = []

    def messages() -> Iterator[Outgoing]:
        for msg in simple(200):
            taken.append(msg.key)
            yield msg

    collect = Collector()

    def on_outcome(outcome: Outcome) -> None:
        collect(outcome)
        if len(collect.outcomes) == 10:
            stop.set()

    with running(handler) as port:
        started = time.monotonic()
        counts = send_all(messages(), on_outcome, config(port, pool_size=3), stop=stop)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    outcomes = collect.by_key()
    # Taken at most: 10 reported + 3 in flight (no read-ahead); the rest never.
    assert set(outcomes) == set(taken) and 10 <= len(taken) <= 13
    arrived = {r.rcpt_tos[0] for r in handler.received}
    for key, outcome in outcomes.items():
        assert outcome.status in ("sent", "deferred")
        was_received = f"reader{key[1:]}@example.org" in arrived
        assert was_received == (outcome.status == "sent")
        if outcome.status == "deferred":
            assert outcome.attempts == 0 and "stopped" in outcome.detail  # safe to send again
    assert counts.sent + counts.deferred == len(taken)


def test_no_read_ahead_at_most_pool_size_messages_in_doubt(recorder) -> None:
    """A caller that claims each message as it yields it has at most pool_size unanswered."""
    _, port = recorder
    reported: list[str] = []
    most_in_doubt = 0

    def messages() -> Iterator[Outgoing]:
        nonlocal most_in_doubt
        for taken, msg in enumerate(simple(60), 1):
            most_in_doubt = max(most_in_doubt, taken - len(reported))
            yield msg

    send_all(messages(), lambda outcome: reported.append(outcome.key), config(port, pool_size=3))
    assert len(reported) == 60 and most_in_doubt == 3


def test_error_in_on_outcome_is_raised_after_in_flight_messages(recorder) -> None:
    _, port = recorder
    seen: list[str] = []

    def on_outcome(outcome: Outcome) -> None:
        seen.append(outcome.key)
        if len(seen) == 3:
            raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        send_all(simple(100), on_outcome, config(port, pool_size=2))
    assert 3 <= len(seen) < 20 and len(set(seen)) == len(seen)


def test_error_in_the_message_generator_is_raised(recorder) -> None:
    _, port = recorder
    collect = Collector()

    def messages() -> Iterator[Outgoing]:
        yield from simple(3)
        raise KeyError("broken row")

    with pytest.raises(KeyError, match="broken row"):
        send_all(messages(), collect, config(port))
    assert len(collect.by_key()) == 3


# --- TLS and login -----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def test_starttls_with_login(certificate, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    handler = Recorder()
    with running(handler, tls_context=server_context(certificate), require_starttls=True,
                 authenticator=authenticator, auth_required=True) as port:
        cfg = config(port, tls="starttls", ca_file=str(certificate[0]), user="paperwire", password="s3cret")
        assert send_all(simple(3), Collector(), cfg).sent == 3
        assert "s3cret" not in repr(cfg)
        with pytest.raises(ServerUnavailable, match="535"):  # a wrong password stops the run at once
            send_all(simple(3), Collector(), config(port, tls="starttls", ca_file=str(certificate[0]),
                                                    user="paperwire", password="wrong"))
    assert all(r.tls for r in handler.received) and len(handler.received) == 3
    assert logins[0] == (b"paperwire", b"s3cret")
    assert caplog.records and not any("s3cret" in r.getMessage() or "wrong" in r.getMessage()
                                      for r in caplog.records)  # not even at DEBUG, not even on failure


def test_implicit_tls(certificate) -> None:
    handler = Recorder()
    with running(handler, ssl_context=server_context(certificate)) as port:
        assert send_all(simple(2), Collector(), config(port, tls="implicit", ca_file=str(certificate[0]))).sent == 2
    assert all(r.tls for r in handler.received)


def test_untrusted_certificate_stops_the_run(certificate) -> None:
    handler = Recorder()
    collect = Collector()
    with running(handler, tls_context=server_context(certificate)) as port:
        with pytest.raises(ServerUnavailable, match="(?i)certificate"):
            send_all(simple(5), collect, config(port, tls="starttls"))  # system CAs only
    assert handler.received == []
    assert collect.outcomes and all(o.status == "deferred" for o in collect.outcomes)


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(tls="ssl"), dict(pool_size=0), dict(per_second=0), dict(per_hour=0),
                                 dict(max_attempts=0), dict(backoff_base=2, backoff_max=1), dict(host=" ")])
def test_bad_config_is_rejected(bad) -> None:
    with pytest.raises(ValueError):
        SmtpConfig(**{"host": "mail.example.org", **bad})


def test_password_never_in_repr() -> None:
    cfg = SmtpConfig("mail.example.org", user="u", password="hunter2")
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


# --- outbox and dry run ------------------------------------------------------------


def test_outbox_writes_each_message_atomically(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    collect = Collector()
    msgs = [Outgoing(f"2024-11-26.reader-{i}", SENDER, ("a@example.org",), digest_like(i)) for i in range(3)]
    counts = OutboxTransport(outbox).send_all(msgs, collect)
    assert counts == Counts(sent=3)
    names = [f"{m.key}.2024-11-26.{i}@paperwire.localhost.eml" for i, m in enumerate(msgs)]
    for name, msg in zip(names, msgs):
        assert (outbox / name).read_bytes() == msg.data
    assert sorted(p.name for p in outbox.iterdir()) == sorted(names)  # no temp files
    # The same message again is already there: sent, nothing rewritten, no second file.
    again = Collector()
    assert OutboxTransport(outbox).send_all(msgs[:1], again) == Counts(sent=1)
    assert sorted(p.name for p in outbox.iterdir()) == sorted(names)
    assert collect.by_key()[msgs[1].key].status == "sent"


def test_outbox_never_overwrites_another_message_of_the_same_name(tmp_path: Path) -> None:
    first = Outgoing("1", SENDER, ("a@example.org",), b"Message-ID: <x@t>\r\n\r\nfirst\r\n")
    other = Outgoing("1", SENDER, ("b@example.org",), b"Message-ID: <x@t>\r\n\r\nother\r\n")
    OutboxTransport(tmp_path).send_all([first], Collector())
    collect = Collector()
    assert OutboxTransport(tmp_path).send_all([other, *simple(1)], collect) == Counts(sent=1, failed=1)
    refused = collect.by_key()["1"]
    assert refused.status == "failed" and "not overwritten" in refused.detail
    assert (tmp_path / "1.x@t.eml").read_bytes() == first.data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.x@t.eml", "m0.m0@t.eml"]


def test_outbox_names_differ_across_databases_whose_delivery_ids_agree(tmp_path: Path) -> None:
    """Delivery ids restart at 1 per database; the Message-ID tells their messages apart."""
    first = [Outgoing(str(i), SENDER, ("a@example.org",), f"Message-ID: <d.{i}.aaaa@h>\r\n\r\n1\r\n".encode())
             for i in range(1, 4)]
    second = [Outgoing(str(i), SENDER, ("a@example.org",), f"Message-ID: <d.{i}.bbbb@h>\r\n\r\n2\r\n".encode())
              for i in range(1, 4)]
    for batch in (first, second):
        assert OutboxTransport(tmp_path).send_all(batch, Collector()) == Counts(sent=3)
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == sorted(m.data for m in first + second)


@pytest.mark.parametrize("message_id", ["<../../etc/passwd@x>", "<a/b\\c:d*e?f@x>", "<.hidden@x>",
                                        "<" + "y" * 600 + "@x>", "", "<ü@x>"])
def test_outbox_file_names_from_any_message_id_stay_in_the_folder(tmp_path: Path, message_id: str) -> None:
    name = outbox_file_name("7", message_id)
    assert "/" not in name and "\\" not in name and not name.startswith(".") and len(name.encode()) <= 240
    assert name.startswith("7.") and name.endswith(".eml")
    header = f"Message-ID: {message_id}\r\n".encode() if message_id else b""
    msg = Outgoing("7", SENDER, ("a@example.org",), header + b"Subject: x\r\n\r\nbody\r\n")
    OutboxTransport(tmp_path).send_all([msg], Collector())
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_outbox_failed_write_leaves_no_partial_file_and_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    outbox = OutboxTransport(tmp_path)

    def broken_link(src, dst) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("paperwire.files.os.link", broken_link)
    collect = Collector()
    with pytest.raises(ServerUnavailable, match="No space left"):
        outbox.send_all(simple(3), collect)
    assert list(tmp_path.iterdir()) == []
    assert [(o.key, o.status, o.attempts) for o in collect.outcomes] == [("m0", "deferred", 0)]  # safe to send again


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden", "sp ace", "ü", "x" * 201])
def test_outbox_rejects_unsafe_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="safe file name"):
        OutboxTransport(tmp_path).send_all([Outgoing(key, SENDER, ("a@example.org",), b"x")], Collector())
    assert list(tmp_path.iterdir()) == []


def test_outbox_stops_taking_messages(tmp_path: Path) -> None:
    stop = threading.Event()
    collect = Collector()

    def on_outcome(outcome: Outcome) -> None:
        collect(outcome)
        stop.set()

    OutboxTransport(tmp_path).send_all(simple(5), on_outcome, stop=stop)
    assert [o.key for o in collect.outcomes] == ["m0"]


def test_dry_run_sends_nothing_and_says_so() -> None:
    collect = Collector()
    counts = DryRunTransport().send_all(simple(4), collect)
    assert counts == Counts(dry_run=4)
    assert {(o.status, o.attempts) for o in collect.outcomes} == {("dry-run", 0)}


@given(st.text(max_size=400))
def test_outbox_file_names_are_safe_for_any_message_id(message_id: str) -> None:
    name = outbox_file_name("12", message_id)
    assert re.fullmatch(r"12(\.[A-Za-z0-9._@+=-]+)?\.eml", name) and not name.startswith("12..")
    assert len(name.encode()) <= 240
    printable = "".join(ch for ch in message_id if ch.isascii() and ch.isprintable())
    data = f"Subject: x\r\nMessage-ID: {printable}\r\n\r\nbody".encode()
    assert outbox_file_name("12", header_message_id(data)) == outbox_file_name("12", " ".join(printable.split()))
