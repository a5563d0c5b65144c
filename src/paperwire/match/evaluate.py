"""Running compiled terms and plans against one listing's index.

Sets of papers are bitsets: Python ints whose bit ``i`` is paper ``i`` (AND is ``&``,
OR is ``|``, exclusion is ``& ~``), a few machine words for a day's listing.

Every term gets a cheap *bound* first: the papers where each of its symbols occurs
(ANDed per field from the index), a superset of where the term really is. For a
one-word term read word for word -- most terms -- the bound is exact. A plan is
first checked against the bounds of its parts; most topics stop there, with no
phrase ever looked up. Otherwise its parts are evaluated exactly, terms already known
first, and a term (a phrase, say) is looked up at most once per listing, when a plan
first needs it. An exclusion whose bound misses the selected papers is never looked
up, nor is a positive term's score where its bound misses them. A run's phrase
(``scaling laws`` read side by side) becomes a term only when a plan gets that far.

Ranking sums each selected paper's scores in query order (so the floats are those of
a plain loop) with C-level ``map``s, and sorts once; with a ``limit``, ``heapq.nlargest``
gives the same order as sorting everything and cutting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from heapq import nlargest
from itertools import compress, pairwise, repeat
from operator import add, and_, itemgetter

from paperwire.match.acronyms import ACRONYM_SYMBOL_PREFIX
from paperwire.match.index import Occurrences, PaperIndex, bits_of
from paperwire.match.patterns import Pattern, Resolver
from paperwire.match.plan import (
    DEFAULT_FIELDS,
    AllOf,
    GluedPairs,
    Plan,
    PlanNode,
    Positive,
    RunPhrase,
    TermRef,
    TermRegistry,
    TermSpec,
    WordsOrPhrase,
    near_of,
)
from paperwire.match.results import NearRef, Ranking, Span, TermFinding, fits, repeated_window, within
from paperwire.match.score import Bm25
from paperwire.match.sentences import SENTENCE_SHIFT
from paperwire.models import Paper

_new = tuple.__new__  # _new(SomeNamedTuple, values), without the Python-level __new__ of named tuples


class Findings(Sequence[TermFinding]):
    """Every term's bound, worked out at once; its finding (exact papers, scores, spans) when first needed.

    ``bounds[t]`` holds the papers that may contain term ``t``; ``plain[t]`` whether
    today the term can only be read word for word (then a phrase finds no paper its
    words do not); ``exact[t]`` the papers that do contain it, None until known.
    """

    def __init__(self, registry: TermRegistry, resolver: Resolver, index: PaperIndex, bm25: Bm25):
        self._registry = registry
        self._terms = registry.terms  # grows when a run's phrase becomes a term (see phrase())
        self._resolver = resolver
        self._index = index
        self._bm25 = bm25
        self._found: list[TermFinding | None] = []
        self._patterns: list[tuple[Pattern, ...] | None] = []
        self.bounds: list[int] = []
        self.plain: list[bool | None] = []
        self.exact: list[int | None] = []
        self._spelled: dict[tuple[str, str], int] = {}
        self._run_bounds: dict[int, int] = {}  # id of a RunPhrase -> its bound
        self._run_phrase_bounds: dict[int, int] = {}  # id of a RunPhrase -> papers that may have its phrase
        self._all_words_bounds: dict[int, int] = {}  # id of a RunPhrase -> its bound over all its words
        self._pair_bounds: dict[int, int] = {}  # term -> papers where its symbols may be side by side
        self._near: dict[int, int] = {}  # id of a run's words (an AllOf) -> papers where they are near
        self._glued_readings: dict[int, tuple[tuple[AllOf, TermRef], ...]] = {}  # id of a run -> glued_readings
        self._term_sentences: dict[tuple[int, str], set[int]] = {}
        self._merged_places: dict[tuple[int, str], dict[int, list[tuple[int, int]]]] = {}
        self._papers_with = {field: index.papers_with(field) for field in ("title", "abstract", "author")}
        self._bound_new_terms()

    def _bound_new_terms(self) -> None:
        """Bound every term not bounded yet: its symbols' papers ANDed, per field, ORed over the fields.

        This runs for every term of every subscriber, so the usual case -- a term of
        the title and abstract, read word for word -- has its own few lines.
        """
        first, count = len(self.bounds), len(self._terms)
        if first == count:
            return
        for found in (self._found, self._patterns, self.exact):
            found.extend([None] * (count - first))  # type: ignore[list-item]
        self.bounds.extend([0] * (count - first))
        self.plain.extend([True] * (count - first))
        index, bounds, exact, papers_with = self._index, self.bounds, self.exact, self._papers_with
        solid_misses, present_misses = index.solid.isdisjoint, index.present.isdisjoint
        one_way = self._registry.pattern_maker.several_ways.isdisjoint
        in_title, in_abstract = papers_with["title"].get, papers_with["abstract"].get
        rewrites = self._registry.rewrites
        for term in range(first, count):
            spec = self._terms[term]
            glued, abbreviated, has_acronym = rewrites[term]
            symbols = spec.shape.symbols
            if has_acronym or (glued and not solid_misses(glued)) or (
                    abbreviated and not (present_misses(abbreviated) and one_way(abbreviated))):  # or another expansion
                # A rewrite may apply today: which readings can occur is worked out when
                # needed (see reads_plainly); meanwhile a looser bound will do.
                self.plain[term] = None
                bound = bounds[term] = self._loose_bound(spec, papers_with)
                if not bound:
                    exact[term] = 0
                continue
            if spec.fields == DEFAULT_FIELDS:
                title = in_title(symbols[0], 0)
                abstract = in_abstract(symbols[0], 0)
                for symbol in symbols[1:]:
                    if title:
                        title &= in_title(symbol, 0)
                    if abstract:
                        abstract &= in_abstract(symbol, 0)
                bound = title | abstract
                single = len(symbols) == 1
            else:
                papers = papers_with[spec.fields[0]]
                bound = -1
                for symbol in symbols:
                    bound &= papers.get(symbol, 0)
                single = len(symbols) == 1
            bounds[term] = bound
            if single or not bound:
                exact[term] = bound  # one symbol, one reading: the bound is the answer

    # --- runs whose phrase is not a term yet (see plan.RunPhrase) ----------------------------

    def phrase(self, run: RunPhrase) -> TermRef:
        """The run's phrase as a term (made now if need be), with a bound like every term.

        A phrase just made takes the run's bound (valid for it too), and whether it reads
        plainly is left to :meth:`reads_plainly` unless the run surely does.
        """
        ref = run.ref if run.ref is not None else self._registry.phrase_of(run)
        if ref.term == len(self.bounds):
            self.bounds.append(self.run_bound(run))
            self.plain.append(True if self.run_reads_plainly(run) else None)
            self.exact.append(None)
            self._found.append(None)
            self._patterns.append(None)
        elif ref.term > len(self.bounds):
            self._bound_new_terms()
        return ref

    def near(self, words: AllOf, field: str | None) -> int:
        """The papers where a run's words occur near each other (memoized per run).

        Near: in one field and one sentence, within :func:`~paperwire.match.sentences.window`
        word positions. Each word is found in any of its readings (an acronym spelled
        out spans several positions); an expansion the run spells (``mixture of experts``
        in ``sparse mixture of experts``) is one part, found as its phrase or acronym.
        """
        key = id(words)
        found = self._near.get(key)
        if found is None:
            found = self._near[key] = self._find_near(words, field)
        return found

    def glued_readings(self, run: WordsOrPhrase, field: str | None) -> tuple[tuple[AllOf, tuple[TermRef, ...]], ...]:
        """The run's words with a neighbour pair read as one part, for each pair (``run.glued``)
        that some paper today writes as one word, and with all such pairs at once; each with
        its pairs' terms (memoized per run): ``multi modal models`` as (``multi modal``,
        ``models``) too.

        A pair's term is its phrase, which reads every form of it ("multi modal",
        "multi-modal", "multimodal"). A pair no paper writes solid adds nothing: its phrase
        is its two words side by side, which the run's words near each other already cover.
        A reading that glues a pair but keeps one of its words apart elsewhere is left out
        (``multi modal to multi modal``: one "multi-modal" would be both).
        """
        found = self._glued_readings.get(id(run))
        if found is None:
            solid = self._index.solid
            words: tuple[TermRef, ...] = run.words.required  # type: ignore[union-attr,assignment]
            at = [i for i, glued in enumerate(run.glued) if glued is not None and glued in solid]
            glued_sets = [[i] for i in at]
            apart = [i for i in at if i - 1 not in at]  # and every such pair at once, when not overlapping
            if len(apart) > 1:
                glued_sets.append(apart)
            readings = []
            for chosen in glued_sets:
                parts: list[TermRef] = []
                pairs = []
                i = 0
                while i < len(words):
                    if i in chosen:
                        pairs.append(self._pair(words[i], words[i + 1], field))
                        parts.append(pairs[-1])
                        i += 2
                    else:
                        parts.append(words[i])
                        i += 1
                glued_words = {word.term for i in chosen for word in words[i : i + 2]}
                if glued_words.isdisjoint(part.term for part in parts):
                    readings.append((AllOf(tuple(parts), (), tuple([part.term for part in parts]), ()), tuple(pairs)))
            found = self._glued_readings[id(run)] = tuple(readings)
        return found

    def _pair(self, first: TermRef, second: TermRef, field: str | None) -> TermRef:
        """The phrase of two neighbouring words of a run, a term (made now if need be)."""
        pair = self._registry.ref(f"{first.label} {second.label}", field)
        if pair.term >= len(self.bounds):
            self._bound_new_terms()  # its symbols and pairs are the run's: the index has them
        return pair

    def glued_near(self, run: WordsOrPhrase, field: str | None) -> int:
        """The papers where the run's words are near each other in one of its :meth:`glued_readings`."""
        near = 0
        for words, _ in self.glued_readings(run, field):
            near |= self.near(words, field)
        return near

    def _find_near(self, words: AllOf, field: str | None) -> int:
        """The sentences that hold every part (a set intersection) first; the window is
        checked only in those."""
        if not _all_of(words, self):
            return 0
        terms, limit, fields, widths = near_of(words, self._registry, field)
        near = 0
        for name in fields:
            shared = None
            for sentences in sorted([self._sentences(term, name) for term in terms], key=len):
                shared = sentences if shared is None else shared & sentences
                if not shared:
                    break
            if not shared:
                continue
            places = [self._places(term, name) for term in terms]
            stride = self._index.stride(name)
            repeated = len(set(terms)) < len(terms)  # ``end to end``: each repeat its own occurrence
            # An occurrence wider than its part ("pre-training" for ``pretraining``) is discounted
            # (``results.fits``); most parts never have one, and are swept as before.
            wider = any([self._longest(term, name) > width for term, width in zip(terms, widths, strict=True)])
            for sentence in shared:
                paper = (sentence << SENTENCE_SHIFT) // stride
                if near >> paper & 1:
                    continue
                lists = [found[sentence] for found in places]
                if repeated:
                    if repeated_window(lists, limit, terms, widths) is not None:
                        near |= 1 << paper
                elif fits(lists, limit, widths) if wider else within(lists, limit):
                    near |= 1 << paper
        return near

    def _longest(self, term: int, field: str) -> int:
        """The most word positions one occurrence of the term spans in ``field``."""
        return max([where.longest() for name, where in self[term]._located if name == field])  # type: ignore[attr-defined]

    def _sentences(self, term: int, field: str) -> set[int]:
        """The sentences of ``field`` where the term occurs (memoized)."""
        key = (term, field)
        found = self._term_sentences.get(key)
        if found is None:
            readings = [where.sentences() for name, where in self[term]._located if name == field]  # type: ignore[attr-defined]
            found = self._term_sentences[key] = readings[0] if len(readings) == 1 else set().union(*readings)
        return found

    def _places(self, term: int, field: str) -> dict[int, list[tuple[int, int]]]:
        """Per sentence of ``field``: the (first, last) positions of the term's occurrences, in order."""
        readings = [where.places() for name, where in self[term]._located if name == field]  # type: ignore[attr-defined]
        if len(readings) == 1:
            return readings[0]
        key = (term, field)
        merged = self._merged_places.get(key)
        if merged is None:
            merged = self._merged_places[key] = {}
            for places in readings:  # several readings ("multi-modal" and "multimodal"): merged once,
                for sentence, found in places.items():  # an occurrence two readings share kept once
                    merged[sentence] = sorted(set(merged.get(sentence, [])).union(found))
        return merged

    def run_reads_plainly(self, run: RunPhrase) -> bool:
        """Whether the run's phrase surely reads only word for word today (no acronym, no
        glued pair written as one word in a paper): then it finds no paper its words do not."""
        return not run.has_acronym and self._index.solid.isdisjoint(run.rewrites)

    def run_phrase_bound(self, run: RunPhrase) -> int:
        """Papers that may have the run's phrase (memoized per run): tighter than :meth:`run_bound`.

        When the phrase reads only word for word, its one pattern is its words' symbols
        side by side, so a paper can only have it where each two neighbouring words are
        side by side (see :meth:`_side_by_side`). Most runs' words never are: then the
        phrase need not be made a term (it would find nothing).
        """
        found = self._run_phrase_bounds.get(id(run))
        if found is None:
            found = self.all_words_bound(run)
            if found and self.run_reads_plainly(run):
                terms = self._terms
                symbols = [terms[word.term].shape.symbols for word in run.words]
                pairs = [(before[-1], after[0]) for before, after in pairwise(symbols)]
                found &= self._side_by_side(pairs, (run.field,) if run.field else DEFAULT_FIELDS)
            self._run_phrase_bounds[id(run)] = found
        return found

    def papers_among(self, term: int, selected: int) -> int:
        """``papers(term) & selected``, without looking the term up where that is surely 0.

        A term of several symbols read only word for word (``"scaling laws"``) is only
        where its symbols are side by side (see :meth:`_side_by_side`).
        """
        known = self.exact[term]
        if known is not None:
            return known & selected
        if self.plain[term]:
            near = self._pair_bounds.get(term)
            if near is None:
                spec = self._terms[term]
                near = self._pair_bounds[term] = self._side_by_side(list(pairwise(spec.shape.symbols)), spec.fields)
            if not near & selected:
                return 0
        return self[term].bits & selected

    def _side_by_side(self, pairs: list[tuple[str, str]], fields: Sequence[str]) -> int:
        """Papers where each pair's first symbol (one word) may be right before its second,
        in one of ``fields``: a superset of where a pattern with these neighbours occurs.

        The index knows this for the pairs it recorded; any other pair bounds nothing.
        """
        side_by_side = self._index.side_by_side
        bound = -1
        for before, after in pairs:
            bits = 0
            for field in fields:
                papers = side_by_side(field, before, after)
                if papers is None:  # not recorded: no telling
                    bits = -1
                    break
                bits |= papers
            bound &= bits
            if not bound:
                break
        return bound

    def run_bound(self, run: RunPhrase) -> int:
        """Papers that may have the run's words or its phrase, in any reading.

        Each word's papers ORed with those of the glued pairs it is part of, ANDed over
        the words: a reading covers each word by the word's own reading, or glues it to
        a neighbour. (A run whose words may spell an expansion is never lazy.)
        """
        found = self._run_bounds.get(id(run))
        if found is None:
            bounds = self.bounds
            words = [bounds[word.term] for word in run.words]
            if not self.run_reads_plainly(run):
                fields = (run.field,) if run.field else DEFAULT_FIELDS
                for i, glued in enumerate(run.glued):
                    if glued:
                        bits = 0
                        for field in fields:
                            bits |= self._papers_with[field].get(glued, 0)
                        words[i] |= bits
                        words[i + 1] |= bits
            # Over the words near each other only: their connectives need not be in the paper.
            found = self._run_bounds[id(run)] = reduce(and_, [words[i] for i in run.near], -1)
            self._all_words_bounds[id(run)] = found if len(run.near) == len(words) else reduce(and_, words, -1)
        return found

    def all_words_bound(self, run: RunPhrase) -> int:
        """:meth:`run_bound` over every word of the run, its connectives too: papers that may
        have its phrase (worked out with the run's bound)."""
        self.run_bound(run)
        return self._all_words_bounds[id(run)]

    def glued_bound(self, run: WordsOrPhrase, field: str | None) -> int:
        """Papers that may have the run's words near each other in a glued reading
        (:meth:`glued_readings`): a pair's glued stem and the other words."""
        words = [self.bounds[word.term] for word in run.words.required]  # type: ignore[union-attr]
        fields = (field,) if field else DEFAULT_FIELDS
        found = 0
        for i, glued in enumerate(run.glued):
            if glued:
                bits = 0
                for name in fields:
                    bits |= self._papers_with[name].get(glued, 0)
                if bits:
                    found |= reduce(and_, words[:i] + words[i + 2 :], bits)
        return found

    def _loose_bound(self, spec: TermSpec, papers_with: dict[str, dict[str, int]]) -> int:
        """A bound valid whatever the readings: each token's papers, ORed with those of
        every rewrite that may stand for it (spelled out, glued, abbreviated), ANDed."""
        shape = spec.shape
        several_ways = self._registry.pattern_maker.several_ways
        symbols = shape.symbols
        bound = 0
        for field in spec.fields:
            papers = papers_with[field]
            extra = [0] * len(symbols)
            for i, glued in shape.glues:
                bits = papers.get(glued, 0)
                extra[i] |= bits
                extra[i + 1] |= bits
            for start, end, acronym in shape.abbreviations:  # the acronym, or another of its expansions
                bits = papers.get(acronym, 0)
                if acronym in several_ways:
                    bits |= self._spelled_bits(field, acronym, papers)
                for i in range(start, end):
                    extra[i] |= bits
            bits = -1
            for symbol, more in zip(symbols, extra, strict=True):
                if symbol.startswith(ACRONYM_SYMBOL_PREFIX):
                    more |= self._spelled_bits(field, symbol, papers)
                bits &= papers.get(symbol, 0) | more
                if not bits:
                    break
            bound |= bits
        return bound

    def _spelled_bits(self, field: str, acronym: str, papers: dict[str, int]) -> int:
        """The papers whose ``field`` may spell ``acronym`` out (memoized per field and acronym)."""
        key = (field, acronym)
        found = self._spelled.get(key)
        if found is None:
            found = 0
            for pattern in self._resolver.spellings(acronym):
                bits = -1
                for symbol in pattern:
                    bits &= papers.get(symbol, 0)
                found |= bits
            self._spelled[key] = found
        return found

    def reads_plainly(self, term: int) -> bool:
        """Whether today the term can only be read word for word (or not at all)."""
        plain = self.plain[term]
        if plain is None:
            plain = self.plain[term] = self.patterns(term) in ((), (self._terms[term].shape.symbols,))
        return plain

    def describe(self, term: int) -> tuple[tuple[str, ...], tuple[Pattern, ...], int]:
        """What another process needs to look the term up in its own index (``match.split``):
        its fields, its readings in this listing, and the papers that may have it."""
        return self._terms[term].fields, self.patterns(term), self.bounds[term]

    def look_up(self, fields: Sequence[str], patterns: Sequence[Pattern]) -> TermFinding:
        """A term of another matcher (``match.split``), given its fields and readings, looked up
        in this listing's index: the same finding it has there if this index keeps its symbols."""
        return look_up(fields, patterns, self._index, self._bm25)

    def __len__(self) -> int:
        return len(self._terms)

    def __getitem__(self, term: int) -> TermFinding:  # type: ignore[override]
        found = self._found[term]
        if found is None:
            found = self._found[term] = look_up(self._terms[term].fields, self.patterns(term), self._index, self._bm25)
            self.exact[term] = found.bits
        return found

    def papers(self, term: int) -> int:
        """The papers that contain the term, as a bitset (looked up if not known yet)."""
        known = self.exact[term]
        return known if known is not None else self[term].bits

    def patterns(self, term: int) -> tuple[Pattern, ...]:
        """The term's readings that can occur in this listing (memoized)."""
        found = self._patterns[term]
        if found is None:
            if self.plain[term] and self.bounds[term]:  # read word for word, and its words occur
                found = self._patterns[term] = (self._terms[term].shape.symbols,)
            else:
                found = self._patterns[term] = self._resolver.patterns(self._terms[term].shape)
        return found


