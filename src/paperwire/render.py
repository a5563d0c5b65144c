"""Digest -> email (subject, preheader, HTML, plain text): pure apart from reading templates.

``templates/email.mjml.j2`` is MJML with Jinja in it. MRML (mjml-python) keeps the
Jinja syntax intact, so it is compiled ONCE to an HTML Jinja template (cached by the
content hash of the source, in memory and optionally on disk, so a second process skips
the compile too) and then rendered per reader with autoescape on. Every value both
templates show is computed here, once, into one context, so the HTML and the text part
carry the same content and the templates stay dumb.

One paper's markup lives in ``email_paper.html.j2`` / ``email_paper.txt.j2`` (plain HTML:
it sits inside an ``mj-text``, which MRML copies as it is). A paper's blocks depend only
on the paper, its matched terms and its topic tags, so once a second reader needs them
they are kept for the run and shared by every reader who gets the same paper with the
same matches: in a real run thousands of readers share a few hundred such blocks. The per-reader frame is rendered
with a slot for each paper, and ``RenderedEmail`` keeps frame pieces and blocks as
separate parts, so mail.py can also encode each shared block once (``SharedText``). The
frame's long stretches of plain markup (the head's CSS, the layout tables: ~6 KB) are
shared parts too (``kept_stretches``): per reader only the values between them are new.

Size (Gmail clips HTML above ~102 KB): the compiled frame (head, header, footer) is
~8 KB and a paper adds ~1.3 KB for seed-like papers (abstracts cut to ~600 characters).
Worst case per paper (300-character title, 2,000-character abstract full of hits, every
kind of link, a long author list) is ~2.2 KB: 15 such papers make ~42 KB, and the limit
holds up to ``MAX_PAPERS_UNDER_CLIP`` (41) of them; beyond that Gmail would clip.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from itertools import filterfalse
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, StrictUndefined, Template, TemplateError, meta
from markupsafe import Markup, escape
from mjml import mjml2html

from . import files, urls
from .config import Settings
from .models import Digest, DigestItem, Hit, Link, SharedText, Subscriber
from .normalize import SHOWN_TITLE_CHARS, safe_url, shorten, strip_unsafe

log = logging.getLogger(__name__)

GMAIL_CLIP_BYTES = 102_000
# Worst-case papers (see the module docstring) that still fit under GMAIL_CLIP_BYTES;
# measured by tests/test_render_email.py::test_cap_where_size_limit_holds.
MAX_PAPERS_UNDER_CLIP = 41
ABSTRACT_CHARS = 600  # cut here, at a word boundary ...
ABSTRACT_SLACK = 80  # ... unless only this much more would show the whole abstract
TITLE_CHARS = SHOWN_TITLE_CHARS
SUBJECT_TOPIC_CHARS = 42  # topic names shown in the subject before "+N more"
PREHEADER_CHARS = 140
TEXT_WIDTH = 76
MAX_AUTHORS = 4  # more than this shows the first three and "et al."
# Distinct paper blocks (paper x matched terms x topic tags) kept per renderer; a run
# needs a few hundred to a few thousand. When full, the cache starts over.
BLOCK_CACHE_SIZE = 20_000
# Where each paper's block goes in a rendered frame. Every value the templates show is
# cleaned of controls (clean(), one_line(), paper_links()), so only the slots carry it;
# fill() and render_papers() check the count anyway.
SLOT = "\x00"
# Where a kept stretch of a frame's markup goes: STATIC, the stretch's number, STATIC.
STATIC = "\x01"
# Plain markup of a frame at least this long (whole lines between two values) is kept as
# one shared part: the compiled MJML's head (its CSS) and layout tables are ~6 KB of them.
STATIC_CHARS = 256
_NONE: Mapping[str, str] = {}
_JINJA_TAG = re.compile(r"({{.*?}}|{%.*?%}|{#.*?#})", re.DOTALL)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
                 "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}
LINK_LABELS = {"abs": "arXiv", "pdf": "PDF", "code": "Code", "project": "Project page",
               "model": "Model", "dataset": "Dataset"}

# Anything that looks like markup, for the plain-text part (which must never carry HTML).
_TAG = re.compile(r"</?[A-Za-z!?][^<>]*>")
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered digest. HTML and text come in parts: pieces of the reader's frame and,
    between them, each paper's shared block (a ``SharedText``); joined, they are the document."""

    subject: str
    preheader: str
    html_parts: tuple[str, ...]
    text_parts: tuple[str, ...]

    @property
    def html(self) -> str:
        return "".join(self.html_parts)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


