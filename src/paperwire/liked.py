"""A reader's liked papers: their own topic named "Liked", whose query is ``like:<id>`` terms
joined by ``OR``, newest first (``like:2403.12345 OR like:2402.00001``).

Keeping the list as an ordinary topic means no new table: the reader's digests, feeds,
archive and export see it like any other topic, and the matcher gives ``like:`` its
meaning (papers similar to that one). This module is the one place that reads and writes
the list; it understands exactly the form it writes (``parse_ids``), nothing looser, so a
topic a reader wrote by hand and happened to name "Liked" is never taken for the list or
rewritten.

The topic is stored without ``subscribers.make_topic`` (no query parser is needed to build
it), and the manage form leaves it out of the topics box and keeps it on save
(``without_liked`` / ``keep_liked``): the reader edits it with like and remove buttons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from .errors import ValidationError
from .models import Subscriber, Topic
from .query import MAX_LIKES
from .subscribers import QUERY_MAX, slugify

NAME = "Liked"
SLUG = slugify(NAME)
# Papers kept; liking one more forgets the oldest. As many as a topic may compare with, so every
# kept like finds its similar papers (a longer list would not even parse).
MAX_LIKED = MAX_LIKES
SEPARATOR = " OR "
PREFIX = "like:"
# A stored paper id: an arXiv id (2403.12345, hep-th/9901001) or t-<title hash>; papers.id holds 64.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", re.ASCII)


def valid_id(paper_id: str) -> bool:
    return bool(_ID.fullmatch(paper_id))


def query_text(ids: Sequence[str]) -> str:
    """``like:a OR like:b``: the query of the Liked topic for ``ids`` (newest first)."""
    return SEPARATOR.join(PREFIX + paper_id for paper_id in ids)


def parse_ids(query: str) -> tuple[str, ...] | None:
    """The ids of a query in exactly the form ``query_text`` writes; None for any other query."""
    if not query:
        return None
    ids = []
    for term in query.split(SEPARATOR):
        paper_id = term[len(PREFIX):] if term.startswith(PREFIX) else ""
        if not valid_id(paper_id) or paper_id in ids:
            return None
        ids.append(paper_id)
    return tuple(ids)


def is_liked_topic(topic: Topic) -> bool:
    return named_liked(topic) and parse_ids(topic.query) is not None


def liked_topic(topics: Iterable[Topic]) -> Topic | None:
    return next((topic for topic in topics if is_liked_topic(topic)), None)


def liked_ids(reader: Subscriber) -> tuple[str, ...]:
    """The reader's liked paper ids, newest first (empty when they have no Liked topic)."""
    found = liked_topic(reader.topics)
    return parse_ids(found.query) or () if found else ()


def capped(ids: Sequence[str]) -> tuple[str, ...]:
    """The newest ``MAX_LIKED`` ids whose query fits in a topic query (QUERY_MAX characters),
    so the topic can be exported and imported like any other."""
    kept = tuple(ids[:MAX_LIKED])
    while kept and len(query_text(kept)) > QUERY_MAX:
        kept = kept[:-1]
    return kept


def with_like(ids: Sequence[str], paper_id: str) -> tuple[str, ...]:
    """``paper_id`` added as the newest; a paper liked again stays one entry, where it was."""
    if paper_id in ids:
        return tuple(ids)
    return capped((paper_id, *ids))


def without_like(ids: Sequence[str], paper_id: str) -> tuple[str, ...]:
    return tuple(i for i in ids if i != paper_id)


def rewrite(change: Callable[[tuple[str, ...]], tuple[str, ...]]) -> Callable[[str | None], str | None]:
    """A rewrite of the Liked topic's query for ``store.rewrite_own_topic``: None in means no
    such topic yet, None out means no liked paper is left (the topic goes)."""
    def apply(query: str | None) -> str | None:
        ids = () if query is None else parse_ids(query)
        if ids is None:
            raise ValidationError("topic", f"your topic named {NAME!r} is not a list of liked papers: "
                                  "rename it on the manage page to keep liked papers")
        changed = change(ids)
        return query_text(changed) if changed else None
    return apply


def without_liked(topics: Iterable[Topic]) -> list[Topic]:
    """The topics a reader edits as text: all but the Liked list."""
    return [topic for topic in topics if not is_liked_topic(topic)]


def named_liked(topic: Topic) -> bool:
    """Whether ``topic`` has the Liked list's name (any case), whatever its query."""
    return not topic.public and topic.name.casefold() == NAME.casefold()


def keep_liked(wanted: list[Topic], stored: Iterable[Topic]) -> list[Topic]:
    """``wanted`` (from a form that does not show the Liked list) with the stored list kept,
    unless ``wanted`` has a topic of that name itself (the manage form refuses that first,
    saying why; a subscribe form's choice is then what the reader confirmed)."""
    kept = liked_topic(stored)
    # A public topic named Liked is followed under that name: the list would clash with it.
    if kept is None or any(t.name.casefold() == NAME.casefold() for t in wanted):
        return wanted
    return [*wanted, kept]
