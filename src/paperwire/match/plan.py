"""From a parsed query to a plan: a boolean tree whose leaves are shared terms.

Every distinct (fields, shape) pair becomes one term in a :class:`TermRegistry`, so
ten thousand readers who follow "RAG" cost one lookup, not ten thousand.

Adjacent bare words (``scaling laws``) are read two ways at once: all the words
anywhere (the literal implicit AND) *or* the words as one phrase in any of its forms.
The phrase reading lets ``multi modal`` find "multimodal" and ``mixture of experts``
find "MoE"; and because it is a positive term of its own, a paper with the words
side by side outscores one where they are scattered.
"""

from __future__ import annotations

from typing import NamedTuple

from paperwire.match.patterns import PatternMaker, TermShape
from paperwire.match.results import TermRef
from paperwire.query import And, Everything, Node, Not, Or, Query, Term

DEFAULT_FIELDS = ("title", "abstract")


class AllOf(NamedTuple):
    """Papers with every ``required`` part and none of the ``excluded`` ones."""

    required: tuple[PlanNode, ...]
    excluded: tuple[PlanNode, ...]


class AnyOf(NamedTuple):
    """Papers with at least one of the options."""

    options: tuple[PlanNode, ...]


class WordsOrPhrase(NamedTuple):
    """Adjacent bare words: all of them anywhere (``words``), or ``phrase`` in any form.

    Where the phrase can only be read word for word, every paper with the phrase
    already has the words, so the phrase is looked up only to score those papers.
    """

    words: PlanNode
    phrase: TermRef


PlanNode = TermRef | AllOf | AnyOf | WordsOrPhrase


class Plan(NamedTuple):
    """``root is None`` means every paper (the ``*`` topic)."""

    root: PlanNode | None
    positives: tuple[TermRef, ...]  # leaves not under an exclusion, in query order


class TermSpec(NamedTuple):
    """What a term looks for, and where: identical specs share one term id."""

    fields: tuple[str, ...]
    shape: TermShape


class TermRegistry:
    """Hands out one id per distinct term and collects the symbols the index must keep."""

    def __init__(self, pattern_maker: PatternMaker):
        self.pattern_maker = pattern_maker
        self.terms: list[TermSpec] = []
        self.symbols: set[str] = set()
        self._term_ids: dict[TermSpec, int] = {}
        self._by_text: dict[tuple[str, str | None], int] = {}

    def ref(self, text: str, field: str | None, label: str) -> TermRef:
        term = self._by_text.get((text, field))
        if term is None:
            term = self._by_text[(text, field)] = self._register(text, field)
        return TermRef(term, label)

    def shape(self, text: str, field: str | None) -> TermShape:
        """Names are not words: under ``author:`` nothing is read as an acronym."""
        return self.pattern_maker.shape(text, use_acronyms=field != "author")

    def _register(self, text: str, field: str | None) -> int:
        spec = TermSpec((field,) if field else DEFAULT_FIELDS, self.shape(text, field))
        if spec not in self._term_ids:
            self._term_ids[spec] = len(self.terms)
            self.terms.append(spec)
            self.symbols.update(self.pattern_maker.symbols_of(spec.shape))
        return self._term_ids[spec]


def plan_query(query: Query, registry: TermRegistry) -> Plan:
    """The plan of one query; its terms are added to ``registry``."""
    if isinstance(query.root, Everything):
        return Plan(None, ())
    root = _plan(query.root, registry)
    return Plan(root, tuple(dict.fromkeys(_positives(root))))


def _plan(node: Node, registry: TermRegistry) -> PlanNode:
    if isinstance(node, Term):
        return registry.ref(node.text, node.field, node.text)
    if isinstance(node, Or):
        return AnyOf(tuple(_plan(child, registry) for child in node.children))
    if isinstance(node, And):
        return _plan_and(node.children, registry)
    if isinstance(node, Not):  # only reachable for a lone exclusion, which the parser rejects
        return AllOf((), (_plan(node.child, registry),))
    raise TypeError(f"cannot plan {node!r}")


