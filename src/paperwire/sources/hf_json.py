"""Hugging Face daily-papers API JSON: a list of items, each with a ``paper`` object.

Items are grouped into one listing per day they were submitted to the daily page
(``submittedOnDailyAt``), in file order, which is the page's trending order.

Every field is checked for its JSON type before use: an item whose field has the wrong
type (``"authors": 5``) is left out and reported as ``item 3: field 'paper.authors': ...``
(numbered from 1, in file order) while the other items still go in. A link that is no
usable http(s) URL is left out with a warning.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..errors import SourceError
from ..models import Link, Listing, Paper
from ..normalize import extract_links, make_paper, parse_arxiv_id, safe_url

NAME = "hf-json"
_SHOWN_PROBLEMS = 5  # of a file whose every item is bad, this many are named in its error


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


def json_kind(value: Any) -> str:
    """A JSON value's type as a person says it, for messages."""
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object",
            type(None): "null"}.get(
        type(value), type(value).__name__)


def _bad(position: int, field: str, expected: str, value: Any) -> SourceError:
    return SourceError(f"item {position}: field '{field}': expected {expected}, got {json_kind(value)}")


def _optional(raw: dict[str, Any], field: str, expected: type, what: str, position: int,
              prefix: str = "paper.") -> Any:
    """``raw[field]`` when it has the ``expected`` JSON type; None when absent or null.

    ``prefix`` is where ``raw`` sits in the item, for the message."""
    value = raw.get(field)
    if value is None or isinstance(value, expected) and not isinstance(value, bool):
        return value
    raise _bad(position, prefix + field, what, value)


def _authors(raw: dict[str, Any], position: int) -> list[str]:
    names = []
    for index, author in enumerate(_optional(raw, "authors", list, "a list of author objects", position) or []):
        if not isinstance(author, dict):
            raise _bad(position, f"paper.authors[{index}]", "an author object", author)
        names.append(_optional(author, "name", str, "text", position, f"paper.authors[{index}]."))
    return names


def _keywords(raw: dict[str, Any], position: int) -> list[str]:
    keywords = _optional(raw, "ai_keywords", list, "a list of texts", position) or []
    for index, keyword in enumerate(keywords):
        if not isinstance(keyword, str):
            raise _bad(position, f"paper.ai_keywords[{index}]", "text", keyword)
    return keywords


def _page_link(raw: dict[str, Any], field: str, kind: str, position: int, warnings: list[str]) -> list[Link]:
    """The item's ``githubRepo`` or ``projectPage``, when it is a usable link."""
    value = _optional(raw, field, str, "text", position)
    if not value or not value.strip():
        return []
    url = safe_url(value)
    if url is None:
        warnings.append(f"item {position}: field 'paper.{field}': not a usable http(s) link; left out")
        return []
    return [Link(url, kind)]


def _paper(raw: dict[str, Any], position: int, warnings: list[str]) -> Paper:
    title = _optional(raw, "title", str, "text", position)
    found = parse_arxiv_id(_optional(raw, "id", str, "text", position))
    arxiv_id = found[0] if found else None
    summary = _optional(raw, "summary", str, "text", position) or ""
    authors = _authors(raw, position)
    keywords = _keywords(raw, position)
    links: list[Link] = []
    if arxiv_id:
        links += [Link(f"https://arxiv.org/abs/{arxiv_id}", "abs"), Link(f"https://arxiv.org/pdf/{arxiv_id}", "pdf")]
    links += _page_link(raw, "githubRepo", "code", position, warnings)
    links += _page_link(raw, "projectPage", "project", position, warnings)
    links += extract_links(summary)
    paper = make_paper(title=title, abstract=summary, arxiv_id=arxiv_id, authors=authors, links=links,
                       keywords=keywords, published=_date(_optional(raw, "publishedAt", str, "text", position)))
    if not paper.title:
        raise SourceError(f"item {position}: field 'paper.title': the paper has no title")
    return paper


def _items(data: Any, origin: str) -> list[Any]:
    """The list of items, or a SourceError when the document is no daily-papers list at all."""
    if isinstance(data, dict) and isinstance(data.get("papers"), list):
        data = data["papers"]  # some dumps wrap the list
    if not isinstance(data, list) or data and not any(
            isinstance(i, dict) and isinstance(i.get("paper"), dict) for i in data):
        raise SourceError("JSON is not a Hugging Face daily-papers list (items with a 'paper' object)", origin=origin)
    return data


def _day(item: dict[str, Any], raw: dict[str, Any], position: int, date: dt.date | None) -> dt.date:
    submitted = _date(_optional(raw, "submittedOnDailyAt", str, "text", position))
    published = _date(_optional(item, "publishedAt", str, "text", position, ""))
    day = date or submitted or published or _date(raw.get("publishedAt"))
    if day is None:
        raise SourceError(f"item {position}: field 'paper.submittedOnDailyAt': no date here or in 'publishedAt'; "
                          "pass --date")
    return day


def parse(text: str, origin: str, *, date: dt.date | None = None, today: dt.date | None = None) -> list[Listing]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"broken JSON: {exc.msg} (column {exc.colno})", origin=origin, line=exc.lineno) from None
    except RecursionError:
        raise SourceError("broken JSON: nested too deeply", origin=origin) from None
    items = _items(data, origin)
    listings: dict[dt.date, Listing] = {}
    seen: dict[dt.date, set[str]] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for position, item in enumerate(items, start=1):
        try:
            if not isinstance(item, dict):
                raise SourceError(f"item {position}: expected an object with a 'paper' object, got {json_kind(item)}")
            if not isinstance(item.get("paper"), dict):
                raise _bad(position, "paper", "an object", item.get("paper"))
            raw = item["paper"]
            day = _day(item, raw, position, date)
            paper = _paper(raw, position, warnings)
        except SourceError as exc:
            problems.append(exc.reason)
            continue
        listing = listings.setdefault(day, Listing(source=NAME, date=day, papers=[], origin=origin))
        known = seen.setdefault(day, set())
        if paper.id in known:
            listing.warnings.append(f"{origin}: item {position}: '{paper.title}' is listed twice; kept the first place")
            continue
        known.add(paper.id)
        listing.papers.append(paper)
    if not listings:
        if problems:
            more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
            raise SourceError("no usable item: " + "; ".join(problems[:_SHOWN_PROBLEMS]) + more, origin=origin)
        raise SourceError("the JSON list has no papers", origin=origin)
    ordered = sorted(listings.values(), key=lambda l: l.date)
    ordered[0].errors.extend(problems)  # reported once per file, whichever day each item was for
    ordered[0].warnings.extend(f"{origin}: {warning}" for warning in warnings)
    return ordered
