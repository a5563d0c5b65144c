"""Digest -> email (subject, preheader, HTML, plain text): pure apart from reading templates.

The whole email is in ``templates/``: ``email.mjml.j2`` (MJML with Jinja in it) loops over
the digest's sections and their papers and shows each paper with ``email_paper.html.j2``;
``email.txt.j2`` and ``email_paper.txt.j2`` do the same for the plain-text part. MRML
(mjml-python) keeps the Jinja syntax intact, so the MJML is compiled ONCE to an HTML Jinja
template (kept by its source for the life of the process) and then rendered per reader with
autoescape on.

Every value the templates show is computed once into one context of frozen values
(``context``; a paper's own values come from paperview.py), so the HTML and the text part
carry the same content and the templates stay dumb. Each reader's email is rendered whole
from that reader's context. What is reused across readers is cached by its complete input:
a paper's block by every value the frame passes it (``include_shared``), a paper's parts
and excerpt by the paper and its hits (paperview.py), so nothing of one reader's can reach
another reader's email.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import (ChoiceLoader, DictLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError,
                    TemplateNotFound, TemplateSyntaxError, nodes)
from jinja2.ext import Extension
from markupsafe import Markup
from mjml import mjml2html

from . import urls
from .config import Settings
from .errors import ConfigError
from .mail import GMAIL_CLIP_BYTES
from .models import Digest, Subscriber
from .normalize import clean_line, not_utf8, shorten
from .digest import without_last
from .paperview import PaperView, also_in, item_view

log = logging.getLogger(__name__)

# Worst-case papers (see the module docstring) that still fit under GMAIL_CLIP_BYTES;
# measured by tests/test_render_email.py::test_cap_where_size_limit_holds.
MAX_PAPERS_UNDER_CLIP = 38
SUBJECT_TOPIC_CHARS = 42  # topic names shown in the subject before "+N more"
PREHEADER_CHARS = 140
TEXT_WIDTH = 76
SHARED_BLOCKS_KEPT = 8192  # rendered blocks kept per template environment (include_shared)
HTML_FRAME = "email.html.j2"  # the name the compiled email.mjml.j2 goes by in the HTML environment

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


class SectionView(NamedTuple):
    name: str
    number: int  # 1, 2, ...
    items: tuple[ItemView, ...]


# --- compiling the MJML once -------------------------------------------------------------

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


@lru_cache(maxsize=8)  # keyed by the MJML source (and its file's name): compiled once per process (~8 ms)
def compiled_html(source: str, filename: str = "email.mjml.j2") -> str:
    """The compiled template for ``source`` (see ``compile_mjml``). Its Jinja is parsed first,
    so that a syntax error is reported on the MJML file's own lines (``TemplateSyntaxError``
    naming ``filename``), not on the compiled HTML's."""
    Environment().parse(source, "email.mjml.j2", filename)
    return compile_mjml(source)


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
    """``7 new papers on scaling laws, MoE (Mar 11)``; long topic lists end in ``+N more``."""
    count = digest.papers
    names = [clean_line(name) for name in (digest.topic_names if count else
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
    at = f"at {reader.hour:02d}:00 {clean_line(reader.timezone)}"
    if reader.cadence.startswith("weekly"):
        day = WEEKDAY_NAMES.get(reader.cadence.partition(":")[2])
        return f"weekly on {day}s {at}" if day else f"weekly {at}"
    return f"{clean_line(reader.cadence)} {at}"


def intro(shown: int, more: int, when: str) -> str:
    """``70 new papers matched your topics in the Mar 11 listing; here are the best 5.``"""
    matched = shown + more
    if not matched:
        return f"Nothing new matched your topics in the {when} listing."
    said = f"{matched} new paper{'s' if matched != 1 else ''} matched your topics in the {when} listing"
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
                                  more_like(item.paper.id)))
        shown.append(SectionView(name, index, tuple(items)))
    return tuple(shown)


