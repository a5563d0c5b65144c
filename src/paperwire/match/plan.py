"""From a parsed query to a plan: a boolean tree whose leaves are shared terms.

Every distinct (fields, shape) pair becomes one term in a :class:`TermRegistry`, so
ten thousand readers who follow "RAG" cost one lookup, not ten thousand.

Adjacent bare words (``scaling laws``) are read two ways at once: the words near each
other (``WordsOrPhrase.words``: one sentence, a small window; see
:meth:`paperwire.match.evaluate.Findings.near`) *or* the words as one phrase in any of its forms.
The phrase reading lets ``multi modal`` find "multimodal" and ``mixture of experts``
find "MoE"; and because it is a positive term of its own, a paper with the words
side by side outscores one where they are scattered. That phrase is made a term only
when a listing needs it (see :class:`RunPhrase`): most runs never do.

Planning runs once per distinct query of every subscriber, so it is written for
speed: each term's leaf is one shared object, a run's part of the plan is remembered
by its text, and named tuples are built with ``tuple.__new__``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import NamedTuple

from paperwire.match.acronyms import ACRONYM_SYMBOL_PREFIX
from paperwire.match.patterns import GAP, PatternMaker, TermShape
from paperwire.match.results import Near, NearRef, TermRef
from paperwire.match.sentences import window
from paperwire.match.text import QUESTION_WORDS, is_connective, only_asks, question_words, request_words
from paperwire.query import FIELDS, And, Everything, Like, Node, Not, Or, Query, Term, side_items

DEFAULT_FIELDS = ("title", "abstract")

# ``_new(SomeNamedTuple, values)`` builds a named tuple without the Python-level __new__
# of NamedTuple classes: planning builds millions of these.
_new = tuple.__new__


class AllOf(NamedTuple):
    """Papers with every ``required`` part and none of the ``excluded`` ones.

    ``terms`` (the ids of the required parts that are terms) and ``others`` (the other
    required parts) split ``required`` for evaluation; make one with :func:`all_of`.
    """

    required: tuple[PlanNode, ...]
    excluded: tuple[PlanNode, ...]
    terms: tuple[int, ...]
    others: tuple[PlanNode, ...]


def all_of(required: tuple[PlanNode, ...], excluded: tuple[PlanNode, ...]) -> AllOf:
    terms = tuple([part.term for part in required if type(part) is TermRef])  # type: ignore[union-attr]
    others = tuple([part for part in required if type(part) is not TermRef]) if len(terms) < len(required) else ()
    return _new(AllOf, (required, excluded, terms, others))


class AnyOf(NamedTuple):
    """Papers with at least one of the options."""

    options: tuple[PlanNode, ...]


class RunPhrase:
    """The phrase of a run of bare words, made a term only when a listing needs it.

    Most runs (``posits repeated``) never have their words side by side in any paper, or
    not even all of them: then the phrase is never looked up, and making it a term --
    the shape of the whole run, its spec, its registration -- would be wasted. So a run
    keeps what evaluation needs before that: its words' terms, the stems of each pair
    of neighbouring words written as one (``None`` next to an acronym), every such glued
    stem of the run, and whether a word is an acronym. :meth:`TermRegistry.phrase_of`
    makes (once) the very term an eager plan would have had. Runs whose words may spell
    an acronym's expansion are planned eagerly (the plan's shape depends on it).
    """

    __slots__ = ("field", "glued", "has_acronym", "near", "ref", "rewrites", "text", "texts", "words")

    def __init__(
        self,
        field: str | None,
        texts: tuple[str, ...],
        text: str,
        words: tuple[TermRef, ...],
        glued: tuple[str | None, ...],
        rewrites: tuple[str, ...],
        has_acronym: bool,
        near: tuple[int, ...],
    ):
        self.field = field
        self.texts = texts
        self.text = text
        self.words = words  # the words' terms, in order
        self.glued = glued  # between word i and word i + 1: their glued stem, or None
        self.rewrites = rewrites  # every glued stem a reading of the run may use
        self.has_acronym = has_acronym
        self.near = near  # the words that must be near each other: not its connectives (RunWord.kind)
        self.ref: TermRef | None = None  # the phrase's term, once made

    @property
    def term(self) -> int:
        assert self.ref is not None, "the run's phrase is not a term yet"
        return self.ref.term

    @property
    def label(self) -> str:
        return self.text


class WordsOrPhrase(NamedTuple):
    """Adjacent bare words: all of them near each other (``words``), or ``phrase`` in any form.

    Where the phrase can only be read word for word, every paper with the phrase
    already has the words, so the phrase is looked up only to score those papers.
    ``glued`` (runs of three words or more): between word ``i`` and ``i + 1``, their glued
    stem or None; where a paper writes it as one word, the words are also near with that
    pair as one part (``Findings.glued_readings``: ``multi modal models`` in "multimodal
    large language models").
    """

    words: PlanNode
    phrase: TermRef | RunPhrase
    glued: tuple[str | None, ...]


class GluedPairs(NamedTuple):
    """A positive standing for the parts a run has when a pair of its words is read as one
    (``WordsOrPhrase.glued``): made terms, or dropped, when a ranking needs them
    (``evaluate.positive_terms``), as the pair's reading exists only where a paper writes it."""

    run: WordsOrPhrase
    field: str | None


PlanNode = TermRef | AllOf | AnyOf | WordsOrPhrase
Positive = TermRef | NearRef | RunPhrase | GluedPairs


class Plan(NamedTuple):
    """``root is None`` means every paper (the ``*`` topic)."""

    root: PlanNode | None
    positives: tuple[Positive, ...]  # leaves not under an exclusion, in query order


class TermSpec(NamedTuple):
    """What a term looks for, and where: identical specs share one term id."""

    fields: tuple[str, ...]
    shape: TermShape


class TermRewrites(NamedTuple):
    """What could make a term read other than word for word (checked per listing)."""

    glued: tuple[str, ...]  # symbols of neighbour pairs written as one word
    abbreviated: tuple[str, ...]  # acronym symbols the words spell out
    has_acronym: bool  # a word of the term is an acronym (which has expansions)


class TermRegistry:
    """Hands out one id per distinct term and collects the symbols the index must keep."""

    def __init__(self, pattern_maker: PatternMaker):
        self.pattern_maker = pattern_maker
        self.terms: list[TermSpec] = []
        self.rewrites: list[TermRewrites] = []  # by term id
        self.widths: list[int] = []  # by term id: the most word positions it takes in a paper (near_of)
        self.symbols: set[str] = set()
        # Neighbour symbol pairs of the terms' plain readings (and of the acronyms' expansions):
        # the index records where these occur, which finds most phrases at once.
        self.followers: dict[str, set[str]] = {}  # symbol -> the symbols recorded right after it
        self._shared: set[str] = set()  # symbols whose follower sets a paper index holds
        self._unfollowed: list[TermShape] = []  # shapes whose spelled-out pairs wait for the next index
        self._follow(pattern_maker.expansion_pairs())
        # (fields, symbols, glues, abbreviations) -> term: words that read alike ("end" and
        # "ends") are one term, so a run that says one twice needs it twice (Findings.near)
        self._term_ids: dict[tuple, int] = {}
        # field -> text -> its leaf; field -> text of a run of words -> (its part, its positives)
        self._refs: dict[str | None, dict[str, TermRef]] = {field: {} for field in (None, *FIELDS)}
        self._runs: dict[str | None, dict[str, tuple[PlanNode, tuple[Positive, ...]]]] = {
            f: {} for f in (None, *FIELDS)
        }
        self._run_words: dict[bool, dict[str, RunWord]] = {True: {}, False: {}}  # by use_acronyms, then word

    def ref(self, text: str, field: str | None) -> TermRef:
        """The leaf for ``text`` in ``field``, labelled as written (one shared object per text)."""
        refs = self._refs.get(field)
        if refs is None:
            refs = self._refs[field] = {}
        found = refs.get(text)
        if found is None:
            found = refs[text] = _new(TermRef, (self._register(text, field), text))
        return found

    def shape(self, text: str, field: str | None) -> TermShape:
        """Names are not words: under ``author:`` nothing is read as an acronym."""
        return self.pattern_maker.shape(text, use_acronyms=field != "author")

    def phrase_of(self, run: RunPhrase) -> TermRef:
        """The term of a run's phrase, made the first time it is asked for.

        This happens while matching: the paper index already keeps every symbol the
        phrase may need (see :func:`_lazy_run`). Only the neighbour pairs of its
        spelled-out readings are new, and they can wait for the next index.
        """
        if run.ref is None:
            shape, _ = self.pattern_maker.run_shape(run.texts, run.field != "author", run.text)
            run.ref = self.phrase_ref(run.text, run.field, shape, lazy=True)
        return run.ref

    def phrase_ref(self, text: str, field: str | None, shape: TermShape, lazy: bool = False) -> TermRef:
        """:meth:`ref` for a run of words whose shape the caller already made."""
        refs = self._refs.get(field)
        if refs is None:
            refs = self._refs[field] = {}
        found = refs.get(text)
        if found is None:
            found = refs[text] = _new(TermRef, (self._register(text, field, shape, lazy), text))
        return found

    def _register(self, text: str, field: str | None, shape: TermShape | None = None, lazy: bool = False) -> int:
        if shape is None:
            shape = self.shape(text, field)
        spec = _new(TermSpec, ((field,) if field else DEFAULT_FIELDS, shape))
        reads = (spec.fields, shape.symbols, shape.glues, shape.abbreviations)  # all but the spelling
        term = self._term_ids.get(reads)
        if term is None:
            term = self._term_ids[reads] = len(self.terms)
            self.terms.append(spec)
            symbols = shape.symbols
            self.widths.append(self._width(shape))
            glued = tuple([symbol for _, symbol in shape.glues]) if shape.glues else ()
            abbreviated = tuple([symbol for _, _, symbol in shape.abbreviations]) if shape.abbreviations else ()
            # Stems never contain ":" (nor do acronyms), so only acronym symbols can put one here.
            has_acronym = ":" in "".join(symbols)
            self.rewrites.append(_new(TermRewrites, (glued, abbreviated, has_acronym)))
            if lazy:  # a run's phrase: its symbols and plain pairs were added with the run
                if has_acronym:
                    self._unfollowed.append(shape)
                return term
            wanted = self.symbols
            if has_acronym or abbreviated:  # the expansions' symbols too
                self.pattern_maker.add_symbols(shape, wanted)
            else:
                wanted.update(symbols)
                if glued:
                    wanted.update(glued)
            if len(symbols) > 1:
                self._follow(pairwise(symbols))
            if has_acronym or abbreviated:
                self._follow(self.pattern_maker.reading_pairs(shape))
        return term

    def _width(self, shape: TermShape) -> int:
        """The most word positions a term of ``shape`` takes in a paper (``near_of``): an acronym
        spelled out as wide as its longest expansion, and words that spell an acronym's expansion
        as wide as its longest one ("vision language model" as "vision and language model"),
        each expansion that does not overlap another (:func:`_widest_expansions`)."""
        symbols = shape.symbols
        width = self.pattern_maker.width
        if ":" not in "".join(symbols):  # only acronym symbols have a ":"
            widths = [1] * len(symbols)
        else:
            widths = [width(symbol) for symbol in symbols]
        if not shape.abbreviations:
            return sum(widths)
        wider = [(start, end, width(acronym) - sum(widths[start:end])) for start, end, acronym in shape.abbreviations]
        return sum(widths) + _widest_expansions(wider, len(symbols))

    def followers_now(self) -> dict[str, set[str]]:
        """The neighbour pairs to record, as they are now (later additions do not show in it)."""
        for shape in self._unfollowed:
            self._follow(self.pattern_maker.reading_pairs(shape))
        self._unfollowed.clear()
        self._shared = set(self.followers)  # their sets are copied before anything is added
        return dict(self.followers)

    def _follow(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record neighbour pairs, but for those with a GAP: the index records no pair across
        punctuation, so such a phrase is found by its symbols' starts instead (index.find)."""
        followers, shared = self.followers, self._shared
        for before, after in pairs:
            if before == GAP or after == GAP:
                continue
            found = followers.get(before)
            if found is None:
                followers[before] = {after}
            elif after not in found:
                if shared and before in shared:  # an index built earlier holds this set
                    shared.discard(before)
                    found = followers[before] = set(found)
                found.add(after)


def _widest_expansions(wider: list[tuple[int, int, int]], tokens: int) -> int:
    """The most positions expansions that do not overlap add, each (first token, end token,
    positions it adds): "vision language model" twice adds two, "large vision language
    model" (LVLM, with VLM inside) only its widest."""
    starting: dict[int, list[tuple[int, int]]] = {}
    for start, end, added in wider:
        starting.setdefault(start, []).append((end, added))
    best = [0] * (tokens + 1)  # best[i]: the most the expansions from token i on add
    for first in range(tokens - 1, -1, -1):
        best[first] = max([best[first + 1], *[added + best[end] for end, added in starting.get(first, ())]])
    return best[0]


EVERYTHING = Plan(None, ())
NOTHING = AnyOf(())  # what a like: reference is to the word engine: no paper (and excluding none)


def plan_query(query: Query, registry: TermRegistry) -> Plan:
    """The plan of one query; its terms are added to ``registry``."""
    if type(query.root) is Everything:
        return EVERYTHING
    positives: list[Positive] = []
    root = _plan(query.root, registry, positives, query.text if "?" in query.text else "")
    if len(positives) < 2:
        return _new(Plan, (root, tuple(positives)))
    distinct = tuple(dict.fromkeys(positives))
    return _new(Plan, (root, _once_each(distinct) if NearRef in map(type, distinct) else distinct))


def _once_each(positives: tuple[Positive, ...]) -> tuple[Positive, ...]:
    """Each term and label once, where it first came, as if every part of a run were a plain
    :class:`TermRef` (so scores are as they were). A word of several runs explains by each
    run; one also written outside a run (``LLM OR efficient LLM inference``) explains plainly."""
    found: dict[object, Positive] = {}
    for ref in positives:
        if type(ref) is RunPhrase or type(ref) is GluedPairs:  # terms only when ranked (evaluate.positive_terms)
            found[ref] = ref
            continue
        key = (ref.term, ref.label)  # type: ignore[union-attr]
        had = found.get(key)
        if had is None:
            found[key] = ref
        elif type(had) is NearRef:  # a plain one explains everywhere; runs explain by each
            found[key] = ref if type(ref) is TermRef else had._replace(runs=had.runs + ref.runs)  # type: ignore[union-attr]
    return tuple(found.values())


def near_of(words: AllOf, registry: TermRegistry, field: str | None) -> Near:
    """A run's words as nearness reads them: its parts' terms (an expansion it spells, as
    that phrase), their window and the fields. Matching (``Findings.near``) and explaining
    (``results.near_hits``) both go by it, so a highlight shows what made the match.

    The window is the run's length in the paper: an acronym as wide as its longest
    expansion (``efficient LLM inference`` near in "efficient inference of large language
    models" as in "efficient inference of LLMs"); an occurrence wider than its part (a
    hyphenated "pre-training" for ``pretraining``) does not count the excess (``results.fits``)."""
    if words.others:
        parts = tuple([part.term if type(part) is TermRef else part.phrase.term for part in words.required])  # type: ignore[union-attr]
    else:  # every part a word (most runs): their terms are at hand
        parts = words.terms
    widths = tuple(map(registry.widths.__getitem__, parts))
    return _new(Near, (parts, window(sum(widths)), (field,) if field else DEFAULT_FIELDS, widths))


# The planners below append, left to right, the leaves a paper can be picked for to
# ``positives`` (None under an exclusion): the Plan's ``positives``.


def _plan(node: Node, registry: TermRegistry, positives: list[Positive] | None, asking: str = "") -> PlanNode:
    """``asking``: the query's text when it has a "?" (see :func:`_asked`), else ""."""
    kind = type(node)  # the parser builds exactly these types
    if kind is Term:
        ref = registry.ref(node.text, node.field)  # type: ignore[union-attr]
        if positives is not None:
            positives.append(ref)
        return ref
    if kind is And:
        return _plan_and(node.children, registry, positives, asking)  # type: ignore[union-attr]
    if kind is Or:
        sides = [child for child in node.children if not _only_asks(child)] or node.children  # type: ignore[union-attr]
        return _new(AnyOf, (tuple([_plan(side, registry, positives, asking) for side in sides]),))
    if isinstance(node, Like):  # by example: for the meaning engine; words match nothing for it
        return NOTHING
    if isinstance(node, Not):  # only reachable for a lone exclusion, which the parser rejects
        return all_of((), (_plan(node.child, registry, None),))
    raise TypeError(f"cannot plan {node!r}")


def _plan_and(children: tuple[Node, ...], registry: TermRegistry, positives: list[Positive] | None,
              asking: str = "") -> PlanNode:
    """ANDed items: required and excluded parts; 2+ adjacent bare words in one field make one part.

    A run that only asks for papers (``papers about`` of ``papers about "model merging"``) is
    no part while the other items leave something to find (text.only_asks)."""
    required: list[PlanNode] = []
    excluded: list[PlanNode] = []
    run: list[str] = []  # the texts of adjacent bare words
    run_field: str | None = None
    last: Term | None = None  # the run's last word
    dropped = 0  # words of runs that only ask, left out

    def add_run() -> None:
        nonlocal dropped
        if run_field is None and only_asks(run) and dropped + len(run) < sum(type(item) is not Not for item in children):
            dropped += len(run)  # something is left to find papers by
        else:
            required.append(_plan_words(run, run_field, registry, positives, bool(asking) and _asked(asking, last)))
    for item in children:
        kind = type(item)
        excluding = kind is Not and type(item.child) is Term  # type: ignore[union-attr]
        if kind is Term or excluding:
            term: Term = item.child if excluding else item  # type: ignore[assignment,union-attr]
            field, text = term.field, term.text
            if not excluding and not term.phrase:
                if run and field != run_field:
                    add_run()
                    run = []
                run.append(text)
                run_field, last = field, term
                continue
            if run:
                add_run()
                run = []
            ref = registry.ref(text, field)
            if excluding:
                excluded.append(ref)
            else:
                required.append(ref)
                if positives is not None:
                    positives.append(ref)
            continue
        if run:
            add_run()
            run = []
        if kind is Not:
            excluded.append(_plan(item.child, registry, None))  # type: ignore[union-attr]
        else:
            required.append(_plan(item, registry, positives, asking))
    if run:
        add_run()
    if len(required) == 1 and not excluded:
        return required[0]
    terms = [part.term for part in required if type(part) is TermRef]  # type: ignore[union-attr]
    if len(terms) == len(required):
        required_parts = tuple(required)
        return _new(AllOf, (required_parts, tuple(excluded), tuple(terms), ()))
    return all_of(tuple(required), tuple(excluded))


_QUESTION_MARK = re.compile(r"[\s.,;:!]*\?")  # after a word: "reason?", "reason ?", "reason!?"


def _asked(asking: str, last: Term | None) -> bool:
    """Whether a "?" follows the run's last word in the query's text (``asking``; "" when it
    has none): the parser drops it as it drops a ".", and it tells ``can LLMs reason?``
    from ``can bus intrusion detection`` (text.question_words)."""
    return last is not None and _QUESTION_MARK.match(asking, last.position + len(last.text)) is not None


def _plan_words(
    texts: list[str], field: str | None, registry: TermRegistry, positives: list[Positive] | None,
    question_mark: bool = False,
) -> PlanNode:
    """One bare word is its term; a run is (the words near each other) OR (the words as one phrase).

    A run's part of the plan depends only on its words, its field and whether a "?" closes it,
    so it is remembered.
    """
    if len(texts) == 1:
        ref = registry.ref(texts[0], field)
        if positives is not None:
            positives.append(ref)
        return ref
    text = " ".join(texts)  # words never contain spaces, so this names the run exactly
    runs = registry._runs.get(field)
    if runs is None:
        runs = registry._runs[field] = {}
    key = text + " ?" if question_mark else text
    planned = runs.get(key)
    if planned is None:
        found: list[Positive] = []
        planned = runs[key] = (_plan_run(texts, text, field, registry, found, question_mark), tuple(found))
    if positives is not None:
        positives.extend(planned[1])
    return planned[0]


def _plan_run(
    texts: list[str], text: str, field: str | None, registry: TermRegistry, positives: list[Positive],
    question_mark: bool = False,
) -> PlanNode:
    """(the words near each other, an expansion as one part) OR (the words as one phrase).

    Its parts are positives that explain only where they are near each other (:class:`NearRef`);
    the phrase is shown wherever it is."""
    use_acronyms = field != "author"  # names are words: "An Yang", "A Smith"
    if use_acronyms and (asking := _asking(texts, question_mark)):  # the run without them, as "scaling laws" reads
        return _plan_words([word for word, asks in zip(texts, asking, strict=True) if not asks], field, registry,
                           positives)
    known = registry._run_words[use_acronyms]
    parts = [known.get(word) or _run_word(registry, word, use_acronyms) for word in texts]
    kinds = [part.kind for part in parts] if use_acronyms else []
    if _NUMBER_WORD in kinds[1:]:
        return _plan_numbered(texts, text, field, registry, positives, kinds)
    if _CONNECTIVE in kinds:
        near = tuple([i for i, kind in enumerate(kinds) if kind != _CONNECTIVE]) or tuple(range(len(parts)))
    else:  # most runs
        near = tuple(range(len(parts)))
    run = _lazy_run(texts, text, field, registry, parts, near)
    if run is not None:
        words = run.words if len(near) == len(parts) else tuple([run.words[i] for i in near])
        every = _new(AllOf, (words, (), tuple([word.term for word in words]), ()))
        positives.extend(_near_refs(every, field, registry))
        positives.append(run)
        return _with_glued_pairs(_new(WordsOrPhrase, (every, run, _glued_near(run.glued, near))), field, positives)
    shape, word_starts = registry.pattern_maker.run_shape(texts, field != "author", text)
    as_phrase = registry.phrase_ref(text, field, shape)
    glued: tuple[str | None, ...] = ()
    if shape.abbreviations:
        kept = _required_groups(_expansion_groups(texts, shape, word_starts), kinds)
        every = all_of(tuple([_plan_part(group, field, registry) for group in kept]), ())
    else:
        words = tuple([registry.ref(texts[i], field) for i in near])
        every = _new(AllOf, (words, (), tuple([word.term for word in words]), ()))
        glued = _glued_near(_glued_between(parts, registry), near)
    positives.extend(_near_refs(every, field, registry))
    positives.append(as_phrase)
    return _with_glued_pairs(_new(WordsOrPhrase, (every, as_phrase, glued)), field, positives)


_NUMBER = re.compile(r"\d+(?:\.\d+)*")  # a version or a count: "3", "2.5", "3.1"


def _only_asks(side: Node) -> bool:
    """A side of OR of bare words that only ask for papers: ``scaling laws, please`` found a
    paper "pleasing" to look at. Beside other sides it is none (text.only_asks)."""
    words = side_items(side)
    return all(type(word) is Term and not word.phrase and word.field is None for word in words) and only_asks(
        [word.text for word in words])  # type: ignore[union-attr]


def _asking(texts: list[str], question_mark: bool) -> list[bool] | None:
    """Which of a run's words only ask (a question's, ``what is RAG?``, and a request's, ``papers
    about model merging``: text.question_words, text.request_words); None when none does, or
    all would. A paper says none of them, so none is a word of the run, nor of its phrase."""
    asking = question_words(texts, question_mark) if question_mark or texts[0].casefold() in QUESTION_WORDS else None
    requesting = request_words(texts)
    if requesting:
        asking = [a or r for a, r in zip(asking, requesting, strict=True)] if asking else requesting
    return asking if asking and any(asking) and not all(asking) else None


def _plan_numbered(
    texts: list[str], text: str, field: str | None, registry: TermRegistry, positives: list[Positive], kinds: list[int]
) -> PlanNode:
    """A run where a number follows a word (``Llama 3``, ``Qwen 2.5 math``): the word and its
    number are one name, found as a phrase ("Llama 3", "Llama-3", "Llama3"), and the run's
    other parts near it, an expansion it spells as one part as in any run (``Llama 3 mixture
    of experts``: "Llama 3 with MoE layers"). Read apart, ``Llama 3`` matched "Llama 2 on 3 tasks"."""
    shape, word_starts = registry.pattern_maker.run_shape(texts, field != "author", text)
    groups: list[list[str]] = []
    for group in _expansion_groups(texts, shape, word_starts):
        if groups and len(group) == 1 and _NUMBER.fullmatch(group[0]) and len(groups[-1]) == 1:
            groups[-1] = [*groups[-1], group[0]]  # a name: "Llama" "3"
        else:
            groups.append(group)
    as_phrase = registry.phrase_ref(text, field, shape)
    if len(groups) == 1:  # the run is one name: its phrase
        positives.append(as_phrase)
        return as_phrase
    kept = _required_groups(groups, kinds)
    parts = [registry.ref(" ".join(group), field) if len(group) == 2 and _NUMBER.fullmatch(group[1])
             else _plan_part(group, field, registry) for group in kept]
    every = all_of(tuple(parts), ())
    positives.extend(_near_refs(every, field, registry))
    positives.append(as_phrase)
    return _new(WordsOrPhrase, (every, as_phrase, ()))


def _required_groups(groups: list[list[str]], kinds: list[int]) -> list[list[str]]:
    """The groups of a run's words (in order) that must be near each other: all but a lone
    word that only connects or asks (``RunWord.kind``, as ``kinds`` has it for this run)."""
    kept: list[list[str]] = []
    at = 0
    for group in groups:
        if len(group) > 1 or kinds[at] != _CONNECTIVE:
            kept.append(group)
        at += len(group)
    return kept or groups


def _glued_near(glued: tuple[str | None, ...], near: tuple[int, ...]) -> tuple[str | None, ...]:
    """``WordsOrPhrase.glued`` of a run's near words: between each two of them, the glued stem
    of the words when they are neighbours in the run (else None); () for fewer than three."""
    if len(near) < 3:
        return ()
    if near[-1] == len(near) - 1:  # no connective left out: every near pair are neighbours
        return glued
    return tuple([glued[before] if after == before + 1 else None for before, after in pairwise(near)])


def _with_glued_pairs(node: WordsOrPhrase, field: str | None, positives: list[Positive]) -> WordsOrPhrase:
    """``node``, its :class:`GluedPairs` added to ``positives`` when some pair of it may glue."""
    if any(node.glued):
        positives.append(_new(GluedPairs, (node, field)))
    return node


def _glued_between(parts: Sequence[RunWord], registry: TermRegistry) -> tuple[str | None, ...]:
    """Between each two neighbouring words of a run: their glued stem, or None (next to an
    acronym, or a function word: see ``Stems.glued_apart``)."""
    glue = registry.pattern_maker.stems.glued_apart  # a run's words are written apart (PatternMaker._join)
    return tuple([glue(before.last_folded, after.first_folded) if before.last_glues and after.first_glues else None
                  for before, after in pairwise(parts)])  # never glued next to an acronym (see PatternMaker._join)


def _near_refs(every: AllOf, field: str | None, registry: TermRegistry) -> list[NearRef]:
    """The positives of a run's parts, in query order: each explains where the parts are near.
    An expansion's words come before its phrase and explain nothing alone: the run found
    that expansion as one phrase (or acronym), and the phrase's hit shows it."""
    near = (near_of(every, registry, field),)
    if not every.others:  # every part a word (most runs)
        return [_new(NearRef, (part.term, part.label, near)) for part in every.required]  # type: ignore[union-attr]
    refs: list[NearRef] = []
    for part in every.required:
        if type(part) is TermRef:
            refs.append(_new(NearRef, (part.term, part.label, near)))
        else:  # an expansion the run spells: its words, then its phrase
            refs += [_new(NearRef, (word.term, word.label, ())) for word in part.words.required]  # type: ignore[union-attr]
            refs.append(_new(NearRef, (part.phrase.term, part.phrase.label, near)))  # type: ignore[union-attr]
    return refs


def _lazy_run(texts: list[str], text: str, field: str | None, registry: TermRegistry, parts: Sequence[RunWord],
              near: tuple[int, ...]) -> RunPhrase | None:
    """A run whose phrase can wait (see :class:`RunPhrase`), or None to plan it now.

    The glued stems of neighbouring words are worked out now all the same: the paper
    index must keep them, as a written word, for the phrase's glued reading. What this
    needs of each word is worked out once per word (see :func:`_run_word`): most runs
    are distinct, their words are not.
    """
    use_acronyms = field != "author"
    glued = _glued_between(parts, registry)
    rewrites = [symbol for symbol in glued if symbol]
    has_acronym = may_spell = False
    for part in parts:
        if part.inner_glued:  # a hyphenated word: "multi-modal"
            rewrites += part.inner_glued
        has_acronym = has_acronym or part.has_acronym
        may_spell = may_spell or part.may_spell
    if use_acronyms and (may_spell or not registry.pattern_maker._expansion_starts.isdisjoint(rewrites)):
        return None  # the words may spell an expansion: plan the run now
    words = tuple([registry.ref(word, field) for word in texts])
    registry.symbols.update(rewrites)
    registry._follow([(before.last, after.first) for before, after in pairwise(parts)])
    if has_acronym:  # and the pairs across its acronyms spelled out
        shapes = registry.pattern_maker._shapes[use_acronyms]
        symbols = tuple([symbol for word in texts for symbol in shapes[word].symbols])
        registry._follow(registry.pattern_maker.reading_pairs(_new(TermShape, (symbols, (), (), ()))))
    return RunPhrase(field, tuple(texts), text, words, glued, tuple(rewrites), has_acronym, near)


class RunWord(NamedTuple):
    """What :func:`_lazy_run` needs of one word of a run (worked out once per word)."""

    first: str  # its first and last symbols
    last: str
    first_folded: str  # its first and last tokens, folded (for gluing to a neighbour word)
    last_folded: str
    first_glues: bool  # whether its first / last token may be glued to a neighbour word (acronyms never are)
    last_glues: bool
    inner_glued: tuple[str, ...]  # the glued stems inside the word ("multi-modal")
    has_acronym: bool
    may_spell: bool  # whether it may start an acronym's expansion
    kind: int  # _WORD; _CONNECTIVE: need not be near the others ("for": text.CONNECTIVES);
    # _NUMBER_WORD: a version or a count, one name with the word before it ("Llama 3")


_WORD, _CONNECTIVE, _NUMBER_WORD = 0, 1, 2  # RunWord.kind


def _run_word(registry: TermRegistry, word: str, use_acronyms: bool) -> RunWord:
    """What :func:`_lazy_run` needs of ``word`` (remembered by the registry)."""
    maker = registry.pattern_maker
    shape = maker.shape(word, use_acronyms)
    symbols, folded = shape.symbols, shape.folded
    inner = tuple([symbol for _, symbol in shape.glues])
    starts = maker._expansion_starts
    found = registry._run_words[use_acronyms][word] = RunWord(
        first=symbols[0],
        last=symbols[-1],
        first_folded=folded[0],
        last_folded=folded[-1],
        first_glues=not symbols[0].startswith(ACRONYM_SYMBOL_PREFIX),
        last_glues=not symbols[-1].startswith(ACRONYM_SYMBOL_PREFIX),
        inner_glued=inner,
        has_acronym=":" in "".join(symbols),  # only acronym symbols have a ":"
        may_spell=not starts.isdisjoint(symbols) or not starts.isdisjoint(inner),
        kind=_CONNECTIVE if is_connective(word) else _NUMBER_WORD if _NUMBER.fullmatch(word) else _WORD,
    )
    return found


def _plan_part(texts: list[str], field: str | None, registry: TermRegistry) -> PlanNode:
    if len(texts) == 1:
        return registry.ref(texts[0], field)
    every_word = tuple(registry.ref(word, field) for word in texts)
    phrase = registry.ref(" ".join(texts), field)
    return _new(WordsOrPhrase, (all_of(every_word, ()), phrase, ()))


def _expansion_groups(words: list[str], shape: TermShape, word_starts: list[int]) -> list[list[str]]:
    """Split a run into single words and the longest word sub-runs that spell an expansion.

    So in ``sparse mixture of experts`` a paper saying "sparse MoE" (or "MoE" a few words after "sparse")
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
    groups: list[list[str]] = []
    first = 0
    while first < len(words):
        end = longest.get(first, first + 1)
        groups.append(words[first:end])
        first = end
    return groups
