"""Matching many subscribers' queries against one listing, with scores and reasons.

The work is shared, never repeated per reader: identical queries are planned once,
identical terms and patterns are looked up once, each paper is tokenized once, and
each query's boolean tree runs over the sets of papers its terms were found in.

Compiling and matching build millions of small objects; the cycle collector is kept
out of the way meanwhile (see :func:`bulk_allocation`). ``bench/match.py`` measures
a run of 100,000 subscribers.
"""

from __future__ import annotations

import gc
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from paperwire.errors import QueryError
from paperwire.match.acronyms import acronym_table
from paperwire.match.evaluate import Findings, matching, positive_terms, rank
from paperwire.match.index import PaperIndex
from paperwire.match.patterns import PatternMaker
from paperwire.match.plan import Plan, Positive, TermRegistry, plan_query
from paperwire.match.results import Ranking, TermHit, term_hits
from paperwire.match.score import Bm25
from paperwire.match.sections import SharedSwitch
from paperwire.match.text import Stems
from paperwire.models import Paper
from paperwire.query import Node, Query, parse_query, render_query

Key = TypeVar("Key", bound=Hashable)
ExtraAcronyms = Mapping[str, str | Iterable[str]]  # acronym -> one expansion or several


def _collector_off() -> bool:
    was_on = gc.isenabled()
    gc.disable()
    return was_on


def _collector_back(was_on: bool) -> None:
    """Merely switching the collector back on is not enough: every object made meanwhile
    still sits in the youngest generation, and the next allocation anywhere would trigger a
    collection that walks all of them (about a second for 100,000 subscribers). So, unless
    the program already froze objects of its own, ``gc.freeze()`` then ``gc.unfreeze()``
    first moves every tracked object straight to the oldest generation, which is what a
    collection would have done with these survivors anyway, without examining them."""
    if not was_on:
        return
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


bulk_allocation = SharedSwitch(_collector_off, _collector_back)
"""``with bulk_allocation():`` keeps the cycle collector out of the way while building many
small acyclic objects. Left on, it rescans the growing heap again and again; that alone
doubled the time of a 100,000-subscriber run. Nothing built here has reference cycles. The
switch is one for the whole process and matching runs in web worker threads too: overlapping
sections share it (``match.sections``), so none can leave it off."""


class Matcher(Generic[Key]):
    """Compiled queries of every subscriber; call :meth:`match` once per listing."""

    def __init__(self, acronyms: ExtraAcronyms | None = None):
        self._acronyms = acronym_table(acronyms)
        self._stems = Stems()
        self._registry = TermRegistry(PatternMaker(self._acronyms, self._stems))
        self._plans: list[Plan] = []
        self._plan_of_query: dict[str, int] = {}
        self._keys: list[Key] = []  # every key added, and the number of its plan
        self._key_plans: list[int] = []
        self._conditions: list[Plan] = []

    def add(self, key: Key, query: str | Query, text: str | None = None) -> None:
        """Compile one query under ``key``; a bad string raises QueryError naming the key.

        ``text``: the string a parsed ``query`` was parsed from, when the caller has it;
        queries of the same text then share a plan without rendering the tree again."""
        if isinstance(query, str):
            plan = self._plan_of_query.get(query)
            if plan is None:
                plan = self._plan_of_query[query] = self._plan_text(key, query)
        else:
            plan = self._plan_parsed(query, text if text is not None else query.text if "?" in query.text
                                     else render_query(query))  # see _plan_parsed
        self._keys.append(key)
        self._key_plans.append(plan)

    def add_all(self, queries: Iterable[tuple[Key, str | Query]]) -> None:
        """:meth:`add` each (key, query), with the usual case -- a query text seen before -- inlined."""
        plan_of_query, keys, key_plans = self._plan_of_query, self._keys, self._key_plans
        for key, query in queries:
            if type(query) is str:
                plan = plan_of_query.get(query)
                if plan is None:
                    plan = plan_of_query[query] = self._plan_text(key, query)
                keys.append(key)
                key_plans.append(plan)
            else:
                self.add(key, query)

    def _plan_text(self, key: Key, text: str) -> int:
        """The plan of a query string, shared with every query that renders the same."""
        parsed = _parse_for(key, text)
        return self._plan_parsed(parsed, text if "?" in text else render_query(parsed))  # see _plan_parsed

    def _plan_parsed(self, parsed: Query, canonical: str) -> int:
        """``canonical``: the text queries that mean the same share a plan under: the rendering,
        which spells every parse alike ("a  b" is "a b"). It drops a "?", which a plan reads
        (``can LLMs reason?`` asks, ``can LLMs reason`` does not): a query with one goes by its
        own text."""
        plan = self._plan_of_query.get(canonical)
        if plan is None:
            plan = self._plan_of_query[canonical] = len(self._plans)
            self._plans.append(plan_query(parsed, self._registry))
        return plan

    def add_condition(self, condition: Node) -> int:
        """Compile a condition whose papers are wanted, not their ranking (the literal parts of
        a topic that found papers by meaning); its number for :meth:`Matched.papers` and
        :meth:`ConditionHits.hits`.

        It is planned over the same terms as the queries, so a condition that is part of a
        query (``-video`` of ``robots -video``) costs no look-up of its own."""
        self._conditions.append(plan_query(Query("", condition), self._registry))
        return len(self._conditions) - 1

    def wanted(self) -> Wanted:
        """The symbols and neighbour pairs a paper index must keep for the queries added so
        far; another process's :meth:`match_all` can keep them too (``also``, see ``match.split``)."""
        return set(self._registry.symbols), self._registry.followers_now()

    @property
    def distinct_queries(self) -> int:
        return len(self._plans)

    @property
    def distinct_terms(self) -> int:
        """Terms made so far (a run's phrase becomes a term when a listing first needs it)."""
        return len(self._registry.terms)

    def match(self, papers: Sequence[Paper], *, limit: int | None = None) -> dict[Key, Ranking]:
        """Each key's matches, best first; ``papers`` is the listing in trending order.

        Keys with the same query share one :class:`Ranking`. ``limit`` keeps only the
        best ``limit`` matches of each query. Explanations are built when a match is
        read, so the rankings keep this listing's index alive until they are dropped.
        """
        return self.match_all(papers, limit=limit).rankings

    def match_all(self, papers: Sequence[Paper], *, limit: int | None = None, also: Wanted | None = None) -> Matched[Key]:
        """:meth:`match`, and the conditions' papers on demand (:meth:`Matched.papers`).

        ``also``: what another matcher's queries want of the index (:meth:`wanted`), kept
        too so that their terms can be looked up here (an index keeps each wanted symbol
        the same whatever else it keeps, so this changes no result of this matcher's)."""
        registry = self._registry
        symbols, followers = registry.symbols, registry.followers_now()
        if also is not None:
            symbols, followers = symbols | also[0], _merged(followers, also[1])
        with bulk_allocation():
            index = PaperIndex(papers, symbols, self._acronyms, self._stems, followers)
            bm25 = Bm25(index.lengths, len(papers))
            resolver = registry.pattern_maker.resolver(index.present, index.solid)
            findings = Findings(registry, resolver, index, bm25)
            nothing = Ranking(papers, [], [], (), findings)
            rankings = [rank(plan, papers, findings, limit, nothing) for plan in self._plans]
            return Matched(dict(zip(self._keys, map(rankings.__getitem__, self._key_plans), strict=True)),
                           tuple(self._conditions), findings)  # those added later were not indexed