def look_up(fields: Sequence[str], patterns: Sequence[Pattern], index: PaperIndex, bm25: Bm25) -> TermFinding:
    """Where any of the term's patterns occurs in its fields, and what that scores."""
    located: list[tuple[str, Occurrences]] = []
    counts: dict[str, dict[int, int]] = {}
    for field in fields:
        found = [where for where in (index.find(field, pattern) for pattern in patterns) if where is not None]
        if len(found) == 1:
            located.append((field, found[0]))
            counts[field] = found[0].counts
        elif found:
            located += [(field, where) for where in found]
            counts[field] = _distinct_span_counts(found)
    scores = bm25.scores(counts)
    return TermFinding(scores, bits_of(scores), located)


def _distinct_span_counts(found: list[Occurrences]) -> dict[int, int]:
    """Mentions per paper when several patterns may hit the same words ("multi-modal")."""
    merged: dict[int, set[Span]] = {}
    for occurrences in found:
        for paper, spans in occurrences.by_paper().items():
            merged.setdefault(paper, set()).update(spans)
    return {paper: len(spans) for paper, spans in merged.items()}


# --- bitsets ----------------------------------------------------------------------------

_BIT_FLAGS = bytes.maketrans(b"01", b"\0\1")


def members(bits: int) -> list[int]:
    """The paper numbers in a bitset, ascending."""
    digits = bin(bits)[:1:-1]  # lowest bit first
    if bits.bit_count() > 64:
        return list(compress(range(len(digits)), digits.encode().translate(_BIT_FLAGS)))
    found: list[int] = []
    at = digits.find("1")
    while at >= 0:
        found.append(at)
        at = digits.find("1", at + 1)
    return found


