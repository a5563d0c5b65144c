"""Where the query vocabulary occurs in today's papers, built once per run.

Every paper is tokenized and folded once. Only symbols that some compiled query uses
are kept, so the index stays small however long the abstracts are.

Positions are global within a field: paper ``i``'s word ``p`` sits at
``i * stride + p``, with ``stride`` larger than any paper's last position plus one,
so no phrase can run from one paper into the next. A glued neighbour pair ("multi
modal" read as ``multimod``) is one occurrence spanning two positions.

For each field and symbol the index keeps the occurrences per paper (a one-word
pattern's answer as is) and ``start -> (end, start char, end char)``. A phrase of
one-word symbols is found by intersecting the start sets, each shifted back by the
symbol's place in the phrase; a phrase with a glued pair is grown from the
occurrences of its rarest symbol. Neither ever scans paper text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet

from paperwire.match.acronyms import AcronymTable, acronym_symbol
from paperwire.match.patterns import Pattern
from paperwire.match.results import Span
from paperwire.match.text import FIELDS, Stems, Token, field_text, fold, tokenize
from paperwire.models import Paper

Located = tuple[int, int, int]  # (the other end's global position, start char, end char)

ACRONYM_FIELDS = ("title", "abstract")  # author names are never read as acronyms


class _FieldPostings:
    """Occurrences of the wanted symbols in one field of every paper."""

    def __init__(self, stride: int):
        self.stride = stride
        self.by_start: dict[str, dict[int, Located]] = {}  # filled paper by paper
        self.wide: set[str] = set()  # symbols that occur as a glued pair (two positions)
        self.solid: set[str] = set()  # symbols that occur as one written word
        self._by_end: dict[str, dict[int, Located]] = {}
        self._shifted: dict[tuple[str, int], set[int]] = {}

    def add(self, symbol: str, start: int, end: int, start_char: int, end_char: int) -> None:
        self.by_start.setdefault(symbol, {})[start] = (end, start_char, end_char)
        (self.wide if end != start else self.solid).add(symbol)

    def find(self, pattern: Pattern) -> dict[int, list[Span]]:
        """Per paper index, the character spans where ``pattern`` occurs."""
        if any(symbol not in self.by_start for symbol in pattern):
            return {}
        if len(pattern) == 1:
            return self._spans_by_paper((start, occurrence) for start, occurrence in self.by_start[pattern[0]].items())
        if self.wide.isdisjoint(pattern):
            return self._find_one_word_each(pattern)
        return self._find_by_walking(pattern)

    def _spans_by_paper(self, occurrences: Iterable[tuple[int, Located]]) -> dict[int, list[Span]]:
        found: dict[int, list[Span]] = {}
        for start, (_, start_char, end_char) in occurrences:
            found.setdefault(start // self.stride, []).append((start_char, end_char))
        return found

    def _find_one_word_each(self, pattern: Pattern) -> dict[int, list[Span]]:
        """Every symbol is one word wide, so the pattern starts where the shifted start sets meet."""
        starts = self._starts_minus(pattern[0], 0)
        for offset in range(1, len(pattern)):
            starts = starts & self._starts_minus(pattern[offset], offset)
            if not starts:
                return {}
        first, last, width = self.by_start[pattern[0]], self.by_start[pattern[-1]], len(pattern) - 1
        whole = ((start, (start + width, first[start][1], last[start + width][2])) for start in sorted(starts))
        return self._spans_by_paper(whole)

    def _starts_minus(self, symbol: str, offset: int) -> AbstractSet[int]:
        """Start positions of ``symbol`` moved back by ``offset`` (cached: symbols recur)."""
        if offset == 0:
            return self.by_start[symbol].keys()
        key = (symbol, offset)
        found = self._shifted.get(key)
        if found is None:
            found = self._shifted[key] = {start - offset for start in self.by_start[symbol]}
        return found

    def _find_by_walking(self, pattern: Pattern) -> dict[int, list[Span]]:
        """Some symbol may be a glued pair: grow each occurrence of the rarest symbol."""
        anchor = min(range(len(pattern)), key=lambda i: len(self.by_start[pattern[i]]))
        following = [self.by_start[symbol] for symbol in pattern[anchor + 1 :]]
        preceding = [self._ends(symbol) for symbol in reversed(pattern[:anchor])]
        grown = (
            _grow(start, occurrence, following, preceding)
            for start, occurrence in self.by_start[pattern[anchor]].items()
        )
        return self._spans_by_paper(sorted(whole for whole in grown if whole))

    def _ends(self, symbol: str) -> dict[int, Located]:
        """``end -> (start, start char, end char)``, made when a phrase first grows leftwards."""
        found = self._by_end.get(symbol)
        if found is None:
            starts = self.by_start[symbol].items()
            found = self._by_end[symbol] = {end: (start, first, last) for start, (end, first, last) in starts}
        return found


def _grow(
    start: int, occurrence: Located, following: list[dict[int, Located]], preceding: list[dict[int, Located]]
) -> tuple[int, Located] | None:
    """Grow one anchor occurrence right, then left, into the whole pattern (or fail)."""
    end, start_char, end_char = occurrence
    for starts in following:
        step = starts.get(end + 1)
        if step is None:
            return None
        end, end_char = step[0], step[2]
    for ends in preceding:
        step = ends.get(start - 1)
        if step is None:
            return None
        start, start_char = step[0], step[1]
    return (start, (end, start_char, end_char))


class PaperIndex:
    """Positions of the wanted symbols in each field of each paper."""

    def __init__(self, papers: Sequence[Paper], wanted: Collection[str], acronyms: AcronymTable, stems: Stems):
        self.paper_count = len(papers)
        tokenized = {field: [list(tokenize(field_text(paper, field))) for paper in papers] for field in FIELDS}
        _learn_stems(tokenized, stems)
        self.lengths = {field: [len(tokens) for tokens in per_paper] for field, per_paper in tokenized.items()}
        self._fields: dict[str, _FieldPostings] = {}
        for field, per_paper in tokenized.items():
            stride = 2 + max((tokens[-1].position for tokens in per_paper if tokens), default=0)
            postings = self._fields[field] = _FieldPostings(stride)
            readable = acronyms if field in ACRONYM_FIELDS else None
            for number, tokens in enumerate(per_paper):
                _add_paper(postings, number, stride, tokens, wanted, readable, stems)
        self._found: dict[tuple[str, Pattern], dict[int, list[Span]]] = {}
        self.present: set[str] = set().union(*(postings.by_start for postings in self._fields.values()))
        self.solid: set[str] = set().union(*(postings.solid for postings in self._fields.values()))

    def spans(self, field: str, pattern: Pattern) -> dict[int, list[Span]]:
        """Per paper index, the spans where ``pattern`` occurs in ``field`` (memoized)."""
        key = (field, pattern)
        if key not in self._found:
            self._found[key] = self._fields[field].find(pattern)
        return self._found[key]


def _learn_stems(tokenized: dict[str, list[list[Token]]], stems: Stems) -> None:
    """Stem every word and glued pair of the run in one batch."""
    words: set[str] = set()
    for per_paper in tokenized.values():
        for tokens in per_paper:
            previous = ""
            for token in tokens:
                folded = fold(token.surface)
                words.add(folded)
                if token.joins_previous:
                    words.add(previous + folded)
                previous = folded
    stems.learn(words)


def _add_paper(
    postings: _FieldPostings,
    paper: int,
    stride: int,
    tokens: list[Token],
    wanted: Collection[str],
    acronyms: AcronymTable | None,
    stems: Stems,
) -> None:
    """Record the wanted symbols of one paper's field: stems, acronyms, glued pairs."""
    offset = paper * stride
    previous_folded, previous = "", None
    for token in tokens:
        folded = fold(token.surface)
        where = offset + token.position
        stem = stems.of(folded)
        if stem in wanted:
            postings.add(stem, where, where, token.start, token.end)
        acronym = acronyms.in_text(token.surface) if acronyms else None
        if acronym and acronym_symbol(acronym) in wanted:
            postings.add(acronym_symbol(acronym), where, where, token.start, token.end)
        if previous is not None and token.joins_previous:
            glued = stems.of(previous_folded + folded)
            if glued in wanted:
                postings.add(glued, offset + previous.position, where, previous.start, token.end)
        previous_folded, previous = folded, token
