"""Choosing what one reader gets: pure, so every rule is testable with values built by hand.

Input is what matching found for each of the reader's topics over the papers in their
window; output is a Digest: each paper once, under its best topic and tagged with every
topic it matched, never a paper offered already (shown, or under an "And N more"), best
first, capped at the reader's maximum with a count of the rest.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .due import zone_of
from .models import Digest, DigestItem, DigestSection, Hit, Offered, Paper, Subscriber
from .normalize import clean_line, shorten

WEEK = dt.timedelta(days=7)
# The most a digest looks back for papers not offered yet (unoffered_since): a weekly reader's
# last digest may be dated a Friday (Monday's listing came after their send hour) and the next
# a Monday ten days later. A run reads that many days of papers.
LONGEST_WINDOW = dt.timedelta(days=10)
EXAMPLE_TITLE_CHARS = 80  # an example paper's title in "like: <title>" (it is in every paper it found)
MEANING_REASON = "related to your topic"  # how a paper found by meaning says so


class FoundTerm(Protocol):
    term: str
    field: str
    spans: tuple[tuple[int, int], ...]


class FoundMatch(Protocol):
    terms: Sequence[FoundTerm]


def hits_of(match: FoundMatch) -> tuple[Hit, ...]:
    """The terms a match found, as every output shows them (emails, archive pages, feeds)."""
    return tuple(Hit(term.term, term.field, tuple(term.spans)) for term in match.terms)


def reason(match: object, titles: Mapping[str, str]) -> str:
    """What a match found by meaning or by example says about itself, in one short line; ""
    for words alone. An example that found it is named even when the topic's meaning came
    closer: "like: <title>" tells the reader more than "related to your topic" (its words,
    if any, are listed apart).

    ``titles``: the titles of example papers (``like:``), by the reference the topic used."""
    why = getattr(match, "why", ())
    similarity = getattr(match, "similarity", None)
    if "example" in why:
        like = getattr(match, "like", None) or ""
        like_similarity = getattr(match, "like_similarity", None)
        similarity = similarity if like_similarity is None else like_similarity
        return f"like: {shorten(clean_line(titles.get(like, like)), EXAMPLE_TITLE_CHARS)} (similarity {similarity:.2f})"
    if "meaning" in why:
        return f"{MEANING_REASON}, similarity {similarity:.2f}"
    return ""


def meaning_alone(why: Iterable[str]) -> bool:
    """``by_meaning_alone`` for a match not yet a digest item, by its kinds of evidence
    (``Fused.why``): meaning, and neither words nor an example (whose "like:" reason says why)."""
    why = tuple(why)
    return "meaning" in why and "words" not in why and "example" not in why


def by_meaning_alone(item: DigestItem) -> bool:
    """Whether ``item`` was picked for its meaning, not its topic's words, so no matched word
    says why it is about the topic: explain.py highlights its sentence closest to the topic.
    Its hits may name the words the topic required beside its meaning (``fast`` of
    ``title:(efficient OR fast)``): those say only that the paper passed that condition."""
    return item.reason.startswith(MEANING_REASON) and not item.by_words


class Found(Protocol):
    """One topic's matches, best first, as the matcher reports them (paperwire.match.Ranking).

    Ids and scores are read for every match; the explanation (``ranking[i].terms``) is
    built only for the few papers that make it into the email.
    """

    def paper_ids(self) -> list[str]: ...

    def scores(self) -> list[float]: ...

    def __getitem__(self, position: int) -> FoundMatch: ...


class _NothingFound:
    """The matches of a topic that was not matched (a stored query the parser refuses now): none."""

    def paper_ids(self) -> list[str]:
        return []

    def scores(self) -> list[float]:
        return []

    def __getitem__(self, position: int) -> FoundMatch:
        raise IndexError(position)


NOTHING_FOUND = _NothingFound()


@dataclass(frozen=True)
class Placement:
    """Where a paper was listed: the date and its trending rank that day."""

    date: dt.date
    rank: int


def window(subscriber: Subscriber, edition: dt.date, last_edition: dt.date | None) -> tuple[dt.date, dt.date]:
    """The listing dates [first, last] a digest dated ``edition`` says it covers ("the listings
    from ... to ..."): the days since the reader's last digest, a week at most (the edition's
    own listing for a second digest of that edition); for a first digest, the edition's own
    listing (daily) or the last seven days (weekly). Which papers it takes is
    ``unoffered_since``'s (late additions to older days too). Digests and the archive page
    of an edition both take it from here."""
    if last_edition is not None:
        since = max(last_edition + dt.timedelta(days=1), week_before(edition), back_since(subscriber, edition))
        return min(edition, since), edition
    if subscriber.cadence.startswith("weekly"):
        return week_before(edition), edition
    return edition, edition


def back_since(subscriber: Subscriber, edition: dt.date) -> dt.date:
    """The first listing day a digest after the reader's pause may reach back to: the day they
    became active again (in their timezone), or as far as a first digest when that is further
    (a weekly reader back on Wednesday still gets their week). What was listed while they were
    away is not news they asked for. ``date.min`` when not known (readers made before 0011) and
    for an edition before that day: an older edition's archive page shows what its email
    showed (a digest on the day they come back whose newest listing is older, a Saturday's,
    keeps the old rule too)."""
    if subscriber.active_since is None:
        return dt.date.min
    back = subscriber.active_since.astimezone(zone_of(subscriber.timezone)).date()
    return dt.date.min if back > edition else min(back, window(subscriber, edition, None)[0])


def unoffered_since(subscriber: Subscriber, edition: dt.date, offered: Offered | None) -> dt.date:
    """The first listing day a digest dated ``edition`` takes papers from: of the days since
    the reader's last digest, its own listing included (a paper added to it after it went
    out: a weekly reader's send day), and of the week up to ``edition`` at least (late
    additions to an older day, papers that match only now), those no digest has offered them
    yet (shown, or under "And N more": sent_papers). ``LONGEST_WINDOW`` at most; never before
    their first digest's edition (what was listed before they subscribed is not news), nor
    on the days of a digest that did not record its "And N more" (``Offered.dated_until``).
    A first digest's own window when there was none."""
    if offered is None:
        return window(subscriber, edition, None)[0]
    since = week_before(edition)
    if offered.last_edition is not None:
        since = min(since, max(offered.last_edition, edition - LONGEST_WINDOW + dt.timedelta(days=1)))
    since = max(since, offered.first_edition, back_since(subscriber, edition))
    return since if offered.dated_until is None else max(since, offered.dated_until + dt.timedelta(days=1))