# --- plans ------------------------------------------------------------------------------


def bound(node: PlanNode, findings: Findings) -> int:
    """A superset of the papers satisfying ``node``, from the terms' bounds alone."""
    kind = type(node)
    if kind is TermRef:
        return findings.bounds[node.term]  # type: ignore[union-attr]
    if kind is AllOf:
        bits = reduce(and_, map(findings.bounds.__getitem__, node.terms), -1)  # type: ignore[union-attr]
        for part in node.others:  # type: ignore[union-attr]
            if not bits:
                return 0
            bits &= bound(part, findings)
        return bits
    if kind is WordsOrPhrase:
        phrase = node.phrase  # type: ignore[union-attr]
        if type(phrase) is not TermRef:  # a run's phrase, maybe not a term yet
            return findings.run_bound(phrase)
        bits = bound(node.words, findings)  # type: ignore[union-attr]
        if node.glued:  # type: ignore[union-attr]
            bits |= findings.glued_bound(node, _field_of(findings, phrase))  # type: ignore[arg-type]
        term = phrase.term
        return bits if findings.plain[term] else bits | findings.bounds[term]  # unknown: keep it
    union = 0
    for option in node.options:  # type: ignore[union-attr]
        union |= bound(option, findings)
    return union


def matching(node: PlanNode, findings: Findings) -> int:
    """The papers satisfying ``node``: AND intersects, OR unites, exclusions subtract."""
    kind = type(node)
    if kind is TermRef:
        return findings.papers(node.term)  # type: ignore[union-attr]
    if kind is AllOf:
        return _all_of(node, findings)  # type: ignore[arg-type]
    if kind is WordsOrPhrase:
        phrase = node.phrase  # type: ignore[union-attr]
        field = phrase.field if type(phrase) is RunPhrase else _field_of(findings, phrase)  # type: ignore[union-attr,arg-type]
        selected = findings.near(node.words, field)  # type: ignore[union-attr]
        if node.glued:  # type: ignore[union-attr]
            selected |= findings.glued_near(node, field)  # type: ignore[arg-type]
        if type(phrase) is not TermRef:  # a run's phrase, maybe not a term yet
            if phrase.ref is None and (
                findings.run_reads_plainly(phrase) or not findings.all_words_bound(phrase) & ~selected
            ):
                return selected  # no paper it may find is left to add
            phrase = findings.phrase(phrase)
        term = phrase.term
        if findings.plain[term] or (findings.plain[term] is None and findings.reads_plainly(term)):
            return selected  # the phrase cannot add papers; it only adds to their scores
        return selected | findings.papers(term)
    union = 0
    for option in node.options:  # type: ignore[union-attr]
        union |= matching(option, findings)
    return union


