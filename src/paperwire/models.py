"""Plain records passed between the stages.

Every stage takes and returns these; none of them knows about SQL, files or HTTP,
so any stage can be tested with values built by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Kinds of link a paper can carry. Sources classify what they find into these.
LINK_KINDS = ("abs", "pdf", "code", "project", "model", "dataset", "other")


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    kind: str  # one of LINK_KINDS


@dataclass(slots=True)
class Paper:
    """One paper as a source saw it; ``id`` is stable across sources and runs."""

    id: str
    title: str
    abstract: str = ""
    arxiv_id: str | None = None  # without version, e.g. "2403.06789"
    authors: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    published: dt.date | None = None
    first_seen: dt.datetime | None = None


@dataclass(slots=True)
class Listing:
    """One day's list of papers from one source, in the source's own (trending) order.

    ``papers[i]`` has rank ``i + 1``. ``warnings`` carries what the parser tolerated
    (a title with no abstract, a duplicate) so the caller can show it.
    """

    source: str
    date: dt.date
    papers: list[Paper]
    origin: str = ""  # the file or URL it came from, for messages
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Appearance:
    """Where a stored paper was listed."""

    date: dt.date
    rank: int
    source: str


@dataclass(slots=True)
class StoredPaper:
    """A paper as the store knows it: merged from all sources, with its listings."""

    paper: Paper
    listings: list[Appearance] = field(default_factory=list)