@dataclass(frozen=True, slots=True)
class LinkView:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper as both block templates show it: nothing in it depends on the reader."""

    title: str
    url: str
    authors: str
    abstract: str  # plain, cut
    abstract_html: Markup  # the same cut, escaped, matched terms in <strong>
    links: tuple[LinkView, ...]
    matched: str
    also: str
    anchor: str  # the paper's HTML id (urls.paper_anchor)


@dataclass(frozen=True, slots=True)
class PaperBlocks:
    """One paper's rendered blocks: whole lines, each ending in a newline."""

    title: str  # the frame shows it too: the text part numbers papers per reader
    html: str  # a SharedText once more than one reader needs it
    text: str


class ItemSlot(NamedTuple):  # a NamedTuple, cheaper to make than a dataclass: one per paper per digest
    """A paper as the text frame sees it: its number and title (for templates that want
    them), its heading, and a slot for its block."""

    number: int
    title: str
    heading: str  # the number and the title, wrapped (``heading``)
    text: str = SLOT


@dataclass(frozen=True, slots=True)
class SectionView:
    name: str
    items: tuple[ItemSlot, ...]

    @property
    def papers(self) -> Markup:
        """The slots of the section's papers, one after the other, for the HTML frame."""
        return Markup(SLOT * len(self.items))


# --- compiling the MJML once -------------------------------------------------------------

_compiled: dict[str, str] = {}  # content hash -> compiled HTML Jinja source, per process


def _mrml_version() -> str:
    try:
        return metadata.version("mjml-python")
    except metadata.PackageNotFoundError:
        return "unknown"


# Where a line break is never rendered: after a closing or opening layout tag, before the next tag.
_STRUCTURAL_END = re.compile(
    r"(?:</(?:td|tr|tbody|table|div|head|style|p|h[1-6])>|<(?:body|tr|tbody|td|table|div)\b[^<>]*>|<!\[endif\]-->)(?=<)")
# Longest line of markup the compiled template keeps, so that a line with a value in it
# stays under the 990 characters mail.py sends without a transfer encoding unless the
# value itself is huge (then the HTML part goes quoted-printable).
COMPILED_LINE_CHARS = 200


def compile_mjml(source: str) -> str:
    """MJML (with Jinja inside) -> HTML Jinja source; indentation dropped to keep it lean.

    Only leading whitespace after a newline is removed: the newline itself stays, so
    words and inline elements on neighbouring lines keep their space.
    """
    html = mjml2html(source, disable_comments=True, fonts={})  # no web-font imports: system fonts only
    html = re.sub(r"\n[ \t]+", "\n", html)
    return "\n".join(piece for line in html.split("\n") for piece in _short_lines(line))


def _short_lines(line: str) -> list[str]:
    """MRML writes the layout tables as a few very long lines: those are broken after
    structural tags into lines of at most COMPILED_LINE_CHARS where possible, so the HTML
    part can go out as 7-bit text without a transfer encoding (see mail.py)."""
    if len(line) <= COMPILED_LINE_CHARS:
        return [line]
    pieces: list[str] = []
    start = candidate = 0  # the current line starts at start; candidate: its last break so far
    for match in _STRUCTURAL_END.finditer(line):
        end = match.end()
        while end - start > COMPILED_LINE_CHARS:
            cut = candidate if candidate > start else end
            pieces.append(line[start:cut])
            start = cut
        candidate = end
    pieces.append(line[start:])
    return pieces


def compiled_html(source: str, cache_dir: Path | None = None) -> str:
    """The compiled template for ``source``, from memory, from ``cache_dir``, or compiled.

    The key covers the MRML version too, so upgrading mjml-python never serves stale HTML.
    """
    key = hashlib.sha256(f"{_mrml_version()}\0{source}".encode()).hexdigest()
    if key in _compiled:
        return _compiled[key]
    cached = cache_dir / f"{key}.html.j2" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        html = cached.read_text(encoding="utf-8")
    else:
        html = compile_mjml(source)
        if cached is not None:
            files.replace_file(cached, html.encode("utf-8"))
    _compiled[key] = html
    return html


