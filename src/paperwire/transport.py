"""Hand finished message bytes to a mail server, a folder, or nowhere; no database here.

Every transport implements the ``Transport`` protocol: what a run asks of the place it
delivers to (where it is, whether a crashed run's message got there, earlier sends for an
hourly limit), and the same entry point, ``send_all(messages, on_outcome) -> Counts``:
it takes messages one at a time from an iterable (a lazy generator is fine: at most a
few messages are held at once), and calls ``on_outcome`` exactly once for every message
it took, always from the calling thread and never concurrently, so the caller can
record outcomes in SQLite inside the callback.

Outcome statuses:

``sent``      the server replied 250 to the end of DATA (or the file was written).
``failed``    permanent: a 5xx reply or an address that cannot be sent to (a non-ASCII
              local part when the server does not offer SMTPUTF8). No retry.
``deferred``  temporary failure still failing after ``max_attempts``, or the run was
              stopped before the message could be (re)tried. ``attempts == 0`` means it
              was never handed to the server at all, so it is safe to send again.
``unknown``   the connection dropped or timed out after the body was sent and before
              the server's reply: it may or may not have been accepted. Never retried
              (a retry could deliver it twice); the caller reports it.
``dry-run``   ``DryRunTransport``: nothing was sent; callers must not record a send.

Exactly once: a drop or timeout *before* the end of DATA (connecting, MAIL, RCPT, a
4xx reply) is retried, since the server cannot have taken the message. Only the drop
between our final "." and the server's answer is ambiguous, and that ends as
``unknown`` (``Outcome.uncertain`` set) instead of being retried.

Internationalized mail (RFC 6531): envelope addresses go out with IDN domains as A-labels.
A message that still needs UTF-8 in its envelope or header block (a non-ASCII local part)
is sent with the SMTPUTF8 option when the server offers it, and is a permanent failure
"needs SMTPUTF8" for that message alone when it does not.

Stopping: set the ``stop`` event (from a SIGINT/SIGTERM handler the caller installs).
No new message is taken, transactions under way finish, messages waiting for a rate
slot or a retry are reported "deferred". Without such a handler, Ctrl-C cancels the
loop and the outcomes of messages in flight are lost (their attempts are recorded).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import SMTP
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib
from aiosmtplib import (
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from . import addresses, files
from .errors import DeliveryError
from .ratelimit import RateLimit

log = logging.getLogger(__name__)

Status = Literal["sent", "failed", "deferred", "unknown", "dry-run"]
TlsMode = Literal["none", "starttls", "implicit"]
OnOutcome = Callable[["Outcome"], None]

_SAFE_KEY = re.compile(r"[A-Za-z0-9._-]{1,200}")
_STOP_POLL = 0.05  # seconds between looks at the caller's threading.Event
_QUIT_TIMEOUT = 2.0  # a polite QUIT must never hold up the end of a run


@dataclass(frozen=True)
class Outgoing:
    """One message to hand over; ``key`` is the caller's delivery id, echoed in the Outcome."""

    key: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """What became of one message; ``code`` is the last SMTP reply code seen, if any."""

    key: str
    status: Status
    attempts: int
    code: int | None
    detail: str
    # An attempt ended after the body was sent without the server's reply: a copy may
    # have been accepted (and this message may now arrive twice).
    uncertain: bool = False


