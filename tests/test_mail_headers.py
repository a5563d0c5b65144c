"""URI and address headers on the raw bytes: never encoded words, folded only between elements.

Python's email parser decodes RFC 2047 encoded words, so a List-Unsubscribe written as
``=?utf-8?q?=3Chttps...?=`` reads back fine through it while mail providers see no URI and
RFC 8058 one-click breaks. Every check here reads the bytes themselves.
"""

from __future__ import annotations

import datetime as dt
import re

import dkim
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from paperwire.config import Settings
from paperwire.mail import Signer, build_message, message_bytes
from paperwire.mailheaders import MAX_HEADER_LINE, angle_list, header_line
from paperwire.models import Digest, Subscriber, Topic
from paperwire.web.mailer import Letter, build as build_letter

NOW = dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.timezone.utc)
TOKEN = "Zk3n0FhT1v0bq8h1cJx2-AbCdEfGhIjK"  # as long as subscribers.new_token() makes them
# One element of a URI/address list: "<...>" with no space inside, maybe a comma after it.
ELEMENT = rb"<[^<>\s]+>,?"
LINE = re.compile(rb"(?:List-Unsubscribe:)?(?: " + ELEMENT + rb")+")


class Rendered:
    subject = "2 new papers on RAG (Mar 11)"
    html = "<p>Hello</p>\n"
    text = "Hello\n"


def digest() -> Digest:
    reader = Subscriber(email="ada@example.org", name="Ada", token=TOKEN, topics=[Topic("RAG", "RAG")])
    return Digest(subscriber=reader, edition="2024-03-11", listing_date=dt.date(2024, 3, 11), sections=())


def base_url(length: int) -> str:
    """An https base URL of exactly ``length`` characters (no trailing slash, as config makes it)."""
    return "https://x.org/" + "p" * (length - 14)


def raw_field(data: bytes, name: bytes) -> list[bytes]:
    """The physical lines of header ``name`` as they are on the wire."""
    block = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(block) if line.lower().startswith(name.lower() + b":"))
    lines = [block[start]]
    for line in block[start + 1:]:
        if line[:1] not in (b" ", b"\t"):
            break
        lines.append(line)
    return lines


def check_list_unsubscribe(data: bytes, settings: Settings) -> None:
    lines = raw_field(data, b"List-Unsubscribe")
    expected = (f"List-Unsubscribe: <{settings.base_url}/unsubscribe/{TOKEN}>, "
                f"<mailto:{settings.unsubscribe_email}?subject=unsubscribe%20{TOKEN}>").encode()
    assert b"=?" not in b"".join(lines)
    assert b"".join(lines) == expected  # unfolding (dropping CRLF) gives the value back exactly
    assert all(LINE.fullmatch(line) for line in lines), lines  # folded only between whole elements
    assert all(len(line) <= MAX_HEADER_LINE for line in lines)
    if len(expected) <= 78:
        assert len(lines) == 1


@pytest.mark.parametrize("length", range(20, 201))
def test_list_unsubscribe_is_never_encoded_for_any_base_url_length(length):
    settings = Settings(base_url=base_url(length), unsubscribe_email="unsubscribe@paperwire.localhost")
    assert len(settings.base_url) == length
    check_list_unsubscribe(message_bytes(build_message(digest(), Rendered(), settings, now=NOW)), settings)


def test_list_unsubscribe_with_default_settings():
    settings = Settings()
    check_list_unsubscribe(message_bytes(build_message(digest(), Rendered(), settings, now=NOW)), settings)


@pytest.mark.parametrize("length", [*range(20, 200, 15), 200])
def test_signed_messages_keep_the_header_whole_and_verify(length, dkim_key):
    private, public = dkim_key
    settings = Settings(base_url=base_url(length), sender_email="digest@example.org", dkim_key_file=private,
                        dkim_selector="pw", unsubscribe_email="unsubscribe-requests@lists.example.org")
    data = message_bytes(build_message(digest(), Rendered(), settings, now=NOW), Signer.from_settings(settings))
    assert data.startswith(b"DKIM-Signature:")
    check_list_unsubscribe(data, settings)

    def dns(name, timeout=5):
        assert name == b"pw._domainkey.example.org."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace(b"/unsubscribe/", b"/unsubscribe-x/", 1), dnsfunc=dns)