def clear_memory_cache() -> None:
    """Forget compiled templates in this process (tests use it to exercise the disk cache)."""
    _compiled.clear()


# --- text helpers --------------------------------------------------------------------------

# The cleaning rule of every output (normalize.py): controls, bidi overrides and lone
# surrogates go; ``safe_url`` decides which links are shown at all.
clean = strip_unsafe


def squeezed(text: str) -> str:
    """``text`` cleaned, on one line, its runs of whitespace one space."""
    return " ".join(clean(text).split())


@lru_cache(maxsize=4096)  # topic names and settings recur in every digest (a reader's own name and address don't)
def one_line(text: str) -> str:
    return squeezed(text)


def plain(value: Any) -> Any:
    """Jinja ``finalize`` for the text part: whatever the input, no markup gets through."""
    if isinstance(value, str) and "<" in value:
        return _TAG_OPEN.sub("< ", _TAG.sub("", value))
    return value


@lru_cache(maxsize=16)
def _line_pattern(width: int) -> re.Pattern[str]:
    # As many characters as fit before a space (or the end); else one over-long word whole.
    return re.compile(r"(.{1,%d})(?: |$)|(\S+)(?: |$)" % max(1, width))


@lru_cache(maxsize=4096)  # the same abstracts recur across readers
def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Greedy word wrap done by one regex (textwrap is ~10x slower); long words/URLs stay whole.

    ``first`` replaces ``indent`` on the first line and should be as long as it.
    """
    pattern = _line_pattern(width - len(indent))
    lines = [a or b for a, b in pattern.findall(" ".join(text.split()))] or [""]
    lines[0] = (indent if first is None else first) + lines[0]
    return ("\n" + indent).join(lines)


def heading(title: str, number: int) -> str:
    """A paper's title in the text part: ``12. `` before it, wrapped lines indented under it."""
    return wrap(title, TEXT_WIDTH, "    ", f"{number}.".ljust(4))


@lru_cache(maxsize=8192)  # a run has a few hundred titles, each at a few positions
def item_slot(title: str, number: int) -> ItemSlot:
    return ItemSlot(number, title, heading(title, number))


def date_label(day: dt.date) -> str:
    """``Mar 11``: locale-independent, unlike %b."""
    return f"{MONTHS[day.month - 1]} {day.day}"


def cut_point(text: str, limit: int = ABSTRACT_CHARS, slack: int = ABSTRACT_SLACK) -> int:
    """Where to cut an abstract: the end, or the last word boundary at or before ``limit``."""
    if len(text) <= limit + slack:
        return len(text)
    cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
    if cut < limit // 2:  # one enormous "word": cut hard
        cut = limit
    while cut > 0 and text[cut - 1] in " \n,;:-(":
        cut -= 1
    return cut


def merged_spans(hits: Iterable[Hit], field: str, end: int) -> list[tuple[int, int]]:
    """The hit spans in ``field``, clipped to [0, end), sorted and merged where they overlap."""
    spans = sorted(
        (max(0, start), min(stop, end))
        for hit in hits if hit.field == field
        for start, stop in hit.spans
        if start < end and stop > start and start >= 0
    )
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def highlighted(text: str, spans: list[tuple[int, int]]) -> Markup:
    """``text`` escaped piece by piece, with each span wrapped in <strong>.

    Offsets refer to the raw text, so pieces are cut first and cleaned/escaped after;
    nothing from the input ever reaches the output unescaped.
    """
    parts: list[str] = []
    position = 0
    for start, stop in spans:
        parts.append(escape(clean(text[position:start])))
        parts.append(Markup("<strong>%s</strong>") % clean(text[start:stop]))
        position = stop
    parts.append(escape(clean(text[position:])))
    return Markup("".join(parts))


