"""Provider webhooks (SES through SNS, Postmark, SendGrid, Mailgun): real signatures made with the
tests' own keys (a self-made X.509 certificate, an ECDSA P-256 key pair, an HMAC key), the whole
path from a digest sent over real SMTP to the reader stopped, and every way a request is refused.

Only the internet is replaced: the fetcher that would GET the SNS certificate and SubscribeURL."""

from __future__ import annotations

import base64
import datetime as dt
import email
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from hypothesis import given, settings as hypothesis_settings, strategies as st

from paperwire import dispatch
from paperwire.bounces import sns, webhooks
from paperwire.bounces.classify import COMPLAINT, HARD, KINDS, SOFT, UNKNOWN
from paperwire.config import Settings, load_settings
from paperwire.errors import SourceError
from paperwire.models import Listing, Paper, Topic
from paperwire.store import Store
from paperwire.subscribers import build_subscriber
from paperwire.transport import OutboxTransport
from paperwire.web.app import create_app

from .test_dispatch import NOON, Inbox, readers_store, smtp_server, smtp_settings  # noqa: F401  (a fixture)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:paperwire-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
                 + TOPIC + "&Token=2336412f37")
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", "postmark-password-for-tests"
MAILGUN_KEY = "key-mailgun-signing-for-tests"
SECRET = "test-secret-" + "x" * 40


# -- the tests' own keys ----------------------------------------------------------------------


def _certificate(key: rsa.RSAPrivateKey, *, days: tuple[int, int] = (-1, 30)) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1])).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SNS_CERT = _certificate(SNS_KEY)
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


class Internet:
    """The fetcher: the pages it has, and every URL anyone asked for."""

    def __init__(self, pages: dict[str, bytes] | None = None):
        self.pages = {CERT_URL: SNS_CERT, SUBSCRIBE_URL: b"<ConfirmSubscriptionResponse/>", **(pages or {})}
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url not in self.pages:
            raise SourceError("HTTP 404 Not Found", origin=url)
        return self.pages[url]


# -- signing, as each provider does it (written from their documentation, not from our code) --