def first_listed(days: Sequence[dt.date], since: dt.date, edition: dt.date) -> dt.date:
    """The first of the listing ``days`` (ascending) from ``since`` on, or ``edition`` when none
    comes before it: where a digest's window starts for what it says ("the listings from ...
    to ..."), and, as papers have no other dates, the same papers as ``since``."""
    at = bisect_left(days, since)
    return days[at] if at < len(days) and days[at] < edition else edition


def week_before(edition: dt.date) -> dt.date:
    """The first listing day of the week that ends with ``edition``: the longest window."""
    return edition - WEEK + dt.timedelta(days=1)


def order_key(score: float, listing_date: dt.date, rank: int, paper_id: str) -> tuple:
    """How a digest picks its papers: best score first, then the newest listing, then the
    trending rank (the paper id only to make the order total)."""
    return (-score, -listing_date.toordinal(), rank, paper_id)


def without_last(digest: Digest, count: int) -> Digest:
    """``digest`` less the ``count`` papers it picked last, which join its "And N more": for an
    email too large to show whole. At least one paper stays."""
    items = sorted((item for section in digest.sections for item in section.items),
                   key=lambda item: order_key(item.score, item.listing_date, item.rank, item.paper.id))
    dropped = items[max(1, len(items) - count):]
    if not dropped:
        return digest
    gone = {item.paper.id for item in dropped}
    # The first of them in the archive's order (topic by topic), where "And N more" opens. (Papers
    # the reader's cap left out already may stand before it there: which topic they are under
    # is not known here.)
    first_gone = next(item.paper.id for section in digest.sections for item in section.items if item.paper.id in gone)
    sections = (replace(section, items=tuple(item for item in section.items if item.paper.id not in gone))
                for section in digest.sections)
    return replace(digest, sections=tuple(section for section in sections if section.items),
                   more=digest.more + len(dropped), more_from=first_gone,
                   left_out=tuple(item.paper.id for item in dropped) + digest.left_out)


