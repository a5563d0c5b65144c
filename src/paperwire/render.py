"""Digest -> email (subject, preheader, HTML, plain text): pure apart from reading templates.

The whole email is in ``templates/``: ``email.mjml.j2`` (MJML with Jinja in it) loops over
the digest's sections and their papers and shows each paper with ``email_paper.html.j2``;
``email.txt.j2`` and ``email_paper.txt.j2`` do the same for the plain-text part. The MJML
is compiled ONCE to an HTML Jinja template and every template is checked when a renderer
starts (email_templates.py); each reader's email is then rendered with autoescape on.

Every value the templates show is computed once into one context of frozen values
(``context``; a paper's own values come from paperview.py), so the HTML and the text part
carry the same content and the templates stay dumb. Each reader's email is rendered whole
from that reader's context. What is reused across readers is cached by its complete input:
a paper's block by every value the frame passes it (``include_shared``), a paper's view
by the paper and its hits and what its hits do not change by the paper alone
(paperview.py), so nothing of one reader's can reach another reader's email.

Size (Gmail clips HTML above ~102 KB): the compiled frame (head, header, footer) is
~8 KB and a paper adds ~1.3 KB for seed-like papers (abstracts cut to ~600 characters).
Worst case per paper (300-character title, 2,000-character abstract full of hits, every
kind of link, a long author list, an "also in" line, the reader's "More like this" link)
is ~2.45 KB: 15 such papers make ~45 KB, and the limit holds up to
``MAX_PAPERS_UNDER_CLIP`` (38) of them. Links of up to 2,000 characters or a script of
3-byte characters can pass it with fewer: ``EmailRenderer.render_under_clip`` then shows
fewer papers (sending does).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from . import urls
from .config import Settings
from .digest import without_last
from .email_templates import MJML_FRAME, TEXT_FRAME, failed_at, load_frames
from .errors import ConfigError, described
from .mail import GMAIL_CLIP_BYTES, from_references
from .models import Digest, DigestItem, DigestSection, Hit, Link, Paper, Subscriber, Topic
from .normalize import clean_line, shorten
from .paperview import PaperView, also_in, item_view

log = logging.getLogger(__name__)

# Worst-case papers (see the module docstring) that still fit under GMAIL_CLIP_BYTES;
# measured by tests/test_render_email.py::test_cap_where_size_limit_holds.
MAX_PAPERS_UNDER_CLIP = 38
SUBJECT_TOPIC_CHARS = 42  # topic names shown in the subject before "+N more"
PREHEADER_CHARS = 140
TEXT_WIDTH = 76

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
                 "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


class ItemView(NamedTuple):
    """A paper as one reader gets it: where it stands in the email, and the paper itself."""

    number: int  # 1, 2, ... across the whole email
    position: int  # 1, 2, ... within its section
    topic: str  # the section's topic name
    rank: int  # its trending rank in the listing
    score: float  # how well it matched
    also: str  # the reader's other topics this paper matched, comma-separated (paperview.also_in)
    paper: PaperView  # the same for every reader who gets the paper with the same hits
    more_like_url: str  # the reader's "More like this" page for it (their token: drawn by the frame, like ``also``)
    first_anchor: str  # the anchor of the id it had before a re-key ("" if none): older emails link it


class SectionView(NamedTuple):
    name: str
    number: int  # 1, 2, ...
    items: tuple[ItemView, ...]


# --- text helpers --------------------------------------------------------------------------

def _line_pattern(width: int) -> re.Pattern[str]:
    # As many characters as fit before a space (or the end); else one over-long word whole.
    return re.compile(r"(.{1,%d})(?: |$)|(\S+)(?: |$)" % max(1, width))  # (re keeps compiled patterns)


@lru_cache(maxsize=4096)  # keyed by all its arguments: the same abstracts recur across readers
def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Greedy word wrap done by one regex (textwrap is ~10x slower); long words/URLs stay whole.

    ``first`` replaces ``indent`` on the first line and should be as long as it.
    """
    pattern = _line_pattern(width - len(indent))
    lines = [a or b for a, b in pattern.findall(" ".join(text.split()))] or [""]
    lines[0] = (indent if first is None else first) + lines[0]
    return ("\n" + indent).join(lines)


def numbered(title: str, number: int) -> str:
    """A paper's title in the text part: ``12. `` before it, wrapped lines indented under it."""
    return wrap(title, TEXT_WIDTH, "    ", f"{number}.".ljust(4))


def date_label(day: dt.date) -> str:
    """``Mar 11``: locale-independent, unlike %b."""
    return f"{MONTHS[day.month - 1]} {day.day}"


# --- the context both templates share ----------------------------------------------------

