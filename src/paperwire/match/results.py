"""What matching hands back: ranked matches whose reasons are worked out when read.

A run can select millions of (query, paper) pairs, while an email shows a handful
per topic. So a :class:`Ranking` keeps only paper numbers and scores, and builds a
:class:`Match` -- with its :class:`TermHit` explanations -- when it is indexed or
iterated.

An explanation shows only what made the paper match: a word of a run of bare words
(:class:`NearRef`) is shown where it is near the run's other words, as matching found
the run, not wherever else the paper says it (issue 14).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol, overload

from paperwire.match.sentences import SENTENCE_SHIFT
from paperwire.match.text import is_function_word
from paperwire.models import Paper

Span = tuple[int, int]  # [start, end) character offsets into the field text
_new = tuple.__new__  # _new(SomeNamedTuple, values), without the Python-level __new__ of named tuples


class TermRef(NamedTuple):
    """A plan's leaf: the shared term it looks up and how the user wrote it."""

    term: int
    label: str


class Near(NamedTuple):
    """A run of bare words as nearness reads it (``plan.near_of``): the terms of its parts
    (its words; an expansion it spells, as that phrase), how many word positions one
    occurrence of each may span in one sentence (``sentences.window``), the fields, and
    each part's width (the positions it counts for in the window: see :func:`fits`)."""

    parts: tuple[int, ...]
    limit: int
    fields: tuple[str, ...]
    widths: tuple[int, ...]


class NearRef(NamedTuple):
    """A positive part of runs of bare words (``LLM`` of ``efficient LLM inference``).

    It scores as a :class:`TermRef`, but explains a match only where it is near the other
    parts of one of ``runs`` (see :func:`near_hits`): elsewhere the paper's word is not why
    the run matched. No runs: a word of an expansion the run found as one phrase, which
    that phrase's hit shows.
    """

    term: int
    label: str
    runs: tuple[Near, ...]


class TermHit(NamedTuple):
    """A query term found in one field; ``spans`` slice ``field_text(paper, field)``."""

    term: str  # as the user wrote it: a word, a phrase, or adjacent words ("scaling laws")
    field: str  # "title", "abstract" or "author"
    spans: tuple[Span, ...]  # sorted [start, end) character offsets


class Match(NamedTuple):
    """One paper picked for one query: how well it fits and why."""

    paper_id: str
    rank: int  # the paper's 1-based place in the listing (its trending rank)
    score: float  # BM25F relevance summed over the matched terms; 0.0 for "*"
    terms: tuple[TermHit, ...]  # the positive terms found, in query order


class Located(Protocol):
    """Where one reading of a term occurs in one field (see :class:`paperwire.match.index.Occurrences`)."""

    def spans(self, paper: int) -> list[Span]: ...

    def placed(self, paper: int) -> list[tuple[int, int, Span]]: ...


class TermFinding:
    """One term against today's listing: which papers, their scores, where in the text."""

    __slots__ = ("_best_first", "_located", "bits", "scores")

    def __init__(self, scores: dict[int, float], bits: int, located: list[tuple[str, Located]]):
        self.scores = scores  # paper index -> score; the keys are exactly the matching papers
        self.bits = bits  # the same papers as a bitset (bit i is paper i), for fast AND / OR / NOT
        self._located = located  # (field, where one reading occurs) for each reading found
        self._best_first: list[int] | None = None

    def best_first(self) -> list[int]:
        """Matching papers by score, ties in listing order (computed once, then shared)."""
        if self._best_first is None:
            self._best_first = sorted(sorted(self.scores), key=self.scores.__getitem__, reverse=True)
        return self._best_first

    def hits(self, label: str, paper: int) -> list[TermHit]:
        """Where the term is in ``paper``: one hit per field, spans sorted and distinct."""
        by_field: dict[str, list[Span]] = {}
        merged = False  # several readings found in one field: their spans may repeat
        for field, located in self._located:
            spans = located.spans(paper)  # sorted and distinct already
            if spans:
                if field in by_field:
                    by_field[field] = by_field[field] + spans
                    merged = True
                else:
                    by_field[field] = spans
        if merged:
            return [_new(TermHit, (label, field, tuple(sorted(set(spans))))) for field, spans in by_field.items()]
        return [_new(TermHit, (label, field, tuple(spans))) for field, spans in by_field.items()]

    def placed(self, field: str, paper: int) -> dict[int, list[tuple[int, int, Span]]]:
        """Per sentence of ``field`` in ``paper``: each occurrence's (first, last) word positions
        and character span, in order, every reading merged (as ``Findings.near`` reads them)."""
        by_sentence: dict[int, list[tuple[int, int, Span]]] = {}
        for name, located in self._located:
            if name == field:
                for place in located.placed(paper):
                    by_sentence.setdefault(place[0] >> SENTENCE_SHIFT, []).append(place)
        for sentence, found in by_sentence.items():  # an occurrence two readings share, once
            by_sentence[sentence] = sorted(set(found))
        return by_sentence


