"""Email messages from rendered digests: MIME, the headers mail providers expect, DKIM.

No database and no network here: ``build_message`` is pure and ``Signer`` only reads
its key file once. Delivery (SMTP, outbox) builds on these.

``assemble`` is the one way a MIME message is made: digests (``build_message``) and the
web app's mails (web/mailer.py) alike.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import dkim

from . import addresses, urls
from .config import Settings
from .errors import ConfigError
from .mailheaders import angle_list, header_line, mailbox, phrase
from .models import Digest
from .normalize import clean_line  # the one rule for a line: no CR/LF can start a header

# Gmail clips a message whose HTML is over ~102 KB (render.py warns, MAX_PAPERS_UNDER_CLIP keeps
# digests under it); here, because a part's size depends on how it is sent.
GMAIL_CLIP_BYTES = 102_000
_MAX_7BIT_LINE = 990  # RFC 5322 allows 998 characters per line; keep a margin
PARAGRAPHS_KEPT = 8192  # encoded text paragraphs kept (_paragraph_by_content): a run's papers recur

# Headers the DKIM signature covers; both unsubscribe headers must be among them (RFC 8058).
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)


class Rendered(Protocol):
    subject: str
    html: str
    text: str


def message_id(digest: Digest, settings: Settings) -> str:
    """The same digest (reader, edition, papers) always gets the same Message-ID, so a re-send
    is recognisable; a second digest of one edition (papers added to the day's listing after
    the first went out) gets another, or mail providers would drop it as a duplicate.

    The reader's token is hashed: it must never appear in headers.
    """
    reader_key = hashlib.sha256(digest.subscriber.token.encode()).hexdigest()[:20]
    papers = "\n".join(item.paper.id for section in digest.sections for item in section.items)
    papers_key = hashlib.sha256(papers.encode()).hexdigest()[:8]
    return f"<{digest.edition}.{reader_key}.{papers_key}@{addresses.domain_of(settings.sender_email)}>"


@dataclass(frozen=True)
class Message:
    """A finished message: its headers (for reading back) and its exact wire bytes."""

    headers: tuple[tuple[str, str], ...]
    data: bytes

    def __getitem__(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def __bytes__(self) -> bytes:
        return self.data


def _lf(text: str) -> str:
    """Line ends as LF, a lone CR included: a bare CR must never reach the wire."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends: 7-bit clean for every relay.

    Quoted-printable works line by line, so the text is encoded paragraph by paragraph
    (between blank lines), each with its line end: the same bytes as encoding it whole.
    A digest's paragraphs (a paper's authors, abstract, links) recur in many messages of
    a run, so their encodings are kept by content.
    """
    *paragraphs, last = _lf(text).split("\n\n")
    return b"".join([*map(_paragraph_by_content, paragraphs), _encoded(last)])


@lru_cache(maxsize=PARAGRAPHS_KEPT)
def _paragraph_by_content(paragraph: str) -> bytes:
    """A paragraph followed by a blank line, encoded."""
    return _encoded(paragraph + "\n") + b"\r\n"


def _encoded(text: str) -> bytes:
    """``text`` quoted-printable by binascii, which encodes line by line in C.

    binascii writes a line's trailing space or tab as ``=20`` past the 76 characters RFC
    2045 allows when the line is 74 or more long: the text part never has such a line
    (email_templates.py's text environment drops trailing whitespace from its templates, and
    values are clean lines), so nothing is checked here, per paragraph, per message.
    Always binascii: checking in Python whether a paragraph could pass as it is cost more
    than encoding it (a paper's per-reader paragraph, with its "More like this" link, is
    encoded for every message; see bench/README.md).
    """
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def as_references(text: str) -> str:
    """``text`` with each non-ASCII character as its decimal character reference (``·`` as
    ``&#183;``): how the HTML part goes out as 7-bit ASCII, and how the renderer writes its
    HTML (email_templates.CharacterReferences), so that a digest's page is sent as it is."""
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


_REFERENCE = re.compile(r"&#([0-9]{3,7});")


def from_references(html: str) -> str:
    """``html`` with the references ``as_references`` writes read back as characters: the page
    as quoted-printable UTF-8 carries it, and the size Gmail's clip is measured on. Escaping's
    ``&#34;`` and ``&#39;`` stay (below 128), and so does a reader's own "&#183;", which
    escaping has made ``&amp;#183;``."""
    return _REFERENCE.sub(_character, html) if "&#" in html else html


def _character(reference: re.Match[str]) -> str:
    code = int(reference[1])
    return chr(code) if 128 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else reference[0]


def _seven_bit(html: str) -> bytes | None:
    """HTML as ASCII with CRLF line ends (non-ASCII as character references); None when a
    line would be too long to send without a transfer encoding."""
    data = _lf(html).encode("ascii", "xmlcharrefreplace")  # as_references, straight to bytes
    if _has_line_over(data, _MAX_7BIT_LINE):
        return None
    return data.replace(b"\n", b"\r\n")


def _has_line_over(data: bytes, limit: int) -> bool:
    """Whether a line of ``data`` is longer than ``limit`` bytes. Such a line's limit + 1 bytes
    hold a multiple of limit + 1, so only the lines through those offsets are measured: a
    digest's ~25 instead of its ~400 (splitting it into lines cost as much as encoding it)."""
    for offset in range(0, len(data), limit + 1):
        start = data.rfind(b"\n", 0, offset) + 1
        end = data.find(b"\n", offset)
        if (len(data) if end < 0 else end) - start > limit:
            return True
    return False


def _part_head(subtype: str, encoding: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'.encode()


def _quoted_part(subtype: str, text: str) -> list[bytes]:
    return [_part_head(subtype, "quoted-printable"), _quoted_printable(text)]


def _html_part(html: str) -> list[bytes]:
    """HTML as 7-bit text: non-ASCII as character references, which every client reads.

    Quoted-printable costs about as much as rendering the digest; an ASCII document with
    short lines needs no transfer encoding at all. A digest's HTML is that already (the
    renderer writes references: email_templates.CharacterReferences); other HTML (the web
    app's mails) is converted here. A very long line (say, a CJK preheader) sends the part
    quoted-printable as UTF-8 instead, references read back (``from_references``), and so do
    references that would make the page longer than Gmail shows unclipped (``&#20013;`` is
    8 bytes, its UTF-8 3): render.py checks the size as UTF-8, which quoted-printable keeps.
    """
    encoded = _seven_bit(html)
    if encoded is not None and len(encoded) <= GMAIL_CLIP_BYTES:
        return [_part_head("html", "7bit"), encoded]
    page = from_references(html)  # rare: a line too long for 7-bit, or a page past the clip
    if encoded is not None and page.isascii():  # as long either way: no encoding needed
        return [_part_head("html", "7bit"), encoded]
    return _quoted_part("html", page)


def build_message(digest: Digest, rendered: Rendered, settings: Settings, *, now: dt.datetime | None = None) -> Message:
    """A multipart/alternative message (text, then HTML) with every header a digest needs."""
    reader = digest.subscriber
    mailto = f"mailto:{addresses.mailto(settings.unsubscribe_email)}?subject=unsubscribe%20{urls.quoted(reader.token)}"
    sender, list_id = _sender(settings.sender_name, settings.sender_email, settings.list_id)
    headers = [
        ("Subject", clean_line(rendered.subject)),
        ("From", sender),
        ("To", mailbox(clean_line(reader.name), reader.email)),
        *([("Reply-To", mailbox("", settings.reply_to))] if settings.reply_to else []),
        ("Date", date(now)),
        ("Message-ID", message_id(digest, settings)),
        ("List-Id", list_id),
        ("List-Unsubscribe", angle_list(urls.unsubscribe(settings.base_url, reader), mailto)),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    return assemble(headers, rendered.text, rendered.html)


def assemble(headers: list[tuple[str, str]], text: str, html: str) -> Message:
    """``headers`` (a Message-ID among them), then a multipart/alternative body: text, then HTML.

    Digests and the web app's mails alike. Assembled directly as bytes: the layout is fixed
    and small, and the email package's generator cost more than rendering the digest did.
    """
    msg_id = next(value for name, value in headers if name == "Message-ID")
    # Never inside a part: quoted-printable writes no bare "=" at a line start, and the 7-bit
    # HTML could hold it only by guessing this hash of the Message-ID (for a digest, of the
    # reader's secret token).
    boundary = "=_pw_" + hashlib.sha256(msg_id.encode()).hexdigest()[:24]
    headers = [*headers, ("MIME-Version", "1.0"), ("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
    mark = f"--{boundary}\r\n".encode()
    data = b"".join(  # one join: a digest is ~30 KB, and every copy of it costs
        [*(header_line(name, value) for name, value in headers),
         b"\r\n",
         mark, *_quoted_part("plain", text), b"\r\n",
         mark, *_html_part(html), b"\r\n",
         f"--{boundary}--\r\n".encode()])
    return Message(tuple(headers), data)


def date(now: dt.datetime | None = None) -> str:
    """The Date header's value: ``now``, or the current second in UTC."""
    if now is None:
        return _utc_date(int(time.time()))
    return format_datetime(now.replace(microsecond=0))


@lru_cache(maxsize=1)  # keyed by the second (UTC): a run's messages of one second share it
def _utc_date(second: int) -> str:
    """Formatting a date costs more than any other header (~5 µs): once a second, not once a message."""
    return format_datetime(dt.datetime.fromtimestamp(second, dt.timezone.utc))


def _sender(name: str, address: str, list_id: str) -> tuple[str, str]:
    """The From and List-Id values."""
    name = clean_line(name)
    return mailbox(name, address), f"{phrase(name)} <{list_id}>" if name else f"<{list_id}>"


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
        domain = addresses.ascii_domain(settings.dkim_domain) if settings.dkim_domain else None
        return cls(settings.dkim_key_file, settings.dkim_selector, domain or addresses.domain_of(settings.sender_email))

    def sign(self, message: bytes) -> bytes:
        header_block = message.split(b"\r\n\r\n", 1)[0]
        names = {line.split(b":", 1)[0].strip().lower() for line in header_block.split(b"\r\n")
                 if line and not line[:1].isspace()}
        present = [h for h in SIGNED_HEADERS if h.lower().encode() in names]
        signature = dkim.sign(message, self._selector, self._domain, self._key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode() for h in present])
        return signature + message


def message_bytes(msg: Message, signer: Signer | None = None) -> bytes:
    """The message as it goes on the wire (CRLF line ends), signed when a signer is given."""
    return signer.sign(msg.data) if signer else msg.data
