"""Provider webhooks: whether a request comes from the provider, and what its events say.

Each provider proves itself its own way: Postmark by HTTP basic auth, SendGrid by an
ECDSA P-256 signature over timestamp + body, Mailgun by an HMAC-SHA256 of timestamp +
token (Amazon SES, through SNS, is in ``sns.py``). A request that proves nothing raises
:class:`Refused` (answered 401, nothing changes); a proven request in a shape we cannot
read raises :class:`Malformed` (400). Signed timestamps older (or newer) than
MAX_AGE_SECONDS are refused as stale; the replay digest these checks return lets the
caller refuse the same signed request a second time.

Events come out as :class:`Event`: kind (``classify.KINDS``), recipient, status, the
provider's words, our Message-ID where the provider reports it, and a reference made of
the provider's own event id and the recipient, so a retried webhook is recorded once.
Pure: no network, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .classify import AUTO_REPLY, COMPLAINT, HARD, SOFT, UNKNOWN, diagnostic_line, status_of

MAX_AGE_SECONDS = 300  # a signed timestamp further than this from our clock is stale
REFERENCE_CHARS = 200  # bounce_events.reference
RECIPIENT_CHARS = 320  # bounce_events.recipient


class Refused(Exception):
    """Not proven to come from the provider: unsigned, badly signed, stale or replayed (401)."""


class Malformed(Exception):
    """Proven, but not a body we can read (400)."""


@dataclass(frozen=True)
class Event:
    reference: str  # provider:event id:recipient, unique per event
    kind: str  # one of classify.KINDS
    recipient: str = ""
    status: str = ""  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # the provider's or receiving server's words, one clean line
    message_id: str = ""  # the Message-ID we sent, as <...>, when the provider reports it


def make_event(provider: str, event_id: Any, kind: str, recipient: Any, *, status: Any = "", words: Any = "",
               message_id: Any = "") -> Event:
    """An :class:`Event` with every provider-given value checked and cleaned the same way."""
    recipient = diagnostic_line(_text(recipient))[:RECIPIENT_CHARS]
    words = diagnostic_line(_text(words))
    status = status_of(_text(status)) or status_of(words) or {HARD: "5.0.0", SOFT: "4.0.0"}.get(kind, "")
    return Event(reference(provider, _text(event_id), recipient.lower()), kind, recipient, status, words,
                 _message_id(message_id))


def reference(provider: str, *parts: str) -> str:
    """``provider:part:part``; a sha256 of it when that is longer than the column."""
    text = ":".join((provider, *parts))
    if len(text) <= REFERENCE_CHARS:
        return text
    return f"{provider}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _message_id(value: Any) -> str:
    """A Message-ID as our deliveries store it: ``<local@domain>``."""
    text = _text(value).strip()
    if not text or any(ch.isspace() for ch in text) or len(text) > 250:
        return ""
    return text if text.startswith("<") and text.endswith(">") else f"<{text.strip('<>')}>"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else ""


def _json(body: bytes, error: type[Exception] = Malformed) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise error("the body is not JSON") from None


def _fresh(timestamp: Any, now: float) -> int:
    """A signed timestamp (seconds since the epoch) within MAX_AGE_SECONDS of ``now``."""
    text = _text(timestamp).strip()
    if not text.isdigit() or len(text) > 12:
        raise Refused("no timestamp")
    if abs(now - int(text)) > MAX_AGE_SECONDS:
        raise Refused(f"stale timestamp (more than {MAX_AGE_SECONDS} seconds from now)")
    return int(text)


# -- Postmark -------------------------------------------------------------------------------

_POSTMARK_KINDS = {"HardBounce": HARD, "SoftBounce": SOFT, "Transient": SOFT, "SpamComplaint": COMPLAINT,
                   "AutoResponder": AUTO_REPLY}


def check_basic_auth(authorization: str | None, user: str, password: str) -> None:
    """``Authorization: Basic`` with exactly the configured user and password."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Refused("no basic auth credentials")
    try:
        given_user, colon, given_password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Refused("unreadable basic auth credentials") from None
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (colon and user_ok and password_ok):
        raise Refused("wrong user or password")


def postmark_events(body: bytes) -> list[Event]:
    """A Bounce or SpamComplaint webhook (one record per request); other record types carry no event.

    Postmark does not report our Message-ID (its ``MessageID`` is its own), so the event is
    tied to its reader by the address."""
    record = _json(body)
    if not isinstance(record, dict):
        raise Malformed("expected a JSON object")
    if record.get("RecordType") not in ("Bounce", "SpamComplaint"):
        return []
    if record.get("ID") in (None, "") or not _text(record.get("Email")):
        raise Malformed("a bounce record needs its ID and Email")
    kind = _POSTMARK_KINDS.get(_text(record.get("Type")), UNKNOWN)
    words = _text(record.get("Details")) or _text(record.get("Description"))
    return [make_event("postmark", record["ID"], kind, record["Email"], words=words)]