def context(digest: Digest, settings: Settings) -> dict[str, Any]:
    """Everything the templates show, computed once for both parts, from this digest alone."""
    reader = digest.subscriber
    base = settings.base_url
    shown = sections(digest, settings)
    titles = [item.paper.title for section in shown for item in section.items]
    when = date_label(digest.listing_date)
    subscribed = ", ".join(clean_line(topic.name) for topic in reader.topics) or "paperwire"
    count = digest.papers
    name = clean_line(reader.name)
    return {
        "subject": subject_line(digest),
        "preheader": shorten(" · ".join(titles), PREHEADER_CHARS) if titles
        else intro(0, 0, when),
        "date": when,
        "greeting": f"Hi {name}," if name else "Hello,",
        "intro": intro(count, digest.more, when),
        "sections": shown,
        "more": digest.more,
        "more_label": f"And {digest.more} more matching paper{'s' if digest.more != 1 else ''}",
        "more_url": urls.more(base, reader, digest.edition, digest.more_from),
        "manage_url": urls.manage(base, reader),
        "unsubscribe_url": urls.unsubscribe(base, reader),
        "feed_url": urls.private_feed(base, reader),
        "archive_url": urls.archive(base, reader, digest.edition),
        "reason": f"You get this because you subscribed to {subscribed} with {clean_line(reader.email)}"
                  f" — {schedule_phrase(reader)}.",
        "sender_name": clean_line(settings.sender_name),
        "sender_line": clean_line(settings.sender_line),
    }


