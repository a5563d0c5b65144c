"""Turning one query term into the token patterns that count as finding it.

A *pattern* is a tuple of symbols that must occur at consecutive word positions of
one field. A symbol is a Snowball stem (``languag``) or an acronym symbol
(``acronym:LLM``). A term can be found through several patterns:

* its plain reading: ``"multi-modal LLMs"`` -> (multi, modal, acronym:LLM);
* two neighbours glued: (multimod, acronym:LLM) -- so a query written apart finds
  the joined word; the reverse (query ``multimodal``, paper "multi modal") is
  handled on the paper side, which also indexes each glued neighbour pair;
* an acronym spelled out: (multi, modal, larg, languag, model);
* words that spell an expansion abbreviated: ``mixture of experts`` -> (acronym:MoE,).

Work is split in two. At compile time a term becomes a :class:`TermShape`: its
plain symbols plus every glue and abbreviation that *could* apply. Per listing, a
:class:`Resolver` turns a shape into patterns using only the symbols that today's
papers actually contain -- so the readings never explode into thousands of
patterns that cannot match anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import pairwise
from typing import NamedTuple

from paperwire.match.acronyms import ACRONYM_SYMBOL_PREFIX, AcronymTable, acronym_symbol
from paperwire.match.text import Stems, Token, fold, tokenize

Pattern = tuple[str, ...]
MAX_PATTERNS_PER_TERM = 32
# Punctuation inside a sentence between two words of a term ("Rotate, Then Round", "Scaling:
# When", "0.1% Extra"): the text leaves a word position there (text.tokenize), as a paper's
# does, and the index records that position under this symbol for the terms that have one
# (no stem nor acronym is a comma). So a pasted title finds its paper, and a phrase written
# without the punctuation still never runs across a list.
GAP = ","
_new = tuple.__new__  # _new(TermShape, values): a named tuple without NamedTuple's Python-level __new__


class TermShape(NamedTuple):
    """A term's tokens as symbols, and the rewrites that may apply to them."""

    symbols: Pattern  # the plain reading, one symbol per token
    folded: tuple[str, ...]  # the tokens lower-cased, for gluing across word boundaries
    glues: tuple[tuple[int, str], ...]  # (i, stem of tokens i and i+1 written as one word)
    abbreviations: tuple[tuple[int, int, str], ...]  # (first token, end token, acronym symbol)


def is_acronym_symbol(symbol: str) -> bool:
    return symbol.startswith(ACRONYM_SYMBOL_PREFIX)


def _acronym_name(symbol: str) -> str:
    return symbol[len(ACRONYM_SYMBOL_PREFIX) :]


def _with_one_glue(shape: TermShape, start: int, end: int) -> list[Pattern]:
    """``symbols[start:end]`` as written, then with each one neighbour pair glued."""
    readings = [shape.symbols[start:end]]
    for i, glued in shape.glues:
        if start <= i and i + 2 <= end:
            readings.append(shape.symbols[start:i] + (glued,) + shape.symbols[i + 2 : end])
    return readings


