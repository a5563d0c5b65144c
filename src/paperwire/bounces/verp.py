"""VERP: each message's envelope sender names its delivery, so a bounce names its reader.

A bounce goes back to the envelope sender (the Return-Path) of the message that failed,
often days later and in a form no parser fully understands. With ``bounce_address`` set
(``bounces@example.org``), a delivery's envelope sender is ``bounces+d<id>-<mac>@example.org``:
the bounce arrives at an address that says which delivery failed, whatever the rest of it
says. The mac (an HMAC of the delivery id under ``secret_key``) makes the address
unguessable, so nobody can make a reader "bounce" by mailing a made-up address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from ..config import DEV_SECRET_KEY, Settings
from ..errors import ConfigError

_MAC_CHARS = 16  # hex: 64 bits


def _mac(delivery_id: int, reader_id: int, secret: str) -> str:
    """Over the delivery and its reader: should a delivery id ever be used again (SQLite reuses
    the highest id after that row is deleted), a late bounce to the old address is not the new
    reader's."""
    message = f"verp:{delivery_id}:{reader_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def envelope_sender(bounce_address: str, delivery_id: int, reader_id: int, secret: str) -> str:
    """The envelope sender of delivery ``delivery_id`` (to reader ``reader_id``): ``local+d<id>-<mac>@domain``."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+d{delivery_id}-{_mac(delivery_id, reader_id, secret)}@{domain}"


def delivery_of(address: str, bounce_address: str, secret: str,
                reader_of: Callable[[int], int | None]) -> tuple[int, int] | None:
    """(delivery id, reader id) a VERP address names, or None when it is not one of ours or its
    mac is wrong for that delivery's reader (``reader_of``: the stored reader of a delivery).
    Case-blind: some mail systems lower-case the addresses they bounce to."""
    local, _, domain = bounce_address.rpartition("@")
    found = re.fullmatch(rf"{re.escape(local)}\+d(\d{{1,18}})-([0-9a-f]{{{_MAC_CHARS}}})@{re.escape(domain)}",
                         address.strip().strip("<>").strip(), re.IGNORECASE | re.ASCII)
    if found is None:
        return None
    delivery_id = int(found.group(1))
    reader_id = reader_of(delivery_id)
    if reader_id is None or not hmac.compare_digest(found.group(2).lower(), _mac(delivery_id, reader_id, secret)):
        return None
    return delivery_id, reader_id


def sender_of(settings: Settings, delivery_id: int | None, reader_id: int | None) -> str:
    """The envelope sender of a delivery: its VERP address when ``bounce_address`` is set, the
    plain sender otherwise (and for messages that are no delivery: dry runs, web mail)."""
    if not settings.bounce_address or delivery_id is None or reader_id is None:
        return settings.sender_email
    return envelope_sender(settings.bounce_address, delivery_id, reader_id, settings.secret_key)


def check(settings: Settings) -> None:
    """VERP addresses are only unguessable under a secret of one's own."""
    if settings.bounce_address and settings.secret_key == DEV_SECRET_KEY:
        raise ConfigError("bounce_address is set, but the secret key is the public development one: anyone "
                          "could forge bounces that stop readers' mail. Set PAPERWIRE_SECRET_KEY.")
