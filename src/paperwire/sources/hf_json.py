"""Hugging Face daily-papers API JSON: a list of items, each with a ``paper`` object.

Items are grouped into one listing per day they were submitted to the daily page
(``submittedOnDailyAt``), in file order, which is the page's trending order.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..errors import SourceError
from ..models import Link, Listing, Paper
from ..normalize import clean_text, extract_links, paper_id, parse_arxiv_id

NAME = "hf-json"


def looks_like(text: str) -> bool:
    """Any JSON document: this is our only JSON format, so broken or foreign JSON gets
    this parser's precise message instead of "unknown format"."""
    return text.lstrip().startswith(("[", "{"))


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _text(value: Any) -> str:
    return clean_text(value) if isinstance(value, str) else ""


def _paper(raw: dict[str, Any], origin: str, position: int) -> Paper:
    title = _text(raw.get("title"))
    if not title:
        raise SourceError(f"item {position}: paper has no title", origin=origin)
    arxiv = parse_arxiv_id(str(raw.get("id") or ""))
    arxiv_id = arxiv[0] if arxiv else None
    summary = raw.get("summary") if isinstance(raw.get("summary"), str) else ""
    authors = [_text(a.get("name")) for a in raw.get("authors") or [] if isinstance(a, dict) and _text(a.get("name"))]
    links: list[Link] = []
    if arxiv_id:
        links += [Link(f"https://arxiv.org/abs/{arxiv_id}", "abs"), Link(f"https://arxiv.org/pdf/{arxiv_id}", "pdf")]
    if isinstance(raw.get("githubRepo"), str) and raw["githubRepo"].startswith("http"):
        links.append(Link(raw["githubRepo"].strip(), "code"))
    if isinstance(raw.get("projectPage"), str) and raw["projectPage"].startswith("http"):
        links.append(Link(raw["projectPage"].strip(), "project"))
    known = {link.url for link in links}
    links += [link for link in extract_links(summary) if link.url not in known]
    keywords = [_text(k) for k in raw.get("ai_keywords") or [] if isinstance(k, str) and k.strip()]
    return Paper(
        id=paper_id(arxiv_id, title), arxiv_id=arxiv_id, title=title, abstract=clean_text(summary),
        authors=authors, links=links, keywords=keywords, published=_date(raw.get("publishedAt")),
    )


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"broken JSON: {exc.msg} (column {exc.colno})", origin=origin, line=exc.lineno) from None
    if isinstance(data, dict) and isinstance(data.get("papers"), list):
        data = data["papers"]  # some dumps wrap the list
    if not isinstance(data, list) or not all(isinstance(i, dict) and isinstance(i.get("paper"), dict) for i in data):
        raise SourceError("JSON is not a Hugging Face daily-papers list (items with a 'paper' object)", origin=origin)
    listings: dict[dt.date, Listing] = {}
    seen: dict[dt.date, set[str]] = {}
    for position, item in enumerate(data, start=1):
        raw = item["paper"]
        day = date or _date(raw.get("submittedOnDailyAt")) or _date(item.get("publishedAt")) or _date(raw.get("publishedAt"))
        if day is None:
            raise SourceError(f"item {position}: no submittedOnDailyAt or publishedAt date; pass --date", origin=origin)
        listing = listings.setdefault(day, Listing(source=NAME, date=day, papers=[], origin=origin))
        seen.setdefault(day, set())
        paper = _paper(raw, origin, position)
        if paper.id in seen[day]:
            listing.warnings.append(f"{origin}: item {position}: '{paper.title}' is listed twice; kept the first place")
            continue
        seen[day].add(paper.id)
        listing.papers.append(paper)
    if not listings:
        raise SourceError("the JSON list has no papers", origin=origin)
    return sorted(listings.values(), key=lambda l: l.date)
