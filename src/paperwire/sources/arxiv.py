"""arXiv API Atom responses and arXiv listing RSS/Atom feeds (rss.arxiv.org), via feedparser.

Listing feeds prefix each abstract with ``arXiv:ID Announce Type: new Abstract:``;
that is dropped. An empty weekend feed is a listing with no papers, not an error.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import SourceError
from ..models import Link, Listing, Paper
from ..normalize import clean_text, extract_links, make_paper, parse_arxiv_id
from ._feeds import first_date, looks_like_feed, parse_feed

NAME = "arxiv"

_ANNOUNCE_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_LISTING_CATEGORY = re.compile(r"(?:rss|atom)/([\w.+-]+)|^([\w.-]+) updates on arXiv", re.IGNORECASE)
_AUTHOR_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


_ARXIV_MARKERS = ("http://arxiv.org/schemas/atom", "updates on arxiv.org", "rss.arxiv.org", "arxiv.org/api/")


def looks_like(text: str) -> bool:
    """An arXiv API response or listing feed: the arXiv namespace or feed address near the top.

    A mere link to arxiv.org is not enough: any blog feed may have one.
    """
    head = text.lstrip()[:4000].lower()
    return looks_like_feed(text) and any(marker in head for marker in _ARXIV_MARKERS)


def _source_name(feed: Any) -> str:
    """``arxiv:cs.CL`` for a listing feed, ``arxiv:api`` for an API response."""
    for candidate in (feed.get("title", ""), *(l.get("href", "") for l in feed.get("links", [])), feed.get("link", "")):
        match = _LISTING_CATEGORY.search(candidate or "")
        if match:
            return f"{NAME}:{match.group(1) or match.group(2)}"
    return f"{NAME}:api"


def _authors(entry: Any) -> list[str]:
    names = [a.get("name", "") for a in entry.get("authors", []) if a.get("name")]
    if len(names) == 1 and "," in names[0]:  # listing feeds put everyone in one dc:creator
        names = _AUTHOR_SPLIT.split(names[0])
    return [clean_text(n) for n in names if clean_text(n)]


def _paper(entry: Any, origin: str, position: int) -> Paper:
    found = parse_arxiv_id(entry.get("id", "")) or parse_arxiv_id(entry.get("link", ""))
    if not found:
        raise SourceError(f"entry {position}: field 'id': no arXiv id here or in the link", origin=origin)
    arxiv_id = found[0]
    raw_abstract = _ANNOUNCE_PREFIX.sub("", entry.get("summary", ""))
    links = [Link(f"https://arxiv.org/abs/{arxiv_id}", "abs"), Link(f"https://arxiv.org/pdf/{arxiv_id}", "pdf")]
    known = {link.url for link in links}
    extra_text = raw_abstract + " " + entry.get("arxiv_comment", "")
    links += [link for link in extract_links(extra_text) if link.url not in known and link.kind not in ("abs", "pdf")]
    categories = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
    primary = (entry.get("arxiv_primary_category") or {}).get("term")
    if primary:
        categories = [primary] + [c for c in categories if c != primary]
    published = first_date(entry, "published", "updated")
    paper = make_paper(title=entry.get("title"), abstract=raw_abstract, arxiv_id=arxiv_id, authors=_authors(entry),
                       links=links, categories=categories, published=published.date() if published else None)
    if not paper.title:
        raise SourceError(f"entry {position}: field 'title': the paper has no title", origin=origin)
    return paper


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    result = parse_feed(text, origin)
    feed = result.feed
    stamp = first_date(feed, "published", "updated")
    if date is None and stamp is None and result.entries:
        stamp = max((first_date(e, "updated", "published") for e in result.entries), default=None,
                    key=lambda d: d or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    listing_date = date or (stamp.date() if stamp else None)
    if listing_date is None:
        raise SourceError("the feed has no date (pubDate/updated); pass --date YYYY-MM-DD", origin=origin)
    listing = Listing(source=_source_name(feed), date=listing_date, papers=[], origin=origin)
    seen: set[str] = set()
    for position, entry in enumerate(result.entries, start=1):
        try:
            paper = _paper(entry, origin, position)
        except SourceError as exc:  # one bad entry is left out and reported; the others go in
            listing.errors.append(exc.reason)
            continue
        if paper.id in seen:
            listing.warnings.append(f"{origin}: entry {position}: {paper.id} is listed twice; kept the first place")
            continue
        seen.add(paper.id)
        listing.papers.append(paper)
    if not listing.papers and not listing.errors:
        listing.warnings.append(f"{origin}: the feed lists no papers (an arXiv weekend or holiday feed)")
    return [listing]
