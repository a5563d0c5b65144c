"""Plain records passed between the stages.

Every stage takes and returns these; none of them knows about SQL, files or HTTP,
so any stage can be tested with values built by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

# Kinds of link a paper can carry. Sources classify what they find into these.
LINK_KINDS = ("abs", "pdf", "code", "project", "model", "dataset", "other")
# How each kind is labelled wherever a link is shown (emails, feeds, web pages): the one table.
LINK_LABELS = {"abs": "arXiv", "pdf": "PDF", "code": "Code", "project": "Project page", "model": "Model",
               "dataset": "Dataset", "other": "Link"}


class Link(NamedTuple):
    """A named tuple rather than a dataclass: renderers hash and compare links of every
    paper for every reader, and a tuple does both in C."""

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
    (a title with no abstract, a duplicate) so the caller can show it; ``errors`` the
    items it had to leave out (``item 3: field 'authors': ...``), which the caller
    reports as errors of ``origin`` while the rest of the listing goes in.
    """

    source: str
    date: dt.date
    papers: list[Paper]
    origin: str = ""  # the file or URL it came from, for messages
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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
    first_id: str | None = None  # the id it was first stored under, if learning its arXiv id re-keyed it


# Reader states. Only "active" readers get digests; "pending" waits for confirmation.
SUBSCRIBER_STATUSES = ("pending", "active", "paused", "unsubscribed", "bouncing")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(slots=True)
class Topic:
    """A named query. Public topics (``public=True``) have a slug and their own feeds."""

    name: str
    query: str
    public: bool = False
    slug: str = ""


@dataclass(slots=True)
class Subscriber:
    """A reader and their preferences. ``cadence`` is ``daily`` or ``weekly:<weekday>``."""

    email: str
    name: str = ""
    status: str = "active"
    cadence: str = "daily"
    hour: int = 8
    timezone: str = "UTC"
    max_papers: int = 15
    topics: list[Topic] = field(default_factory=list)
    token: str = ""
    created_at: dt.datetime | None = None
    confirmed_at: dt.datetime | None = None
    active_since: dt.datetime | None = None  # when they last became active: a pause is not backlog
    id: int | None = None


class Hit(NamedTuple):
    """Why a paper was picked: a query term found in a field at [start, end) spans.

    A named tuple, like ``Link``: hashed and compared for every paper of every digest."""

    term: str
    field: str  # "title", "abstract" or "author"
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One paper in one reader's digest, under its best topic."""

    paper: Paper
    score: float
    rank: int  # trending rank in its listing
    listing_date: dt.date
    topics: tuple[str, ...]  # every topic of the reader it matched, best first
    hits: tuple[Hit, ...]  # the matched terms of its best topic
    reason: str = ""  # why it matched beyond its words: "related to your topic, similarity 0.63", "like: <title>"
    # Whether its best topic's words found it. False: its meaning or an example alone did, and
    # ``hits`` are only the words the topic required beside them (``title:benchmark``), if any.
    by_words: bool = True
    # The id it was first stored under, before its arXiv id re-keyed it (StoredPaper.first_id):
    # its entry carries that anchor too, so an "And N more" sent before the re-key still lands on it.
    first_id: str | None = None


@dataclass(frozen=True, slots=True)
class DigestSection:
    topic: Topic
    items: tuple[DigestItem, ...]


@dataclass(frozen=True)
class Offered:
    """When a reader's digests offered them papers (shown, or under "And N more"; which ones:
    ``Store.sent_papers_among``), for choosing what is new to them."""

    first_edition: dt.date  # of their first digest (or empty slot): what was listed before it is not news
    last_edition: dt.date | None  # of their newest digest sent (or unknown); None when every slot so far was empty
    # The newest digest sent before deliveries recorded their "And N more" (migration 0010):
    # papers listed until then count as offered, as they did then.
    dated_until: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    """What one reader gets in one email: sections by topic, capped, plus a count of the rest.

    ``edition`` names this digest for this reader (the newest listing date it covers);
    it is how the archive, the delivery record and the Message-ID refer to it.
    """

    subscriber: Subscriber
    edition: str
    listing_date: dt.date
    sections: tuple[DigestSection, ...]
    more: int = 0  # matching papers left out by the reader's cap
    more_from: str = ""  # the first of those in the archive's order (topic by topic): where "and N more" opens it
    # The first listing day it covers, when that is before listing_date (a weekly digest, or
    # a reader catching up: digest.window); None: listing_date's listing alone.
    first_date: dt.date | None = None
    # The ids of the papers behind "more": the delivery records them, and a second digest of
    # the edition (its listing grew) does not offer them as new.
    left_out: tuple[str, ...] = ()
    # Which email of its edition this is for the reader: 2 for one sent after the first (its
    # listing grew). Each has its own archive page, of what that email chose from.
    part: int = 1

    @property
    def papers(self) -> int:
        return sum(len(section.items) for section in self.sections)

    @property
    def topic_names(self) -> list[str]:
        return [section.topic.name for section in self.sections]


@dataclass(frozen=True)
class BounceEvent:
    """Something that came back about a delivery after it was sent: a bounce or a complaint.

    ``reference`` names it where it came from (``mail:<sha256 of the message>``,
    ``ses:<SES feedback id>:<recipient>``) so that reading it twice records it once."""

    reference: str
    kind: str  # hard, soft, complaint, auto-reply or unknown (bounces.classify.KINDS)
    source: str  # imap, mbox, maildir, ses, postmark, sendgrid, mailgun
    received_at: dt.datetime
    status: str = ""  # the enhanced status code (5.1.1)
    diagnostic: str = ""  # the reporting server's words, one clean line
    recipient: str = ""  # the address reported
    subscriber_id: int | None = None
    delivery_id: int | None = None
