"""What a message that came back says: a hard or soft bounce, a complaint, an auto-reply.

Read in order of how much the form can be trusted:

1. an ARF feedback report (RFC 5965, ``multipart/report; report-type=feedback-report``):
   a complaint ("this is spam") forwarded by a mailbox provider;
2. a DSN (RFC 3464, ``report-type=delivery-status``): per recipient an Action and a
   Status (``5.1.1`` hard, ``4.2.2`` soft); "delayed" is soft, "delivered" is not a failure;
3. anything else a bounce detector of GNU Mailman's ``flufl.bounce`` recognises (the
   home-made formats of old or odd mail servers): permanent is hard, temporary soft;
4. an auto-reply or out-of-office (``Auto-Submitted``, ``X-Autoreply``, the usual subjects),
   which is ignored;
5. anything else is ``unknown``: kept and reported, never acted on.

Pure and total: any bytes give a :class:`Report`, never an exception (a mailbox holds
whatever anyone sent to it). Which delivery a report is about is decided elsewhere
(``bounces.record``): by the VERP address it came to, then the original Message-ID, then
the recipient.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from ..normalize import clean_line, shorten

HARD, SOFT, COMPLAINT, AUTO_REPLY, UNKNOWN = "hard", "soft", "complaint", "auto-reply", "unknown"
KINDS = (HARD, SOFT, COMPLAINT, AUTO_REPLY, UNKNOWN)
DIAGNOSTIC_CHARS = 500  # of the server's words kept with an event
# Where a report was delivered to (the VERP address it answers): Postfix writes X-Original-To
# and Delivered-To, Exim Envelope-To; To is what the reporting server wrote.
_ADDRESSED_TO = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([245])\d\d\b")
_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^>\s]{1,250}>)", re.IGNORECASE | re.MULTILINE)
_AUTO_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit"
                           r"|absence|vacation|away from)", re.IGNORECASE)
# Feedback types that mean "the reader did not want this" (RFC 5965 section 7.3).
_COMPLAINT_TYPES = {"abuse", "fraud", "virus", "other", ""}

log = logging.getLogger(__name__)
# flufl.bounce logs a traceback whenever one of its detectors chokes on a message, which odd
# mail makes routine; such a message simply goes on to the next rule (logged here at debug).
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Report:
    kind: str  # one of KINDS
    recipients: tuple[str, ...] = ()  # the original recipients it is about, as reported (may be none)
    status: str = ""  # the enhanced status code (5.1.1), else the SMTP code's class (5.0.0), else ""
    diagnostic: str = ""  # the reporting server's words: one clean line
    message_ids: tuple[str, ...] = ()  # Message-IDs of the original message quoted in it
    addressed_to: tuple[str, ...] = ()  # where the report was delivered: our VERP address, if any


def classify(raw: bytes) -> Report:
    """The :class:`Report` of one message as it came (its bytes)."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        return _classify(message, raw)
    except Exception as exc:  # a message no parser can read is still one message: unknown
        log.debug("unreadable message", exc_info=exc)
        return Report(UNKNOWN, diagnostic=diagnostic_line(f"unreadable: {type(exc).__name__}: {exc}"))


def _classify(message: Message, raw: bytes) -> Report:
    addressed_to = tuple(dict.fromkeys(address for _, address in getaddresses(
        [str(value) for name in _ADDRESSED_TO for value in message.get_all(name, [])]) if "@" in address))
    own = str(message.get("Message-ID", "")).strip()  # the report's own id is not the original's
    message_ids = tuple(found for found in dict.fromkeys(_MESSAGE_ID.findall(_text(raw))) if found != own)
    report_type = message.get_param("report-type", "", header="content-type")
    report_type = report_type.lower() if isinstance(report_type, str) else ""
    if message.get_content_type() == "multipart/report" and report_type == "feedback-report":
        found = _feedback(message)
        if found is not None:
            return Report(found[0], found[1], "", found[2], message_ids, addressed_to)
    if message.get_content_type() == "multipart/report" and report_type == "delivery-status":
        found = _delivery_status(message)
        if found is not None:
            return Report(found[0], found[1], found[2], found[3], message_ids, addressed_to)
    found = _heuristic(message, raw)
    if found is not None:
        return Report(found[0], found[1], found[2], found[3], message_ids, addressed_to)
    if _is_auto_reply(message):
        return Report(AUTO_REPLY, diagnostic=diagnostic_line(str(message.get("Subject", ""))),
                      addressed_to=addressed_to)
    return Report(UNKNOWN, diagnostic=diagnostic_line(str(message.get("Subject", ""))), message_ids=message_ids,
                  addressed_to=addressed_to)


