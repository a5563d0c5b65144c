"""The "Daily Papers" page capture: header lines, a date, then title / abstract paragraphs.

Real captures vary (see DESIGN.md): plain or Markdown headers, hard-wrapped abstracts,
CRLF, a BOM, a paper listed twice, a title with no abstract. The text is split into
blocks at blank lines; a block is a title when it is one short line, an abstract
otherwise, and a title followed by another title has no abstract.
"""

from __future__ import annotations

import datetime as dt
import re

from ..errors import SourceError
from ..models import Listing, Paper
from ..normalize import clean_text, extract_links, make_paper, title_key

NAME = "daily-papers"

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DATE_LINE = re.compile(
    r"^(?P<month>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+(?P<day>\d{1,2})"
    r"(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{4}))?$",
    re.IGNORECASE,
)
# Page furniture around the list, plain or as Markdown headings/bold/links.
_HEADER_LINES = {
    "new", "subscribe", "daily papers", "get trending papers in your email inbox!",
    "get trending papers in your email inbox", "byak and the research community",
    "by ak and the research community", "trending papers", "previous", "next",
}
_MARKDOWN_PREFIX = re.compile(r"^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|>\s*)")
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(\S(?:.*?\S)?)\1")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
# A title is a single short line; a longer or multi-line block is an abstract.
_TITLE_MAX_CHARS = 300
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")
_SENTENCE_BREAK = re.compile(r"[a-z0-9)][.!?]\s+[A-Z]")


def _plain(line: str) -> str:
    """A line without Markdown decoration; `[text](url)` becomes `text`."""
    if "](" in line:
        line = _MARKDOWN_LINK.sub(r"\1", line)
    if "*" in line or "`" in line or "__" in line:
        line = _MARKDOWN_EMPHASIS.sub(r"\2", line)
    return _MARKDOWN_PREFIX.sub("", line).strip()


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Paragraphs as (1-based first line number, lines), split at blank lines."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line.strip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _is_header(line: str) -> bool:
    return _plain(line).casefold().rstrip(":") in _HEADER_LINES


def _parse_date(line: str, today: dt.date) -> dt.date | None:
    match = _DATE_LINE.match(_plain(line))
    if not match:
        return None
    month = _MONTHS[match["month"][:3].lower()]
    day = int(match["day"])
    if match["year"]:
        return dt.date(int(match["year"]), month, day)
    # The most recent year that does not put the date in the future.
    for year in (today.year, today.year - 1, today.year - 2, today.year - 4):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:  # Feb 29 outside a leap year
            continue
        if candidate <= today:
            return candidate
    return None


def _looks_like_title(lines: list[str]) -> bool:
    if len(lines) != 1:
        return False
    text = _plain(lines[0])
    if len(text) > _TITLE_MAX_CHARS:
        return False
    # A one-line paragraph of several sentences, or one long sentence ending in a
    # full stop, is an abstract however short; titles may end in '?' or '!'.
    if _SENTENCE_END.search(text) and _SENTENCE_BREAK.search(text):
        return False
    return not (text.endswith(".") and len(text.split()) >= 20)


def looks_like(text: str) -> bool:
    """True when the first lines carry the page's header or a date line."""
    head = [line for line in text.splitlines()[:40] if line.strip()]
    return any(_is_header(line) or _DATE_LINE.match(_plain(line)) for line in head[:12])


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    """One Listing from one capture. Raises SourceError when there is no date or no paper."""
    today = today or dt.date.today()
    lines = text.lstrip("\ufeff").splitlines()
    blocks = _blocks(lines)

    # Preamble: header furniture and the date line, before the first paper.
    listing_date: dt.date | None = None
    first_paper_block = 0
    for _, block in blocks:
        dates = [found for line in block if (found := _parse_date(line, today))]
        if not all(_is_header(line) or _parse_date(line, today) for line in block) or len(dates) > 1:
            break
        if dates and listing_date is not None:
            break  # a second date line starts another day's list; stop the preamble here
        listing_date = listing_date or (dates[0] if dates else None)
        first_paper_block += 1
    listing_date = date or listing_date
    if listing_date is None:
        raise SourceError("no date line (such as 'Mar 11') found; pass --date YYYY-MM-DD", origin=origin)

    listing = Listing(source=NAME, date=listing_date, papers=[], origin=origin)
    by_key: dict[str, Paper] = {}
    paper_blocks = blocks[first_paper_block:]
    index = 0
    while index < len(paper_blocks):
        number, block = paper_blocks[index]
        if all(_is_header(line) for line in block):  # page furniture after the list
            index += 1
            continue
        if not _looks_like_title(block):
            raise SourceError(
                "expected a paper title (one short line) but found a paragraph; "
                "is a title missing above this abstract?", origin=origin, line=number)
        title = clean_text(_plain(block[0]))
        abstract_lines: list[str] = []
        following = paper_blocks[index + 1][1] if index + 1 < len(paper_blocks) else None
        if following is not None and not _looks_like_title(following):
            abstract_lines = following
            index += 2
        else:
            index += 1
            listing.warnings.append(f"{origin}:{number}: '{title}' has no abstract; kept without one")
        raw_abstract = " ".join(_plain(l) if l.lstrip().startswith(("#", ">")) else l for l in abstract_lines)
        _add_paper(listing, by_key, title, raw_abstract, number, origin)

    if not listing.papers:
        raise SourceError("the listing has a date but no papers", origin=origin)
    return [listing]


def _add_paper(listing: Listing, by_key: dict[str, Paper], title: str, raw_abstract: str, line: int,
               origin: str) -> None:
    """Append a paper, or fold a repeat into the first listing of it (keeping its rank)."""
    paper = make_paper(title=title, abstract=raw_abstract, links=extract_links(raw_abstract))
    if not paper.title:
        return
    key = title_key(paper.title)
    if key in by_key:
        first = by_key[key]
        if not first.abstract and paper.abstract:
            first.abstract, first.links = paper.abstract, paper.links
        listing.warnings.append(f"{origin}:{line}: '{title}' is listed twice; kept the first place")
        return
    by_key[key] = paper
    listing.papers.append(paper)