def authors_line(authors: list[str]) -> str:
    names = [one_line(name) for name in authors if name.strip()]
    if len(names) > MAX_AUTHORS:
        return ", ".join(names[:3]) + " et al."
    return ", ".join(names)


def paper_links(links: Iterable[Link], paper_id: str, base_url: str) -> tuple[str, tuple[LinkView, ...]]:
    """The title's target (arXiv abstract, else the first link, else our paper page) and
    the other links worth a label, one per kind, http(s) only, and none with spaces,
    line breaks or other controls in it (a broken link, or an attempt to add lines)."""
    web = [link._replace(url=url) for link in links if (url := safe_url(link.url))]
    main = next((link.url for link in web if link.kind == "abs"), None) or (web[0].url if web else None)
    main = main or urls.paper(base_url, paper_id)
    shown: list[LinkView] = []
    seen = {main}
    for kind, label in LINK_LABELS.items():
        link = next((link for link in web if link.kind == kind and link.url not in seen), None)
        if link is not None:
            shown.append(LinkView(label, link.url))
            seen.add(link.url)
    return main, tuple(shown)


# A paper appears in many readers' digests in one run, and readers of one topic share its
# hits: what depends only on the paper (and the hits) is computed once. Keys are contents,
# not identities, so a changed paper can never be served stale.
@lru_cache(maxsize=4096)
def _paper_parts(paper_id: str, title: str, authors: tuple[str, ...], links: tuple[Link, ...],
                 base_url: str) -> tuple[str, str, str, tuple[LinkView, ...]]:
    url, shown = paper_links(links, paper_id, base_url)
    return shorten(one_line(title), TITLE_CHARS) or one_line(paper_id), url, authors_line(list(authors)), shown


@lru_cache(maxsize=2048)
def _abstract_parts(abstract: str, hits: tuple[Hit, ...]) -> tuple[str, Markup]:
    cut = cut_point(abstract)
    ellipsis = "…" if cut < len(abstract) else ""
    spans = merged_spans(hits, "abstract", cut)
    return clean(abstract[:cut]) + ellipsis, highlighted(abstract[:cut], spans) + ellipsis


def item_view(item: DigestItem, section_topic: str, settings: Settings) -> PaperView:
    paper = item.paper
    title, url, authors, links = _paper_parts(paper.id, paper.title, tuple(paper.authors), tuple(paper.links),
                                              settings.base_url)
    abstract, abstract_html = _abstract_parts(paper.abstract, item.hits)
    terms = dict.fromkeys(one_line(hit.term) for hit in item.hits)
    return PaperView(
        title=title, url=url, authors=authors, abstract=abstract, abstract_html=abstract_html, links=links,
        matched=", ".join(term for term in terms if term),
        also=", ".join(one_line(topic) for topic in item.topics if topic != section_topic),
        anchor=urls.paper_anchor(paper.id),
    )


def kept_stretches(source: str) -> tuple[str, dict[str, SharedText]]:
    """A frame template with each long stretch of plain markup replaced by a mark, and
    those stretches by the number in their mark (whole lines: from after the first line
    break of the markup between two tags to its last, so each starts and ends a line, as
    mail.py needs to encode it apart).

    Every reader's email carries them unchanged, so ``fill`` puts them back as shared
    parts and mail.py encodes each once per run instead of once per message. Only markup
    that Jinja copies as it is gets marked: none next to whitespace control (``{%-``,
    ``-%}``), none inside a block whose output Jinja transforms or keeps (``filter``,
    ``set``, ``macro``, ``call``), none at the very end (where Jinja drops a last line
    break), none with a CR in it; a template that holds U+0001 itself gets no marks at
    all. (For this module's environments: no line statements.)
    """
    stretches: dict[str, SharedText] = {}
    if STATIC in source:
        return source, stretches
    pieces = _JINJA_TAG.split(source)
    open_blocks: list[str] = []  # the transforming blocks we are inside
    for index in range(0, len(pieces), 2):  # the markup between tags
        if index:
            _track_blocks(pieces[index - 1], open_blocks)
        text = pieces[index]
        first, last = text.find("\n"), text.rfind("\n")
        before = pieces[index - 1] if index else ""
        after = pieces[index + 1] if index + 1 < len(pieces) else ""
        if (first < 0 or last - first < STATIC_CHARS or open_blocks or "\r" in text
                or before[-3:-2] == "-" or after[2:3] == "-"
                or (not after and last == len(text) - 1)):
            continue
        number = str(len(stretches))
        pieces[index] = f"{text[:first + 1]}{STATIC}{number}{STATIC}{text[last + 1:]}"
        stretches[number] = SharedText(text[first + 1:last + 1])
    return "".join(pieces), stretches


