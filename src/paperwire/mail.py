"""Email messages from rendered digests: MIME, the headers mail providers expect, DKIM.

No database and no network here: ``build_message`` is pure and ``Signer`` only reads
its key file once. Delivery (SMTP, outbox) builds on these.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import dkim

from . import urls
from .config import Settings
from .errors import ConfigError
from .models import Digest

# Headers the DKIM signature covers; both unsubscribe headers must be among them (RFC 8058).
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)


class Rendered(Protocol):
    subject: str
    html: str
    text: str


def one_line(value: str) -> str:
    """Header text without CR, LF or other controls: nothing can start a new header."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def message_id(digest: Digest, settings: Settings) -> str:
    """The same (reader, edition) always gets the same Message-ID, so a re-send is recognisable.

    The reader's token is hashed: it must never appear in headers.
    """
    reader_key = hashlib.sha256(digest.subscriber.token.encode()).hexdigest()[:20]
    return f"<{digest.edition}.{reader_key}@{_domain(settings.sender_email)}>"


def build_message(digest: Digest, rendered: Rendered, settings: Settings, *, now: dt.datetime | None = None) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with every header a digest needs."""
    reader = digest.subscriber
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = one_line(rendered.subject)
    msg["From"] = Address(one_line(settings.sender_name), addr_spec=settings.sender_email)
    msg["To"] = Address(one_line(reader.name), addr_spec=reader.email)
    if settings.reply_to:
        msg["Reply-To"] = settings.reply_to
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.timezone.utc))
    msg["Message-ID"] = message_id(digest, settings)
    msg["List-Id"] = f"{one_line(settings.sender_name)} <{settings.list_id}>"
    mailto = f"mailto:{settings.unsubscribe_email}?subject={quote('unsubscribe ' + reader.token)}"
    msg["List-Unsubscribe"] = f"<{urls.unsubscribe(settings.base_url, reader)}>, <{mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps the message 7-bit clean for every relay, and readable in a pinch.
    msg.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


class Signer:
    """DKIM signing (relaxed/relaxed) with a key read once from ``settings.dkim_key_file``."""

    def __init__(self, key_file: Path, selector: str, domain: str):
        try:
            self._key = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"setting 'dkim_key_file': cannot read {key_file}: {exc.strerror}") from None
        self._selector = selector.encode()
        self._domain = domain.encode()

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer | None:
        if settings.dkim_key_file is None:
            return None
        return cls(settings.dkim_key_file, settings.dkim_selector, settings.dkim_domain or _domain(settings.sender_email))

    def sign(self, message: bytes) -> bytes:
        header_block = message.split(b"\r\n\r\n", 1)[0]
        names = {line.split(b":", 1)[0].strip().lower() for line in header_block.split(b"\r\n")
                 if line and not line[:1].isspace()}
        present = [h for h in SIGNED_HEADERS if h.lower().encode() in names]
        signature = dkim.sign(message, self._selector, self._domain, self._key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode() for h in present])
        return signature + message


def message_bytes(msg: EmailMessage, signer: Signer | None = None) -> bytes:
    """The message as it goes on the wire (CRLF line ends), signed when a signer is given."""
    data = msg.as_bytes(policy=SMTP)
    return signer.sign(data) if signer else data