# -- SendGrid -------------------------------------------------------------------------------


def sendgrid_public_key(text: str):
    """The verification key SendGrid shows (base64 of a DER SubjectPublicKeyInfo), loaded; a
    ValueError says what is wrong with it."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("not a public key in base64 DER form (SendGrid's \"Verification Key\")") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def check_sendgrid(public_key: str, signature: str | None, timestamp: str | None, body: bytes, now: float) -> str:
    """The X-Twilio-Email-Event-Webhook-Signature over timestamp + body, under the configured key.
    Returns the replay digest: a sha256 of timestamp and body (an ECDSA signature can be
    re-written into another valid one, so the signature itself is no identity)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not signature or not timestamp:
        raise Refused("unsigned: no X-Twilio-Email-Event-Webhook-Signature and -Timestamp")
    _fresh(timestamp, now)
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        sendgrid_public_key(public_key).verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Refused("the signature does not match") from None
    return hashlib.sha256(timestamp.encode() + b"\n" + body).hexdigest()


def sendgrid_events(body: bytes) -> list[Event]:
    """The bounces, drops and spam reports of a batch; other events (delivered, open, ...) carry none.
    One event that is no object or lacks its id costs that event."""
    batch = _json(body)
    if not isinstance(batch, list):
        raise Malformed("expected a JSON array of events")
    events = []
    for item in batch:
        if not isinstance(item, dict) or not _text(item.get("sg_event_id")) or not _text(item.get("email")):
            continue
        kind = _sendgrid_kind(item)
        if kind is None:
            continue
        words = _text(item.get("reason")) or _text(item.get("response"))
        events.append(make_event("sendgrid", item["sg_event_id"], kind, item["email"], status=item.get("status"),
                                 words=words, message_id=item.get("smtp-id")))
    return events


def _sendgrid_kind(item: dict) -> str | None:
    event = _text(item.get("event"))
    if event == "bounce":  # "blocked" is the receiving server refusing for now (a soft bounce)
        return SOFT if _text(item.get("type")) == "blocked" else HARD
    if event == "spamreport":
        return COMPLAINT
    if event == "dropped":  # not sent: SendGrid keeps the address on a suppression list
        reason = _text(item.get("reason")).lower()
        if "spam reporting address" in reason:
            return COMPLAINT
        return HARD if "bounced address" in reason or "invalid" in reason else UNKNOWN
    return None


# -- Mailgun --------------------------------------------------------------------------------


def check_mailgun(signing_key: str, body: bytes, now: float) -> tuple[str, dict]:
    """The body's ``signature`` (HMAC-SHA256 of timestamp + token under the webhook signing
    key). Returns the replay digest (a sha256 of the token) and the ``event-data``."""
    data = _json(body, Refused)
    signed = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signed, dict) or not all(_text(signed.get(name)) for name in ("timestamp", "token", "signature")):
        raise Refused("unsigned: no signature with timestamp, token and signature")
    _fresh(signed["timestamp"], now)
    expected = hmac.new(signing_key.encode(), (_text(signed["timestamp"]) + _text(signed["token"])).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), _text(signed["signature"]).lower().encode()):  # any text: bytes
        raise Refused("the signature does not match")
    event_data = data.get("event-data")
    if not isinstance(event_data, dict):
        raise Malformed("no event-data")
    return hashlib.sha256(_text(signed["token"]).encode()).hexdigest(), event_data


def mailgun_events(event_data: dict) -> list[Event]:
    """A failed delivery (permanent: hard, temporary: soft) or a complaint; other events carry none."""
    event = _text(event_data.get("event"))
    if event == "failed":
        kind = HARD if _text(event_data.get("severity")) == "permanent" else SOFT
    elif event == "complained":
        kind = COMPLAINT
    else:
        return []
    if not _text(event_data.get("id")) or not _text(event_data.get("recipient")):
        raise Malformed("an event needs its id and recipient")
    status = event_data.get("delivery-status") if isinstance(event_data.get("delivery-status"), dict) else {}
    message = event_data.get("message") if isinstance(event_data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    code = " ".join(_text(status.get(name)) for name in ("enhanced-code", "code"))
    words = _text(status.get("description")) or _text(status.get("message")) or _text(event_data.get("reason"))
    return [make_event("mailgun", event_data["id"], kind, event_data["recipient"], status=code, words=words,
                       message_id=headers.get("message-id"))]