def test_a_uri_too_long_for_any_line_is_an_error_not_a_broken_header():
    settings = Settings(base_url=base_url(1000))
    with pytest.raises(ValueError, match="998"):
        build_message(digest(), Rendered(), settings, now=NOW)


def test_list_id_and_addresses_keep_their_angle_brackets_plain_with_a_non_ascii_name():
    settings = Settings(sender_name="Zeitschriften-Übersicht der Forschungsgruppe für maschinelles Lernen",
                        sender_email="digest@example.org", list_id="digest.research-newsletter.example.org",
                        reply_to="editors@example.org")
    for data in (message_bytes(build_message(digest(), Rendered(), settings, now=NOW)),
                 build_letter(Letter("ada@example.org", "Confirm", "x", "<p>x</p>"), settings, now=NOW)):
        assert data.split(b"\r\n\r\n", 1)[0].isascii()
        from_lines = raw_field(data, b"From")
        assert from_lines[-1].endswith(b" <digest@example.org>") and b"=?utf-8?" in from_lines[0]
        assert raw_field(data, b"To")[0].startswith(b"To: ") and b"=?" not in b"".join(raw_field(data, b"To"))
        assert raw_field(data, b"Reply-To") == [b"Reply-To: editors@example.org"]
        assert all(len(line) <= 78 for line in from_lines)
    list_id = raw_field(message_bytes(build_message(digest(), Rendered(), settings, now=NOW)), b"List-Id")
    assert list_id[-1].endswith(b" <digest.research-newsletter.example.org>")


URI = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"), min_size=1, max_size=300)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(URI, min_size=1, max_size=6), st.sampled_from(["List-Unsubscribe", "To", "Reply-To"]))
def test_uri_lists_fold_only_between_elements(uris, name):
    value = angle_list(*uris)
    data = header_line(name, value)
    assert data.endswith(b"\r\n") and b"\r" not in data[:-2].replace(b"\r\n", b"")
    lines = data[:-2].split(b"\r\n")
    assert b"".join(lines) == f"{name}: {value}".encode()
    assert lines[0].startswith(f"{name}: <".encode()) and all(line.startswith(b" <") for line in lines[1:])
    assert all(line.endswith((b">", b">,")) for line in lines)
    assert all(len(line) <= 78 or line.count(b"<") == 1 for line in lines)  # a fold wherever one fits


def test_a_name_that_looks_like_an_encoded_word_is_encoded_itself():
    fake = "=?utf-8?q?Your_Bank?="
    data = message_bytes(build_message(Digest(subscriber=Subscriber(email="ada@example.org", name=fake, token=TOKEN,
                                                                     topics=[Topic("RAG", "RAG")]),
                                              edition="2024-03-11", listing_date=dt.date(2024, 3, 11), sections=()),
                                       Rendered(), Settings(), now=NOW))
    (to,) = raw_field(data, b"To")
    assert fake.encode() not in to and to.endswith(b" <ada@example.org>")
    import email
    from email import policy
    assert email.message_from_bytes(data, policy=policy.default)["To"] == f"{fake} <ada@example.org>"


@pytest.mark.parametrize("address", ["ada@example.org\r\nBcc: eve@example.net", "ada@example.org\nX-Evil: 1",
                                     "ada@example.org\rX", "ada\x00@example.org"])
def test_a_stored_address_with_a_line_break_never_starts_a_header_of_its_own(address):
    """Addresses are validated when stored, but one that got in some other way (an old
    database, a hand edit) must fail that message, never smuggle in a Bcc."""
    reader = Subscriber(email=address, name="Ada", token=TOKEN, topics=[Topic("RAG", "RAG")])
    item = Digest(subscriber=reader, edition="2024-03-11", listing_date=dt.date(2024, 3, 11), sections=())
    with pytest.raises(ValueError, match="To header: a line break or control character"):
        build_message(item, Rendered(), Settings(), now=NOW)
    for value in (address, f"Ada <{address}>"):
        with pytest.raises(ValueError):
            header_line("To", value)
