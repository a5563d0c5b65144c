"""Email addresses as they go on the wire (RFC 5321/5322, 6531/6532, 6068), in one place.

A stored address is Unicode (``subscribers.normalize_email``). On the wire its domain is
always IDNA A-labels (punycode), so an ASCII local part at an IDN domain needs nothing
special anywhere. A non-ASCII local part has no ASCII form at all: it goes raw UTF-8 into
headers and the SMTP envelope, which needs a server that offers SMTPUTF8. An address is
never an RFC 2047 encoded word: no mail system decodes one back into an address.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

import idna


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """The domain as A-labels (``exämple.org`` -> ``xn--exmple-cua.org``).

    A domain IDNA refuses stays as it is: RFC 6532 allows U-labels too, and such an
    address then simply needs SMTPUTF8 like a non-ASCII local part does.
    """
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


def wire(address: str) -> str:
    """The address as headers and the envelope carry it: local part as it is, domain in A-labels."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}" if at else address


def needs_smtputf8(address: str) -> bool:
    """True when the address cannot be written in ASCII (a non-ASCII local part)."""
    return not wire(address).isascii()


def domain_of(address: str) -> str:
    """The ASCII domain of an address (for Message-IDs and DKIM), ``localhost`` if none."""
    return ascii_domain(address.rpartition("@")[2] or "localhost")


@lru_cache(maxsize=64)
def mailto(address: str) -> str:
    """The address inside a ``mailto:`` URI (RFC 6068): a URI is ASCII, so the local part
    is percent-encoded (UTF-8) where it must be and the domain is in A-labels."""
    local, _, domain = wire(address).rpartition("@")
    return f"{quote(local, safe=_MAILTO_SAFE)}@{domain}"


_MAILTO_SAFE = "!$'()*+,;:"  # RFC 6068 some-delims that a local part may keep as they are (not "@")
