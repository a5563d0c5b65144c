"""Mail header lines in wire form: the one way every header paperwire writes is made.

Addresses, message ids and URIs are never RFC 2047-encoded (mail clients and providers
would see no address or URI at all), text is folded within 78 characters where words
allow, and a value with a line break or control character is an error, never a second
header (header injection).
"""

from __future__ import annotations

import re
from email.header import Header

from . import addresses

_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ENCODED_WORD_MAX = 62  # characters; RFC 2047 allows 75
MAX_HEADER_LINE = 998  # octets, without the CRLF (RFC 5322 2.1.1)
# Headers whose values are addresses, message ids or URIs, each an element that must reach the
# reader exactly as written: never RFC 2047-encoded, folded only at the spaces between elements.
_STRUCTURED = frozenset({"From", "To", "Reply-To", "Sender", "List-Id", "List-Unsubscribe", "Message-ID"})
# CR, LF, NUL and the other C0 controls but tab: never part of a header value (header injection).
_LINE_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def header_line(name: str, value: str) -> bytes:
    """One header as wire bytes, CRLF included: the one way every header paperwire writes is made.

    Addresses, message ids and URIs (``_STRUCTURED``) are never encoded: the value must
    already be in wire form (``mailbox``, ``angle_list``) and is only folded between its
    elements. Anything else is text: plain ASCII, the usual case, is folded here (running
    every header through the email package's folding was most of the time spent per
    message); what needs encoding (non-ASCII, a word too long for a line) is encoded whole
    by the package's ``Header``. Text that merely looks like an encoded word
    (``=?utf-8?q?...?=``) is encoded itself, or readers would see it decoded.
    """
    if _LINE_BREAKING.search(value):  # a stored value that would end the header and start another
        raise ValueError(f"{name} header: a line break or control character in {value[:60]!r}")
    if name in _STRUCTURED:
        return _structured_line(name, value)
    if value.isascii() and "=?" not in value:
        if len(name) + len(value) < 76:
            return f"{name}: {value}\r\n".encode("ascii")
        words = value.split(" ")
        if all(0 < len(word) <= 76 for word in words):  # else encoded, below
            return _fold(name, words).encode("ascii")
    # All of it in encoded words, each space inside one: the email package's folding can break a
    # line between two encoded words and so lose the space between them (RFC 2047 ignores
    # whitespace there: "“QEC” ✓" read back as "“QEC”✓").
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _structured_line(name: str, value: str) -> bytes:
    """An address/URI header: folded only at the spaces between its elements (RFC 5322 FWS;
    RFC 2369 lists), so every ``<...>`` and addr-spec stays whole on one line. UTF-8 as it is
    (RFC 6532): a non-ASCII local part makes the message need SMTPUTF8, never an encoded word.
    An element too long for any line (998 octets) is an error, not a silently broken header."""
    if len(name) + len(value) < 76:
        line = f"{name}: {value}\r\n"
    else:
        line = _fold(name, value.split())
    data = line.encode("utf-8")
    if len(data) > MAX_HEADER_LINE + 2 and max(map(len, data.split(b"\r\n"))) > MAX_HEADER_LINE:
        raise ValueError(f"{name} header: an element does not fit in a line of {MAX_HEADER_LINE} octets "
                         f"({value[:60]}...); shorten it (base_url, an address)")
    return data


def _fold(name: str, words: list[str]) -> str:
    """``name: words`` broken before words into lines of at most 78 characters where words
    allow (a longer word gets a line of its own; it is never cut). The first word always stays
    on the first line: a fold right after the colon would come back as a leading space, as it
    does from the email package."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > 78 and (lines or line != f"{name}:"):  # never a bare "Name:" line
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: plain words as they are, other ASCII as a quoted
    string, non-ASCII as RFC 2047 encoded words (right for a phrase, and read by every
    client; an SMTPUTF8-only form would make every such message need SMTPUTF8)."""
    looks_encoded = "=?" in name  # then it is encoded itself, or clients would decode it
    if not name or (not looks_encoded and _PLAIN_NAME.fullmatch(name)):
        return name
    if name.isascii() and not looks_encoded:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # Words short enough that each fits a 78-character line after any header's name.
    return " ".join(Header(name, "utf-8").encode(linesep="\n", maxlinelen=_ENCODED_WORD_MAX).split())


def mailbox(name: str, address: str) -> str:
    """``Name <address>`` in wire form: the name a phrase, the address never encoded (its
    domain in A-labels, a non-ASCII local part raw UTF-8)."""
    address = addresses.wire(address)
    return f"{phrase(name)} <{address}>" if name else address


def angle_list(*uris: str) -> str:
    """``<uri>, <uri>``: an RFC 2369 list (List-Unsubscribe), folded only between elements."""
    return ", ".join(f"<{uri}>" for uri in uris)
