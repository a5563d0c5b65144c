"""What the arXiv and generic feed readers share: parsing with feedparser, dates, HTML to text."""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import io
import re
import xml.sax
from typing import Any

import feedparser

from ..errors import SourceError

_TAG = re.compile(r"<[^>]+>")
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|blockquote|tr)\b[^>]*>", re.IGNORECASE)


def looks_like_feed(text: str) -> bool:
    head = text.lstrip()[:4000]
    return head.startswith("<") and any(tag in head for tag in ("<rss", "<feed", "<rdf:RDF"))


def parse_feed(text: str, origin: str) -> Any:
    """feedparser's result, or SourceError (with the line) when the XML is not well formed.

    The text goes in as a stream: a plain string that looks like a URL or path would
    make feedparser fetch or open it. (Text decoded from bytes has no lone surrogates;
    one from elsewhere may, and they cannot be encoded: they become "?".)
    """
    result = feedparser.parse(io.BytesIO(text.encode("utf-8", "replace")))
    problem = result.get("bozo_exception")
    if result.get("bozo") and isinstance(problem, xml.sax.SAXException):
        line = problem.getLineNumber() if isinstance(problem, xml.sax.SAXParseException) else None
        raise SourceError(f"broken XML: {problem.getMessage()}", origin=origin, line=line)
    if not result.get("version") and not result.entries:
        raise SourceError("not an RSS or Atom feed", origin=origin)
    return result


def feed_date(raw: str | None) -> dt.datetime | None:
    """An aware datetime from an RFC 822 or ISO 8601 string, keeping its own timezone.

    feedparser's ``*_parsed`` are in UTC, which can move a listing to the wrong day.
    """
    if not raw:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def first_date(obj: Any, *keys: str) -> dt.datetime | None:
    for key in keys:
        found = feed_date(obj.get(key))
        if found:
            return found
    return None


def html_to_text(value: str | None) -> str:
    """Readable text from an HTML summary: block tags become spaces, entities decoded."""
    if not value:
        return ""
    return html.unescape(_TAG.sub("", _BLOCK_TAG.sub(" ", value)))