def sns_signed(fields: dict, *, version: str = "2", key: rsa.RSAPrivateKey = SNS_KEY, cert_url: str = CERT_URL) -> dict:
    """An SNS message with its signature: ``name\\nvalue\\n`` of the signed fields in byte order."""
    message = {"TopicArn": TOPIC, "Timestamp": "2026-12-04T12:00:00.000Z", "MessageId": str(uuid.uuid4()),
               **fields, "SignatureVersion": version, "SigningCertURL": cert_url}
    names = (["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"] if message["Type"] == "Notification"
             else ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"])
    text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return message


def ses_bounce(recipient: str, *, bounce_type: str = "Permanent", message_id: str = "<unknown@example.org>",
               feedback: str | None = None, version: str = "2") -> dict:
    notice = {"notificationType": "Bounce", "bounce": {
        "bounceType": bounce_type, "bounceSubType": "General", "feedbackId": feedback or str(uuid.uuid4()),
        "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"messageId": "0100018c-ses-id", "commonHeaders": {"messageId": message_id}}}
    return sns_signed({"Type": "Notification", "Message": json.dumps(notice)}, version=version)


def ses_complaint(recipient: str, *, message_id: str = "<unknown@example.org>") -> dict:
    notice = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": recipient}], "feedbackId": str(uuid.uuid4()),
        "complaintFeedbackType": "abuse"}, "mail": {"commonHeaders": {"messageId": message_id}}}
    return sns_signed({"Type": "Notification", "Message": json.dumps(notice), "Subject": "Amazon SES Email Event"})


def postmark_record(recipient: str, kind: str = "HardBounce", *, record_id: int | None = None) -> dict:
    record_type = "SpamComplaint" if kind == "SpamComplaint" else "Bounce"
    return {"RecordType": record_type, "ID": record_id or int(uuid.uuid4().int % 10**12), "Type": kind,
            "TypeCode": 1, "MessageID": str(uuid.uuid4()), "Email": recipient, "Description": "The server said no.",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "BouncedAt": "2026-12-04T12:00:00Z"}


def sendgrid_event(recipient: str, event: str = "bounce", *, kind: str = "bounce", smtp_id: str = "<unknown@x>",
                   event_id: str | None = None) -> dict:
    return {"email": recipient, "timestamp": 1733313600, "smtp-id": smtp_id, "event": event, "type": kind,
            "status": "5.1.1", "reason": "550 5.1.1 user unknown", "sg_event_id": event_id or uuid.uuid4().hex,
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}


def sendgrid_headers(body: bytes, now: float, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> dict:
    stamp = str(int(now))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}


def mailgun_body(recipient: str, event: str = "failed", *, severity: str = "permanent", message_id: str = "x@y",
                 now: float, token: str | None = None, key: str = MAILGUN_KEY, event_id: str | None = None) -> dict:
    stamp, token = str(int(now)), token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    data = {"event": event, "id": event_id or uuid.uuid4().hex[:22], "timestamp": now, "recipient": recipient,
            "message": {"headers": {"message-id": message_id, "to": recipient}}}
    if event == "failed":
        data.update(severity=severity, reason="bounce", **{"delivery-status": {
            "code": 550, "enhanced-code": "5.1.1", "message": "5.1.1 The email account does not exist",
            "description": "The email account that you tried to reach does not exist"}})
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": data}


# -- a site with every webhook on ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Hooks:
    client: TestClient
    store: Store
    internet: Internet
    clock: Clock

    def post(self, provider: str, body, headers: dict | None = None, auth=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/webhooks/{provider}", content=data, headers=headers or {}, auth=auth)

    def ses(self, message: dict):
        return self.post("ses", message, {"x-amz-sns-message-type": message.get("Type", "")})

    def postmark(self, record: dict, auth=(POSTMARK_USER, POSTMARK_PASSWORD)):
        return self.post("postmark", record, auth=auth)

    def sendgrid(self, events: list[dict], *, age: float = 0, key=SENDGRID_KEY):
        body = json.dumps(events).encode()
        return self.post("sendgrid", body, sendgrid_headers(body, self.clock.now - age, key))

    def mailgun(self, recipient: str, event: str = "failed", **options):
        return self.post("mailgun", mailgun_body(recipient, event, now=options.pop("now", self.clock.now), **options))

    def status(self, address: str) -> str:
        return self.store.subscriber(address).status


HOOK_SETTINGS = {"webhooks_ses_topics": (TOPIC,), "webhooks_postmark_user": POSTMARK_USER,
                 "webhooks_postmark_password": POSTMARK_PASSWORD, "webhooks_sendgrid_public_key": SENDGRID_PUBLIC,
                 "webhooks_mailgun_signing_key": MAILGUN_KEY}


def make_hooks(store: Store, tmp_path: Path, *, on: bool = True, **extra) -> Hooks:
    """A site with every webhook configured (``on``) or with the defaults (off)."""
    settings = Settings(db=store.url, out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox", secret_key=SECRET,
                        **{**(HOOK_SETTINGS if on else {}), **extra})
    internet, clock = Internet(), Clock()
    app = create_app(settings, store=store, transport=OutboxTransport(settings.outbox_dir, fsync=False), clock=clock,
                     fetcher=internet)
    return Hooks(TestClient(app), store, internet, clock)


@pytest.fixture
def hooks(store: Store, tmp_path: Path) -> Hooks:
    made = make_hooks(store, tmp_path)
    yield made
    made.client.close()


def _reader(store: Store, address: str = "ada@example.org") -> str:
    store.save_subscriber(build_subscriber(address, topics=[Topic("All", "*")]))
    return address


# -- the whole path: a digest over SMTP, the provider's webhook, the reader stopped -------------


def _hard_bounce(hooks: Hooks, provider: str, recipient: str, message_id: str):
    """The provider's webhook for a hard bounce of the message ``message_id`` to ``recipient``."""
    if provider == "ses":
        return hooks.ses(ses_bounce(recipient, message_id=message_id))
    if provider == "postmark":  # Postmark reports no Message-ID of ours: the address says who
        return hooks.postmark(postmark_record(recipient))
    if provider == "sendgrid":
        return hooks.sendgrid([sendgrid_event(recipient, smtp_id=message_id)])
    return hooks.mailgun(recipient, message_id=message_id.strip("<>"))


@pytest.mark.parametrize("provider", ["ses", "postmark", "sendgrid", "mailgun"])
def test_a_digest_that_bounces_later_stops_that_reader_through_each_webhook(provider, db_url, tmp_path,
                                                                              smtp_server):
    store = readers_store(db_url, 3)
    inbox = Inbox()
    settings = smtp_settings(tmp_path, smtp_server(inbox))
    assert dispatch.dispatch(store, settings, now=NOON).sent == 3
    sent = {rcpts[0]: email.message_from_bytes(data)["Message-ID"] for rcpts, data in inbox.messages}
    hooks = make_hooks(store, tmp_path)
    # The relay accepted reader001's digest; the provider reports the bounce later. Where it reports our
    # Message-ID, the address it names does not matter (a forward, an alias): the Message-ID says who.
    named = "reader001@example.org" if provider == "postmark" else "alias-of-reader001@elsewhere.example"
    answer = _hard_bounce(hooks, provider, named, sent["reader001@example.org"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 1, "new": 1}
    assert {reader.email: reader.status for reader in store.subscribers()} == {
        "reader000@example.org": "active", "reader001@example.org": "bouncing", "reader002@example.org": "active"}
    (event,) = store.recent_bounces()
    assert (event.kind, event.source, event.status) == (HARD, provider, "5.1.1")
    assert event.delivery_id is not None or provider == "postmark"
    inbox.messages.clear()
    next_day = NOON + dt.timedelta(days=1, hours=1)
    store.save_listings([Listing("daily-papers", next_day.date(), [Paper("t-next", "A Paper of the Next Day", "New.")])])
    again = dispatch.dispatch(store, settings, now=next_day, everyone=True)
    assert "reader001@example.org" not in inbox.count_by_recipient() and again.failed == 0
    assert len(inbox.messages) == 2


# -- each provider: complaint, soft bounces, a retry recorded once -------------------------------


def test_ses_bounce_complaint_and_a_resent_notification(hooks: Hooks):
    ada, bob = _reader(hooks.store), _reader(hooks.store, "bob@example.org")
    bounce = ses_bounce(ada, version="1")  # SHA1withRSA, as older topics sign
    assert hooks.ses(bounce).json() == {"events": 1, "new": 1}
    assert hooks.status(ada) == "bouncing"
    # SNS signs a message once and sends it again as it was when our answer got lost: a repeat is
    # answered 200 and records nothing (its SES feedback id is its reference).
    assert hooks.ses(bounce).json() == {"events": 1, "new": 0}
    assert hooks.ses(ses_complaint(bob)).json() == {"events": 1, "new": 1}
    assert hooks.status(bob) == "unsubscribed"
    for _ in range(3):  # a complained reader is never revived, nor marked bouncing, by later bounces
        assert hooks.ses(ses_bounce(bob, bounce_type="Transient")).json()["new"] == 1
    assert hooks.status(bob) == "unsubscribed"
    assert hooks.store.bounce_counts() == {HARD: 1, COMPLAINT: 1, SOFT: 3}
    assert hooks.internet.asked == [CERT_URL]  # the certificate is fetched once


def test_ses_transient_bounces_count_as_soft_and_other_notifications_are_ignored(hooks: Hooks):
    ada = _reader(hooks.store)
    for number in range(2):
        assert hooks.ses(ses_bounce(ada, bounce_type="Transient")).json()["new"] == 1
    assert hooks.status(ada) == "active"
    undetermined = hooks.ses(ses_bounce(ada, bounce_type="Undetermined"))
    assert undetermined.json()["new"] == 1 and hooks.status(ada) == "active"
    delivery = sns_signed({"Type": "Notification", "Message": json.dumps({"notificationType": "Delivery"})})
    assert hooks.ses(delivery).json() == {"events": 0, "new": 0}
    assert hooks.ses(ses_bounce(ada, bounce_type="Transient")).json()["new"] == 1
    assert hooks.status(ada) == "bouncing"  # the third soft bounce within 7 days
    assert hooks.store.bounce_counts() == {SOFT: 3, UNKNOWN: 1}


@pytest.mark.parametrize(("kind", "expected", "status"), [
    ("HardBounce", HARD, "bouncing"), ("SoftBounce", SOFT, "active"), ("Transient", SOFT, "active"),
    ("SpamComplaint", COMPLAINT, "unsubscribed"), ("DnsError", UNKNOWN, "active"), ("Blocked", UNKNOWN, "active"),
])  # fmt: skip
def test_postmark_types(hooks: Hooks, kind: str, expected: str, status: str):
    ada = _reader(hooks.store)
    record = postmark_record(ada, kind)
    assert hooks.postmark(record).json() == {"events": 1, "new": 1}
    assert hooks.postmark(record).json() == {"events": 1, "new": 0}  # Postmark's retry: recorded once
    assert hooks.status(ada) == status
    assert hooks.store.bounce_counts() == {expected: 1}


def test_postmark_complaint_is_not_undone_and_other_records_are_ignored(hooks: Hooks):
    ada = _reader(hooks.store)
    assert hooks.postmark(postmark_record(ada, "SpamComplaint")).status_code == 200
    for _ in range(3):
        hooks.postmark(postmark_record(ada, "SoftBounce"))
    assert hooks.status(ada) == "unsubscribed"
    opened = hooks.postmark({"RecordType": "Open", "Recipient": ada, "MessageID": "x"})
    assert opened.json() == {"events": 0, "new": 0}
    assert hooks.postmark({"RecordType": "Bounce", "Type": "HardBounce"}).status_code == 400  # no ID, no Email
    assert hooks.postmark(b"[not json").status_code == 400


def test_sendgrid_events(hooks: Hooks):
    ada, bob, cy = (_reader(hooks.store, f"{name}@example.org") for name in ("ada", "bob", "cy"))
    batch = [sendgrid_event(ada), sendgrid_event(bob, "spamreport"), sendgrid_event(cy, kind="blocked"),
             sendgrid_event(cy, "delivered"), {"event": "bounce"}, "junk"]
    answer = hooks.sendgrid(batch)
    assert answer.status_code == 200 and answer.json() == {"events": 3, "new": 3}
    assert (hooks.status(ada), hooks.status(bob), hooks.status(cy)) == ("bouncing", "unsubscribed", "active")
    # SendGrid's retry signs the same events again (a new timestamp): recorded once.
    hooks.clock.now += 1
    assert hooks.sendgrid(batch).json() == {"events": 3, "new": 0}
    hooks.sendgrid([sendgrid_event(bob, kind="blocked") for _ in range(3)])
    assert hooks.status(bob) == "unsubscribed"
    dropped = [sendgrid_event(cy, "dropped") | {"reason": "Bounced Address"}]
    assert hooks.sendgrid(dropped).json()["new"] == 1 and hooks.status(cy) == "bouncing"
    assert hooks.store.bounce_counts() == {HARD: 2, COMPLAINT: 1, SOFT: 4}


def test_mailgun_events(hooks: Hooks):
    ada, bob = _reader(hooks.store), _reader(hooks.store, "bob@example.org")
    assert hooks.mailgun(ada, severity="temporary").json() == {"events": 1, "new": 1}
    assert hooks.status(ada) == "active"
    assert hooks.mailgun(ada).json()["new"] == 1 and hooks.status(ada) == "bouncing"
    assert hooks.mailgun(bob, "complained").json()["new"] == 1 and hooks.status(bob) == "unsubscribed"
    for _ in range(3):
        hooks.mailgun(bob, severity="temporary")
    assert hooks.status(bob) == "unsubscribed"
    assert hooks.mailgun(ada, "delivered").json() == {"events": 0, "new": 0}
    # Mailgun's retry of an event: a new token and signature, the same event id: recorded once.
    assert hooks.mailgun(ada, event_id="retried-event").json()["new"] == 1
    assert hooks.mailgun(ada, event_id="retried-event").json() == {"events": 1, "new": 0}


# -- refused: unsigned, forged, stale, replayed -----------------------------------------------------


def _nothing_changed(hooks: Hooks, *readers: str) -> None:
    assert hooks.store.bounce_counts() == {}
    assert all(hooks.status(reader) == "active" for reader in readers)


def test_ses_refuses_unsigned_forged_and_foreign_messages(hooks: Hooks):
    ada = _reader(hooks.store)
    good = ses_bounce(ada)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tampered = dict(good, Message=good["Message"].replace("Permanent", "Transient"))
    unsigned = {name: value for name, value in good.items() if name != "Signature"}
    foreign_topic = sns_signed({"Type": "Notification", "Message": good["Message"],
                                "TopicArn": "arn:aws:sns:eu-west-1:210987654321:theirs"})
    expired = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-expired.pem"
    hooks.internet.pages[expired] = _certificate(SNS_KEY, days=(-60, -1))
    other_signer = sns_signed({"Type": "Notification", "Message": good["Message"]}, key=other_key)
    old_certificate = sns_signed({"Type": "Notification", "Message": good["Message"]}, cert_url=expired)
    for message in (tampered, unsigned, foreign_topic, other_signer, old_certificate, dict(good, SignatureVersion="3")):
        answer = hooks.ses(message)
        assert answer.status_code == 401, message
        assert answer.json()["detail"].startswith("refused: ")
    assert hooks.post("ses", b"\x00not json").status_code == 401
    _nothing_changed(hooks, ada)


@pytest.mark.parametrize("cert_url", [
    "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
    "https://sns.s3-eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",  # an S3 bucket named sns
    "https://sns.s3-accelerate.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",  # not the topic's region
    "https://evil.example/SimpleNotificationService-x.pem",
    "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",  # not https
    "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
    "https://user@sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.txt",
    "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/x.pem",
    "file:///etc/ssl/sns.pem",
])  # fmt: skip
def test_ses_refuses_a_certificate_url_off_sns_without_fetching_it(hooks: Hooks, cert_url: str):
    ada = _reader(hooks.store)
    hooks.internet.pages[cert_url] = SNS_CERT  # would verify, if it were ever fetched
    answer = hooks.ses(sns_signed({"Type": "Notification", "Message": ses_bounce(ada)["Message"]}, cert_url=cert_url))
    assert answer.status_code == 401 and "SigningCertURL" in answer.json()["detail"]
    assert hooks.internet.asked == []
    _nothing_changed(hooks, ada)


def test_ses_subscription_is_confirmed_only_for_a_configured_topic(hooks: Hooks):
    confirmation = {"Type": "SubscriptionConfirmation", "Token": "2336412f37", "SubscribeURL": SUBSCRIBE_URL,
                    "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL."}
    theirs = sns_signed({**confirmation, "TopicArn": "arn:aws:sns:eu-west-1:210987654321:theirs"})
    assert hooks.ses(theirs).status_code == 401
    assert hooks.internet.asked == []  # neither the certificate nor the SubscribeURL
    elsewhere = sns_signed({**confirmation, "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription"})
    assert hooks.ses(elsewhere).status_code == 401 and hooks.internet.asked == []
    forged = dict(sns_signed(confirmation), Token="another")
    assert hooks.ses(forged).status_code == 401 and SUBSCRIBE_URL not in hooks.internet.asked
    answer = hooks.ses(sns_signed(confirmation, version="1"))
    assert answer.status_code == 200 and answer.json() == {"confirmed": TOPIC}
    assert hooks.internet.asked == [CERT_URL, SUBSCRIBE_URL]


def test_ses_answers_502_when_the_certificate_cannot_be_fetched(hooks: Hooks):
    ada = _reader(hooks.store)
    missing = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-gone.pem"
    answer = hooks.ses(sns_signed({"Type": "Notification", "Message": ses_bounce(ada)["Message"]}, cert_url=missing))
    assert answer.status_code == 502  # SNS tries again later; nothing is lost, nothing changed
    _nothing_changed(hooks, ada)


def test_postmark_refuses_missing_and_wrong_credentials(hooks: Hooks):
    ada = _reader(hooks.store)
    record = postmark_record(ada)
    for auth in (None, (POSTMARK_USER, "wrong"), ("someone", POSTMARK_PASSWORD), (POSTMARK_USER, "")):
        answer = hooks.postmark(record, auth=auth)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
    token = hooks.post("postmark", record, {"Authorization": f"Bearer {POSTMARK_PASSWORD}"})
    assert token.status_code == 401
    _nothing_changed(hooks, ada)


def test_sendgrid_refuses_unsigned_forged_stale_and_replayed_requests(hooks: Hooks):
    ada = _reader(hooks.store)
    body = json.dumps([sendgrid_event(ada)]).encode()
    headers = sendgrid_headers(body, hooks.clock.now)
    refusals = {
        "unsigned": hooks.post("sendgrid", body, {"Content-Type": "application/json"}),
        "another key": hooks.sendgrid([sendgrid_event(ada)], key=ec.generate_private_key(ec.SECP256R1())),
        "tampered": hooks.post("sendgrid", body.replace(b'"bounce"', b'"spamreport"', 1), headers),
        "other time": hooks.post("sendgrid", body, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp":
                                                    str(int(hooks.clock.now) - 1)}),
        "stale": hooks.sendgrid([sendgrid_event(ada)], age=webhooks.MAX_AGE_SECONDS + 1),
        "from the future": hooks.sendgrid([sendgrid_event(ada)], age=-webhooks.MAX_AGE_SECONDS - 1),
        "garbled": hooks.post("sendgrid", body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": "%%%"}),
    }
    assert {name: answer.status_code for name, answer in refusals.items()} == dict.fromkeys(refusals, 401)
    _nothing_changed(hooks, ada)
    assert hooks.post("sendgrid", body, headers).json() == {"events": 1, "new": 1}
    replayed = hooks.post("sendgrid", body, headers)
    assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]
    hooks.clock.now += webhooks.MAX_AGE_SECONDS + 1  # later, the same request is stale as well
    assert hooks.post("sendgrid", body, headers).status_code == 401
    assert hooks.store.bounce_counts() == {HARD: 1}


def test_mailgun_refuses_unsigned_forged_stale_and_replayed_requests(hooks: Hooks):
    ada = _reader(hooks.store)
    now = hooks.clock.now
    good = mailgun_body(ada, now=now)
    unsigned = {"event-data": good["event-data"]}
    forged = mailgun_body(ada, now=now, key="key-of-someone-else")
    tampered = json.loads(json.dumps(good))
    tampered["event-data"]["event"] = "complained"
    other_token = json.loads(json.dumps(good))
    other_token["signature"]["token"] = "0" * 50
    refusals = [unsigned, forged, other_token, mailgun_body(ada, now=now - webhooks.MAX_AGE_SECONDS - 1),
                mailgun_body(ada, now=now + webhooks.MAX_AGE_SECONDS + 1), b"not json", {"signature": "x"}]
    assert [hooks.post("mailgun", body).status_code for body in refusals] == [401] * len(refusals)
    _nothing_changed(hooks, ada)
    assert hooks.post("mailgun", good).json() == {"events": 1, "new": 1}
    replayed = hooks.post("mailgun", good)
    assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]
    # The same token with another event: a replayed signature is refused whatever it carries.
    assert hooks.post("mailgun", dict(good, **{"event-data": tampered["event-data"]})).status_code == 401
    assert hooks.status(ada) == "bouncing" and hooks.store.bounce_counts() == {HARD: 1}


def test_a_request_whose_events_could_not_be_recorded_is_taken_on_the_retry(hooks: Hooks, monkeypatch):
    ada = _reader(hooks.store)
    good = mailgun_body(ada, now=hooks.clock.now)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(hooks.store, "record_bounce", broken)
    client = TestClient(hooks.client.app, raise_server_exceptions=False)
    assert client.post("/webhooks/mailgun", content=json.dumps(good)).status_code == 500
    monkeypatch.undo()
    assert hooks.post("mailgun", good).json() == {"events": 1, "new": 1}  # the provider's retry


# -- off by default; secrets stay secret ---------------------------------------------------------


@pytest.mark.parametrize("provider", ["ses", "postmark", "sendgrid", "mailgun"])
def test_each_webhook_is_off_until_configured(store: Store, tmp_path: Path, provider: str, caplog):
    off = make_hooks(store, tmp_path, on=False)
    _reader(store)
    answer = off.post(provider, b"{}", {"Content-Type": "application/json"})
    assert answer.status_code == 404
    # Half a Postmark configuration (a user, no password) is off as well, and the app says so.
    with caplog.at_level("WARNING"):
        half = make_hooks(store, tmp_path, webhooks_postmark_password="")
    assert "/webhooks/postmark is off" in caplog.text
    assert half.postmark(postmark_record("ada@example.org"), auth=(POSTMARK_USER, "")).status_code == 404
    assert store.bounce_counts() == {}


def test_webhook_secrets_never_reach_answers_or_logs(hooks: Hooks, caplog):
    ada = _reader(hooks.store)
    caplog.set_level("DEBUG")
    answers = [hooks.postmark(postmark_record(ada), auth=(POSTMARK_USER, "wrong")),
               hooks.post("mailgun", mailgun_body(ada, now=hooks.clock.now, key="wrong")),
               hooks.postmark(postmark_record(ada)), hooks.mailgun(ada)]
    shown = caplog.text + "".join(answer.text + str(answer.headers) for answer in answers)
    assert "refused" in caplog.text and "is now bouncing" in caplog.text
    assert POSTMARK_PASSWORD not in shown and MAILGUN_KEY not in shown


def test_webhook_settings_from_the_environment(tmp_path: Path):
    settings = load_settings(environ={
        "PAPERWIRE_WEBHOOKS_SES_TOPICS": f"{TOPIC}, arn:aws:sns:us-east-1:123456789012:other",
        "PAPERWIRE_WEBHOOKS_SENDGRID_PUBLIC_KEY": SENDGRID_PUBLIC,
        "PAPERWIRE_WEBHOOKS_MAILGUN_SIGNING_KEY": MAILGUN_KEY}, cwd=tmp_path)
    assert settings.webhooks_ses_topics == (TOPIC, "arn:aws:sns:us-east-1:123456789012:other")
    assert settings.webhooks_sendgrid_public_key == SENDGRID_PUBLIC
    pem = SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "paperwire.toml").write_text(f'[webhooks]\nsendgrid_public_key = """{pem.decode()}"""\n')
    assert load_settings(environ={}, cwd=tmp_path).webhooks_sendgrid_public_key == SENDGRID_PUBLIC
    rsa_key = base64.b64encode(SNS_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with pytest.raises(Exception, match="not an ECDSA P-256 public key"):
        load_settings(environ={"PAPERWIRE_WEBHOOKS_SENDGRID_PUBLIC_KEY": rsa_key}, cwd=tmp_path)


def test_an_oversized_body_is_refused_before_it_is_read(hooks: Hooks):
    from paperwire.web.hooks import MAX_BODY_BYTES

    answer = hooks.post("sendgrid", b"[" + b" " * MAX_BODY_BYTES + b"]", sendgrid_headers(b"[]", hooks.clock.now))
    assert answer.status_code == 413


# -- parsers of outside input: any JSON gives events or a clear refusal, never a crash -------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                    max_leaves=20)
FIELDS = st.sampled_from(["event", "email", "sg_event_id", "type", "reason", "smtp-id", "status", "RecordType", "ID",
                          "Type", "Email", "Details", "severity", "recipient", "id", "delivery-status", "message"])
EVENTS = st.dictionaries(FIELDS, st.one_of(JSON, st.sampled_from(
    ["bounce", "blocked", "dropped", "spamreport", "failed", "complained", "permanent", "Bounce", "HardBounce",
     "SpamComplaint", "a@example.org", "<x@y>"])), max_size=8)


def _checked(events: list[webhooks.Event]) -> None:
    for event in events:
        assert event.kind in KINDS and event.reference and len(event.reference) <= webhooks.REFERENCE_CHARS
        assert "\n" not in event.diagnostic and "\n" not in event.recipient


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, EVENTS, st.lists(EVENTS, max_size=4)))
def test_any_json_gives_events_or_a_refusal(value):
    body = json.dumps(value).encode()
    for parse in (webhooks.postmark_events, webhooks.sendgrid_events,
                  lambda raw: webhooks.mailgun_events(value) if isinstance(value, dict) else []):
        try:
            _checked(parse(body))
        except webhooks.Malformed:
            pass
    for notice in (value, {"notificationType": "Bounce", "bounce": value, "mail": value},
                   {"eventType": "Complaint", "complaint": value}):
        try:
            _checked(sns.ses_events({"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(notice)}))
        except webhooks.Malformed:
            pass


@given(st.binary(max_size=300) | JSON.map(lambda value: json.dumps(value).encode()))
def test_any_body_is_an_sns_message_or_refused(raw: bytes):
    try:
        message = sns.envelope(raw, [TOPIC])
    except webhooks.Refused:
        return
    assert message["TopicArn"] == TOPIC and sns.is_sns_url(message["SigningCertURL"], "eu-west-1", certificate=True)
