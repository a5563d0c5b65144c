"""Where the query vocabulary occurs in today's papers, built once per run.

Every paper is tokenized and folded once. Only symbols that some compiled query uses
are kept, so the index stays small however long the abstracts are. For each field
and symbol the index holds, per paper, the occurrences as
``(first position, last position, start char, end char)``; a glued neighbour pair
("multi modal" read as ``multimod``) spans two positions.

Finding a pattern is then an intersection of a few posting lists plus a walk along
positions -- never a scan of paper text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from paperwire.match.acronyms import AcronymTable, acronym_symbol
from paperwire.match.patterns import Pattern
from paperwire.match.text import FIELDS, Stems, Token, field_text, fold, tokenize
from paperwire.models import Paper

Occurrence = tuple[int, int, int, int]  # first position, last position, start char, end char
Span = tuple[int, int]  # [start, end) character offsets into the field text
Postings = dict[int, list[Occurrence]]  # paper index -> occurrences

ACRONYM_FIELDS = ("title", "abstract")  # author names are never read as acronyms


class PaperIndex:
    """Positions of the wanted symbols in each field of each paper."""

    def __init__(self, papers: Sequence[Paper], wanted: Collection[str], acronyms: AcronymTable, stems: Stems):
        self.paper_count = len(papers)
        self.lengths: dict[str, list[int]] = {field: [] for field in FIELDS}
        self._postings: dict[str, dict[str, Postings]] = {field: {} for field in FIELDS}
        self._found: dict[tuple[str, Pattern], dict[int, list[Span]]] = {}
        tokenized = [[list(tokenize(field_text(paper, field))) for field in FIELDS] for paper in papers]
        self._learn_stems(tokenized, stems)
        for paper_index, fields in enumerate(tokenized):
            for field, tokens in zip(FIELDS, fields):
                self.lengths[field].append(len(tokens))
                self._add(field, paper_index, tokens, wanted, acronyms, stems)

    @staticmethod
    def _learn_stems(tokenized: list[list[list[Token]]], stems: Stems) -> None:
        """Stem every word and glued pair of the run in one batch."""
        words: set[str] = set()
        for fields in tokenized:
            for tokens in fields:
                previous = ""
                for token in tokens:
                    folded = fold(token.surface)
                    words.add(folded)
                    if token.joins_previous:
                        words.add(previous + folded)
                    previous = folded
        stems.learn(words)

    def _add(
        self, field: str, paper: int, tokens: list[Token], wanted: Collection[str], acronyms: AcronymTable, stems: Stems
    ) -> None:
        postings = self._postings[field]
        read_acronyms = field in ACRONYM_FIELDS
        previous: tuple[str, Token] | None = None

        def record(symbol: str, occurrence: Occurrence) -> None:
            if symbol in wanted:
                postings.setdefault(symbol, {}).setdefault(paper, []).append(occurrence)

        for token in tokens:
            folded = fold(token.surface)
            record(stems.of(folded), (token.position, token.position, token.start, token.end))
            acronym = acronyms.in_text(token.surface) if read_acronyms else None
            if acronym:
                record(acronym_symbol(acronym), (token.position, token.position, token.start, token.end))
            if previous and token.joins_previous:
                before_folded, before = previous
                glued = (before.position, token.position, before.start, token.end)
                record(stems.of(before_folded + folded), glued)
            previous = (folded, token)

    def spans(self, field: str, pattern: Pattern) -> dict[int, list[Span]]:
        """Per paper, the character spans where ``pattern`` occurs in ``field`` (memoized)."""
        key = (field, pattern)
        if key not in self._found:
            self._found[key] = self._find(self._postings[field], pattern)
        return self._found[key]

    @staticmethod
    def _find(postings: dict[str, Postings], pattern: Pattern) -> dict[int, list[Span]]:
        lists = [postings.get(symbol) for symbol in pattern]
        if not all(lists):
            return {}
        if len(lists) == 1:
            return {paper: [(occ[2], occ[3]) for occ in occs] for paper, occs in lists[0].items()}
        smallest = min(lists, key=len)
        found: dict[int, list[Span]] = {}
        for paper in smallest:
            if all(paper in postings_of for postings_of in lists):
                spans = _chain([postings_of[paper] for postings_of in lists])
                if spans:
                    found[paper] = spans
        return found


def _chain(occurrences: list[list[Occurrence]]) -> list[Span]:
    """Spans where the i-th list's occurrence starts right after the (i-1)-th one ends."""
    open_ends: dict[int, list[int]] = {}  # last position reached -> start chars of partial matches
    for first, last, start, _ in occurrences[0]:
        open_ends.setdefault(last, []).append(start)
    for following in occurrences[1:-1]:
        reached: dict[int, list[int]] = {}
        for first, last, _, _ in following:
            starts = open_ends.get(first - 1)
            if starts:
                reached.setdefault(last, []).extend(starts)
        if not reached:
            return []
        open_ends = reached
    spans = [(start, end) for first, _, _, end in occurrences[-1] for start in open_ends.get(first - 1, ())]
    return spans