def _plan_and(children: tuple[Node, ...], registry: TermRegistry) -> PlanNode:
    required: list[PlanNode] = []
    excluded: list[PlanNode] = []
    for item in _group_word_runs(children):
        if isinstance(item, list):
            required.append(_plan_run(item, registry))
        elif isinstance(item, Not):
            excluded.append(_plan(item.child, registry))
        else:
            required.append(_plan(item, registry))
    if len(required) == 1 and not excluded:
        return required[0]
    return AllOf(tuple(required), tuple(excluded))


def _group_word_runs(children: tuple[Node, ...]) -> list[Node | list[Term]]:
    """Children with each run of 2+ adjacent bare words in one field gathered in a list."""
    items: list[Node | list[Term]] = []
    run: list[Term] = []

    def close_run() -> None:
        if len(run) >= 2:
            items.append(list(run))
        else:
            items.extend(run)
        run.clear()

    for child in children:
        if isinstance(child, Term) and not child.phrase:
            if run and run[0].field != child.field:
                close_run()
            run.append(child)
        else:
            close_run()
            items.append(child)
    close_run()
    return items


def _plan_run(words: list[Term], registry: TermRegistry) -> PlanNode:
    """(the words anywhere, abbreviations kept loose) OR (the words as one phrase)."""
    field = words[0].field
    text = " ".join(word.text for word in words)
    shape, word_starts = registry.pattern_maker.run_shape([w.text for w in words], use_acronyms=field != "author")
    as_phrase = registry.ref(text, field, text)
    parts = _expansion_groups(words, shape, word_starts)
    literal = AllOf(tuple(_plan_part(part, registry) for part in parts), ())
    return WordsOrPhrase(literal, as_phrase)


def _plan_part(words: list[Term], registry: TermRegistry) -> PlanNode:
    field = words[0].field
    if len(words) == 1:
        return registry.ref(words[0].text, field, words[0].text)
    text = " ".join(word.text for word in words)
    every_word = AllOf(tuple(registry.ref(w.text, field, w.text) for w in words), ())
    return WordsOrPhrase(every_word, registry.ref(text, field, text))


def _expansion_groups(words: list[Term], shape: TermShape, word_starts: list[int]) -> list[list[Term]]:
    """Split a run into single words and the longest word sub-runs that spell an expansion.

    So in ``sparse mixture of experts`` a paper saying "sparse" and "MoE" anywhere
    still has every part: ``sparse`` AND (``mixture`` ``of`` ``experts`` OR MoE).
    ``shape`` is the run's shape; its abbreviations are token ranges, kept only when
    they start and end on word boundaries (``word_starts``).
    """
    if not shape.abbreviations:
        return [[word] for word in words]
    word_of_token = {token: number for number, token in enumerate(word_starts)}
    word_of_token[len(shape.symbols)] = len(words)
    longest: dict[int, int] = {}  # first word -> end word of the longest expansion there
    for start, end, _ in shape.abbreviations:
        if start in word_of_token and end in word_of_token and word_of_token[end] - word_of_token[start] >= 2:
            first = word_of_token[start]
            longest[first] = max(longest.get(first, 0), word_of_token[end])
    groups: list[list[Term]] = []
    first = 0
    while first < len(words):
        end = longest.get(first, first + 1)
        groups.append(words[first:end])
        first = end
    return groups


def _positives(root: PlanNode) -> list[TermRef]:
    """Leaves not under an exclusion, left to right."""
    found: list[TermRef] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, TermRef):
            found.append(node)
        else:
            pending.extend(reversed(_positive_children(node)))
    return found


def _positive_children(node: PlanNode) -> tuple[PlanNode, ...]:
    if isinstance(node, AnyOf):
        return node.options
    if isinstance(node, WordsOrPhrase):
        return (node.words, node.phrase)
    return node.required
