"""Conditional GET (RFC 9110 section 13): ETag / Last-Modified out, 304 Not Modified back.

Feed readers poll; answering "unchanged" in a few bytes is what keeps that cheap.
If-None-Match wins over If-Modified-Since when both are sent, as the RFC says.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response

from .data import Document


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches anything."""
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def _not_modified_since(header: str, last_modified: dt.datetime) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False  # an unparsable date is ignored, as the RFC says
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return last_modified <= since


def conditional(request: Request, doc: Document, media_type: str, *, cache: str = "public, max-age=300") -> Response:
    """The document, or 304 when the client's copy is current."""
    headers = {"ETag": doc.etag, "Cache-Control": cache}
    if doc.last_modified is not None:
        headers["Last-Modified"] = format_datetime(doc.last_modified.astimezone(dt.timezone.utc), usegmt=True)
    if_none_match = request.headers.get("if-none-match")
    if_modified_since = request.headers.get("if-modified-since")
    if if_none_match is not None:
        fresh = _etag_matches(if_none_match, doc.etag)
    elif if_modified_since is not None and doc.last_modified is not None:
        fresh = _not_modified_since(if_modified_since, doc.last_modified)
    else:
        fresh = False
    if fresh:
        return Response(status_code=304, headers=headers)
    return Response(doc.body, media_type=media_type, headers=headers)  # the server drops the body for HEAD
