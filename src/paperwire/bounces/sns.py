"""Amazon SES bounces and complaints as Amazon SNS delivers them: the message, its signature,
the SES events inside.

SNS signs each message with the key of an X.509 certificate it names (SigningCertURL).
Anyone can name a certificate, so the URL must be https on an SNS host
(``sns.<region>.amazonaws.com``) before it is fetched at all, the topic must be one the
operator configured, and the signature (SignatureVersion 1: SHA1withRSA, 2:
SHA256withRSA) must verify against that certificate, which must be valid today.
What is signed is fixed by SNS: ``name\\nvalue\\n`` for a per-type list of fields.

Pure apart from the certificate, which the caller fetches (``envelope`` says which).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .classify import COMPLAINT, HARD, SOFT, UNKNOWN
from .webhooks import Event, Malformed, Refused, _text, make_event

NOTIFICATION, SUBSCRIBE, UNSUBSCRIBE = "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"
# The fields each type signs, in the order SNS signs them (a field a message lacks is left out).
_SIGNED = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIBE: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    UNSUBSCRIBE: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_REQUIRED = {NOTIFICATION: ("Message", "MessageId", "Timestamp", "TopicArn", "Type")}
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")  # eu-west-1, us-gov-east-1, cn-north-1
_BOUNCE_KINDS = {"Permanent": HARD, "Transient": SOFT}


def is_sns_url(url: str, region: str, *, certificate: bool = False) -> bool:
    """An https URL on the SNS host of ``region`` (``sns.<region>.amazonaws.com``, ``.com.cn`` in
    China), no user, no other port; a certificate's ends in ``.pem``. Exactly that host: a looser
    pattern also admits S3 bucket hosts (``sns.s3-eu-west-1.amazonaws.com``), which anyone can own."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    hosts = {f"sns.{region}.amazonaws.com", f"sns.{region}.amazonaws.com.cn"} if _REGION.fullmatch(region) else set()
    return (parts.scheme == "https" and parts.username is None and port in (None, 443)
            and (parts.hostname or "") in hosts and (not certificate or parts.path.endswith(".pem")))


def region_of(topic_arn: str) -> str:
    """The region of an SNS topic ARN (``arn:aws:sns:eu-west-1:123456789012:name``)."""
    parts = topic_arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sns" else ""


def envelope(body: bytes, topics: Sequence[str]) -> dict[str, str]:
    """The message, once everything that can be checked before fetching the certificate is:
    a known type, every signed field present, a configured topic, SNS URLs only."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused("not an SNS message (the body is not JSON)") from None
    if not isinstance(message, dict) or message.get("Type") not in _SIGNED:
        raise Refused("not an SNS message (no known Type)")
    kind = message["Type"]
    needed = _REQUIRED.get(kind, _SIGNED[kind]) + ("Signature", "SignatureVersion", "SigningCertURL")
    if not all(isinstance(message.get(name), str) and message[name] for name in needed):
        raise Refused(f"unsigned: an SNS {kind} needs " + ", ".join(needed))
    if message["TopicArn"] not in topics:
        raise Refused("not a topic configured in webhooks.ses_topics")
    if message["SignatureVersion"] not in ("1", "2"):
        raise Refused("unknown SignatureVersion (1 and 2 are known)")
    region = region_of(message["TopicArn"])
    if not is_sns_url(message["SigningCertURL"], region, certificate=True):
        raise Refused("SigningCertURL is not an https .pem URL on the sns.<region>.amazonaws.com host of the topic")
    if kind != NOTIFICATION and not is_sns_url(message["SubscribeURL"], region):
        raise Refused("SubscribeURL is not an https URL on the sns.<region>.amazonaws.com host of the topic")
    return message


def verify(message: dict[str, str], certificate_pem: bytes, now: dt.datetime) -> None:
    """The message's signature under the key of its signing certificate (valid at ``now``)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise Refused("the signing certificate is not a PEM X.509 certificate") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused("the signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("the signing certificate has no RSA key")
    digest = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    try:
        key.verify(base64.b64decode(message["Signature"], validate=True), string_to_sign(message),
                   padding.PKCS1v15(), digest)
    except (binascii.Error, InvalidSignature):
        raise Refused("the signature does not match") from None


def string_to_sign(message: dict[str, Any]) -> bytes:
    """What SNS signs: each signed field the message has, as ``name\\nvalue\\n``."""
    return "".join(f"{name}\n{message[name]}\n" for name in _SIGNED[message["Type"]]
                   if isinstance(message.get(name), str)).encode()


def ses_events(message: dict[str, str]) -> list[Event]:
    """The bounces and complaints of an SES notification (its ``Message``, JSON); other
    notifications (deliveries, sends) carry none. Tied by our Message-ID
    (``mail.commonHeaders.messageId``), else the recipient."""
    try:
        notice = json.loads(message["Message"])
    except ValueError:
        return []  # a message published to the topic by something other than SES
    if not isinstance(notice, dict):
        return []
    what = notice.get("notificationType") or notice.get("eventType")  # SES notifications, or event publishing
    mail = notice.get("mail") if isinstance(notice.get("mail"), dict) else {}
    headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    message_id = headers.get("messageId", "")
    if what == "Bounce":
        return _bounces(notice.get("bounce"), message, message_id)
    if what == "Complaint":
        return _complaints(notice.get("complaint"), message, message_id)
    return []


def _bounces(bounce: Any, message: dict, message_id: str) -> list[Event]:
    if not isinstance(bounce, dict) or not isinstance(bounce.get("bouncedRecipients"), list):
        raise Malformed("an SES bounce needs bouncedRecipients")
    kind = _BOUNCE_KINDS.get(_text(bounce.get("bounceType")), UNKNOWN)  # "Undetermined": kept, no effect
    event_id = _text(bounce.get("feedbackId")) or message["MessageId"]
    return [make_event("ses", event_id, kind, recipient.get("emailAddress"), status=recipient.get("status"),
                       words=_text(recipient.get("diagnosticCode")) or f"{_text(bounce.get('bounceType'))} "
                                                                        f"{_text(bounce.get('bounceSubType'))}",
                       message_id=message_id)
            for recipient in bounce["bouncedRecipients"] if _named(recipient)]


def _complaints(complaint: Any, message: dict, message_id: str) -> list[Event]:
    if not isinstance(complaint, dict) or not isinstance(complaint.get("complainedRecipients"), list):
        raise Malformed("an SES complaint needs complainedRecipients")
    feedback = _text(complaint.get("complaintFeedbackType"))
    kind = UNKNOWN if feedback == "not-spam" else COMPLAINT
    event_id = _text(complaint.get("feedbackId")) or message["MessageId"]
    return [make_event("ses", event_id, kind, recipient.get("emailAddress"),
                       words=f"complaint: {feedback or 'unspecified'}", message_id=message_id)
            for recipient in complaint["complainedRecipients"] if _named(recipient)]


def _named(recipient: Any) -> bool:
    return isinstance(recipient, dict) and isinstance(recipient.get("emailAddress"), str) and "@" in recipient[
        "emailAddress"]
