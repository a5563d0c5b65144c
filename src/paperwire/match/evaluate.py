"""Running compiled terms and plans against one listing's index.

Terms are looked up once each; a plan is then evaluated over sets of paper numbers
taken from its terms (AND = intersection, OR = union, exclusion = difference), so only
papers that contain at least one of the query's terms are ever considered.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence, Set as AbstractSet

from paperwire.match.index import PaperIndex, Span
from paperwire.match.patterns import Resolver
from paperwire.match.plan import AllOf, AnyOf, Plan, PlanNode, TermRef, TermSpec
from paperwire.match.results import Ranking, TermFinding
from paperwire.match.score import Bm25
from paperwire.models import Paper


def look_up(spec: TermSpec, resolver: Resolver, index: PaperIndex, bm25: Bm25) -> TermFinding:
    """Where any of the term's patterns occurs in its fields, and what that scores."""
    located: list[tuple[str, dict[int, list[Span]]]] = []
    counts: dict[str, dict[int, int]] = {}
    patterns = resolver.patterns(spec.shape)
    for field in spec.fields:
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


def matching(node: PlanNode, findings: Sequence[TermFinding]) -> AbstractSet[int]:
    """The papers satisfying ``node``: AND intersects, OR unites, exclusions subtract."""
    kind = type(node)
    if kind is TermRef:
        return findings[node.term].papers
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


def rank(plan: Plan, papers: Sequence[Paper], findings: Sequence[TermFinding], limit: int | None) -> Ranking:
    """The plan's papers, best score first, ties by listing (trending) order."""
    if plan.root is None:  # "*": the whole listing as it came
        order: Sequence[int] = range(len(papers) if limit is None else min(limit, len(papers)))
        return Ranking(papers, order, [0.0] * len(order), plan.positives, findings)
    if isinstance(plan.root, TermRef):  # one term alone: its own ranking, shared
        finding = findings[plan.root.term]
        order = finding.best_first()[:limit]
        return Ranking(papers, order, list(map(finding.scores.__getitem__, order)), plan.positives, findings)
    selected = matching(plan.root, findings)
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