def _field_of(findings: Findings, ref: TermRef) -> str | None:
    fields = findings._terms[ref.term].fields
    return fields[0] if len(fields) == 1 else None


def _all_of(node: AllOf, findings: Findings) -> int:
    # Bounds first (a C-level AND over the term parts): usually enough to know there is nothing.
    bounds = findings.bounds
    selected = reduce(and_, map(bounds.__getitem__, node.terms), -1)
    for part in node.others:
        if not selected:
            return 0
        selected &= bound(part, findings)
    if not selected:
        return 0
    # Then exactly: the terms whose papers are known (for most, the bound was exact), then the rest.
    if node.terms:
        exact = list(map(findings.exact.__getitem__, node.terms))
        if None not in exact:
            selected &= reduce(and_, exact)  # type: ignore[arg-type]
        else:
            unknown = [term for term, known in zip(node.terms, exact, strict=True) if known is None]
            selected = reduce(and_, [known for known in exact if known is not None], selected)
            for term in unknown:
                if not selected:
                    return 0
                selected = findings.papers_among(term, selected)
        if not selected:
            return 0
    for part in node.others:
        selected &= matching(part, findings)
        if not selected:
            return 0
    for part in node.excluded:
        if bound(part, findings) & selected:
            selected &= ~matching(part, findings)
            if not selected:
                return 0
    return selected


