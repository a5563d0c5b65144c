"""Bounce and complaint messages as mail systems write them, made by the tests (not copied).

Each function returns the raw bytes a bounce mailbox would hold: a Postfix-style DSN
(RFC 3464), a delay notice, a success report, an ARF complaint (RFC 5965), an Exim-style
bounce without a DSN part, and an out-of-office reply.
"""

from __future__ import annotations

CRLF = "\r\n"


def _join(lines: list[str]) -> bytes:
    return CRLF.join(lines).encode()


def dsn(to: str, recipient: str, *, action: str = "failed", status: str = "5.1.1",
        diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown in local recipient table",
        message_id: str = "<orig@example.org>", date: str = "Fri, 04 Dec 2026 10:00:00 +0000") -> bytes:
    """A DSN as Postfix writes it, delivered to ``to`` (the envelope sender of the original)."""
    diagnostic = diagnostic.format(r=recipient)
    return _join([
        f"Return-Path: <>",
        f"X-Original-To: {to}",
        f"Delivered-To: {to}",
        f"Date: {date}",
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        f"To: {to}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"',
        "",
        "--BOUND",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients.",
        "",
        "--BOUND",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.net",
        "Arrival-Date: Fri,  4 Dec 2026 09:59:58 +0000 (UTC)",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Recipient: rfc822;{recipient}",
        f"Action: {action}",
        f"Status: {status}",
        "Remote-MTA: dns; mx.example.net",
        f"Diagnostic-Code: {diagnostic}",
        "",
        "--BOUND",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
        "From: paperwire <digest@example.org>",
        f"To: {recipient}",
        f"Message-ID: {message_id}",
        "Subject: Your digest",
        "",
        "--BOUND--",
        "",
    ])


def complaint(to: str, recipient: str, *, message_id: str = "<orig@example.org>",
              rcpt_field: bool = True) -> bytes:
    """An ARF abuse report, as a mailbox provider's feedback loop sends it."""
    return _join([
        f"Delivered-To: {to}",
        "From: feedback@fbl.example.net",
        f"To: {to}",
        "Subject: FW: Your digest",
        "Date: Fri, 04 Dec 2026 11:00:00 +0000",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"',
        "",
        "--ARF",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is an email abuse report for an email message received from IP 192.0.2.1.",
        "",
        "--ARF",
        "Content-Type: message/feedback-report",
        "",
        "Feedback-Type: abuse",
        "User-Agent: ExampleFBL/1.0",
        "Version: 1",
        *([f"Original-Rcpt-To: <{recipient}>"] if rcpt_field else []),
        "Arrival-Date: Fri, 04 Dec 2026 10:00:00 +0000",
        "",
        "--ARF",
        "Content-Type: message/rfc822",
        "",
        "From: paperwire <digest@example.org>",
        f"To: {recipient}",
        f"Message-ID: {message_id}",
        "Subject: Your digest",
        "",
        "Your papers today.",
        "",
        "--ARF--",
        "",
    ])


def exim_bounce(to: str, recipient: str) -> bytes:
    """A bounce in Exim's own words, with no machine-readable part."""
    return _join([
        f"Delivered-To: {to}",
        "From: Mail Delivery System <Mailer-Daemon@mail.example.net>",
        f"To: {to}",
        "Subject: Mail delivery failed: returning message to sender",
        "Date: Fri, 04 Dec 2026 10:00:00 +0000",
        "Auto-Submitted: auto-replied",
        "",
        "This message was created automatically by mail delivery software.",
        "",
        "A message that you sent could not be delivered to one or more of its",
        "recipients. This is a permanent error. The following address(es) failed:",
        "",
        f"  {recipient}",
        "    SMTP error from remote mail server after RCPT TO:<" + recipient + ">:",
        "    550 5.1.1 The email account that you tried to reach does not exist",
        "",
        "------ This is a copy of the message, including all the headers. ------",
        "",
        "Message-ID: <orig@example.org>",
        "",
    ])


def out_of_office(to: str) -> bytes:
    return _join([
        f"Delivered-To: {to}",
        "From: Ada <ada@example.net>",
        f"To: {to}",
        "Subject: Automatic reply: Your digest",
        "Auto-Submitted: auto-replied",
        "Date: Fri, 04 Dec 2026 10:00:00 +0000",
        "",
        "I am away until Monday.",
        "",
    ])
