"""Any other RSS or Atom feed: each entry's title, summary, link and date become a paper."""

from __future__ import annotations

import datetime as dt

from ..errors import SourceError
from ..models import Listing, Paper
from ..normalize import classify_url, clean_text, extract_links, paper_id, parse_arxiv_id
from ..models import Link
from ._feeds import first_date, html_to_text, looks_like_feed, parse_feed

NAME = "feed"


def looks_like(text: str) -> bool:
    return looks_like_feed(text)


def _paper(entry, origin: str, position: int) -> Paper:
    title = clean_text(html_to_text(entry.get("title")))
    if not title:
        raise SourceError(f"entry {position}: no title", origin=origin)
    link = (entry.get("link") or "").strip()
    found = parse_arxiv_id(link) if "arxiv.org" in link else None
    arxiv_id = found[0] if found else None
    summary = html_to_text(entry.get("summary"))
    links = [Link(link, classify_url(link))] if link.startswith("http") else []
    links += [l for l in extract_links(summary) if l.url != link]
    published = first_date(entry, "published", "updated")
    authors = [clean_text(a.get("name")) for a in entry.get("authors", []) if clean_text(a.get("name"))]
    return Paper(id=paper_id(arxiv_id, title), arxiv_id=arxiv_id, title=title, abstract=clean_text(summary),
                 authors=authors, links=links, published=published.date() if published else None)


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    result = parse_feed(text, origin)
    stamp = first_date(result.feed, "updated", "published")
    entry_dates = [d for e in result.entries if (d := first_date(e, "published", "updated"))]
    if stamp is None and entry_dates:
        stamp = max(entry_dates)
    listing_date = date or (stamp.date() if stamp else None)
    if listing_date is None:
        raise SourceError("the feed has no dates; pass --date YYYY-MM-DD", origin=origin)
    name = clean_text(result.feed.get("title")) or origin
    listing = Listing(source=f"{NAME}:{name}", date=listing_date, papers=[], origin=origin)
    seen: set[str] = set()
    for position, entry in enumerate(result.entries, start=1):
        paper = _paper(entry, origin, position)
        if paper.id not in seen:
            seen.add(paper.id)
            listing.papers.append(paper)
    if not listing.papers:
        listing.warnings.append(f"{origin}: the feed has no entries")
    return [listing]
