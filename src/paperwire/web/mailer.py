"""The web app's own emails: "confirm your address" and "you are already subscribed".

Built by mail.py like the digests, so headers are made one way everywhere: addresses in
wire form (never an encoded word; a non-ASCII local part raw UTF-8, which needs SMTPUTF8),
text through ``clean_line`` so no CR/LF can start a header. Delivery reuses the digest
transports: SMTP when ``smtp.host`` is set, otherwise an .eml file in the outbox folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from email.utils import make_msgid

from .. import addresses
from ..config import Settings
from ..mail import Signer, assemble, date
from ..normalize import clean_line
from ..mailheaders import mailbox
from ..transport import Outcome, Outgoing, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    text: str
    html: str


def build(letter: Letter, settings: Settings, *, now: dt.datetime | None = None) -> bytes:
    """A multipart/alternative message with the headers every transactional mail needs."""
    headers = [
        ("Subject", clean_line(letter.subject)),
        ("From", mailbox(clean_line(settings.sender_name), settings.sender_email)),
        ("To", mailbox("", letter.to)),
        *([("Reply-To", mailbox("", settings.reply_to))] if settings.reply_to else []),
        ("Date", date(now)),
        ("Message-ID", make_msgid(domain=addresses.domain_of(settings.sender_email))),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies to this
    ]
    return assemble(headers, letter.text, letter.html).data


class Mailer:
    """Sends one message at a time through ``transport`` (``dispatch.make_transport(settings)``).

    It runs after the answer, so nothing it raises may reach the app: a mail that cannot be
    built or sent is logged and, with a ``store``, recorded as a finished "web-mail" run
    that `paperwire status` shows; the mail is lost, the app goes on.
    """

    def __init__(self, settings: Settings, transport: Transport, store=None):
        self.settings = settings
        self.transport = transport
        self.store = store
        self.signer = Signer.from_settings(settings)  # signed like the digests when a DKIM key is set

    def send(self, letter: Letter) -> Outcome:
        key = f"web-{secrets.token_hex(8)}"
        outcomes: list[Outcome] = []
        try:
            data = build(letter, self.settings)  # CRLF line ends already
            outgoing = Outgoing(key, self.settings.sender_email, (letter.to,),
                                self.signer.sign(data) if self.signer else data)
            self.transport.send_all([outgoing], outcomes.append)
        except Exception as exc:
            log.error("web mail to %s (%s) failed: %r", letter.to, letter.subject, exc, exc_info=exc)
            outcome = Outcome(key, "failed", 0, None, f"{type(exc).__name__}: {exc}")
        else:
            outcome = outcomes[0] if outcomes else Outcome(key, "deferred", 0, None, "not taken")
            if outcome.status != "sent":
                log.warning("web mail to %s (%s): %s %s %s", letter.to, letter.subject, outcome.status,
                            outcome.code, outcome.detail)
        if outcome.status != "sent":
            self._record(letter, outcome)
        return outcome

    def _record(self, letter: Letter, outcome: Outcome) -> None:
        if self.store is None:
            return
        failure = {"email": letter.to, "subject": letter.subject, "code": outcome.code, "detail": outcome.detail}
        try:
            self.store.note_run("web-mail", {"failed": 1, "failures": [failure]})
        except Exception:  # a locked database must not turn a lost mail into a crash
            log.exception("could not record the failed web mail to %s", letter.to)