@dataclass
class Counts:
    """Totals of one ``send_all`` call; ``retried`` counts retry attempts, not messages."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    dry_run: int = 0

    def add(self, outcome: Outcome) -> None:
        name = outcome.status.replace("-", "_")
        setattr(self, name, getattr(self, name) + 1)


class Transport(Protocol):
    """What a run needs from the place its messages go: SMTP, a folder, nowhere, or a new one.

    dispatch and the web mailer know transports only through these members: a new
    transport is a new class, and ``dispatch.make_transport`` picking it from the settings.
    """

    # True: nothing is delivered ("dry-run" outcomes), so the caller claims and records nothing.
    dry_run: bool

    def describe(self) -> str:
        """Where messages go (``outbox:/abs/folder``, ``smtp://host:port``): stored on each run,
        so a later run can settle the claims of one that died (``was_delivered``)."""
        ...

    def note_earlier_sends(self, handed_over_since: Callable[[dt.datetime], Iterable[dt.datetime]]) -> None:
        """Before sending: ``handed_over_since(moment)`` lists when messages were handed over
        since then, by any run or process. A transport with an hourly limit counts them."""
        ...

    def was_delivered(self, place: str, key: str, message_id: str) -> bool | None:
        """For a message claimed by a run that died while delivering to ``place`` (its
        ``describe()``): True if it got there, False if it surely did not (safe to send
        again), None if this transport cannot tell (the caller reports it, never resends)."""
        ...

    def send_all(self, messages: Iterable[Outgoing], on_outcome: OnOutcome, *,
                 stop: threading.Event | None = None) -> Counts:
        """See the module docstring."""
        ...


class ServerUnavailable(DeliveryError):
    """The run was cut short because no message can get through (unreachable server,
    refused login, TLS failure). Every message taken got its outcome first; ``counts``
    holds the totals up to that point."""

    def __init__(self, message: str, counts: Counts):
        super().__init__(message)
        self.counts = counts


# --- configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    """How to reach the mail server and how hard to push it.

    ``password`` comes from the environment or a file, read by the caller; it is never
    shown in ``repr`` or logs. ``ca_file`` trusts an extra CA (a self-signed relay).
    """

    host: str
    port: int = 25
    tls: TlsMode = "none"
    user: str = ""
    password: str = field(default="", repr=False)
    pool_size: int = 2
    per_second: float | None = None
    per_hour: int | None = None
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    ca_file: str = ""
    local_hostname: str = ""  # the EHLO name; socket.getfqdn() once per run when empty

    def __post_init__(self) -> None:
        checks = [
            (bool(self.host.strip()), "host must not be empty"),
            (0 < self.port < 65536, f"port {self.port} is not a TCP port"),
            (self.tls in ("none", "starttls", "implicit"), f"tls must be none, starttls or implicit, not {self.tls!r}"),
            (self.pool_size >= 1, "pool_size must be at least 1"),
            (self.per_second is None or self.per_second > 0, "per_second must be positive"),
            (self.per_hour is None or self.per_hour >= 1, "per_hour must be at least 1"),
            (self.timeout > 0, "timeout must be positive"),
            (self.max_attempts >= 1, "max_attempts must be at least 1"),
            (0 <= self.backoff_base <= self.backoff_max, "need 0 <= backoff_base <= backoff_max"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# --- rate limit --------------------------------------------------------------------

HOUR = 3600.0


def smtp_pace(per_second: float | None, per_hour: int | None) -> RateLimit:
    """Send slots shared by the whole pool (``ratelimit.RateLimit``).

    Per second: slots evenly spaced (1/rate apart, no burst), so a provider's "N per
    second" is never exceeded in any second. Per hour: at most ``per_hour`` sends in any
    3,600 s window, which a token bucket of the same size does not guarantee.
    """
    return RateLimit(*([(1, 1.0 / per_second)] if per_second else []), *([(per_hour, HOUR)] if per_hour else []))


# --- failure classification --------------------------------------------------------

_Kind = Literal["temporary", "permanent", "fatal"]


@dataclass(frozen=True)
class _Failure:
    kind: _Kind
    code: int | None
    detail: str
    uncertain: bool = False  # body was sent, no reply came back
    connecting: bool = False  # never got as far as a transaction
    broken: bool = False  # the connection can no longer be trusted


class NeedsSmtpUtf8(Exception):
    """The message needs SMTPUTF8 (UTF-8 in an address) and the server does not offer it."""


class _ConnectFailed(Exception):
    """Wraps any error raised while opening a connection (TCP, greeting, TLS, login)."""


def _has_ssl_cause(exc: BaseException) -> bool:
    """aiosmtplib wraps TLS errors (e.g. in SMTPConnectError); look down the chain."""
    seen: BaseException | None = exc
    for _ in range(20):  # chains are short; never loop on a cyclic one
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SMTPResponseException):
        return f"{exc.code} {exc.message}".strip()
    if isinstance(exc, SMTPRecipientsRefused):
        return "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    return f"{type(exc).__name__}: {exc}"


def _classify_connect(exc: BaseException) -> _Failure:
    """Errors before any message was offered. A 5xx, a refused login or a TLS problem
    will hit every message the same way, so they end the run ("fatal")."""
    detail = "connecting: " + _describe(exc)
    if _has_ssl_cause(exc):
        return _Failure("fatal", None, detail, connecting=True, broken=True)
    if isinstance(exc, SMTPResponseException):
        kind: _Kind = "fatal" if exc.code >= 500 else "temporary"
        return _Failure(kind, exc.code, detail, connecting=True, broken=True)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return _Failure("temporary", None, detail, connecting=True, broken=True)
    # SMTPNotSupported (no STARTTLS, no AUTH), no suitable auth method, bad options.
    return _Failure("fatal", None, detail, connecting=True, broken=True)


def _classify_send(exc: BaseException, in_data: bool) -> _Failure:
    """Errors during MAIL/RCPT/DATA: 5xx fail this message only, 4xx and drops retry."""
    detail = _describe(exc)
    if isinstance(exc, NeedsSmtpUtf8):
        return _Failure("permanent", None, str(exc))
    if isinstance(exc, SMTPSenderRefused) and exc.code >= 500 and exc.code != 552:
        # Our sender refused ("530 authentication required", "550 not allowed to send as"):
        # every message would fail the same way. 552 is "too big", about this message only.
        return _Failure("fatal", exc.code, "sender refused: " + detail)
    if isinstance(exc, SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        kind: _Kind = "permanent" if all(c >= 500 for c in codes) else "temporary"
        return _Failure(kind, max(codes), detail)
    if isinstance(exc, SMTPResponseException):
        kind = "permanent" if exc.code >= 500 else "temporary"
        return _Failure(kind, exc.code, detail, broken=exc.code == 421)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):  # drops, timeouts
        return _Failure("temporary", None, detail, uncertain=in_data, broken=True)
    if isinstance(exc, (ValueError, UnicodeError, aiosmtplib.SMTPNotSupported)):
        # An address that cannot be written on the wire.
        return _Failure("permanent", None, "bad address: " + detail)
    return _Failure("temporary", None, detail, uncertain=in_data, broken=True)


# --- the envelope ------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    """What MAIL and RCPT say for one message, and which options it needs."""

    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool  # UTF-8 in an envelope address or in the header block (RFC 6531/6532)
    eight_bit: bool  # any byte over 127 in the message: BODY=8BITMIME where offered


def _envelope(msg: Outgoing) -> _Envelope:
    sender = addresses.wire(msg.sender)
    recipients = tuple(addresses.wire(r) for r in msg.recipients)
    eight_bit = not msg.data.isascii()
    smtputf8 = not (sender.isascii() and all(r.isascii() for r in recipients)) or (
        eight_bit and not _header_block(msg.data).isascii())
    return _Envelope(sender, recipients, smtputf8, eight_bit)


def needs_smtputf8(msg: Outgoing) -> bool:
    """Whether ``msg`` can go only to a server that offers SMTPUTF8 (UTF-8 in an address or header)."""
    return _envelope(msg).smtputf8


def _header_block(data: bytes) -> bytes:
    """The message's header lines: up to the first empty line (CRLF or bare LF)."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return data[:min(ends)] if ends else data


def _needs_smtputf8_detail(envelope: _Envelope) -> str:
    utf8 = [a for a in (envelope.sender, *envelope.recipients) if not a.isascii()]
    what = ", ".join(utf8) if utf8 else "UTF-8 in its headers"
    return f"needs SMTPUTF8 ({what}), which the server does not offer"


# --- one pooled connection ---------------------------------------------------------


class _Link:
    """One SMTP connection, opened lazily, kept across messages, reopened after a drop."""

    def __init__(self, config: SmtpConfig, tls_context: ssl.SSLContext | None, local_hostname: str):
        self._config = config
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._smtp: aiosmtplib.SMTP | None = None

    async def _open(self) -> aiosmtplib.SMTP:
        c = self._config
        smtp = aiosmtplib.SMTP(
            hostname=c.host, port=c.port, timeout=c.timeout, local_hostname=self._local_hostname,
            use_tls=c.tls == "implicit", start_tls=c.tls == "starttls",
            tls_context=self._tls_context if c.tls != "none" else None,
            username=c.user or None, password=c.password if c.user else None,
        )
        try:
            await smtp.connect()
            await _greet(smtp)
        except Exception as exc:
            smtp.close()
            raise _ConnectFailed() from exc
        return smtp

    async def send(self, msg: Outgoing) -> tuple[int, str, list[SMTPRecipientRefused]]:
        """One mail transaction; returns (code, reply, recipients refused among others).

        A reused connection that turns out to be closed when MAIL is sent (an idle
        timeout on the server) is reopened once without counting a failed attempt.
        """
        envelope = _envelope(msg)
        reused = self._smtp is not None and self._smtp.is_connected
        if not reused:
            self.drop()
            self._smtp = await self._open()
        try:
            await self._mail(msg, envelope)
        except SMTPServerDisconnected:
            if not reused:
                raise
            self.drop()
            self._smtp = await self._open()
            await self._mail(msg, envelope)
        return await self._rest(msg, envelope)

    async def _mail(self, msg: Outgoing, envelope: _Envelope) -> None:
        """MAIL FROM with the options this message needs; NeedsSmtpUtf8 before any command
        when it needs SMTPUTF8 and the server does not offer it (no transaction is opened)."""
        smtp = self._smtp
        assert smtp is not None
        options = [f"SIZE={len(msg.data)}"] if smtp.supports_extension("size") else []
        if envelope.smtputf8:
            if not smtp.supports_extension("smtputf8"):
                raise NeedsSmtpUtf8(_needs_smtputf8_detail(envelope))
            options.append("SMTPUTF8")
        if envelope.eight_bit and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        await smtp.mail(envelope.sender, options=options, encoding=_encoding(envelope))

    async def _rest(self, msg: Outgoing, envelope: _Envelope) -> tuple[int, str, list[SMTPRecipientRefused]]:
        smtp = self._smtp
        assert smtp is not None
        refused: list[SMTPRecipientRefused] = []
        for recipient in envelope.recipients:
            try:
                await smtp.rcpt(recipient, encoding=_encoding(envelope))
            except SMTPRecipientRefused as exc:
                refused.append(exc)
        if len(refused) == len(envelope.recipients):
            raise SMTPRecipientsRefused(refused)
        try:
            reply = await smtp.data(msg.data)
        except Exception as exc:
            raise _InData() from exc
        return reply.code, reply.message, refused

    async def reset(self) -> None:
        """RSET after a refused MAIL/RCPT/DATA so the next message starts clean."""
        if self._smtp is None or not self._smtp.is_connected:
            return
        try:
            await self._smtp.rset()
        except Exception:
            self.drop()

    def drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def close(self) -> None:
        """QUIT politely (briefly), then close whatever is left."""
        if self._smtp is not None and self._smtp.is_connected:
            try:
                await self._smtp.quit(timeout=min(_QUIT_TIMEOUT, self._config.timeout))
            except Exception:
                pass
        self.drop()


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    """EHLO (HELO if refused) right after connecting, unless TLS or a login already did: the
    options of the first MAIL (SIZE, SMTPUTF8) depend on the extensions the server offers."""
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not smtp.is_connected:
                raise
            await smtp.helo()


def _encoding(envelope: _Envelope) -> str:
    return "utf-8" if envelope.smtputf8 else "ascii"


class _InData(Exception):
    """Marks an error raised by the DATA step, where the server may have the body."""


# --- the pool ----------------------------------------------------------------------


class SmtpTransport:
    """A pool of ``pool_size`` persistent SMTP connections sharing one message iterator.

    A connection takes the next message only when it is free: no read-ahead, so at most
    ``pool_size`` messages are taken and not yet answered at any moment. A caller that
    claims each message as it yields it therefore has at most that many in doubt after
    a crash.

    ``clock``, ``sleep`` and ``rng`` are injectable: the rate limiter and the retry
    backoff use them, so tests can fake an hour without waiting for it.
    """

    def __init__(self, config: SmtpConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, rng: random.Random | None = None):
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        # Seconds ago of sends in the last hour that this transport did not make itself
        # (``note_earlier_sends``), so smtp.per_hour holds across runs.
        self.sent_earlier: list[float] = []

    dry_run = False

    def describe(self) -> str:
        return f"smtp://{self.config.host}:{self.config.port}"

    def note_earlier_sends(self, handed_over_since: Callable[[dt.datetime], Iterable[dt.datetime]]) -> None:
        if not self.config.per_hour:
            return
        now = dt.datetime.now(dt.timezone.utc)  # the wall clock: the provider's limit is real time
        self.sent_earlier = [(now - at).total_seconds() for at in handed_over_since(now - dt.timedelta(seconds=HOUR))]

    def was_delivered(self, place: str, key: str, message_id: str) -> bool | None:
        return None  # a server cannot be asked whether it took a message

    def send_all(self, messages: Iterable[Outgoing], on_outcome: OnOutcome, *,
                 stop: threading.Event | None = None) -> Counts:
        """Send every message; blocks until done or stopped. Runs its own event loop,
        so it must not be called from inside a running loop (use ``run`` there)."""
        return asyncio.run(self.run(messages, on_outcome, stop=stop))

    async def run(self, messages: Iterable[Outgoing], on_outcome: OnOutcome, *,
                  stop: threading.Event | None = None) -> Counts:
        """The coroutine behind ``send_all``; callbacks run on this loop's thread."""
        run = _Run(self, messages, on_outcome, stop)
        return await run.go()


class _Run:
    """State of one send_all call: messages, limiter, counts, the halt flag, the first error."""

    def __init__(self, transport: SmtpTransport, messages: Iterable[Outgoing], on_outcome: OnOutcome,
                 stop: threading.Event | None):
        self.t = transport
        self.messages = iter(messages)
        self.exhausted = False
        self.config = transport.config
        self.on_outcome = on_outcome
        self.stop = stop
        self.counts = Counts()
        self.pace = smtp_pace(self.config.per_second, self.config.per_hour)
        now = transport._clock()  # earlier sends count against the hour, so a run every few minutes cannot reset it
        self.pace.note(now - age for age in transport.sent_earlier if 0 <= age < HOUR)
        self.halt = asyncio.Event()
        self.error: BaseException | None = None  # from the caller: generator or on_outcome
        self.fatal: str = ""  # why the server cannot take any message

    async def go(self) -> Counts:
        try:
            tls_context = await asyncio.to_thread(_tls_context, self.config)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"cannot load the CA file {self.config.ca_file!r}: {exc}") from None
        local = self.config.local_hostname or await asyncio.to_thread(socket.getfqdn)
        watcher = asyncio.create_task(self._watch_stop())
        workers = [asyncio.create_task(self._worker(_Link(self.config, tls_context, local)))
                   for _ in range(self.config.pool_size)]
        try:
            await asyncio.gather(*workers)
        finally:
            watcher.cancel()
            for task in workers:
                task.cancel()
        log.debug("smtp %s:%s: %s", self.config.host, self.config.port, self.counts)
        if self.error is not None:
            raise self.error
        if self.fatal:
            raise ServerUnavailable(f"{self.config.host}:{self.config.port}: {self.fatal}", self.counts)
        return self.counts

    def _take(self) -> Outgoing | None:
        """The next message for a free connection, or None when done or halted.

        Plain ``next()`` on the loop's thread: it never awaits, so two connections can
        never be inside the caller's generator at once.
        """
        if self.exhausted or self._halted():
            return None
        try:
            return next(self.messages)
        except StopIteration:
            self.exhausted = True
        except Exception as exc:  # the caller's generator failed
            self.exhausted = True
            self._halt_with_error(exc)
        return None

    async def _watch_stop(self) -> None:
        """Turn the caller's threading.Event (set from a signal handler) into a halt."""
        if self.stop is None:
            return
        while not self.stop.is_set():
            await asyncio.sleep(_STOP_POLL)
        self.halt.set()

    async def _worker(self, link: _Link) -> None:
        try:
            while (msg := self._take()) is not None:
                try:
                    outcome = await self._deliver(link, msg)
                except Exception as exc:  # a bug here must not lose the message's outcome
                    log.exception("unexpected error sending %s", msg.key)
                    link.drop()
                    outcome = Outcome(msg.key, "unknown", 0, None, f"internal error: {exc!r}", uncertain=True)
                self._report(outcome)
        finally:
            await link.close()

    async def _deliver(self, link: _Link, msg: Outgoing) -> Outcome:
        """Attempts with full-jitter exponential backoff until sent, failed or out of tries."""
        attempts, uncertain, never_connected = 0, False, True
        last: _Failure | None = None
        if not msg.recipients:
            return Outcome(msg.key, "failed", 0, None, "no recipients")
        while True:
            now = self.t._clock()
            if not await self._pause(self.pace.reserve(now) - now):
                return self._stopped(msg, attempts, last, uncertain)
            attempts += 1
            if attempts > 1:
                self.counts.retried += 1
            try:
                code, reply, refused = await link.send(msg)
            except Exception as exc:
                failure = await self._failure(link, exc)
            else:
                return _sent(msg, attempts, code, reply, refused, uncertain)
            last, uncertain = failure, uncertain or failure.uncertain
            never_connected = never_connected and failure.connecting
            if failure.uncertain:  # the server may have it: a retry could deliver it twice
                return Outcome(msg.key, "unknown", attempts, failure.code,
                               f"no reply after the message was sent: {failure.detail}", True)
            if failure.kind == "permanent":
                return Outcome(msg.key, "failed", attempts, failure.code, failure.detail, uncertain)
            if failure.kind == "fatal":
                self._halt_fatal(failure.detail)
                return Outcome(msg.key, "deferred", attempts, failure.code, failure.detail, uncertain)
            log.debug("%s: attempt %d failed: %s", msg.key, attempts, failure.detail)
            if attempts >= self.config.max_attempts:
                if never_connected:  # no attempt reached the server: the rest will not either
                    self._halt_fatal(f"unreachable after {attempts} attempts ({failure.detail})")
                return Outcome(msg.key, "deferred", attempts, failure.code,
                               f"gave up after {attempts} attempts: {failure.detail}", uncertain)
            if not await self._pause(self._backoff(attempts)):
                return self._stopped(msg, attempts, last, uncertain)

    async def _failure(self, link: _Link, exc: Exception) -> _Failure:
        if isinstance(exc, _ConnectFailed):
            failure = _classify_connect(exc.__cause__ or exc)
        elif isinstance(exc, _InData):
            failure = _classify_send(exc.__cause__ or exc, in_data=True)
        else:
            failure = _classify_send(exc, in_data=False)
        if failure.broken:
            link.drop()
        elif not isinstance(exc, NeedsSmtpUtf8):  # (which is raised before MAIL: nothing to reset)
            await link.reset()  # a refused or unwritable MAIL/RCPT/DATA: the next message starts clean
        return failure

    def _backoff(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(n-1))] spreads retries of a pool."""
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempts - 1))
        return self.t._rng.uniform(0, ceiling)

    async def _pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds unless the run halts first; False means halted."""
        if self._halted():
            return False
        if delay <= 0:
            return True
        sleeper = asyncio.ensure_future(self.t._sleep(delay))
        halted = asyncio.ensure_future(self.halt.wait())
        try:
            await asyncio.wait({sleeper, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            halted.cancel()
        return not self.halt.is_set()

    def _halted(self) -> bool:
        """Looks at the caller's event directly too: the poller may not have run yet."""
        if self.stop is not None and self.stop.is_set():
            self.halt.set()
        return self.halt.is_set()

    def _stopped(self, msg: Outgoing, attempts: int, last: _Failure | None, uncertain: bool) -> Outcome:
        reason = self.fatal or "stopped"
        detail = f"{reason} before attempt {attempts + 1}" + (f" (last: {last.detail})" if last else "")
        return Outcome(msg.key, "deferred", attempts, last.code if last else None, detail, uncertain)

    def _report(self, outcome: Outcome) -> None:
        """Count, then hand to the caller; a failing callback stops the run, is re-raised at the end."""
        self.counts.add(outcome)
        try:
            self.on_outcome(outcome)
        except Exception as exc:
            log.exception("on_outcome failed for %s", outcome.key)
            self._halt_with_error(exc)

    def _halt_with_error(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.halt.set()

    def _halt_fatal(self, reason: str) -> None:
        if not self.fatal:
            self.fatal = reason
            log.error("smtp %s:%s: stopping: %s", self.config.host, self.config.port, reason)
        self.halt.set()


def _sent(msg: Outgoing, attempts: int, code: int, reply: str, refused: list[SMTPRecipientRefused],
          uncertain: bool) -> Outcome:
    detail = f"{code} {reply}".strip()
    if refused:  # only with several recipients: the others got it, so no retry
        detail += "; refused: " + "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused)
    return Outcome(msg.key, "sent", attempts, code, detail, uncertain)


def _tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    """One verified context per run (building one reads the CA store: slow per connection)."""
    if config.tls == "none":
        return None
    return ssl.create_default_context(cafile=config.ca_file or None)


def send_all(messages: Iterable[Outgoing], on_outcome: OnOutcome, config: SmtpConfig, *,
             stop: threading.Event | None = None) -> Counts:
    """Send through SMTP with ``config``; see ``SmtpTransport``. Sync: runs its own loop.

    Raises ``ServerUnavailable`` (after every taken message got its outcome) when the
    server cannot take any message, and re-raises an exception from ``messages`` or
    ``on_outcome`` after the messages in flight are finished.
    """
    return SmtpTransport(config).send_all(messages, on_outcome, stop=stop)


# --- folder and dry run ------------------------------------------------------------


def check_key(key: str) -> str:
    """A key becomes a file name: letters, digits, '.', '_', '-' only (no paths, no dot files)."""
    if not _SAFE_KEY.fullmatch(key) or key.startswith("."):
        raise ValueError(f"message key {key!r} is not a safe file name ([A-Za-z0-9._-], not starting with '.')")
    return key


OUTBOX_PLACE = "outbox:"  # what an outbox's ``describe()`` starts with; its folder follows
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._@+=-]")
_NAME_MAX = 240  # bytes in a file name: most file systems allow 255


def was_delivered(transport: Transport, place: str, key: str, message_id: str) -> bool | None:
    """Whether a message that a dead run was delivering to ``place`` got there (see
    ``Transport.was_delivered``). The dead run's place decides who can tell, not the
    transport of the run asking: an outbox folder can be looked in whatever delivers now
    (a switch from the outbox to SMTP still settles the outbox's claims exactly)."""
    found = outbox_delivered(place, key, message_id)
    return found if found is not None else transport.was_delivered(place, key, message_id)


def outbox_delivered(place: str, key: str, message_id: str) -> bool | None:
    """``outbox_holds`` for an ``outbox:<folder>`` place; None for any other place."""
    if not place.startswith(OUTBOX_PLACE):
        return None
    return outbox_holds(Path(place.removeprefix(OUTBOX_PLACE)), key, message_id)


def outbox_holds(folder: Path, key: str, message_id: str) -> bool:
    """Whether the outbox ``folder`` has the message (``key``, ``message_id``): crash recovery.

    Under its name, or, for a run that died before files were named by Message-ID, as
    ``<key>.eml`` when that file carries this Message-ID (keys of another database that
    shares the folder name other messages).
    """
    if (folder / outbox_file_name(key, message_id)).exists():
        return True
    try:
        with open(folder / f"{check_key(key)}.eml", "rb") as legacy:
            headers = BytesParser(policy=SMTP).parse(legacy, headersonly=True)
    except FileNotFoundError:
        return False
    return bool(message_id) and (headers["Message-ID"] or "").strip() == message_id.strip()


def outbox_file_name(key: str, message_id: str) -> str:
    """``<key>.<Message-ID>.eml``, the Message-ID made safe for a file name.

    Keys (delivery ids) restart at 1 in every database; the Message-ID holds a hash of
    the reader's secret token (digests) or random bits (web mail), so the pair names one
    message across databases. Crash recovery finds a dead run's file by the same pair.
    """
    key = check_key(key)
    stem = _UNSAFE_IN_NAME.sub("_", message_id.strip().strip("<>")).strip(".")
    if not stem:
        return f"{key}.eml"
    room = _NAME_MAX - len(key) - len("..eml")
    if len(stem) > room:  # keep it unique: a hash of the whole id after what fits
        stem = stem[:max(room - 17, 0)] + "-" + hashlib.sha256(message_id.encode()).hexdigest()[:16]
    return f"{key}.{stem}.eml"


def header_message_id(data: bytes) -> str:
    """The Message-ID header of a message's bytes ("" when it has none), unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    found = re.search(rb"^message-id:[ \t]*(.*(?:\n[ \t].*)*)", head, re.IGNORECASE | re.MULTILINE)
    return b" ".join(found.group(1).split()).decode("utf-8", "replace") if found else ""


class OutboxExists(Exception):
    """The outbox already holds another message under this name; it is never overwritten."""


class OutboxTransport:
    """Writes each message to ``folder/<key>.<Message-ID>.eml`` (see ``outbox_file_name``),
    atomically: a reader (or a crash) sees no file or the whole message, never half of one.

    An existing file is never replaced. The same bytes already there are the same message
    (a batch run again): "sent", nothing written. Other bytes under the same name (two
    databases copied from one, whose readers share their tokens) fail that message, and
    the file that was there is kept. A file system error (disk full, no permission)
    ends the run like an unreachable server: every message after it would fail too.
    """

    dry_run = False

    def __init__(self, folder: Path | str, *, fsync: bool = True):
        self.folder = Path(folder)
        self.fsync = fsync

    def describe(self) -> str:
        return f"{OUTBOX_PLACE}{self.folder.resolve()}"

    def note_earlier_sends(self, handed_over_since: Callable[[dt.datetime], Iterable[dt.datetime]]) -> None:
        pass  # a folder has no rate limit

    def was_delivered(self, place: str, key: str, message_id: str) -> bool | None:
        """Any outbox folder can tell: the file is there (written whole) or it is not."""
        return outbox_delivered(place, key, message_id)

    def send_all(self, messages: Iterable[Outgoing], on_outcome: OnOutcome, *,
                 stop: threading.Event | None = None) -> Counts:
        self.folder.mkdir(parents=True, exist_ok=True)
        counts = Counts()
        for msg in _until(messages, stop):
            try:
                path = self.write(msg)
            except OutboxExists as exc:
                outcome = Outcome(msg.key, "failed", 1, None, str(exc))
            except OSError as exc:
                outcome = Outcome(msg.key, "deferred", 0, None, f"not written: {exc}")
                counts.add(outcome)
                on_outcome(outcome)
                raise ServerUnavailable(f"outbox {self.folder}: {exc}", counts) from exc
            else:
                outcome = Outcome(msg.key, "sent", 1, None, f"written to {path}")
            counts.add(outcome)
            on_outcome(outcome)
        return counts

    def path_for(self, msg: Outgoing) -> Path:
        return self.folder / outbox_file_name(msg.key, header_message_id(msg.data))

    def write(self, msg: Outgoing) -> Path:
        """Written whole and fsynced, never over an existing file (``files.create_file``);
        readable by this user only, as the messages hold the readers' link tokens."""
        target = self.path_for(msg)
        try:
            files.create_file(target, msg.data, durable=self.fsync, mode=0o600)
        except FileExistsError:
            if target.read_bytes() != msg.data:
                raise OutboxExists(f"{target} already holds another message with this delivery key and "
                                   "Message-ID; it was not overwritten") from None
        return target  # (when it existed: this very message is already there)


class DryRunTransport:
    """Sends nothing; every message gets status "dry-run" so callers do not record a send."""

    dry_run = True

    def describe(self) -> str:
        return "dry-run"

    def note_earlier_sends(self, handed_over_since: Callable[[dt.datetime], Iterable[dt.datetime]]) -> None:
        pass

    def was_delivered(self, place: str, key: str, message_id: str) -> bool | None:
        return None

    def send_all(self, messages: Iterable[Outgoing], on_outcome: OnOutcome, *,
                 stop: threading.Event | None = None) -> Counts:
        counts = Counts()
        for msg in _until(messages, stop):
            utf8 = " (needs a server with SMTPUTF8)" if needs_smtputf8(msg) else ""
            outcome = Outcome(msg.key, "dry-run", 0, None,
                              f"{len(msg.data)} bytes to {', '.join(msg.recipients)}{utf8} (not sent)")
            counts.add(outcome)
            on_outcome(outcome)
        return counts


def _until(messages: Iterable[Outgoing], stop: threading.Event | None) -> Iterator[Outgoing]:
    """The messages, taking no new one once ``stop`` is set."""
    it = iter(messages)
    while stop is None or not stop.is_set():
        try:
            msg = next(it)
        except StopIteration:
            return
        yield msg