def rank(plan: Plan, papers: Sequence[Paper], findings: Findings, limit: int | None, nothing: Ranking) -> Ranking:
    """The plan's papers, best score first, ties by listing (trending) order.

    ``nothing`` is the (shared, read-only) empty ranking to give when nothing matches.
    """
    root = plan.root
    if root is None:  # "*": the whole listing as it came
        order: Sequence[int] = range(len(papers) if limit is None else min(limit, len(papers)))
        return Ranking(papers, order, [0.0] * len(order), plan.positives, findings)
    if type(root) is TermRef:  # one term alone: its own ranking, shared
        if not findings.bounds[root.term]:
            return nothing
        finding = findings[root.term]
        order = finding.best_first()[:limit]
        return Ranking(papers, order, list(map(finding.scores.__getitem__, order)), plan.positives, findings)
    selected = _all_of(root, findings) if type(root) is AllOf else matching(root, findings)  # type: ignore[arg-type]
    if not selected:
        return nothing
    chosen = members(selected)
    positives = plan.positives
    if any(type(ref) in _MADE_WHEN_RANKED for ref in positives):
        positives = positive_terms(positives, selected, findings)
    bounds = findings.bounds
    # Each selected paper's score is the sum, in query order, over the positive terms it
    # contains; terms none of the selected papers can contain add nothing and are skipped.
    found = findings._found
    terms = [found[ref.term] or findings[ref.term] for ref in positives if bounds[ref.term] & selected]
    if len(terms) == 1:  # then every selected paper has that term
        score = terms[0].scores.__getitem__
        if limit is not None and 0 <= limit < len(chosen):  # same order as sorting all, then cutting
            order = nlargest(limit, chosen, key=score)
        else:
            order = sorted(chosen, key=score, reverse=True)[:limit]
        return Ranking(papers, order, list(map(score, order)), positives, findings)
    # One C-level pass per term: score + the term's score of the paper, or + 0.0 where it
    # is missing (0.0 + score is the score). A term every selected paper has (its bitset
    # covers them) is read with one itemgetter call.
    every = itemgetter(*chosen) if len(chosen) > 1 else None
    scores = [0.0] * len(chosen)
    for place, term in enumerate(terms):
        if every is not None and term.bits & selected == selected:
            column: Iterable[float] = every(term.scores)
        else:
            column = map(term.scores.get, chosen, repeat(0.0))
        scores = list(column) if place == 0 else list(map(add, scores, column))
    if limit is not None and 0 <= limit < len(chosen):
        best = nlargest(limit, range(len(chosen)), key=scores.__getitem__)
    else:
        best = sorted(range(len(chosen)), key=scores.__getitem__, reverse=True)[:limit]
    return Ranking(
        papers, list(map(chosen.__getitem__, best)), list(map(scores.__getitem__, best)), positives, findings
    )


