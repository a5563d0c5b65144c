"""Where bounce messages are read from: an IMAP mailbox, an mbox file or a Maildir.

Each source hands out (message bytes, when it arrived, mark-done) one message at a time;
``read`` records a message, then marks it done, so a message whose recording failed stays
unread for the next run. Done means moved to ``bounces.imap_move_to`` or flagged
(``$PaperwireDone`` and seen on IMAP, read in an mbox, seen in a Maildir); flagged messages
are skipped next time. Recording is idempotent anyway (an event's reference is the sha256
of its message), so a message read twice is never counted twice.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import imaplib
import logging
import mailbox
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import Settings
from ..errors import PaperwireError
from ..logs import printable
from ..store import Store
from .record import Tally, record_message

log = logging.getLogger(__name__)
DONE_KEYWORD = "$PaperwireDone"
Message = tuple[bytes, dt.datetime | None, Callable[[], None]]


class MailboxError(PaperwireError):
    """The mailbox cannot be read at all (connection, login, missing file): the run stops."""


def read(store: Store, settings: Settings, messages: Iterator[Message], source: str,
         on_message: Callable[[], None] | None = None) -> Tally:
    """Record every message of a source once; one message that fails costs that message."""
    tally = Tally()
    for number, (raw, arrived, mark_done) in enumerate(messages, start=1):
        try:
            event, recorded = record_message(store, settings, raw, source, arrived)
            email = store.reader_email(event.subscriber_id) if recorded.status and event.subscriber_id else None
            tally.add(event, recorded, email)
            mark_done()
        except Exception as exc:  # left unmarked: the next run tries it again
            log.exception("bounce message %d could not be recorded", number)
            tally.failed.append({"message": number, "error": printable(f"{type(exc).__name__}: {exc}")})
        if on_message is not None:
            on_message()
    return tally


# -- files ---------------------------------------------------------------------------------


def mbox_messages(path: Path) -> Iterator[Message]:
    """The unread messages of an mbox file; done marks them read (``Status: RO``), under the
    mbox lock the delivering mail server honours too."""
    if not path.is_file():
        raise MailboxError(f"{path}: no such mbox file")
    box = mailbox.mbox(path, create=False)
    box.lock()
    try:
        for key in list(box.keys()):
            message = box.get_message(key)
            if "R" in message.get_flags():
                continue

            def mark_done(key: str = key, message: mailbox.mboxMessage = message) -> None:
                message.add_flag("RO")
                box[key] = message

            yield box.get_bytes(key), _arrival(message), mark_done
        box.flush()
    finally:
        box.unlock()
        box.close()


def maildir_messages(path: Path) -> Iterator[Message]:
    """The messages of a Maildir not yet seen; done moves them to ``cur`` flagged seen."""
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise MailboxError(f"{path}: not a Maildir (it needs new/ and cur/ folders)")
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in list(box.keys()):
        message = box.get_message(key)
        if "S" in message.get_flags():
            continue

        def mark_done(key: str = key, message: mailbox.MaildirMessage = message) -> None:
            message.set_subdir("cur")
            message.add_flag("S")
            box[key] = message

        yield box.get_bytes(key), _arrival(message), mark_done


def _arrival(message: mailbox.Message) -> dt.datetime | None:
    """When a bounce was written (its Date), never later than now; None when it has none."""
    try:
        written = email.utils.parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError):
        return None
    if written.tzinfo is None:
        return None
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return min(written.astimezone(dt.timezone.utc).replace(microsecond=0), now)


# -- IMAP ----------------------------------------------------------------------------------


@contextmanager
def imap_session(settings: Settings) -> Iterator[imaplib.IMAP4]:
    """A logged-in IMAP connection to the bounce mailbox, its folder selected."""
    host, port = settings.bounces_imap_host, settings.bounces_imap_port
    where = f"IMAP {host}:{port}"
    try:
        if settings.bounces_imap_tls == "implicit":
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=30)
        else:
            imap = imaplib.IMAP4(host, port, timeout=30)
            if settings.bounces_imap_tls == "starttls":
                imap.starttls(ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"{where}: cannot connect: {exc}") from None
    try:
        try:
            imap.login(settings.bounces_imap_user, settings.bounces_imap_password)
        except imaplib.IMAP4.error as exc:  # the server's words, never the password
            raise MailboxError(f"{where}: login as {settings.bounces_imap_user!r} refused: {_said(exc)}") from None
        kind, data = imap.capability()  # they may grow after login (MOVE, UIDPLUS)
        if kind == "OK" and data and isinstance(data[0], bytes):
            imap.capabilities = tuple(data[0].decode("ascii", "replace").upper().split())
        kind, _ = imap.select(_quoted(settings.bounces_imap_folder))
        if kind != "OK":
            raise MailboxError(f"{where}: no folder {settings.bounces_imap_folder!r}")
        yield imap
    finally:
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def imap_messages(imap: imaplib.IMAP4, settings: Settings) -> Iterator[Message]:
    """The messages not yet done; done moves one to ``bounces.imap_move_to`` or flags it
    ``$PaperwireDone`` (``\\Seen`` too, or only that where the server allows no keywords)."""
    keywords = _allows_keywords(imap)
    unread = f"UNKEYWORD {DONE_KEYWORD}" if keywords else "UNSEEN"
    kind, found = imap.uid("SEARCH", unread)
    if kind != "OK":
        raise MailboxError(f"IMAP search failed: {_said(found)}")
    move_to = settings.bounces_imap_move_to
    flags = f"({DONE_KEYWORD} \\Seen)" if keywords else "(\\Seen)"
    for uid in (found[0] or b"").split():
        kind, data = imap.uid("FETCH", uid, "(BODY.PEEK[] INTERNALDATE)")
        raw = next((item[1] for item in data if isinstance(item, tuple)), None) if kind == "OK" else None
        if raw is None:  # gone meanwhile (another reader moved it)
            continue
        arrived = _internal_date(data)

        def mark_done(uid: bytes = uid) -> None:
            if move_to:
                _move(imap, uid, move_to)
            else:
                _check(imap.uid("STORE", uid, "+FLAGS", flags), "flag")

        yield raw, arrived, mark_done
    if move_to and b"MOVE" not in _capabilities(imap):
        _check(imap.expunge(), "expunge")


def _move(imap: imaplib.IMAP4, uid: bytes, folder: str) -> None:
    if b"MOVE" in _capabilities(imap):
        _check(imap.uid("MOVE", uid, _quoted(folder)), f"move to {folder!r}")
    else:  # RFC 3501 alone: copy, then delete (expunged at the end of the run)
        _check(imap.uid("COPY", uid, _quoted(folder)), f"copy to {folder!r}")
        _check(imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)"), "flag deleted")


def _capabilities(imap: imaplib.IMAP4) -> set[bytes]:
    return {name.upper().encode() for name in imap.capabilities}


def _allows_keywords(imap: imaplib.IMAP4) -> bool:
    """Whether the selected folder takes new keywords (``\\*`` in its PERMANENTFLAGS)."""
    _, data = imap.response("PERMANENTFLAGS")
    return any(b"\\*" in item for item in data if isinstance(item, bytes))


def _internal_date(data: list) -> dt.datetime | None:
    """When the server received the message (its INTERNALDATE), in UTC."""
    for item in data:
        header = item[0] if isinstance(item, tuple) else item
        found = _INTERNALDATE.search(header) if isinstance(header, bytes) else None
        if found is not None:
            try:
                return dt.datetime.strptime(found.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z").astimezone(
                    dt.timezone.utc)
            except ValueError:
                return None
    return None


_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def _check(answer: tuple, what: str) -> None:
    kind, data = answer
    if kind != "OK":
        raise MailboxError(f"IMAP {what} failed: {_said(data)}")


def _quoted(folder: str) -> str:
    return '"' + re.sub(r'(["\\])', r"\\\1", folder) + '"'


def _said(found) -> str:
    if isinstance(found, BaseException):
        found = found.args[0] if found.args else ""
    if isinstance(found, list):
        found = b" ".join(item for item in found if isinstance(item, bytes))
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace")
    return printable(str(found))
