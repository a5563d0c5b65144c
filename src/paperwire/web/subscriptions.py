"""Double opt-in: what a subscribe request does, and what the confirmation link does.

No enumeration: whatever the address, the person filling in the form sees the same
page and one email goes to the address. A new (or unsubscribed, or still pending)
address gets a confirmation link; an address that already reads the digest gets a
note with its manage link instead, and nothing about it changes. Only the owner of
the mailbox learns which case it was.
"""

from __future__ import annotations

from dataclasses import replace

from .. import urls
from ..models import Subscriber
from ..subscribers import new_token
from .context import WebContext
from .mailer import Letter
from .tokens import CONFIRM_MAX_AGE, TokenInvalid, reader_key

READING = ("active", "paused")


def request_subscription(web: WebContext, wanted: Subscriber) -> Letter:
    """Store ``wanted`` as pending when it is new (or not reading); return the email to send."""
    store = web.store
    existing = store.subscriber(wanted.email)
    if existing is not None and existing.status in READING:
        return _letter(web, "already", existing.email, manage_url=urls.manage(web.settings.base_url, existing))
    if existing is None:
        wanted = replace(wanted, status="pending", token=new_token(), id=None, created_at=None, confirmed_at=None)
    else:
        # Preferences are replaced (they were never confirmed, or were given up), status is kept.
        wanted = replace(wanted, status=existing.status, token=existing.token, id=existing.id,
                         created_at=existing.created_at, confirmed_at=existing.confirmed_at)
    stored, _ = store.save_subscriber(wanted)
    link = urls.confirm(web.settings.base_url, web.tokens.confirmation(stored.email, stored.token))
    return _letter(web, "confirm", stored.email, confirm_url=link, hours=CONFIRM_MAX_AGE // 3600,
                   topics=[t.name for t in stored.topics])


def _letter(web: WebContext, kind: str, to: str, **values) -> Letter:
    subject = {"confirm": "Confirm your subscription", "already": "You are already subscribed"}[kind]
    values = {"email": to, "subject": subject, **values}
    return Letter(to, f"{web.settings.sender_name}: {subject}", web.text(f"mail_{kind}.txt.j2", **values),
                  web.text(f"mail_{kind}.html.j2", **values))


def confirm(web: WebContext, signed: str) -> Subscriber:
    """Activate the reader a confirmation link names; raises TokenInvalid/TokenExpired.

    The link is bound to the address and to the reader record it was sent for: after
    "delete my data" an old link confirms nothing. A reader who unsubscribed since
    and clicks their own link again is subscribed again, which is what the click says.
    """
    claim = web.tokens.read_confirmation(signed)
    reader = web.store.subscriber(claim.email)
    if reader is None or reader_key(reader.token) != claim.reader_key:
        raise TokenInvalid("no such pending reader")
    if reader.status != "active":
        reader, _ = web.store.save_subscriber(replace(reader, status="active"))
    return reader
