"""Double opt-in: what a subscribe request does, and what the confirmation link does.

No enumeration: whatever the address, the person filling in the form sees the same
page, answered before anything about the address is looked up (``handle_request``
runs after the answer), and one email goes to the address. A new address gets a
pending record and a confirmation link; an address with a record that is not reading
(pending, unsubscribed, bouncing) gets a link too, but what the form asked for is kept
aside as a pending change until that link is clicked; an address that already reads
the digest gets a note with its manage link instead. Nothing about an existing reader
changes before the owner of the mailbox says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from .. import urls
from ..models import Subscriber
from ..subscribers import new_token
from .context import WebContext
from .mailer import Letter
from .tokens import CONFIRM_MAX_AGE, TokenInvalid, reader_key

log = logging.getLogger(__name__)
READING = ("active", "paused")


def handle_request(web: WebContext, wanted: Subscriber) -> None:
    """Everything a subscribe request does, run after the answer went out (a background task).

    Its cost and its failures depend on the address, so none of it may happen before
    the answer: that would tell known addresses from unknown ones.
    """
    try:
        if web.email_limit.hit(wanted.email) is not None:
            return
        web.mailer.send(request_subscription(web, wanted))
    except Exception:  # noqa: BLE001  -- the answer is gone: log, never raise into the server
        log.exception("subscribe request for one address failed")


def request_subscription(web: WebContext, wanted: Subscriber) -> Letter:
    """Store a new address as pending, or keep ``wanted`` aside for a known one; return the email to send."""
    store = web.store
    existing = store.subscriber(wanted.email)
    if existing is not None and existing.status in READING:
        return _letter(web, "already", existing.email, manage_url=urls.manage(web.settings.base_url, existing))
    change = None
    if existing is None:
        stored, _ = store.save_subscriber(replace(wanted, status="pending", token=new_token(), id=None,
                                                  created_at=None, confirmed_at=None))
    else:
        stored = existing
        expired = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=CONFIRM_MAX_AGE)
        change = store.add_pending_change(existing.id, wanted, older_than=expired)
    link = urls.confirm(web.settings.base_url, web.tokens.confirmation(stored.email, stored.token, change))
    return _letter(web, "confirm", stored.email, confirm_url=link, hours=CONFIRM_MAX_AGE // 3600,
                   topics=[t.name for t in wanted.topics])


def _letter(web: WebContext, kind: str, to: str, **values) -> Letter:
    subject = {"confirm": "Confirm your subscription", "already": "You are already subscribed"}[kind]
    values = {"email": to, "subject": subject, **values}
    return Letter(to, f"{web.settings.sender_name}: {subject}", web.text(f"mail_{kind}.txt.j2", **values),
                  web.text(f"mail_{kind}.html.j2", **values))


def confirm(web: WebContext, signed: str) -> Subscriber:
    """Activate the reader a confirmation link names, with the preferences it was sent for;
    raises TokenInvalid/TokenExpired.

    The link is bound to the address and to the reader record it was sent for: after
    "delete my data" an old link confirms nothing. A reader who unsubscribed since
    and clicks their own link again is subscribed again, which is what the click says.
    A link that names a pending change applies that change (and drops any other).
    """
    claim = web.tokens.read_confirmation(signed)
    reader = web.store.subscriber(claim.email)
    if reader is None or reader_key(reader.token) != claim.reader_key:
        raise TokenInvalid("no such pending reader")
    if reader.status == "active" and claim.change is None:
        return reader
    return web.store.confirm_subscriber(reader, claim.change)