def positive_terms(
    positives: tuple[Positive, ...], selected: int, findings: Findings
) -> tuple[TermRef | NearRef, ...]:
    """The positives as terms, making terms of the runs' phrases the selected papers may have.

    A run's phrase that none of them can have would add nothing (no score, no
    explanation), so it is left out; :meth:`Findings.run_phrase_bound` tells, from where
    the words are side by side, without making the phrase a term. A phrase that is also
    written out elsewhere in the query is one term: as in plans made eagerly, it is
    counted once. (``Matched.hits`` asks it for one paper: the terms that explain it.)
    """
    terms: list[TermRef | NearRef] = []
    for ref in positives:
        kind = type(ref)
        if kind is RunPhrase:
            if findings.run_phrase_bound(ref) & selected:  # type: ignore[arg-type]
                terms.append(findings.phrase(ref))  # type: ignore[arg-type]
        elif kind is GluedPairs:
            _add_glued_pairs(ref, selected, findings, terms)  # type: ignore[arg-type]
        else:
            terms.append(ref)  # type: ignore[arg-type]
    return tuple(dict.fromkeys(terms))


def _add_glued_pairs(ref: GluedPairs, selected: int, findings: Findings, terms: list[TermRef | NearRef]) -> None:
    """For each glued reading of a run (``Findings.glued_readings``) near in some selected
    paper: its pair as a positive, and that reading as one more place where the run's other
    words (already in ``terms``, in query order) explain a match."""
    field, registry = ref.field, findings._registry
    readings = findings.glued_readings(ref.run, field)
    if not readings:  # no paper writes a pair of its words solid (most runs)
        return
    run_near = near_of(ref.run.words, registry, field)  # type: ignore[arg-type]
    for words, pairs in readings:
        if not findings.near(words, field) & selected:
            continue
        near = near_of(words, registry, field)
        for pair in dict.fromkeys(pairs):
            pair_known = False
            for at, term in enumerate(terms):
                if type(term) is NearRef and (term.term, term.label) == pair:  # the same pair glued elsewhere
                    terms[at] = _new(NearRef, (term.term, term.label, (*term.runs, near)))
                    pair_known = True
                elif type(term) is TermRef and term == pair:  # also written as a phrase: it explains everywhere
                    pair_known = True
            if not pair_known:
                terms.append(_new(NearRef, (pair.term, pair.label, (near,))))
        for at, term in enumerate(terms):  # the run's other words explain where this reading is near too
            if type(term) is NearRef and term.term in words.terms and run_near in term.runs:
                terms[at] = _new(NearRef, (term.term, term.label, (*term.runs, near)))


_MADE_WHEN_RANKED = frozenset({RunPhrase, GluedPairs})  # positives that positive_terms turns into terms