class PatternMaker:
    """Knows the acronym table and the stemmer; makes (and remembers) term shapes."""

    def __init__(self, acronyms: AcronymTable, stems: Stems):
        self.acronyms = acronyms
        self.stems = stems
        self._shapes: dict[bool, dict[str, TermShape]] = {True: {}, False: {}}  # by use_acronyms, then text
        self.expansions: dict[str, list[TermShape]] = {}
        self._acronyms_by_expansion: dict[Pattern, list[str]] = {}
        for name, texts in acronyms.expansions.items():
            self.expansions[name] = [self.shape(text, use_acronyms=False) for text in texts]
            self._spell(name, [p for shape in self.expansions[name] for p in self._plain_readings(shape)])
        self._expansion_starts = {spelling[0] for spelling in self._acronyms_by_expansion}
        self._longest_expansion = max(map(len, self._acronyms_by_expansion), default=0) + 1
        # An expansion may write another acronym inside it: "multimodal LLM" is MLLM, "RL from
        # human feedback" RLHF. Each inner one is strictly shorter, so spelling out ends.
        for name, shapes in self.expansions.items():
            self.expansions[name] = shapes = [self._with_inner_acronyms(shape) for shape in shapes]
            self._spell(name, [p for shape in shapes for p in self._abbreviated_readings(shape)])
        self._expansion_starts = {spelling[0] for spelling in self._acronyms_by_expansion}
        # acronym symbol -> (first symbols, last symbols) of the ways to spell it out
        self._expansion_ends: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for name, shapes in self.expansions.items():
            spellings = [spelling for shape in shapes for spelling in self._written_readings(shape)]
            firsts = tuple(dict.fromkeys(spelling[0] for spelling in spellings))
            lasts = tuple(dict.fromkeys(spelling[-1] for spelling in spellings))
            self._expansion_ends[acronym_symbol(name)] = (firsts, lasts)
        # acronym symbol -> the most word positions one of its expansions takes written apart
        self._spelled_widths = {acronym_symbol(name): max(len(shape.symbols) for shape in shapes)
                                for name, shapes in self.expansions.items() if shapes}
        # acronyms spelled out more than one way: an expansion of one may be written as another
        self.several_ways = {acronym_symbol(name) for name, shapes in self.expansions.items() if len(shapes) > 1}

    def width(self, symbol: str) -> int:
        """The most word positions ``symbol`` takes in a paper: an acronym spelled out, all its
        words ("large language models" for ``LLMs``); any other, one."""
        return self._spelled_widths.get(symbol, 1)

    @staticmethod
    def _plain_readings(shape: TermShape) -> list[Pattern]:
        """How an expansion may be written: apart, or with one pair glued ("autoencoder")."""
        return _with_one_glue(shape, 0, len(shape.symbols))

    @staticmethod
    def _abbreviated_readings(shape: TermShape) -> list[Pattern]:
        """An expansion with one inner acronym written as the acronym ("multimodal LLM")."""
        return [shape.symbols[:start] + (acronym,) + shape.symbols[end:] for start, end, acronym in shape.abbreviations]

    def _written_readings(self, shape: TermShape) -> list[Pattern]:
        """Every way an expansion is written whatever the listing: apart, one pair glued, or
        one inner acronym abbreviated."""
        return self._plain_readings(shape) + self._abbreviated_readings(shape)

    def _spell(self, name: str, spellings: list[Pattern]) -> None:
        """Record ``spellings`` as ways to write the acronym ``name`` out."""
        for spelling in dict.fromkeys(spellings):
            self._acronyms_by_expansion.setdefault(spelling, []).append(acronym_symbol(name))

    def _with_inner_acronyms(self, shape: TermShape) -> TermShape:
        """The expansion's shape with the other acronyms spelled inside it (never the whole of it)."""
        whole = len(shape.symbols)
        inner = tuple(found for found in self._abbreviations(shape) if found[1] - found[0] < whole)
        return shape._replace(abbreviations=inner) if inner else shape

    def shape(self, text: str, use_acronyms: bool = True) -> TermShape:
        """The shape of a word, phrase or run of words (memoized by text)."""
        shapes = self._shapes[use_acronyms]
        shape = shapes.get(text)
        if shape is None:
            shape = shapes[text] = self._make_shape(list(tokenize(text)), use_acronyms)
        return shape

    def run_shape(
        self, texts: Sequence[str], use_acronyms: bool = True, text: str | None = None
    ) -> tuple[TermShape, list[int]]:
        """The shape of words written one after the other, and where each word's tokens start.

        Built from the (memoized) shapes of the words, so a run costs little more than
        its words; it equals ``shape(" ".join(texts))`` and is remembered under that text
        (which the caller may pass as ``text`` when it has it already).
        """
        shapes = self._shapes[use_acronyms]
        parts = [shapes.get(word) or self.shape(word, use_acronyms) for word in texts]
        starts = [0]
        for part in parts[:-1]:
            starts.append(starts[-1] + len(part.symbols))
        if text is None:
            text = " ".join(texts)
        shape = shapes.get(text)
        if shape is None:
            shape = shapes[text] = self._join(parts, starts, use_acronyms)
        return shape, starts

    def _join(self, parts: list[TermShape], starts: list[int], use_acronyms: bool) -> TermShape:
        symbols: Pattern = ()
        folded: tuple[str, ...] = ()
        glues: list[tuple[int, str]] = []
        inner = False
        for part, start in zip(parts, starts, strict=True):
            symbols += part.symbols
            folded += part.folded
            if part.glues:  # a hyphenated word: "multi-modal"
                glues += [(start + i, glued) for i, glued in part.glues]
                inner = True
        glue = self.stems.glued_apart  # a run's words are written apart: "may be" is never maybe
        for start in starts[1:]:  # each word glued to the next: never next to an acronym
            before, after = symbols[start - 1], symbols[start]
            if not before.startswith(ACRONYM_SYMBOL_PREFIX) and not after.startswith(ACRONYM_SYMBOL_PREFIX):
                glued = glue(folded[start - 1], folded[start])
                if glued:
                    glues.append((start - 1, glued))
        shape = _new(TermShape, (symbols, folded, tuple(sorted(glues) if inner else glues), ()))
        return self._finish(shape, use_acronyms)

    def _make_shape(self, tokens: list[Token], use_acronyms: bool) -> TermShape:
        read: list[Token | None] = []  # the tokens, with None for each GAP between them
        for before, token in zip([None, *tokens], tokens, strict=False):
            if before is not None and token.position == before.position + 2:
                read.append(None)
            read.append(token)
        symbols = tuple(GAP if token is None else self._symbol(token, use_acronyms) for token in read)
        folded = tuple(GAP if token is None else fold(token.surface) for token in read)
        glues = tuple(
            (i, glued)
            for i, token in enumerate(read[1:])
            if token is not None and token.joins_previous and (glued := self._glued(symbols, folded, i, token.hyphenated))
        )
        return self._finish(TermShape(symbols, folded, glues, ()), use_acronyms)

    def _glued(self, symbols: Pattern, folded: tuple[str, ...], i: int, hyphenated: bool) -> str | None:
        """The stem of tokens ``i`` and ``i + 1`` written as one word; never next to an acronym,
        and across a space only as the paper side reads one (``Stems.glued_apart``)."""
        if symbols[i].startswith(ACRONYM_SYMBOL_PREFIX) or symbols[i + 1].startswith(ACRONYM_SYMBOL_PREFIX):
            return None
        glue = self.stems.glued if hyphenated else self.stems.glued_apart
        return glue(folded[i], folded[i + 1])

    def _finish(self, shape: TermShape, use_acronyms: bool) -> TermShape:
        if not use_acronyms:
            return shape
        abbreviations = self._abbreviations(shape)
        return _new(TermShape, (shape.symbols, shape.folded, shape.glues, abbreviations)) if abbreviations else shape

    def _symbol(self, token: Token, use_acronyms: bool) -> str:
        acronym = self.acronyms.in_query(token.surface) if use_acronyms else None
        return acronym_symbol(acronym) if acronym else self.stems.of(fold(token.surface))

    def _abbreviations(self, shape: TermShape) -> tuple[tuple[int, int, str], ...]:
        """Token ranges that spell an acronym's expansion (allowing one glued pair)."""
        starts = self._expansion_starts
        if starts.isdisjoint(shape.symbols) and all(glued not in starts for _, glued in shape.glues):
            return ()  # the usual case: no word can begin an expansion
        glued_at = dict(shape.glues)
        found: list[tuple[int, int, str]] = []
        count = len(shape.symbols)
        for start in range(count):
            if shape.symbols[start] not in self._expansion_starts and glued_at.get(start) not in self._expansion_starts:
                continue
            for end in range(start + 1, min(count, start + self._longest_expansion) + 1):
                for reading in _with_one_glue(shape, start, end):
                    found += [(start, end, symbol) for symbol in self._acronyms_by_expansion.get(reading, ())]
        return tuple(dict.fromkeys(found))

    def reading_pairs(self, shape: TermShape) -> list[tuple[str, str]]:
        """Neighbour symbol pairs across the ends of spelled-out and abbreviated acronyms.

        With :meth:`expansion_pairs` (the pairs inside the expansions), what the paper
        index should record so that those readings are found at once; readings it
        misses are still found, only more slowly.
        """
        symbols = shape.symbols
        count = len(symbols)
        ends = self._expansion_ends
        pairs: list[tuple[str, str]] = []
        for i, symbol in enumerate(symbols):
            if not symbol.startswith(ACRONYM_SYMBOL_PREFIX):
                continue
            firsts, lasts = ends.get(symbol, ((), ()))
            if i > 0:
                before = symbols[i - 1]
                befores = (before, *ends.get(before, ((), ()))[1])
                pairs += [(last, first) for last in befores for first in (symbol, *firsts)]
            if i + 1 < count:
                pairs += [(last, symbols[i + 1]) for last in lasts]
        for start, end, acronym in shape.abbreviations:  # read as the acronym or any of its expansions
            firsts, lasts = ends.get(acronym, ((), ()))
            if start > 0:
                pairs += [(symbols[start - 1], first) for first in (acronym, *firsts)]
            if end < count:
                pairs += [(last, symbols[end]) for last in (acronym, *lasts)]
        return pairs

    def expansion_pairs(self) -> set[tuple[str, str]]:
        """Neighbour symbol pairs inside the acronyms' expansions, however written."""
        pairs: set[tuple[str, str]] = set()
        for expansions in self.expansions.values():
            for expansion in expansions:
                for spelling in self._written_readings(expansion):
                    pairs.update(pairwise(spelling))
        return pairs

    def add_symbols(self, shape: TermShape, symbols: set[str]) -> None:
        """Add to ``symbols`` every symbol any reading of the shape may need."""
        symbols.update(shape.symbols)
        if shape.glues:
            symbols.update(glued for _, glued in shape.glues)
        for _, _, acronym in shape.abbreviations:  # the acronym and its other expansions
            symbols.add(acronym)
            for expansion in self.expansions.get(_acronym_name(acronym), ()):
                self.add_symbols(expansion, symbols)
        for symbol in shape.symbols:
            if symbol.startswith(ACRONYM_SYMBOL_PREFIX):
                for expansion in self.expansions.get(_acronym_name(symbol), ()):
                    self.add_symbols(expansion, symbols)

    def resolver(self, present: Collection[str], solid: Collection[str]) -> Resolver:
        """A resolver for one listing, given its symbols (see :class:`Resolver`)."""
        return Resolver(self, present, solid)