def _feedback(message: Message) -> tuple[str, tuple[str, ...], str] | None:
    """(kind, recipients, diagnostic) of an ARF report, from its machine-readable part."""
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _fields_of(part)
        feedback_type = fields.get("feedback-type", "").strip().lower()
        recipients = tuple(address for _, address in getaddresses(
            [value for name, value in fields.items() if name == "original-rcpt-to"]) if "@" in address)
        if not recipients:  # most providers leave it out: the quoted original's To says it
            recipients = _original_recipients(message)
        kind = COMPLAINT if feedback_type in _COMPLAINT_TYPES else UNKNOWN
        return kind, recipients, diagnostic_line(f"feedback report: {feedback_type or 'unspecified'}"
                                       + (f" ({fields['user-agent']})" if fields.get("user-agent") else ""))
    return None


def _delivery_status(message: Message) -> tuple[str, tuple[str, ...], str, str] | None:
    """(kind, recipients, status, diagnostic) of a DSN: the worst of its recipients' actions."""
    failed, delayed, fine = [], [], []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _field_blocks(part):  # the per-message block has no Action: it never counts
            action = block.get("action", "").strip().lower()
            recipient = _address(block.get("original-recipient") or block.get("final-recipient") or "")
            status = status_of(block.get("status", "")) or status_of(block.get("diagnostic-code", ""))
            diagnostic = block.get("diagnostic-code", "") or block.get("status", "")
            entry = (recipient, status, diagnostic)
            if action == "failed":
                failed.append(entry)
            elif action == "delayed":
                delayed.append(entry)
            elif action in ("delivered", "relayed", "expanded"):
                fine.append(entry)
    if failed:
        hard = [entry for entry in failed if not entry[1].startswith("4.")]
        chosen = hard or failed
        kind = HARD if hard else SOFT
    elif delayed:
        kind, chosen = SOFT, delayed
    elif fine:
        return (AUTO_REPLY, tuple(e[0] for e in fine if e[0]), fine[0][1],
                diagnostic_line("delivery report: " + fine[0][2]))
    else:
        return None
    recipients = tuple(dict.fromkeys(entry[0] for entry in chosen if entry[0]))
    return kind, recipients, chosen[0][1], diagnostic_line(chosen[0][2])


def _heuristic(message: Message, raw: bytes) -> tuple[str, tuple[str, ...], str, str] | None:
    """A bounce in a form of its own, as flufl.bounce's detectors read it."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # one detector choking on odd input must not lose the message
        log.debug("bounce detectors failed", exc_info=exc)
        return None
    if not temporary and not permanent:
        return None
    kind, found = (HARD, permanent) if permanent else (SOFT, temporary)
    recipients = tuple(dict.fromkeys(_address(value.decode("utf-8", "replace")) for value in found))
    text = _text(raw)
    status = status_of(text) or ("5.0.0" if kind == HARD else "4.0.0")
    reply = re.search(r"^.*\b[245]\d\d[ -][^\n]*$", text, re.MULTILINE)
    return kind, tuple(r for r in recipients if r), status, diagnostic_line(reply.group(0) if reply else "")


def _is_auto_reply(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if any(message.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(str(message.get("Subject", ""))))


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a machine-readable report part (message/delivery-status: the
    per-message block, then one per recipient; message/feedback-report: one block)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed as messages: their headers are the fields
        return [{name.lower(): str(value) for name, value in block.items()} for block in payload]
    text = payload if isinstance(payload, str) else ""
    return [_parse_fields(block) for block in re.split(r"\r?\n[ \t]*\r?\n", text) if block.strip()]


def _fields_of(part: Message) -> dict[str, str]:
    """All fields of a one-block report part (later blocks win, should there be several)."""
    return {name: value for block in _field_blocks(part) for name, value in block.items()}


def _parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and name is not None:
            fields[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def _original_recipients(message: Message) -> tuple[str, ...]:
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
            if original is None and isinstance(payload, str):
                original = email.message_from_string(payload, policy=email.policy.compat32)
            if original is not None:
                return tuple(a for _, a in getaddresses([str(v) for v in original.get_all("To", [])]) if "@" in a)
    return ()


def _address(value: str) -> str:
    """The address of a DSN recipient field (``rfc822; ada@example.org``)."""
    _, _, address = value.rpartition(";")
    found = getaddresses([address.strip()])
    return found[0][1].strip() if found and "@" in found[0][1] else ""


def status_of(text: str) -> str:
    """The enhanced status code a server's words carry (``5.1.1``), else their SMTP code's class
    (``550`` is ``5.0.0``), else "" (webhooks use it too)."""
    found = _STATUS.search(text)
    if found:
        return ".".join(found.groups())
    code = _SMTP_CODE.search(text)
    return f"{code.group(1)}.0.0" if code else ""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def diagnostic_line(text: str) -> str:
    """A server's or provider's words as stored: one clean line, at most DIAGNOSTIC_CHARS."""
    return shorten(clean_line(text), DIAGNOSTIC_CHARS)