def subject_line(digest: Digest) -> str:
    """``7 new papers on scaling laws, MoE (Mar 11)``, or ``15 of 53 new papers on ...`` when
    the rest are under "And N more": the two counts the intro says ("53 new papers matched
    ...; here are the best 15"), so subject and body never disagree. Long topic lists end in
    ``+N more``; the topics get less room by what `` of 53`` takes, so the subject stays short."""
    count = digest.papers
    names = [clean_line(name) for name in (digest.topic_names if count else
                                         [topic.name for topic in digest.subscriber.topics])]
    of = f" of {count + digest.more}" if count and digest.more else ""
    room = SUBJECT_TOPIC_CHARS - len(of)
    shown: list[str] = []
    for name in names:
        if shown and len(", ".join(shown + [name])) > room:
            break
        shown.append(shorten(name, room))
    topics = ", ".join(shown)
    if len(shown) < len(names):
        topics += f" +{len(names) - len(shown)} more"
    on = f" on {topics}" if topics else ""
    when = date_label(digest.listing_date)
    if not count:
        return f"No new papers{on} ({when})"
    return f"{count}{of} new paper{'s' if count + digest.more != 1 else ''}{on} ({when})"


def schedule_phrase(reader: Subscriber) -> str:
    """``daily at 08:00 Europe/Berlin`` or ``weekly on Mondays at ...``."""
    at = f"at {reader.hour:02d}:00 {clean_line(reader.timezone)}"
    if reader.cadence.startswith("weekly"):
        day = WEEKDAY_NAMES.get(reader.cadence.partition(":")[2])
        return f"weekly on {day}s {at}" if day else f"weekly {at}"
    return f"{clean_line(reader.cadence)} {at}"


def listings_label(digest: Digest) -> str:
    """``the Mar 11 listing``, or ``the listings from Mar 5 to Mar 11`` for a digest over
    several days (weekly, or catching up since the last one)."""
    last = date_label(digest.listing_date)
    if digest.first_date is None:
        return f"the {last} listing"
    return f"the listings from {date_label(digest.first_date)} to {last}"


def intro(shown: int, more: int, listings: str) -> str:
    """``70 new papers matched your topics in the Mar 11 listing; here are the best 5.``"""
    matched = shown + more
    if not matched:
        return f"Nothing new matched your topics in {listings}."
    said = f"{matched} new paper{'s' if matched != 1 else ''} matched your topics in {listings}"
    return f"{said}; here are the best {shown}." if more else f"{said}."


def sections(digest: Digest, settings: Settings) -> tuple[SectionView, ...]:
    """The digest's sections as the templates loop over them, papers numbered across the email."""
    shown: list[SectionView] = []
    number = 0
    more_like = urls.more_like_links(settings.base_url, digest.subscriber)
    for index, section in enumerate(digest.sections, 1):
        name = clean_line(section.topic.name)
        items = []
        for position, item in enumerate(section.items, 1):
            number += 1
            items.append(ItemView(number, position, name, item.rank, item.score,
                                  also_in(item.topics, section.topic.name), item_view(item, settings),
                                  more_like(item.paper.id),
                                  urls.paper_anchor(item.first_id) if item.first_id else ""))
        shown.append(SectionView(name, index, tuple(items)))
    return tuple(shown)


def context(digest: Digest, settings: Settings) -> dict[str, Any]:
    """Everything the templates show, computed once for both parts, from this digest alone."""
    reader = digest.subscriber
    base = settings.base_url
    shown = sections(digest, settings)
    titles = [item.paper.title for section in shown for item in section.items]
    when = date_label(digest.listing_date)
    listings = listings_label(digest)
    subscribed = ", ".join(clean_line(topic.name) for topic in reader.topics) or "paperwire"
    count = digest.papers
    name = clean_line(reader.name)
    return {
        "subject": subject_line(digest),
        "preheader": shorten(" · ".join(titles), PREHEADER_CHARS) if titles
        else intro(0, 0, listings),
        "date": when,
        "reader_name": name,
        "greeting": f"Hi {name}," if name else "Hello,",
        "intro": intro(count, digest.more, listings),
        "sections": shown,
        "more": digest.more,
        "more_label": f"And {digest.more} more matching paper{'s' if digest.more != 1 else ''}",
        "more_url": urls.more(base, reader, digest.edition, digest.more_from, digest.part),
        "manage_url": urls.manage(base, reader),
        "unsubscribe_url": urls.unsubscribe(base, reader),
        "feed_url": urls.private_feed(base, reader),
        "archive_url": urls.archive(base, reader, digest.edition, digest.part),
        "reason": f"You get this because you subscribed to {subscribed} with {clean_line(reader.email)}"
                  f" — {schedule_phrase(reader)}.",
        "sender_name": clean_line(settings.sender_name),
        "sender_line": clean_line(settings.sender_line),
    }


