"""Which stored topics read otherwise than their writers may expect: ``paperwire topics check``.

The query language gained rules after many topics were saved: a comma or semicolon between
terms means OR, an exclusion outside parentheses excludes from every side of OR, and a side
whose bare words say not/no/never/except/excluding is matched by its words only. Some
writings read otherwise than meant (``query.reading_hints``: ``author:Xu Han``, a lower-case
``or``). A topic saved under older rules may not even parse now, and digests leave it out. An
operator needs the list, with how each topic reads now, to tell its reader or fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import QueryError
from .match.meaning import negated_sides
from .models import Subscriber, Topic
from .query import parse_query, reading_hints, reading_rules, render_query


@dataclass(frozen=True)
class Reading:
    """How the parser reads one topic text now, and what in it may surprise its writer."""

    reading: str | None  # query.render_query of it; None when it does not parse
    error: str | None  # the parser's error when it does not parse
    rules: tuple[tuple[str, str], ...]  # (rule, what it does here): separator, outer-exclusion, negation-side
    hints: tuple[str, ...]  # query.reading_hints

    @property
    def notable(self) -> bool:
        return bool(self.error or self.rules or self.hints)


@dataclass(frozen=True)
class Finding:
    """A stored topic to list: whose it is, as written, and its ``Reading``."""

    email: str | None  # the reader's; None for a public topic
    status: str  # the reader's status, or "public"
    name: str
    query: str
    read: Reading

    def as_dict(self) -> dict:
        return {"email": self.email, "status": self.status, "topic": self.name, "query": self.query,
                "reading": self.read.reading, "error": self.read.error,
                "rules": [{"rule": rule, "detail": detail} for rule, detail in self.read.rules],
                "hints": list(self.read.hints)}


def read_topic(text: str) -> Reading:
    """``text`` parsed as digests parse it, with the rules that read it (``query.reading_rules``,
    ``meaning.negated_sides``) and its hints."""
    hints = tuple(reading_hints(text))
    try:
        parsed = parse_query(text)
    except QueryError as error:
        return Reading(None, str(error), (), hints)
    negated = tuple(("negation-side", f"{render_query(side)}: \"{word}\" keeps this side to matching by its words "
                                      "only, never by meaning") for side, word in negated_sides(parsed))
    return Reading(render_query(parsed), None, tuple(reading_rules(text)) + negated, hints)


def check_topics(readers: Iterable[Subscriber], public: Iterable[Topic]) -> tuple[int, list[Finding]]:
    """How many stored topics there are, and those to list: each reader's own topics, in the
    order given (a public topic they follow is checked once, as a public topic), then the public
    topics. Each distinct text is read once (many readers share one)."""
    read: dict[str, Reading] = {}
    owned = [(reader.email, reader.status, topic) for reader in readers for topic in reader.topics if not topic.public]
    stored = owned + [(None, "public", topic) for topic in public]
    found = []
    for email, status, topic in stored:
        if topic.query not in read:
            read[topic.query] = read_topic(topic.query)
        reading = read[topic.query]
        if reading.notable:
            found.append(Finding(email, status, topic.name, topic.query, reading))
    return len(stored), found