_TRANSFORMING = {"filter", "set", "macro", "call"}
_BLOCK_TAG = re.compile(r"{%[-+]?\s*(\w+)([^%]*)")


def _track_blocks(tag: str, open_blocks: list[str]) -> None:
    match = _BLOCK_TAG.match(tag)
    if match is None:
        return
    name, rest = match.groups()
    if name in _TRANSFORMING and not (name == "set" and "=" in rest):  # ``{% set x = 1 %}`` opens nothing
        open_blocks.append(name)
    elif name.startswith("end") and name[3:] in _TRANSFORMING and open_blocks:
        open_blocks.pop()


def _restored(piece: str, stretches: Mapping[str, str]) -> list[str]:
    """A piece of a rendered frame with its marks replaced by the stretches they stand for."""
    pieces = piece.split(STATIC)
    try:
        pieces[1::2] = [stretches[number] for number in pieces[1::2]]
    except KeyError:
        raise TemplateError("a frame template wrote a control character (U+0001)") from None
    return pieces


def fill(frame: str, blocks: Sequence[str], stretches: Mapping[str, str] = _NONE) -> tuple[str, ...]:
    """The frame's pieces with each paper's block where its slot was, and each kept
    stretch (``kept_stretches``) where its mark was, as parts.

    The first and last pieces (head and footer) carry the reader's own details.
    """
    pieces = frame.split(SLOT)
    if len(pieces) != len(blocks) + 1:
        raise TemplateError(f"the digest templates must show each paper's block exactly once "
                            f"({len(pieces) - 1} slots for {len(blocks)} papers)")
    if not blocks:
        return tuple(_restored(frame, stretches)) if stretches and STATIC in frame else (frame,)
    # What the frame has between two shared papers (a section heading, a paper's number and
    # title) recurs across readers much as the papers do, so it is marked shared too: only
    # where a piece's encoding is cached depends on it, never the bytes.
    inner = [SharedText(piece) if piece and type(block) is SharedText else piece
             for block, piece in zip(blocks, pieces[1:-1])]
    middle: list[str] = [""] * (2 * len(blocks) - 1)
    middle[::2] = blocks  # block, frame, block, ..., block
    middle[1::2] = inner
    if not stretches or STATIC not in frame:
        return (pieces[0], *middle, pieces[-1])
    if any(STATIC in piece for piece in inner):  # a kept stretch between papers (not in our templates)
        middle = [piece for index, part in enumerate(middle)
                  for piece in (_restored(part, stretches) if index % 2 else (part,))]
    return (*_restored(pieces[0], stretches), *middle, *_restored(pieces[-1], stretches))


# --- the context both templates share ----------------------------------------------------

def subject_line(digest: Digest) -> str:
    """``7 new papers on scaling laws, MoE (Mar 11)``; long topic lists end in ``+N more``."""
    count = digest.papers
    names = [one_line(name) for name in (digest.topic_names if count else
                                         [topic.name for topic in digest.subscriber.topics])]
    shown: list[str] = []
    for name in names:
        if shown and len(", ".join(shown + [name])) > SUBJECT_TOPIC_CHARS:
            break
        shown.append(shorten(name, SUBJECT_TOPIC_CHARS))
    topics = ", ".join(shown)
    if len(shown) < len(names):
        topics += f" +{len(names) - len(shown)} more"
    on = f" on {topics}" if topics else ""
    when = date_label(digest.listing_date)
    if not count:
        return f"No new papers{on} ({when})"
    return f"{count} new paper{'s' if count != 1 else ''}{on} ({when})"