class EmailRenderer:
    """Compile once, render per reader: ``EmailRenderer(templates).render(digest, settings)``."""

    def __init__(self, templates_dir: Path) -> None:
        """Reads and compiles every email template now, so that a missing file or a syntax
        error is one clear error (``ConfigError``, naming the file and line) before any reader."""
        self.templates_dir = Path(templates_dir)
        self.html_template, self.text_template = load_frames(templates_dir, {"wrap": wrap, "numbered": numbered})
        defaults = Settings()
        for sample in sample_digests():
            try:  # a template that fails for every reader (a misspelt name) fails here, before any reader
                rendered = self._render(sample, defaults)
            except Exception as exc:
                if not getattr(exc, "__notes__", None):  # not raised in a template (failed_at): paperwire's own bug
                    raise
                raise ConfigError(f"templates in {self.templates_dir} fail on a sample digest: {described(exc)}") from exc
            unsubscribe = urls.unsubscribe(defaults.base_url, sample.subscriber)
            for shown, frame in ((rendered.html, MJML_FRAME), (rendered.text, TEXT_FRAME)):
                if unsubscribe not in shown:  # the List-Unsubscribe header is not enough: readers look for a link
                    raise ConfigError(f"{self.templates_dir / frame}: shows no unsubscribe link: keep "
                                      "{{ unsubscribe_url }} in every email")

    def render(self, digest: Digest, settings: Settings) -> RenderedEmail:
        rendered = self._render(digest, settings)
        if size := _over_clip(rendered.html):
            log.warning("digest %s for %s is %d bytes of HTML: Gmail will clip it",
                        digest.edition, digest.subscriber.email, size)
        return rendered

    def render_under_clip(self, digest: Digest, settings: Settings) -> tuple[Digest, RenderedEmail]:
        """The email to send, and the digest it shows: while the HTML is over Gmail's clip
        (which would hide the rest, the footer's unsubscribe link too), the papers picked
        last join the "And N more" (``digest.without_last``) and it is rendered again. Rare:
        MAX_PAPERS_UNDER_CLIP papers fit unless their links are very long or their script
        takes 3 bytes a character."""
        rendered = self._render(digest, settings)
        while (size := _over_clip(rendered.html)) and digest.papers > 1:
            # Papers take most of the size: drop the share that is too much, rounded up.
            fewer = without_last(digest, -(-digest.papers * (size - GMAIL_CLIP_BYTES) // size))
            log.info("digest %s for %s: %d papers make %d bytes of HTML, over Gmail's clip: showing %d",
                     digest.edition, digest.subscriber.email, digest.papers, size, fewer.papers)
            digest, rendered = fewer, self._render(fewer, settings)
        if size:
            log.warning("digest %s for %s is %d bytes of HTML with one paper: Gmail will clip it",
                        digest.edition, digest.subscriber.email, size)
        return digest, rendered

    def _render(self, digest: Digest, settings: Settings) -> RenderedEmail:
        values = context(digest, settings)
        try:
            html, text = self.html_template.render(values), self.text_template.render(values)
        except Exception as exc:  # the report names the template's file and line (pipeline.reader_error)
            if where := failed_at(exc, self.html_template.environment, self.templates_dir):
                exc.add_note(f"at {where}")
            raise
        return RenderedEmail(values["subject"], values["preheader"], html, text)


def sample_digests() -> tuple[Digest, Digest]:
    """Made-up digests the templates must render: one with each kind of value they show (two
    sections, a paper found by its words with authors, links, highlights, "also in" and an
    earlier id, one by meaning alone, "And N more"), and an empty one for a reader with no name
    (``send_empty``)."""
    day = dt.date(2024, 3, 11)
    topics = [Topic("Language models", "language models"), Topic("Vision", "vision")]
    reader = Subscriber(email="reader@example.org", name="Sam Sample", token="sample-token", topics=topics)
    found = Paper(id="2403.00001", arxiv_id="2403.00001", title="Sample language models · for vision",
                  abstract="We study language models.", authors=["Ada Author", "Bo Author"],
                  links=[Link("https://arxiv.org/abs/2403.00001", "abs"), Link("https://arxiv.org/pdf/2403.00001", "pdf"),
                         Link("https://github.com/example/sample", "code")])
    related = Paper(id="t-0123456789abcdef", title="A sample paper related by meaning")
    by_words = DigestItem(found, 1.0, 1, day, (topics[0].name, topics[1].name),
                          (Hit("language models", "abstract", ((9, 24),)),), first_id="t-fedcba9876543210")
    by_meaning = DigestItem(related, 0.5, 2, day, (topics[1].name,), (),
                            reason="related to your topic, similarity 0.63", by_words=False)
    full = Digest(reader, day.isoformat(), day, (DigestSection(topics[0], (by_words,)),
                                                 DigestSection(topics[1], (by_meaning,))), more=2)
    nameless = Subscriber(email="reader@example.org", token="sample-token", topics=topics)
    return full, Digest(nameless, day.isoformat(), day, ())


def _over_clip(html: str) -> int:
    """The HTML's size as UTF-8 if Gmail would clip it, else 0: its character references
    read back (mail.from_references), as quoted-printable sends a page whose references
    would not fit. A reference is longer than its character's UTF-8, and UTF-8 takes at
    most 4 bytes a character: measured only when that may be too much."""
    if len(html) * (1 if html.isascii() else 4) <= GMAIL_CLIP_BYTES:
        return 0
    size = len(from_references(html).encode())
    return size if size > GMAIL_CLIP_BYTES else 0
