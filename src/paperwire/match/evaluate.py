"""Running compiled terms and plans against one listing's index.

Each term is looked up at most once, when a plan first needs it; a plan is evaluated
over sets of paper numbers taken from its terms (AND = intersection, OR = union,
exclusion = difference), so only papers that contain at least one of the query's
terms are ever considered, and a query whose words never meet costs a few set
operations.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from collections.abc import Set as AbstractSet

from paperwire.match.index import PaperIndex, Span
from paperwire.match.patterns import Pattern, Resolver
from paperwire.match.plan import AnyOf, Plan, PlanNode, TermRef, TermSpec, WordsOrPhrase
from paperwire.match.results import Ranking, TermFinding
from paperwire.match.score import Bm25
from paperwire.models import Paper


class Findings(Sequence[TermFinding]):
    """Every term's finding in one listing, each looked up the first time it is needed."""

    def __init__(self, terms: Sequence[TermSpec], resolver: Resolver, index: PaperIndex, bm25: Bm25):
        self._terms = terms
        self._resolver = resolver
        self._index = index
        self._bm25 = bm25
        self._found: list[TermFinding | None] = [None] * len(terms)
        self._patterns: list[tuple[Pattern, ...] | None] = [None] * len(terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __getitem__(self, term: int) -> TermFinding:  # type: ignore[override]
        found = self._found[term]
        if found is None:
            found = self._found[term] = look_up(self._terms[term].fields, self.patterns(term), self._index, self._bm25)
        return found

    def patterns(self, term: int) -> tuple[Pattern, ...]:
        """The term's readings that can occur in this listing (memoized)."""
        found = self._patterns[term]
        if found is None:
            found = self._patterns[term] = self._resolver.patterns(self._terms[term].shape)
        return found

    def read_only_word_for_word(self, term: int) -> bool:
        """Whether the term's only reading in this listing is its plain one (or none at all)."""
        return self.patterns(term) in ((), (self._terms[term].shape.symbols,))


def look_up(fields: Sequence[str], patterns: Sequence[Pattern], index: PaperIndex, bm25: Bm25) -> TermFinding:
    """Where any of the term's patterns occurs in its fields, and what that scores."""
    located: list[tuple[str, dict[int, list[Span]]]] = []
    counts: dict[str, dict[int, int]] = {}
    for field in fields:
        found = [spans for spans in (index.spans(field, pattern) for pattern in patterns) if spans]
        located += [(field, spans) for spans in found]
        if len(found) == 1:
            counts[field] = {paper: len(spans) for paper, spans in found[0].items()}
        elif found:
            counts[field] = _distinct_span_counts(found)
    return TermFinding(bm25.scores(counts), located)


def _distinct_span_counts(found: list[dict[int, list[Span]]]) -> dict[int, int]:
    """Mentions per paper when several patterns may hit the same words ("multi-modal")."""
    merged: dict[int, set[Span]] = {}
    for spans_by_paper in found:
        for paper, spans in spans_by_paper.items():
            merged.setdefault(paper, set()).update(spans)
    return {paper: len(spans) for paper, spans in merged.items()}


def matching(node: PlanNode, findings: Findings) -> AbstractSet[int]:
    """The papers satisfying ``node``: AND intersects, OR unites, exclusions subtract."""
    kind = type(node)
    if kind is TermRef:
        return findings[node.term].papers
    if kind is WordsOrPhrase:
        selected = matching(node.words, findings)
        if findings.read_only_word_for_word(node.phrase.term):
            return selected  # the phrase cannot add papers; it only adds to their scores
        return selected | findings[node.phrase.term].papers
    if kind is AnyOf:
        union: set[int] = set()
        for option in node.options:
            union |= matching(option, findings)
        return union
    parts = [matching(part, findings) for part in node.required]
    parts.sort(key=len)
    selected = parts[0]
    for part in parts[1:]:
        if not selected:
            return selected
        selected = selected & part  # C-level, walks the smaller set
    for excluded in node.excluded:
        if not selected:
            return selected
        selected = selected - matching(excluded, findings)
    return selected


def rank(plan: Plan, papers: Sequence[Paper], findings: Findings, limit: int | None) -> Ranking:
    """The plan's papers, best score first, ties by listing (trending) order."""
    if plan.root is None:  # "*": the whole listing as it came
        order: Sequence[int] = range(len(papers) if limit is None else min(limit, len(papers)))
        return Ranking(papers, order, [0.0] * len(order), plan.positives, findings)
    if isinstance(plan.root, TermRef):  # one term alone: its own ranking, shared
        finding = findings[plan.root.term]
        order = finding.best_first()[:limit]
        return Ranking(papers, order, list(map(finding.scores.__getitem__, order)), plan.positives, findings)
    selected = matching(plan.root, findings)
    if not selected:
        return Ranking(papers, [], [], plan.positives, findings)
    if len(plan.positives) == 1:
        score = findings[plan.positives[0].term].scores
    else:
        score = _summed_scores(selected, [findings[ref.term].scores for ref in plan.positives])
    order = sorted(sorted(selected), key=score.__getitem__, reverse=True)[:limit]
    return Ranking(papers, order, list(map(score.__getitem__, order)), plan.positives, findings)


def _summed_scores(selected: Collection[int], term_scores: list[dict[int, float]]) -> dict[int, float]:
    """Each selected paper's score: the sum over the positive terms it contains."""
    total = dict.fromkeys(selected, 0.0)
    for scores in term_scores:
        for paper in total.keys() & scores.keys():
            total[paper] += scores[paper]
    return total
