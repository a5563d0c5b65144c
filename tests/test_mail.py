"""MIME messages: structure, headers, one-click unsubscribe, header-injection safety, DKIM."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header

import dkim
import pytest
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from paperwire.config import Settings
from paperwire.mail import Signer, build_message, message_bytes
from paperwire.models import Digest, DigestItem, DigestSection, Paper, Subscriber, Topic
from paperwire.transport import Outcome

NOW = dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.timezone.utc)
SETTINGS = Settings(base_url="https://papers.example.org", sender_name="paperwire", sender_email="digest@example.org",
                    unsubscribe_email="unsubscribe@example.org", list_id="digest.example.org",
                    reply_to="editors@example.org")


@dataclass
class Rendered:
    subject: str = "2 new papers on RAG (Mar 11)"
    html: str = "<html><body><p>Hello <b>reader</b> – ü</p></body></html>"
    text: str = "Hello reader – ü\n"


def digest(name: str = "Ada", email_address: str = "ada@example.org") -> Digest:
    reader = Subscriber(email=email_address, name=name, token="tok123", topics=[Topic("RAG", "RAG")])
    return Digest(subscriber=reader, edition="2024-03-11", listing_date=dt.date(2024, 3, 11), sections=())


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.default)


def test_structure_and_headers():
    msg = parse(message_bytes(build_message(digest(), Rendered(), SETTINGS, now=NOW)))
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == "Hello reader – ü\n" and "<b>reader</b>" in html.get_content()
    assert msg["Subject"] == "2 new papers on RAG (Mar 11)"
    assert msg["From"] == "paperwire <digest@example.org>" and msg["To"] == "Ada <ada@example.org>"
    assert msg["Reply-To"] == "editors@example.org"
    assert msg["Date"] == "Mon, 11 Mar 2024 08:00:00 +0000"
    assert msg["Message-ID"].startswith("<2024-03-11.") and msg["Message-ID"].endswith("@example.org>")
    assert "tok123" not in msg["Message-ID"]
    assert msg["List-Id"] == "paperwire <digest.example.org>"
    assert msg["List-Unsubscribe"] == ("<https://papers.example.org/unsubscribe/tok123>, "
                                       "<mailto:unsubscribe@example.org?subject=unsubscribe%20tok123>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_same_digest_gets_the_same_message_id_and_another_digest_of_the_edition_another():
    first = build_message(digest(), Rendered(), SETTINGS, now=NOW)
    again = build_message(digest(), Rendered(), SETTINGS, now=NOW + dt.timedelta(hours=1))
    assert first["Message-ID"] == again["Message-ID"]
    # Papers added to the day's listing after the first digest went out: a second digest of the
    # same edition, which providers would drop as a duplicate if it had the same Message-ID.
    later = dataclasses.replace(digest(), sections=(DigestSection(Topic("RAG", "RAG"), (
        DigestItem(Paper(id="2403.00001", title="New"), 1.0, 1, dt.date(2024, 3, 11), ("RAG",), ()),)),))
    assert build_message(later, Rendered(), SETTINGS, now=NOW)["Message-ID"] != first["Message-ID"]
    assert "tok123" not in first["Message-ID"]


@pytest.mark.parametrize("evil", ["Eve\r\nBcc: victim@example.org", "Eve\nX-Injected: yes", "Eve\rX: y"])
def test_cr_or_lf_in_names_and_subjects_never_makes_a_header(evil):
    data = message_bytes(build_message(digest(name=evil), Rendered(subject=evil), SETTINGS, now=NOW))
    msg = parse(data)
    assert msg["Bcc"] is None and msg["X-Injected"] is None and msg["X"] is None
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block and b"\r\nX-Injected:" not in header_block


def test_non_ascii_names_are_encoded():
    data = message_bytes(build_message(digest(name="Zoë Ωmega"), Rendered(subject="Neue Papiere über MoE"),
                                       SETTINGS, now=NOW))
    assert data.isascii()
    msg = parse(data)
    assert msg["To"] == "Zoë Ωmega <ada@example.org>" and msg["Subject"] == "Neue Papiere über MoE"


def test_dkim_signature_verifies_and_covers_both_unsubscribe_headers(dkim_key):
    private, public = dkim_key
    settings = Settings(**{**SETTINGS.__dict__, "dkim_key_file": private, "dkim_selector": "pw"})
    data = message_bytes(build_message(digest(), Rendered(), settings, now=NOW), Signer.from_settings(settings))
    assert data.startswith(b"DKIM-Signature:")
    signature = parse(data)["DKIM-Signature"].replace(" ", "")
    signed = dict(part.split("=", 1) for part in signature.split(";") if "=" in part)["h"].lower().split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject", "to"} <= set(signed)
    assert "c=relaxed/relaxed" in signature

    def dns(name, timeout=5):
        assert name == b"pw._domainkey.example.org."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(data, dnsfunc=dns)
    tampered = data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                            b"List-Unsubscribe-Post: List-Unsubscribe=Other")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_unreadable_dkim_key_is_a_config_error(tmp_path):
    from paperwire.errors import ConfigError
    settings = Settings(dkim_key_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="dkim_key_file"):
        Signer.from_settings(settings)


def test_html_is_sent_as_7bit_with_character_references_and_long_lines_fall_back_to_qp():
    import html as html_module

    short = parse(message_bytes(build_message(digest(), Rendered(), SETTINGS, now=NOW)))
    part = short.get_payload()[1]
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert html_module.unescape(part.get_content()).replace("\r\n", "\n") == Rendered().html
    long_line = "<p>" + "ü" * 1200 + "</p>"
    data = message_bytes(build_message(digest(), Rendered(html=long_line), SETTINGS, now=NOW))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    part = parse(data).get_payload()[1]
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert part.get_content().rstrip("\r\n") == long_line


def test_html_that_character_references_would_push_past_gmails_clip_goes_quoted_printable():
    """Gmail clips HTML over ~102 KB; render.py measures it as UTF-8. 30,000 CJK characters in
    short lines are ~91 KB as UTF-8 but ~240 KB as character references, so the part must go
    quoted-printable (decoded: the UTF-8 size); an ASCII page is the same size both ways and stays 7-bit."""
    from paperwire.render import GMAIL_CLIP_BYTES

    cjk = "\n".join("<p>" + "中文摘要" * 10 + "</p>" for _ in range(750))
    assert len(cjk.encode()) < GMAIL_CLIP_BYTES < len(cjk.encode("ascii", "xmlcharrefreplace"))
    data = message_bytes(build_message(digest(), Rendered(html=cjk), SETTINGS, now=NOW))
    html_head, html_body = data.split(b'Content-Type: text/html; charset="utf-8"\r\n', 1)[1].split(b"\r\n\r\n", 1)
    assert html_head == b"Content-Transfer-Encoding: quoted-printable"
    assert b"&#" not in html_body and len(html_body) > GMAIL_CLIP_BYTES  # on the wire; decoded it is the UTF-8
    part = parse(data).get_payload()[1]
    assert len(part.get_content().rstrip("\r\n").encode()) < GMAIL_CLIP_BYTES
    assert part.get_content().replace("\r\n", "\n").rstrip("\n") == cjk

    ascii_page = "\n".join("<p>" + "abstract" * 10 + "</p>" for _ in range(1300))  # over the clip either way
    assert len(ascii_page) > GMAIL_CLIP_BYTES
    data = message_bytes(build_message(digest(), Rendered(html=ascii_page), SETTINGS, now=NOW))
    assert b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n' in data


def test_long_subjects_are_folded_and_read_back_whole():
    subject = "15 new papers on " + ", ".join(f"topic number {i}" for i in range(12)) + " (Mar 11)"
    data = message_bytes(build_message(digest(), Rendered(subject=subject), SETTINGS, now=NOW))
    assert max(len(line) for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")) <= 78
    assert parse(data)["Subject"] == subject


def test_text_part_round_trips_every_kind_of_line():
    text = "plain line\nx = y needs escaping\ntrailing space \n" + "long " * 40 + "\nünïcödé…\n.dot first\n"
    data = message_bytes(build_message(digest(), Rendered(text=text), SETTINGS, now=NOW))
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 998
    part = parse(data).get_payload()[0]
    assert part.get_content().replace("\r\n", "\n") == text


BLOCK = "<div>Über <b>MoE</b> = mixture of experts…</div>\n<p>" + "word " * 30 + "</p>"
BODY_CASES = {
    "blocks between lines": "<html>\n" + BLOCK + "\n<hr>\n" + BLOCK + "\n</html>",
    "CR at a line end": "head\r\nblock\ntail",
    "lone CR inside": "a\rb\nc\rd\r\ne\nf",
    "long line": "x\n<p>" + "é" * 1200 + "</p>\ny",
    "trailing spaces and =": "x = 1 \ny=2\t\n  \nz",
    "tab or space before a line break": "x" * 74 + "\t\ny\n" + "x" * 74 + " \nz",
    "lone dots and controls": ".\na\x0cb\n.\n.\n\x1b.\n.",
}


@pytest.mark.parametrize("body", BODY_CASES.values(), ids=BODY_CASES)
def test_bodies_go_out_7bit_clean_and_read_back_whole(body):
    data = build_message(digest(), Rendered(html=body, text=body), SETTINGS, now=NOW).data
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 998
    assert b"\r" not in data.replace(b"\r\n", b"")  # never a bare CR on the wire
    text, _ = parse(data).get_payload()
    assert text.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n").replace("\r", "\n")


def test_web_mails_are_signed_too(dkim_key):
    from paperwire.web.mailer import Letter, Mailer

    private, public = dkim_key
    settings = Settings(**{**SETTINGS.__dict__, "dkim_key_file": private, "dkim_selector": "pw"})
    sent = []

    class Keep:
        def send_all(self, messages, on_outcome, stop=None):
            for msg in messages:
                sent.append(msg.data)
                on_outcome(Outcome(msg.key, "sent", 1, 250, "ok"))

    Mailer(settings, Keep()).send(Letter("ada@example.org", "Confirm your subscription", "Click.", "<p>Click.</p>"))
    (data,) = sent
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public)


@pytest.mark.parametrize("seed", range(5))
def test_plain_headers_we_fold_read_back_whole_within_78_characters(seed):
    import random

    rng = random.Random(seed)
    words = ["a", "papers", "(Mar", "11)", "+3", "more", "scaling", "laws,", "x" * 40, "y" * 76,
             "<https://papers.example.org/unsubscribe/tok123>,", "<mailto:u@example.org?subject=unsubscribe%20t>"]
    for _ in range(200):
        subject = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        data = message_bytes(build_message(digest(), Rendered(subject=subject), SETTINGS, now=NOW))
        lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert all(len(line) <= 78 or (line.startswith(b"Subject: ") and b" " not in line[9:]) for line in lines)
        assert parse(data)["Subject"] == subject


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["Quantum", "“QEC”", "✓", "über", "MoE", "(Nov", "30)", "新しい", "論文", "Zoë", "&",
                                 "<Routing>,", "x" * 40, "=?utf-8?q?x?="]), min_size=1, max_size=25))
def test_a_subject_that_needs_encoding_reads_back_with_every_space(words):
    """The email package's folding could break a line between two encoded words and so lose the
    space between them ("Quantum “QEC” ✓" read back as "Quantum “QEC”✓"): RFC 2047 decoders
    ignore whitespace between encoded words. Decoded here with the package's RFC 2047 decoder
    from the raw header, unfolded as RFC 5322 says."""
    subject = " ".join(words)
    data = message_bytes(build_message(digest(), Rendered(subject=subject), SETTINGS, now=NOW))
    raw = re.search(rb"^Subject: (.*?)\r\n(?! )", data, re.MULTILINE | re.DOTALL).group(1)
    assert data.isascii() and all(len(line) <= 78 for line in raw.split(b"\r\n"))
    unfolded = raw.replace(b"\r\n", b"").decode("ascii")
    assert str(make_header(decode_header(unfolded))) == subject


def test_headers_that_need_encoding_still_go_through_the_email_package():
    for subject in ("Über " * 30, "=?utf-8?q?not_an_encoded_word?= " * 3, "z" * 120):
        data = message_bytes(build_message(digest(), Rendered(subject=subject.strip()), SETTINGS, now=NOW))
        assert data.isascii() and parse(data)["Subject"] == subject.strip()


def test_date_keeps_the_offset_it_was_given():
    berlin = NOW.astimezone(dt.timezone(dt.timedelta(hours=1)))
    utc = parse(message_bytes(build_message(digest(), Rendered(), SETTINGS, now=NOW)))["Date"]
    local = parse(message_bytes(build_message(digest(), Rendered(), SETTINGS, now=berlin)))["Date"]
    assert (utc, local) == ("Mon, 11 Mar 2024 08:00:00 +0000", "Mon, 11 Mar 2024 09:00:00 +0100")


def test_date_is_now_in_utc_when_not_given():
    from email.utils import parsedate_to_datetime

    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    date = parse(message_bytes(build_message(digest(), Rendered(), SETTINGS)))["Date"]
    after = dt.datetime.now(dt.timezone.utc)
    assert date.endswith(" +0000") and before <= parsedate_to_datetime(date) <= after



def test_date_of_now_follows_the_clock_second_by_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The current Date is formatted once a second (mail._utc_date keeps it): each new second is a new value."""
    from types import SimpleNamespace

    from paperwire import mail

    clock = iter([1_710_144_000.2, 1_710_144_000.9, 1_710_144_001.0, 1_710_144_000.5])
    monkeypatch.setattr(mail, "time", SimpleNamespace(time=lambda: next(clock)))
    assert [mail.date() for _ in range(4)] == ["Mon, 11 Mar 2024 08:00:00 +0000"] * 2 + [
        "Mon, 11 Mar 2024 08:00:01 +0000", "Mon, 11 Mar 2024 08:00:00 +0000"]


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "\t", "=", ".", "\n", "\n\n", "\r", "ü", "…", "\x0c", "\x7f",
                                 "漢", "x" * 40, "y" * 75]), max_size=60).map("".join))
def test_text_is_encoded_paragraph_by_paragraph_exactly_as_whole(text):
    """Quoted-printable paragraph by paragraph (encodings kept by content) gives binascii's bytes for the whole."""
    import binascii

    from paperwire import mail

    whole = text.replace("\r\n", "\n").replace("\r", "\n")
    for _ in range(2):  # the second time from the kept paragraphs
        assert mail._quoted_printable(text) == binascii.b2a_qp(whole.encode(), istext=True).replace(b"\n", b"\r\n")


@hypothesis_settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\n", b"xyz", b"q" * 7]), max_size=40).map(b"".join), st.integers(1, 12))
def test_a_line_over_the_limit_is_found_wherever_it_is(data, limit):
    """The 7-bit HTML's long-line check measures only the lines through every (limit + 1)-th byte:
    it finds exactly the texts with a line over the limit."""
    from paperwire import mail

    assert mail._has_line_over(data, limit) == (max(map(len, data.split(b"\n"))) > limit)