def schedule_phrase(reader: Subscriber) -> str:
    """``daily at 08:00 Europe/Berlin`` or ``weekly on Mondays at ...``."""
    at = f"at {reader.hour:02d}:00 {one_line(reader.timezone)}"
    if reader.cadence.startswith("weekly"):
        day = WEEKDAY_NAMES.get(reader.cadence.partition(":")[2])
        return f"weekly on {day}s {at}" if day else f"weekly {at}"
    return f"{one_line(reader.cadence)} {at}"


def context(digest: Digest, settings: Settings, papers: Sequence[Sequence[PaperBlocks]]) -> dict[str, Any]:
    """Everything the frame templates show, computed once for both parts.

    ``papers`` holds the blocks of each section's papers, in the digest's order.
    """
    reader = digest.subscriber
    base = settings.base_url
    sections: list[SectionView] = []
    titles: list[str] = []
    for section, blocks in zip(digest.sections, papers):
        first, section_titles = len(titles) + 1, [paper.title for paper in blocks]
        items = tuple(map(item_slot, section_titles, range(first, first + len(blocks))))
        titles += section_titles
        sections.append(SectionView(one_line(section.topic.name), items))
    when = date_label(digest.listing_date)
    subscribed = ", ".join(one_line(topic.name) for topic in reader.topics) or "paperwire"
    count = digest.papers
    name = squeezed(reader.name)
    return {
        "subject": subject_line(digest),
        "preheader": shorten(" · ".join(titles), PREHEADER_CHARS) if titles
        else f"Nothing new matched your topics in the {when} listing.",
        "date": when,
        "greeting": f"Hi {name}," if name else "Hello,",
        "intro": (f"{count} new paper{'s' if count != 1 else ''} matched your topics in the {when} listing."
                  if count else f"Nothing new matched your topics in the {when} listing."),
        "sections": sections,
        "more": digest.more,
        "more_label": f"And {digest.more} more matching paper{'s' if digest.more != 1 else ''}",
        "more_url": urls.more(base, reader, digest.edition, digest.more_from),
        "manage_url": urls.manage(base, reader),
        "unsubscribe_url": urls.unsubscribe(base, reader),
        "feed_url": urls.private_feed(base, reader),
        "archive_url": urls.archive(base, reader, digest.edition),
        "reason": f"You get this because you subscribed to {subscribed} with {squeezed(reader.email)}"
                  f" — {schedule_phrase(reader)}.",
        "sender_name": one_line(settings.sender_name),
        "sender_line": one_line(settings.sender_line),
    }


def quick_render(env: Environment, source: str) -> tuple[Template, Callable[[dict[str, Any]], str]]:
    """``source`` as a template, and a function that renders it like ``Template.render``.

    Our templates use none of Jinja's globals (``range``, ``cycler``, ...), so they are
    rendered without copying the globals into a new context on every call: that copy was
    about a quarter of a frame's time. A template that does use one gets plain ``render``.
    """
    template = env.from_string(source)
    if meta.find_undeclared_variables(env.parse(source)) & env.globals.keys():
        return template, template.render

    def render_shared(values: dict[str, Any]) -> str:
        try:
            return "".join(template.root_render_func(template.new_context(values, shared=True)))
        except Exception:
            return template.render(values)  # raises again, with Jinja's pointer to the template line
    return template, render_shared


def _for_each_paper(source: str) -> str:
    """A paper template as a loop over ``papers``, a slot after each: one pass renders a digest's papers."""
    return "{% for paper in papers %}" + source + SLOT + "{% endfor %}"


