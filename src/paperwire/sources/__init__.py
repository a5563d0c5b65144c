"""Readers of paper listings: one module per format, each turning text into Listings.

Sources never touch the database. ``read_path`` decodes a file, picks the format
(detected from content unless given) and returns what the format's ``parse`` made.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import ModuleType

from ..config import MAX_LISTING_BYTES
from ..errors import SourceError
from ..models import Listing
from ..normalize import not_utf8
from . import arxiv, daily_papers, feed, hf_json

# Detection order matters: specific formats first, the generic feed reader last.
FORMATS: dict[str, ModuleType] = {
    hf_json.NAME: hf_json,
    arxiv.NAME: arxiv,
    feed.NAME: feed,
    daily_papers.NAME: daily_papers,
}
LISTING_SUFFIXES = {".txt", ".md", ".json", ".xml", ".atom", ".rss", ".feed"}


def decode(data: bytes, origin: str) -> str:
    """Bytes to text, refusing binary files with a message that says so."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # what "Unicode" means to some Windows editors
        raise SourceError("UTF-16 text, not UTF-8: save the file as UTF-8", origin=origin)
    if b"\x00" in data[:8192]:
        raise SourceError("binary file (contains NUL bytes), not a paper listing", origin=origin)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, reason = not_utf8(exc)
        raise SourceError(reason, origin=origin, line=line) from None


def detect_format(text: str, origin: str) -> str:
    for name, module in FORMATS.items():
        if module.looks_like(text):
            return name
    raise SourceError(
        "unknown format: not Daily Papers text, Hugging Face JSON, arXiv or RSS/Atom; "
        f"pass --format ({', '.join(FORMATS)}) if it is one of them", origin=origin)


def parse_text(text: str, origin: str, *, format: str | None = None, date: dt.date | None = None,
               today: dt.date | None = None) -> list[Listing]:
    name = format or detect_format(text, origin)
    if name not in FORMATS:
        raise SourceError(f"unknown format '{name}'; choose one of {', '.join(FORMATS)}", origin=origin)
    return FORMATS[name].parse(text, origin, date=date, today=today)


def read_path(path: Path, *, format: str | None = None, date: dt.date | None = None,
              today: dt.date | None = None, max_bytes: int = MAX_LISTING_BYTES) -> list[Listing]:
    """Listings from one file of at most ``max_bytes`` (the ``max_listing_bytes`` setting,
    the same limit as for downloads): a day's listing is well under 1 MB, and a huge file
    would be held in memory whole, several times over, while it is parsed."""
    origin = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # never more than the limit, whatever stat() says
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", origin=origin) from None
    if len(data) > max_bytes:
        raise SourceError(f"file is over the {max_bytes:,}-byte limit (the max_listing_bytes setting)", origin=origin)
    return parse_text(decode(data, origin), origin, format=format, date=date, today=today)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; directories become their listing files, sorted, recursively."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in LISTING_SUFFIXES
                                and not p.name.startswith(".")))
        else:
            files.append(path)
    return files