Wanted = tuple[set[str], dict[str, set[str]]]  # symbols, and neighbour pairs as a -> {b, ...}


def _merged(followers: dict[str, set[str]], more: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Two sets of neighbour pairs as one (new sets where both have a symbol: neither is changed)."""
    merged = dict(followers)
    for before, after in more.items():
        mine = merged.get(before)
        merged[before] = after if mine is None else mine | after
    return merged


class Matched(Generic[Key]):
    """One listing's rankings, and the papers of each condition, found when first asked for."""

    def __init__(self, rankings: dict[Key, Ranking], conditions: Sequence[Plan], findings: Findings):
        self.rankings = rankings
        self._conditions = conditions
        self._findings = findings
        self._papers: dict[int, int] = {}

    @property
    def findings(self) -> Findings:
        """Every term against this listing (and the index, for terms of another matcher: ``match.split``)."""
        return self._findings

    def papers(self, condition: int) -> int:
        """The papers satisfying condition number ``condition``, as a bitset (bit ``i``: paper ``i``)."""
        found = self._papers.get(condition)
        if found is None:
            found = self._papers[condition] = matching(self._conditions[condition].root, self._findings)
        return found

    def condition_hits(self) -> ConditionHits:
        """What explains a paper by the conditions' words later (:meth:`ConditionHits.hits`).
        It keeps only their positive terms and the findings, not this object: the conditions'
        plans and papers kept until the last match was read added ~25 MB to the peak of a
        100,000-reader run (bench/match.py --meaning)."""
        return ConditionHits(tuple([plan.positives for plan in self._conditions]), self._findings)


class ConditionHits:
    """The conditions' positive terms against one listing, to explain the papers they allowed."""

    __slots__ = ("_positives", "_findings")

    def __init__(self, positives: Sequence[tuple[Positive, ...]], findings: Findings):
        self._positives = positives  # by condition number
        self._findings = findings

    def hits(self, condition: int, paper: int) -> tuple[TermHit, ...]:
        """Where condition number ``condition``'s positive terms are in ``paper`` (listing
        index), as a word ranking explains a match: a paper found by meaning shows the
        literal words it was required to have (``title:benchmark``). Worked out when asked,
        for one paper: only the matches a reader sees pay for it."""
        positives = positive_terms(self._positives[condition], 1 << paper, self._findings)
        return term_hits(positives, self._findings, paper)


def _parse_for(key: Key, text: str) -> Query:
    try:
        return parse_query(text)
    except QueryError as error:
        raise refused_topic(key, error) from error


def refused_topic(key: Hashable, error: QueryError) -> QueryError:
    """``error``, raised by the parser for a topic, naming the topic by its caller's key."""
    return QueryError(f"topic {key!r}: {error.reason}", query=error.query, position=error.position)


def compile_queries(queries: Iterable[tuple[Key, str | Query]], acronyms: ExtraAcronyms | None = None) -> Matcher[Key]:
    """Compile every (key, query) once; raises QueryError on the first bad query string.

    ``acronyms`` adds entries to the built-in table (or expansions to an existing one).
    """
    matcher: Matcher[Key] = Matcher(acronyms)
    with bulk_allocation():
        matcher.add_all(queries)
    return matcher


def match_one(
    query: str | Query,
    papers: Sequence[Paper],
    acronyms: ExtraAcronyms | None = None,
    *,
    limit: int | None = None,
) -> Ranking:
    """One query against one listing, best first (for ``paperwire match QUERY``)."""
    return compile_queries([(0, query)], acronyms).match(papers, limit=limit)[0]