class Ranking(Sequence[Match]):
    """One query's matches, best first. Read-only; shared by keys with the same query."""

    __slots__ = ("_papers", "_order", "_scores", "_positives", "_findings", "_built")

    def __init__(
        self,
        papers: Sequence[Paper],
        order: Sequence[int],
        scores: Sequence[float],
        positives: Sequence[TermRef],
        findings: Sequence[TermFinding],
    ):
        self._papers = papers
        self._order = order  # paper indexes, best first
        self._scores = scores  # aligned with _order
        self._positives = positives  # the query's positive terms, in query order
        self._findings = findings  # every term's finding, by term id
        self._built: dict[int, Match] | None = None  # matches already read, kept for the next reader

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, item: int) -> Match: ...

    @overload
    def __getitem__(self, item: slice) -> list[Match]: ...

    def __getitem__(self, item: int | slice) -> Match | list[Match]:
        if isinstance(item, slice):
            return [self._match(i) for i in range(*item.indices(len(self._order)))]
        if item < 0:
            item += len(self._order)
        if not 0 <= item < len(self._order):
            raise IndexError("ranking index out of range")
        return self._match(item)

    def __iter__(self) -> Iterator[Match]:
        return (self._match(i) for i in range(len(self._order)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Ranking, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __repr__(self) -> str:
        return f"Ranking({len(self)} matches)"

    def paper_ranks(self) -> list[int]:
        """The 1-based listing ranks of the matched papers, best first (no explanations built)."""
        return [paper + 1 for paper in self._order]

    def paper_ids(self) -> list[str]:
        """The ids of the matched papers, best first (no explanations built)."""
        return [self._papers[paper].id for paper in self._order]

    def scores(self) -> list[float]:
        """The scores of the matched papers, best first (no explanations built)."""
        return list(self._scores)

    def parts(self) -> tuple[Sequence[int], Sequence[float], Sequence[TermRef]]:
        """The paper indexes best first, their scores, and the positive terms that explain them
        (what ``match.split`` sends from one process to another)."""
        return self._order, self._scores, self._positives

    def _match(self, i: int) -> Match:
        built = self._built
        if built is None:
            built = self._built = {}
        match = built.get(i)
        if match is None:
            paper = self._order[i]
            match = built[i] = _new(Match, (self._papers[paper].id, paper + 1, self._scores[i], self._reasons(paper)))
        return match

    def _reasons(self, paper: int) -> tuple[TermHit, ...]:
        return term_hits(self._positives, self._findings, paper)


def term_hits(
    positives: Sequence[TermRef | NearRef], findings: Sequence[TermFinding], paper: int
) -> tuple[TermHit, ...]:
    """Where each of ``positives`` is in ``paper``, in their order: a match's explanation.

    One function for the word rankings and for the literal conditions of papers found by
    meaning (``ConditionHits.hits``), so both explain a term the same way. A run's function
    words ("of", "the" of ``state of the art``) are shown only inside the run's phrase: on
    their own, near the other words, they are everywhere and say nothing."""
    hits: list[TermHit] = []
    bounds = getattr(findings, "bounds", None)  # papers that may contain each term: skip the others
    for ref in positives:
        if bounds is not None and not bounds[ref.term] >> paper & 1:
            continue
        finding = findings[ref.term]
        if paper in finding.scores:
            if type(ref) is NearRef:
                if not is_function_word(ref.label):
                    hits += near_hits(ref, findings, paper)  # type: ignore[arg-type]
            else:
                hits += finding.hits(ref.label, paper)
    return tuple(hits)


def near_hits(ref: NearRef, findings: Sequence[TermFinding], paper: int) -> list[TermHit]:
    """Where ``ref`` is part of a match of one of its runs in ``paper``, one hit per field.

    An occurrence is shown when, with one occurrence of each other part of the run, it
    fits the run's window in one sentence: the test ``Findings.near`` matches by, with
    this occurrence held fixed. Its other occurrences (another sentence, too far away)
    did not make the paper match, so showing them would overstate why it did.
    """
    by_field: dict[str, set[Span]] = {}
    for run in ref.runs:
        found = [findings[part] for part in run.parts]
        if not all(paper in finding.scores for finding in found):
            continue
        mine = [at for at, part in enumerate(run.parts) if part == ref.term]
        repeated = len(set(run.parts)) < len(run.parts)
        for field in run.fields:
            placed = [finding.placed(field, paper) for finding in found]
            for sentence in set(placed[0]).intersection(*placed[1:]):
                places = [[place[:2] for place in by_sentence[sentence]] for by_sentence in placed]
                if repeated:  # ``end to end``: the occurrences in the window each repeat took
                    window = repeated_window(places, run.limit, run.parts, run.widths)
                    if window is not None:
                        start, stop = window
                        by_field.setdefault(field, set()).update(
                            place[2] for place in placed[mine[0]][sentence] if start <= place[0] and place[1] < stop)
                    continue
                for at in mine:
                    others = places[:at] + [[]] + places[at + 1 :]
                    for place in placed[at][sentence]:
                        others[at] = [place[:2]]
                        if fits(others, run.limit, run.widths):
                            by_field.setdefault(field, set()).add(place[2])
    return [_new(TermHit, (ref.label, field, tuple(sorted(spans)))) for field, spans in by_field.items()]


def repeated_window(
    lists: list[list[tuple[int, int]]], limit: int, terms: Sequence[int], widths: Sequence[int]
) -> tuple[int, int] | None:
    """Where a window that holds one occurrence from each list starts and stops (exclusive),
    parts of one term taking occurrences of their own (a run that repeats a word: ``end to
    end`` is not "to this end"); None when there is none. Lists of one term are the same.

    For each start (an occurrence's first position) each term takes the occurrences that
    start there or later and end soonest, as many as it has parts: the window the start
    allows is the latest of their ends, less what they span beyond their parts' widths (as
    in :func:`fits`). (Rare runs: :func:`fits` is for all the others.)
    """
    need = Counter(terms)
    of_term = {term: (found, width) for term, found, width in zip(terms, lists, widths, strict=True)}
    for start in sorted({first for found, _ in of_term.values() for first, _ in found}):
        end = start
        excess = 0
        for term, count in need.items():
            found, width = of_term[term]
            taken = sorted([(last, last - first + 1 - width) for first, last in found if first >= start])[:count]
            if len(taken) < count:
                break
            end = max(end, taken[-1][0])
            excess += sum([extra for _, extra in taken if extra > 0])
        else:
            if end - start - excess < limit:
                return start, start + limit + excess
    return None


DISCOUNTED_AT_MOST = 64  # occurrences in one sentence that ``fits`` discounts; real sentences have a few


def fits(lists: list[list[tuple[int, int]]], limit: int, widths: Sequence[int]) -> bool:
    """Whether one occurrence from each list fits in ``limit`` positions, an occurrence's
    positions beyond its part's width not counted: the test of nearness, for matching and
    for explaining alike.

    A solid word a paper hyphenates ("pre-training" for ``pretraining``) takes two positions
    where the window counted one; counted, ``pretraining data quality`` missed a sentence
    that ``pre-training data quality`` found. Most sentences have no such occurrence: then
    this is :func:`within`, and so it is in a sentence of more than ``DISCOUNTED_AT_MOST``
    occurrences (the discounting search is quadratic in them: an abstract repeating one
    hyphenated phrase 500 times took seconds to explain)."""
    if sum(map(len, lists)) > DISCOUNTED_AT_MOST:
        return within(lists, limit)
    for found, width in zip(lists, widths, strict=True):
        for first, last in found:
            if last - first >= width:
                return _within_discounted(lists, limit, widths)
    return within(lists, limit)


def _within_discounted(lists: list[list[tuple[int, int]]], limit: int, widths: Sequence[int]) -> bool:
    """:func:`within`, each occurrence's positions beyond its part's width not counted.

    The sweep of :func:`within` does not carry over (an occurrence further on may span more
    and so count for less), so for each start and each end of a window, each list takes its
    occurrence inside that discounts most. Only windows that can fit are tried: a rare path
    (a hyphenated occurrence of a solid word), on a sentence's few occurrences.
    """
    excess = [[(first, last, max(0, last - first + 1 - width)) for first, last in found]
              for found, width in zip(lists, widths, strict=True)]
    most = sum([max([extra for _, _, extra in found], default=0) for found in excess])
    for start in sorted({first for found in lists for first, _ in found}):
        inside = [[place for place in found if place[0] >= start and place[1] < start + limit + most] for found in excess]
        if not all(inside):
            continue
        for end in sorted({place[1] for found in inside for place in found}):
            discount = 0
            for found in inside:
                extras = [extra for _, last, extra in found if last <= end]
                if not extras:
                    break
                discount += max(extras)
            else:
                if end - start - discount < limit:
                    return True
    return False


def within(lists: list[list[tuple[int, int]]], limit: int) -> bool:
    """Whether one occurrence from each list fits in ``limit`` consecutive positions.

    Each list holds (first, last) positions in order; the smallest window is found by
    the usual sweep: take the earliest of the current occurrences, measure to the
    latest end, and move the earliest on.
    """
    if len(lists) == 2:  # the common case: two words
        (first, second), i, j = lists, 0, 0
        while i < len(first) and j < len(second):
            a, b = first[i], second[j]
            if max(a[1], b[1]) - min(a[0], b[0]) < limit:
                return True
            if a[0] <= b[0]:
                i += 1
            else:
                j += 1
        return False
    at = [0] * len(lists)
    while True:
        current = [found[i] for found, i in zip(lists, at, strict=True)]
        if max(end for _, end in current) - min(start for start, _ in current) < limit:
            return True
        earliest = min(range(len(lists)), key=lambda n: current[n][0])
        at[earliest] += 1
        if at[earliest] == len(lists[earliest]):
            return False