class SharedIncludes:
    """The ``include_shared`` filter: ``{{ "name.j2" | include_shared(paper=item.paper) }}`` is
    template ``name.j2`` rendered with exactly these values and nothing else, kept for every
    reader who passes the same values. (A filter rather than a function: Jinja calls filters
    directly and functions through the context, ~1.5 µs more per paper and part.)

    The key is the complete input of the rendering (the template's name and every value,
    with its type, since ``1 == True``: ``lru_cache(typed=True)`` builds it in C), so the
    block can depend on nothing the key leaves out: a template that reads a value it was
    not given fails (StrictUndefined), and a per-reader value passed in makes the block per
    reader. Values must be frozen (hashable). Inside a tuple, values are compared by
    equality only (a ``Markup`` and an equal ``str`` are one key), so a field that holds
    markup must always hold markup, as ``PaperView``'s do.
    """

    def __init__(self, env: Environment, size: int = SHARED_BLOCKS_KEPT) -> None:
        self.env = env
        self.rendered_by_values = lru_cache(maxsize=size, typed=True)(self._render)

    def __call__(self, name: str, **values: Any) -> str:
        try:
            return self.rendered_by_values(name, **values)
        except TypeError:
            unfrozen = [key for key, value in values.items() if not _hashable(value)]
            if not unfrozen:
                raise
            raise TemplateError(f"include_shared({name!r}): {', '.join(unfrozen)} must be frozen "
                                f"(a str, number, tuple or frozen dataclass)") from None

    def _render(self, name: str, **values: Any) -> str:
        output = self.env.get_template(name).render(values)
        return Markup(output) if self.env.autoescape else output


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class NoTrailingWhitespace(Extension):
    """Text templates are read without whitespace at their lines' ends: invisible in plain
    text, and quoted-printable would write it past RFC 2045's 76 characters on a long line
    (see ``mail._encoded``). The signature delimiter ``-- `` keeps its space (RFC 3676)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _LINE_END_WHITESPACE.sub("", source)


_LINE_END_WHITESPACE = re.compile(r"(?<!^--)[ \t]+(?=\r?$)", re.MULTILINE)


def environments(templates_dir: Path, compiled_frame: str) -> tuple[Environment, Environment]:
    """The HTML environment (autoescape; the compiled MJML as ``HTML_FRAME``) and the text one
    (no escaping: a plain-text part shows ``k<n`` or ``<SEG>`` as written, as the HTML part
    does once escaped); both read the paper templates from ``templates_dir``
    and give templates the ``include_shared`` filter (``SharedIncludes``).

    Each paper template's last line break is kept, so a paper's block ends its line. No
    auto-reload: templates are read once per renderer, not checked on every render.
    """
    from_folder = FileSystemLoader(templates_dir)
    options: dict[str, Any] = {"undefined": StrictUndefined, "trim_blocks": True, "lstrip_blocks": True,
                               "keep_trailing_newline": True, "auto_reload": False}
    html_env = Environment(loader=ChoiceLoader([DictLoader({HTML_FRAME: compiled_frame}), from_folder]),
                           autoescape=True, **options)
    text_env = Environment(loader=from_folder, autoescape=False, extensions=[NoTrailingWhitespace], **options)
    text_env.filters["wrap"] = wrap
    text_env.filters["numbered"] = numbered
    for env in (html_env, text_env):
        env.filters["include_shared"] = SharedIncludes(env)
    return html_env, text_env


def template_problem(exc: TemplateError, templates_dir: Path) -> ConfigError:
    """A template that is missing or does not parse, as one line naming the file and line."""
    if isinstance(exc, TemplateNotFound):
        return ConfigError(f"setting 'templates_dir': {templates_dir} has no template {exc.name}")
    if isinstance(exc, TemplateSyntaxError):
        where = exc.filename or str(templates_dir / (exc.name or "?"))
        if exc.name == HTML_FRAME:  # an error only the compiled MJML shows: its lines are not the file's
            where = f"{templates_dir / 'email.mjml.j2'} (as compiled by MJML)"
        return ConfigError(f"{where}:{exc.lineno}: {exc.message}")
    return ConfigError(f"templates in {templates_dir}: {exc}")


def not_utf8_template(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    """A template that is not UTF-8 text, as one line naming the file, line and byte."""
    line, reason = not_utf8(exc)
    return ConfigError(f"{path}:{line}: {reason}")


def named_templates(tree: nodes.Template) -> Iterator[str]:
    """The templates ``tree`` cannot render without: those named by a literal string in
    extends, import and include (not ``ignore missing`` nor a list of choices, which may
    do without one), and in ``"name.j2" | include_shared(...)``."""
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        if not getattr(node, "ignore_missing", False) and _literal_name(node.template):
            yield node.template.value
    for node in tree.find_all(nodes.Filter):
        if node.name == "include_shared" and _literal_name(node.node):
            yield node.node.value


def _literal_name(node: nodes.Node | None) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def load_all(env: Environment, names: Iterable[str], templates_dir: Path) -> None:
    """Compile ``names`` and, transitively, every template they name (``named_templates``):
    a block the frames include that is missing, broken or not UTF-8 is found when rendering
    starts, not once per reader."""
    pending, seen = list(names), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            env.get_template(name)
            source, _, _ = env.loader.get_source(env, name)
        except UnicodeDecodeError as exc:
            raise not_utf8_template(templates_dir / name, exc) from None
        pending.extend(named_templates(env.parse(source, name)))


class EmailRenderer:
    """Compile once, render per reader: ``EmailRenderer(templates).render(digest, settings)``."""

    def __init__(self, templates_dir: Path) -> None:
        """Reads and compiles every email template now, so that a missing file or a syntax
        error is one clear error (``ConfigError``, naming the file and line) before any reader."""
        templates_dir = Path(templates_dir)
        frame_file = templates_dir / "email.mjml.j2"
        try:
            source = frame_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise not_utf8_template(frame_file, exc) from None
        except OSError as exc:
            raise ConfigError(f"setting 'templates_dir': cannot read {frame_file}: {exc.strerror or exc}") from None
        try:
            frame = compiled_html(source, str(frame_file))
        except TemplateSyntaxError as exc:
            raise template_problem(exc, templates_dir) from None
        except ValueError as exc:  # MRML: not MJML it can read
            raise ConfigError(f"{frame_file}: not valid MJML: {exc}") from None
        html_env, text_env = environments(templates_dir, frame)
        try:
            for env, first, kind in ((html_env, HTML_FRAME, ".html.j2"), (text_env, "email.txt.j2", ".txt.j2")):
                blocks = env.list_templates(filter_func=lambda name, kind=kind: name.startswith("email")
                                            and name.endswith(kind) and "/" not in name)
                load_all(env, [first, *blocks], templates_dir)  # and the blocks they name, present or not
            self.html_template = html_env.get_template(HTML_FRAME)
            self.text_template = text_env.get_template("email.txt.j2")
        except TemplateError as exc:
            raise template_problem(exc, templates_dir) from None
        for template in (self.html_template, self.text_template):
            # Jinja keeps a template's globals (range, namespace, ...) as a ChainMap over the
            # environment's and copies them into each render's context in Python (~8 µs a
            # render, more than any paper); the same values as a dict are copied in C.
            template.globals = dict(template.globals)

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
        html = self.html_template.render(values)
        return RenderedEmail(values["subject"], values["preheader"], html, self.text_template.render(values))


def _over_clip(html: str) -> int:
    """The HTML's size in UTF-8 if Gmail would clip it, else 0. UTF-8 takes at most 4 bytes
    a character: encoded only when that may be too much."""
    return size if len(html) * 4 > GMAIL_CLIP_BYTES and (size := len(html.encode())) > GMAIL_CLIP_BYTES else 0