class Resolver:
    """Patterns of shapes for one listing: only readings whose symbols all occur in it.

    ``present`` holds every symbol found in some paper; ``solid`` those found as one
    written word. A glued reading of the query (``multi modal`` -> ``multimod``) is
    only worth trying when a paper writes the glued word solid: where a paper writes
    "multi modal" apart, the plain reading already finds it.
    """

    def __init__(self, maker: PatternMaker, present: Collection[str], solid: Collection[str]):
        self._maker = maker
        self._present = present
        self._solid = solid
        self._spellings: dict[str, list[Pattern]] = {}

    def patterns(self, shape: TermShape) -> tuple[Pattern, ...]:
        """The readings of ``shape`` that can occur in this listing, plain reading first."""
        if self._only_plain(shape):
            return (shape.symbols,) if all(s in self._present for s in shape.symbols) else ()
        return self._readings(shape)

    def _only_plain(self, shape: TermShape) -> bool:
        """No rewrite applies today: the usual case, answered without the full search."""
        return (
            not any(glued in self._solid for _, glued in shape.glues)
            and not any(acronym in self._present or acronym in self._maker.several_ways
                        for _, _, acronym in shape.abbreviations)  # written as the acronym, or another expansion
            and not any(is_acronym_symbol(symbol) for symbol in shape.symbols)
        )

    def _readings(self, shape: TermShape) -> tuple[Pattern, ...]:
        """Dynamic programming from the last token back over the applicable rewrites."""
        count = len(shape.symbols)
        glued_at = dict(shape.glues)
        abbreviated_at: dict[int, list[tuple[int, str]]] = {}
        for start, end, symbol in shape.abbreviations:
            abbreviated_at.setdefault(start, []).append((end, symbol))
        tails: list[list[Pattern]] = [[] for _ in range(count)] + [[()]]
        for i in range(count - 1, -1, -1):
            heads = self._heads(shape.symbols[i], glued_at.get(i), abbreviated_at.get(i, ()), i)
            combined = [head + tail for head, after in heads for tail in tails[after]]
            tails[i] = list(dict.fromkeys(combined))[:MAX_PATTERNS_PER_TERM]
        return tuple(tails[0])

    def _heads(
        self, symbol: str, glued: str | None, abbreviations: Sequence[tuple[int, str]], i: int
    ) -> list[tuple[Pattern, int]]:
        """The ways to read what starts at token ``i``: as is, spelled out, glued, abbreviated."""
        present = self._present
        heads = [((symbol,), i + 1)] if symbol in present else []
        if is_acronym_symbol(symbol):
            heads += [(spelling, i + 1) for spelling in self._spelled_out(_acronym_name(symbol))]
        if glued is not None and glued in self._solid:
            heads.append(((glued,), i + 2))
        for end, acronym in abbreviations:  # "vision language model": VLM, or "visual language model"
            if acronym in present:
                heads.append(((acronym,), end))
            if acronym in self._maker.several_ways:
                heads += [(spelling, end) for spelling in self._spelled_out(_acronym_name(acronym))]
        return heads

    def spellings(self, acronym: str) -> list[Pattern]:
        """How the acronym symbol ``acronym`` can be spelled out in this listing."""
        return self._spelled_out(_acronym_name(acronym))

    def _spelled_out(self, name: str) -> list[Pattern]:
        """The acronym's expansions as they can occur today (each expansion is a shape too)."""
        spellings = self._spellings.get(name)
        if spellings is None:
            every = [p for shape in self._maker.expansions.get(name, ()) for p in self.patterns(shape)]
            spellings = self._spellings[name] = list(dict.fromkeys(every))
        return spellings
