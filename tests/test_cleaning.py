"""One cleaning rule for every output: a title with bidi overrides and a link that smuggles
words in come out the same, cleaned, in the email (HTML and text part), Atom, RSS and JSON
Feed, whether the paper was stored before the rule (cleaned on output) or ingested now
(cleaned at ingest). Checked on raw bytes, and on our own feeds parsed back with feedparser."""

from __future__ import annotations

import datetime as dt
import email
import html
import json
import re
from email import policy
from pathlib import Path

import feedparser
import pytest

from paperwire import mail, pipeline
from paperwire.config import Settings
from paperwire.feeds import FeedItem, FeedSpec, render_feed
from paperwire.models import Digest, DigestItem, DigestSection, Link, Paper, Subscriber, Topic
from paperwire.normalize import clean_line, extract_links, safe_url
from paperwire.render import EmailRenderer

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://papers.example.org"
DAY = dt.date(2024, 3, 11)
HOSTILE_LINK = "https://ex.com/a Bcc: evil@x.org"
SPOOFED_LINK = "https://ex.com/\u202egpj.exe"
TITLE = "Safe \u202eevil\u202c title \u2066isolated\u2069 \u202aembedded\u202c\u200f end"
CLEAN_TITLE = "Safe evil title isolated embedded\u200f end"  # a plain right-to-left mark is text, it stays
GOOD_LINK = "https://github.com/example/repo"
BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def hostile_paper() -> Paper:
    """As a store written before the rule (or by hand) may hold it: nothing cleaned."""
    return Paper(id="t-0123456789abcdef", title=TITLE, abstract="An abstract \u202ewith an override.",
                 authors=["Ada \u202eLovelace"],
                 links=[Link(HOSTILE_LINK, "abs"), Link(SPOOFED_LINK, "project"), Link(GOOD_LINK, "code")])


def outputs(paper: Paper, tmp_path: Path) -> dict[str, bytes]:
    settings = Settings(base_url=BASE)
    reader = Subscriber(email="ana@example.org", name="Ana", token="tok123", topics=[Topic("all", "*")])
    digest = Digest(subscriber=reader, edition=DAY.isoformat(), listing_date=DAY, sections=(
        DigestSection(reader.topics[0], (DigestItem(paper, 1.0, 1, DAY, ("all",), ()),)),))
    rendered = EmailRenderer(ROOT / "templates").render(digest, settings)
    eml = mail.message_bytes(mail.build_message(digest, rendered, settings))
    feeds = render_feed(FeedSpec("All", "all"), [FeedItem(paper, DAY, 1)], BASE)
    return {"html": rendered.html.encode(), "text": rendered.text.encode(), "eml": eml, **feeds}


def check_everywhere_the_same_and_clean(found: dict[str, bytes]) -> None:
    for name, data in found.items():
        assert not any(ch.encode() in data for ch in BIDI_CONTROLS), name
        assert b"evil@x.org" not in data and b"Bcc" not in data and b"gpj.exe" not in data, name
        assert b"=E2=80=AE" not in data and b"=E2=81=A6" not in data, name  # not even quoted-printable
    message = email.message_from_bytes(found["eml"], policy=policy.default)
    text_part = message.get_body(("plain",)).get_content()
    html_part = message.get_body(("html",)).get_content()
    for name, text in [("html", html.unescape(found["html"].decode())), ("text", found["text"].decode()),
                       ("eml text", text_part), ("eml html", html.unescape(html_part))]:
        assert CLEAN_TITLE in " ".join(text.split()), name
        assert GOOD_LINK in text, name
    for kind in ("atom", "rss"):
        parsed = feedparser.parse(found[kind])
        assert not parsed.bozo, parsed.get("bozo_exception")
        (entry,) = parsed.entries
        assert entry.title == CLEAN_TITLE, kind
        hrefs = re.findall(r'href="([^"]+)"', entry.summary) + [entry.link]
        assert GOOD_LINK in hrefs and all(safe_url(href) == href for href in hrefs), kind
    (item,) = json.loads(found["json"])["items"]
    assert item["title"] == CLEAN_TITLE and GOOD_LINK in item["url"] + item["content_html"]
    assert all(safe_url(href) == href for href in [item["url"], *re.findall(r'href="([^"]+)"', item["content_html"])])
    assert clean_line(item["content_text"]) == " ".join(item["content_text"].split())


def test_output_cleans_what_was_stored_uncleaned(tmp_path):
    check_everywhere_the_same_and_clean(outputs(hostile_paper(), tmp_path))


def test_ingest_stores_it_clean_and_every_output_shows_it_so(store, tmp_path):
    listing = tmp_path / "bidi.json"
    listing.write_text(json.dumps([{"paper": {
        "title": TITLE, "summary": f"See {GOOD_LINK}.", "authors": [{"name": "Ada \u202eLovelace"}],
        "githubRepo": HOSTILE_LINK, "projectPage": SPOOFED_LINK, "submittedOnDailyAt": "2024-03-11T00:00:00Z"}}]))
    report = pipeline.ingest(store, [listing])
    assert report.errors == []
    (stored,) = store.papers()
    paper = stored.paper
    assert paper.title == CLEAN_TITLE and paper.authors == ["Ada Lovelace"]
    assert [link.url for link in paper.links] == [GOOD_LINK]
    check_everywhere_the_same_and_clean(outputs(paper, tmp_path))


@pytest.mark.parametrize("url", [HOSTILE_LINK, SPOOFED_LINK, "https://ex.com/a\r\nBcc: x", "https://ex.com/\x00",
                                 "javascript:alert(1)", "https://[broken", "https://ex.com:port/", "//ex.com/a",
                                 "https://ex.com/\ud800", "https://ex.com/a\u2028b", "https://" + "a" * 3000 + ".org",
                                 'https://ex.com/a"onmouseover="alert(1)', "https://ex.com/a<b>", "https://ex.com/a\\b",
                                 "https://ex.com/{x}", "https://ex.com/a|b", "https://ex.com/a^b", "https://ex.com/a`b"])
def test_unfit_links_are_refused_whole(url):
    assert safe_url(url) is None


def test_links_in_text_with_a_space_or_bidi_control_are_not_taken():
    assert extract_links(f"See {SPOOFED_LINK} and {HOSTILE_LINK} or {GOOD_LINK}.") == [
        Link("https://ex.com/a", "project"), Link(GOOD_LINK, "code")]


def test_links_in_markdown_code_or_tables_end_where_a_uri_cannot_go_on():
    """Backticks and table bars end a link in text: the link is kept, not refused whole."""
    assert extract_links("See `https://github.com/foo/bar`. | https://github.com/foo/baz| x |") == [
        Link("https://github.com/foo/bar", "code"), Link("https://github.com/foo/baz", "code")]


def test_fit_links_pass_trimmed():
    assert safe_url("  https://ex.com/a?b=c#d ") == "https://ex.com/a?b=c#d"
    assert safe_url("http://ex.com/ünï") == "http://ex.com/ünï"

