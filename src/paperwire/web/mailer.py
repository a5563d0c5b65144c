"""The web app's own emails: "confirm your address" and "you are already subscribed".

Built with the standard library's email package (which refuses CR/LF in headers) from
values that are already checked: the address went through ``normalize_email`` and the
names through ``one_line``. Delivery reuses the digest transports: SMTP when
``smtp.host`` is set, otherwise an .eml file in the outbox folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from ..config import Settings
from ..mail import Signer, one_line
from ..transport import Outcome, Outgoing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    text: str
    html: str


def build(letter: Letter, settings: Settings, *, now: dt.datetime | None = None) -> bytes:
    """A multipart/alternative message with the headers every transactional mail needs."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = one_line(letter.subject)
    message["From"] = Address(one_line(settings.sender_name), addr_spec=settings.sender_email)
    message["To"] = Address(addr_spec=letter.to)
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Date"] = format_datetime(now or dt.datetime.now(dt.timezone.utc))
    message["Message-ID"] = make_msgid(domain=settings.sender_email.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(letter.text)
    message.add_alternative(letter.html, subtype="html")
    return message.as_bytes()


class Mailer:
    """Sends one message at a time through ``transport`` (``dispatch.make_transport(settings)``).

    It runs after the answer, so nothing it raises may reach the app: a mail that cannot be
    built or sent is logged and, with a ``store``, recorded as a finished "web-mail" run
    that `paperwire status` shows; the mail is lost, the app goes on.
    """

    def __init__(self, settings: Settings, transport, store=None):
        self.settings = settings
        self.transport = transport
        self.store = store
        self.signer = Signer.from_settings(settings)  # signed like the digests when a DKIM key is set

    def send(self, letter: Letter) -> Outcome:
        key = f"web-{secrets.token_hex(8)}"
        outcomes: list[Outcome] = []
        try:
            data = build(letter, self.settings)  # CRLF line ends already (the SMTP policy)
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
