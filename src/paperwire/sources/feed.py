"""Any other RSS or Atom feed: each entry's title, summary, link and date become a paper."""

from __future__ import annotations

import datetime as dt

from ..errors import SourceError
from ..models import Link, Listing, Paper
from ..normalize import classify_url, clean_text, extract_links, make_paper, parse_arxiv_id, safe_url, shorten
from ._feeds import first_date, html_to_text, looks_like_feed, parse_feed

NAME = "feed"
_SOURCE_NAME_CHARS = 200  # the feed's title names the source


def looks_like(text: str) -> bool:
    return looks_like_feed(text)


def _paper(entry, origin: str, position: int) -> Paper:
    link = safe_url(entry.get("link"))
    found = parse_arxiv_id(link) if link and "arxiv.org" in link else None
    arxiv_id = found[0] if found else None
    summary = html_to_text(entry.get("summary"))
    links = [Link(link, classify_url(link))] if link else []
    links += extract_links(summary)
    published = first_date(entry, "published", "updated")
    paper = make_paper(title=html_to_text(entry.get("title")), abstract=summary, arxiv_id=arxiv_id,
                       authors=[a.get("name") for a in entry.get("authors", [])], links=links,
                       published=published.date() if published else None)
    if not paper.title:
        raise SourceError(f"entry {position}: field 'title': the entry has no title", origin=origin)
    return paper


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    result = parse_feed(text, origin)
    stamp = first_date(result.feed, "updated", "published")
    entry_dates = [d for e in result.entries if (d := first_date(e, "published", "updated"))]
    if stamp is None and entry_dates:
        stamp = max(entry_dates)
    listing_date = date or (stamp.date() if stamp else None)
    if listing_date is None:
        raise SourceError("the feed has no dates; pass --date YYYY-MM-DD", origin=origin)
    name = shorten(clean_text(result.feed.get("title")), _SOURCE_NAME_CHARS) or origin
    listing = Listing(source=f"{NAME}:{name}", date=listing_date, papers=[], origin=origin)
    seen: set[str] = set()
    for position, entry in enumerate(result.entries, start=1):
        try:
            paper = _paper(entry, origin, position)
        except SourceError as exc:  # one bad entry is left out and reported; the others go in
            listing.errors.append(exc.reason)
            continue
        if paper.id not in seen:
            seen.add(paper.id)
            listing.papers.append(paper)
    if not listing.papers and not listing.errors:
        listing.warnings.append(f"{origin}: the feed has no entries")
    return [listing]
