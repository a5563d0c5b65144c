"""The judged relevance queries are consistent with the listings they name, and the scoring helper
computes what it says (tests/relevance.py). Today's word-only matcher is scored and its figures printed
(run with -s to see them); no figure is asserted high: the judgments are for calibrating, not a bar."""

from __future__ import annotations

import re

import pytest

from paperwire.store import Store

from .conftest import TODAY
from .relevance import (
    KINDS, SETS, VERDICTS, Judged, JudgedQuery, evaluate, ingest_listings, load_judgments, report, score_query,
    word_matcher,
)

JUDGMENTS = load_judgments()


@pytest.fixture(scope="module")
def judged_papers(databases, tmp_path_factory):
    """The papers of the judged listings, ingested into a real database."""
    url = databases.new(tmp_path_factory.mktemp("judged") / "judged.sqlite3")
    store = Store(url)
    try:
        yield ingest_listings(store, JUDGMENTS, today=TODAY)
    finally:
        store.close()
        databases.drop(url)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_sets_have_every_kind_of_query():
    for name in SETS:
        queries = JUDGMENTS.set(name)
        assert {q.kind for q in queries} == set(KINDS), name
    assert len(JUDGMENTS.set("tuning")) >= 20 and len(JUDGMENTS.set("held_out")) >= 12
    assert len(JUDGMENTS.set("fresh")) >= 30 and len(JUDGMENTS.set("fresh2")) >= 50
    assert {q.kind for q in JUDGMENTS.queries} <= set(KINDS)


def test_tuning_and_held_out_are_disjoint_and_queries_unique():
    folded = [_fold(q.query) for q in JUDGMENTS.queries]
    assert len(folded) == len(set(folded)), "a query is judged twice"
    tuning, held_out, fresh, fresh2 = ({_fold(q.query) for q in JUDGMENTS.set(name)} for name in SETS)
    assert not tuning & held_out and not (tuning | held_out) & fresh and not (tuning | held_out | fresh) & fresh2


def test_relevant_papers_exactly_where_some_paper_fits():
    for q in JUDGMENTS.queries:
        assert bool(q.relevant) == (q.kind != "none"), q.query


def test_no_paper_has_two_verdicts_in_one_query():
    for q in JUDGMENTS.queries:
        listed = [entry.id for verdict in VERDICTS for entry in getattr(q, verdict)]
        assert len(listed) == len(set(listed)), (q.query, sorted(i for i in listed if listed.count(i) > 1))


def test_every_entry_has_a_one_line_reason():
    for q in JUDGMENTS.queries:
        for verdict in VERDICTS:
            for entry in getattr(q, verdict):
                assert entry.reason.strip() and "\n" not in entry.reason, (q.query, entry.id)


def test_every_listing_parses_and_every_judged_id_is_a_stored_paper_with_that_title(judged_papers):
    titles = {paper.id: _fold(paper.title) for paper in judged_papers}
    assert len(titles) > 100  # the seed's 70 and the fixtures' papers, after merging
    for q in JUDGMENTS.queries:
        for verdict in VERDICTS:
            for entry in getattr(q, verdict):
                assert re.fullmatch(r"\d{4}\.\d{4,5}|t-[0-9a-f]{16}", entry.id), entry.id
                assert entry.id in titles, (q.query, entry.id, "not in the judged listings")
                assert titles[entry.id].startswith(_fold(entry.title)), (q.query, entry.id, entry.title)


def test_the_issue_examples_are_judged_with_the_papers_it_names():
    """Issue 14 names these topics and papers; each paper must be required for its topic."""
    tuning = {q.query: q for q in JUDGMENTS.set("tuning")}
    named = {
        "efficient LLM inference": ["Parrot:", "ZeroQuant-FP:", "Fast and Slow Generating", "Dolphin:"],
        "model compression": ["ZeroQuant-FP:"],
        "long context": ["Extending Context Window of Large Language Models"],
        "machine translation": ["SCALE:"],
        "code generation": ["CodeGen2:"],
        "robotics and embodied agents": [],
        "giving language models external knowledge": [],
    }
    for query, title_starts in named.items():
        relevant_titles = [entry.title for entry in tuning[query].relevant]
        for start in title_starts:
            assert any(title.startswith(start) for title in relevant_titles), (query, start)


# -- the scoring helper --------------------------------------------------------------------------

def _query(relevant=(), borderline=(), not_relevant=(), kind="concept") -> JudgedQuery:
    def entries(ids):
        return tuple(Judged(i, "t", "r") for i in ids)
    return JudgedQuery("tuning", "q", kind, entries(relevant), entries(borderline), entries(not_relevant))


def test_score_ignores_borderline_and_counts_unlisted_papers_as_wrong():
    scored = score_query(_query(relevant=["a", "b"], borderline=["c"], not_relevant=["d"]), ["a", "c", "x", "d"])
    assert scored.found == {"a"} and scored.missed == {"b"} and scored.wrong == {"x", "d"}
    assert scored.recall == 0.5 and scored.precision == pytest.approx(1 / 3) and not scored.passed
    only_borderline = score_query(_query(relevant=["a"], borderline=["c"]), ["c"])
    assert only_borderline.recall == 0.0 and only_borderline.precision is None


def test_none_query_fails_on_any_judged_paper_but_not_on_a_borderline_one():
    empty_topic = _query(borderline=["c"], kind="none")
    assert score_query(empty_topic, ["c"]).passed and score_query(empty_topic, ["c"]).recall is None
    assert not score_query(empty_topic, ["x"]).passed


def test_perfect_empty_and_greedy_matchers_score_as_expected(judged_papers):
    every_id = [paper.id for paper in judged_papers]
    for name in SETS:
        queries = JUDGMENTS.set(name)
        by_query = {q.query: q for q in queries}

        perfect = evaluate(lambda text: sorted(by_query[text].ids("relevant")), queries, name)
        assert perfect.recall == perfect.precision == perfect.macro_recall == perfect.macro_precision == 1.0
        assert all(q.passed for q in perfect.queries)
        assert perfect.empty_topics[0] == perfect.empty_topics[1] > 0

        empty = evaluate(lambda text: [], queries, name)
        assert empty.recall == 0.0 and empty.precision is None and empty.empty_topics == perfect.empty_topics

        greedy = evaluate(lambda text: every_id, queries, name)
        assert greedy.recall == 1.0 and greedy.precision < 0.2 and greedy.empty_topics[0] == 0


def test_word_only_matcher_is_scored_on_both_sets(judged_papers):
    """Today's engine (``paperwire match``'s entry point) on the judgments; the figures are printed."""
    titles = {paper.id: paper.title for paper in judged_papers}
    match = word_matcher(judged_papers)
    for name in SETS:
        scored = evaluate(match, JUDGMENTS.set(name), name)
        print()
        print(report(scored, titles))
        assert len(scored.queries) == len(JUDGMENTS.set(name))
        # Ids of the judgments and of the store agree: the words alone find some judged papers.
        assert 0.0 < scored.recall <= 1.0 and 0.0 < scored.precision <= 1.0