def _strongest(entry: tuple[float, int, int]) -> tuple[float, int]:
    """How a paper's (score, topic, position) entries rank: best score first, then the reader's
    first topic (the paper goes under its first entry)."""
    return -entry[0], entry[1]


def build_digest(
    subscriber: Subscriber,
    found_by_topic: Sequence[Found],
    papers: Mapping[str, Paper],
    placements: Mapping[str, Placement],
    *,
    edition: dt.date,
    already_sent: Container[str] = frozenset(),
    first_date: dt.date | None = None,
    since: dt.date | None = None,
    example_titles: Mapping[str, str] | None = None,
    first_ids: Mapping[str, str] | None = None,
) -> Digest:
    """The reader's digest; ``found_by_topic[i]`` are the matches of ``subscriber.topics[i]``.

    Papers listed outside [since, edition] (``unoffered_since``; by default ``first_date``)
    or offered already (``already_sent``: shown, or under an earlier digest's "And N more")
    are skipped. ``first_date``: the first listing day the digest says it covers ("the
    listings from ... to ..."), earlier when a paper it takes is. ``first_ids``: the ids papers
    had before a re-key, by their id now (``pipeline.first_ids``). The result may have no
    sections: whether to send it anyway is the caller's setting.
    """
    first_date = first_date or edition
    since = since or first_date
    candidates: dict[str, list[tuple[float, int, int]]] = {}  # paper -> (score, topic, position)
    for topic_index, found in enumerate(found_by_topic):
        for position, (paper_id, score) in enumerate(zip(found.paper_ids(), found.scores())):
            placement = placements.get(paper_id)
            if placement is None or not since <= placement.date <= edition or paper_id in already_sent:
                continue
            candidates.setdefault(paper_id, []).append((score, topic_index, position))
    if candidates:
        first_date = min(first_date, min(placements[paper_id].date for paper_id in candidates))

    def order(paper_id: str) -> tuple:
        placement = placements[paper_id]
        return order_key(max(score for score, _, _ in candidates[paper_id]), placement.date, placement.rank, paper_id)

    chosen = sorted(candidates, key=order)
    kept, left_out = chosen[: subscriber.max_papers], chosen[subscriber.max_papers:]
    # "And N more" opens the archive at the first paper not shown there: the archive lists every
    # match under its best topic, topic by topic, so that is the first left-out paper (in order)
    # of the lowest best topic among them. The reader's first topic cannot be beaten: most
    # digests stop at their first left-out paper.
    more_from, more_topic = "", len(subscriber.topics)
    for paper_id in left_out:
        topic = min(candidates[paper_id], key=_strongest)[1]
        if topic < more_topic:
            more_from, more_topic = paper_id, topic
            if topic == 0:
                break

    sections: dict[int, list[DigestItem]] = {}
    for paper_id in kept:
        ranked = sorted(candidates[paper_id], key=_strongest)
        best_score, best_topic, position = ranked[0]
        best_match = found_by_topic[best_topic][position]
        placement = placements[paper_id]
        sections.setdefault(best_topic, []).append(DigestItem(
            paper=papers[paper_id], score=best_score, rank=placement.rank, listing_date=placement.date,
            topics=tuple(dict.fromkeys(subscriber.topics[index].name for _, index, _ in ranked)),
            hits=hits_of(best_match),
            reason=reason(best_match, example_titles or {}),
            by_words="words" in getattr(best_match, "why", ("words",)),  # a word ranking's Match has no why
            first_id=(first_ids or {}).get(paper_id),
        ))
    return Digest(
        subscriber=subscriber,
        edition=edition.isoformat(),
        listing_date=edition,
        sections=tuple(DigestSection(subscriber.topics[index], tuple(items)) for index, items in sorted(sections.items())),
        more=len(left_out),
        more_from=more_from,
        left_out=tuple(left_out),
        first_date=first_date if first_date < edition else None,
    )
