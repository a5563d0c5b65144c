"""Turning one query term into the token patterns that count as finding it.

A *pattern* is a tuple of symbols that must occur at consecutive word positions of
one field. A symbol is a Snowball stem (``languag``) or an acronym symbol
(``acronym:LLM``). One term has several patterns, any of which counts:

* the plain reading: ``"multi-modal LLMs"`` -> (multi, modal, acronym:LLM);
* neighbours glued: (multimod, acronym:LLM) -- so a query written apart finds the
  joined word; the reverse direction (query ``multimodal``, paper "multi modal") is
  handled on the paper side, which also indexes each glued neighbour pair;
* an acronym replaced by each of its expansions: (multimod, larg, languag, model);
* words that spell an expansion replaced by its acronym: ``mixture of experts`` ->
  (acronym:MoE,), ``multi-modal large language models`` -> (acronym:MLLM,).

Each rewrite (a glue, an expansion folded into its acronym) costs 1, and only the
cheapest ``MAX_PATTERNS_PER_TERM`` readings are kept, so a long phrase cannot explode.
"""

from __future__ import annotations

from collections.abc import Sequence

from paperwire.match.acronyms import ACRONYM_SYMBOL_PREFIX, AcronymTable, acronym_symbol
from paperwire.match.text import Stems, Token, fold, tokenize

Pattern = tuple[str, ...]
Reading = tuple[int, Pattern]  # (number of rewrites, pattern)
Head = tuple[int, Pattern, int]  # (rewrites, symbols for tokens[i:next], next)
MAX_PATTERNS_PER_TERM = 32


def _cheapest(readings: list[Reading]) -> list[Reading]:
    """Distinct patterns, fewest rewrites first (ties keep their order), capped."""
    best: dict[Pattern, int] = {}
    for cost, pattern in sorted(readings, key=lambda reading: reading[0]):
        best.setdefault(pattern, cost)
        if len(best) == MAX_PATTERNS_PER_TERM:
            break
    return [(cost, pattern) for pattern, cost in best.items()]


def _is_acronym(symbol: str) -> bool:
    return symbol.startswith(ACRONYM_SYMBOL_PREFIX)


class PatternMaker:
    """Knows the acronym table and stems; makes (and remembers) the patterns of a term."""

    def __init__(self, acronyms: AcronymTable, stems: Stems):
        self.acronyms = acronyms
        self.stems = stems
        self._spelled_out = {name: self._spellings(texts) for name, texts in acronyms.expansions.items()}
        self._acronyms_by_expansion: dict[Pattern, list[str]] = {}
        for name, readings in self._spelled_out.items():
            for _, pattern in readings:
                self._acronyms_by_expansion.setdefault(pattern, []).append(name)
        self._expansion_starts = {pattern[0] for pattern in self._acronyms_by_expansion}
        self._longest_expansion = max((len(p) for p in self._acronyms_by_expansion), default=0) + 1
        self._memo: dict[tuple[str, bool], tuple[Pattern, ...]] = {}

    def _spellings(self, expansions: Sequence[str]) -> list[Reading]:
        readings = [r for text in expansions for r in self._readings(list(tokenize(text)), use_acronyms=False)]
        return _cheapest(readings)

    def patterns(self, text: str, use_acronyms: bool = True) -> tuple[Pattern, ...]:
        """All patterns that count as finding ``text`` (a word, a phrase or a word run)."""
        key = (text, use_acronyms)
        if key not in self._memo:
            readings = self._readings(list(tokenize(text)), use_acronyms)
            self._memo[key] = tuple(pattern for _, pattern in readings)
        return self._memo[key]

    def spells_expansion(self, text: str) -> bool:
        """Whether ``text`` written apart or glued is some acronym's expansion."""
        readings = self._readings(list(tokenize(text)), use_acronyms=False)
        return any(pattern in self._acronyms_by_expansion for _, pattern in readings)

    def _readings(self, tokens: list[Token], use_acronyms: bool) -> list[Reading]:
        """Dynamic programming from the last token back: readings of ``tokens[i:]``."""
        symbols = [self._symbol(token, use_acronyms) for token in tokens]
        tails: list[list[Reading]] = [[] for _ in tokens] + [[(0, ())]]
        for i in range(len(tokens) - 1, -1, -1):
            heads = self._heads(tokens, symbols, i, use_acronyms)
            tails[i] = _cheapest([(hc + tc, head + tail) for hc, head, after in heads for tc, tail in tails[after]])
        return tails[0]

    def _symbol(self, token: Token, use_acronyms: bool) -> str:
        acronym = self.acronyms.in_query(token.surface) if use_acronyms else None
        return acronym_symbol(acronym) if acronym else self.stems.of(fold(token.surface))

    def _heads(self, tokens: list[Token], symbols: list[str], i: int, use_acronyms: bool) -> list[Head]:
        """The ways to read what starts at token ``i``: as is, glued, expanded, abbreviated."""
        heads: list[Head] = [(0, (symbols[i],), i + 1)]
        if _is_acronym(symbols[i]):
            name = symbols[i][len(ACRONYM_SYMBOL_PREFIX) :]
            heads += [(cost, spelled, i + 1) for cost, spelled in self._spelled_out.get(name, ())]
        glued = self._glued(tokens, symbols, i)
        if glued:
            heads.append((1, (glued,), i + 2))
        if use_acronyms and (symbols[i] in self._expansion_starts or glued in self._expansion_starts):
            heads += self._abbreviations(tokens, i)
        return heads

    def _glued(self, tokens: list[Token], symbols: list[str], i: int) -> str | None:
        """Stem of tokens i and i+1 written as one word, when they may be read so."""
        if i + 1 >= len(tokens) or not tokens[i + 1].joins_previous:
            return None
        if _is_acronym(symbols[i]) or _is_acronym(symbols[i + 1]):
            return None
        return self.stems.of(fold(tokens[i].surface + tokens[i + 1].surface))

    def _abbreviations(self, tokens: list[Token], i: int) -> list[Head]:
        """Acronyms whose expansion the tokens from ``i`` spell (``mixture of experts``)."""
        heads: list[Head] = []
        for end in range(i + 1, min(len(tokens), i + self._longest_expansion) + 1):
            for _, pattern in self._readings(tokens[i:end], use_acronyms=False):
                for name in self._acronyms_by_expansion.get(pattern, ()):
                    heads.append((1, (acronym_symbol(name),), end))
        return heads