class EmailRenderer:
    """Compile once, render per reader: ``EmailRenderer(templates).render(digest, settings)``.

    One renderer per run (or per process): it keeps the papers' blocks it has rendered.
    """

    def __init__(self, templates_dir: Path, cache_dir: Path | None = None) -> None:
        templates_dir = Path(templates_dir)
        html_env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        text_env = Environment(autoescape=False, undefined=StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True, finalize=plain)
        text_env.filters["wrap"] = wrap

        def read(name: str) -> str:
            return (templates_dir / name).read_text(encoding="utf-8")

        html_frame, self._html_stretches = kept_stretches(compiled_html(read("email.mjml.j2"), cache_dir))
        text_frame, self._text_stretches = kept_stretches(read("email.txt.j2"))
        self.html_template, self._html_frame = quick_render(html_env, html_frame)
        self.text_template, self._text_frame = quick_render(text_env, text_frame)
        _, self._papers_html = quick_render(html_env, _for_each_paper(read("email_paper.html.j2")))
        _, self._papers_text = quick_render(text_env, _for_each_paper(read("email_paper.txt.j2")))
        self._blocks: dict[tuple[Any, ...], PaperBlocks] = {}
        self._seen_once: set[tuple[Any, ...]] = set()  # keys of blocks one reader has needed

    def render_papers(self, views: Sequence[PaperView]) -> list[tuple[str, str]]:
        """The HTML and text blocks of these papers, rendered now, in one pass of each template."""
        values = {"papers": views}
        html, text = self._papers_html(values).split(SLOT), self._papers_text(values).split(SLOT)
        if len(html) != len(views) + 1 or len(text) != len(views) + 1:
            raise TemplateError("a paper template wrote a NUL character")  # clean() keeps them out of values
        return list(zip(html, text))

    def paper_blocks(self, digest: Digest, settings: Settings) -> list[list[PaperBlocks]]:
        """The blocks of each section's papers, kept once per distinct paper, matches and tags.

        The key is everything the blocks show, by content, so a changed paper is never
        served stale; and only that: the topic a paper is filed under is not in its block,
        so readers who name their topics differently still share it when the matches agree.
        Blocks are kept from the second reader who needs them on: when readers share
        nothing, nothing is kept but the keys, and mail.py caches nothing either. What is
        not kept yet is rendered for the whole digest at once.
        """
        sections: list[list[PaperBlocks]] = []
        missing: list[tuple[list[PaperBlocks], int, tuple[Any, ...], PaperView]] = []
        for section in digest.sections:
            found: list[PaperBlocks] = []
            for item in section.items:
                paper = item.paper
                # The other topics, as item_view shows them (fast when the section's topic
                # leads, as it does: a section is its papers' best topic).
                topics, name = item.topics, section.topic.name
                also = topics[1:] if topics and topics[0] == name and name not in topics[1:] else tuple(
                    topic for topic in topics if topic != name)
                key = (paper.id, paper.title, paper.abstract, tuple(paper.authors), tuple(paper.links),
                       item.hits, also, settings.base_url)
                blocks = self._blocks.get(key)
                if blocks is None:
                    missing.append((found, len(found), key, item_view(item, section.topic.name, settings)))
                found.append(blocks)  # type: ignore[arg-type]  # filled in below when missing
            sections.append(found)
        if missing:
            for (found, index, key, view), (html, text) in zip(missing, self.render_papers([m[3] for m in missing])):
                if key in self._seen_once:  # a second reader: keep it, and let mail.py keep its encoding
                    if len(self._blocks) >= BLOCK_CACHE_SIZE:
                        self._blocks.clear()
                    found[index] = self._blocks[key] = PaperBlocks(view.title, SharedText(html), SharedText(text))
                else:
                    if len(self._seen_once) >= BLOCK_CACHE_SIZE:
                        self._seen_once.clear()
                    self._seen_once.add(key)
                    found[index] = PaperBlocks(view.title, html, text)
        return sections

    def render(self, digest: Digest, settings: Settings) -> RenderedEmail:
        papers = self.paper_blocks(digest, settings)
        values = context(digest, settings, papers)
        blocks = [paper for section in papers for paper in section]
        html_parts = fill(self._html_frame(values), [paper.html for paper in blocks], self._html_stretches)
        text_parts = fill(self._text_frame(values), [paper.text for paper in blocks], self._text_stretches)
        # UTF-8 takes at most 4 bytes a character, and 1 for ASCII: encode only when that may be too much.
        if sum(map(len, html_parts)) + 3 * sum(map(len, filterfalse(str.isascii, html_parts))) > GMAIL_CLIP_BYTES:
            size = sum(len(part.encode()) for part in html_parts)
            if size > GMAIL_CLIP_BYTES:
                log.warning("digest %s for %s is %d bytes of HTML: Gmail will clip it",
                            digest.edition, digest.subscriber.email, size)
        return RenderedEmail(values["subject"], values["preheader"], html_parts, text_parts)
