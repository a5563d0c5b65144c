"""Matching by meaning on the real model (all-MiniLM-L6-v2 int8), measured on the judged queries
of tests/data/relevance_judgments.toml through the path digests take: a real SQLite store, the
embedding step, ``semantic.match_topics``. Run with -s to see the figures per query.

The thresholds were chosen on the tuning set; the held-out set was not used to choose them.
The floors below are a little under what was measured (bench/README.md), so a change that
makes matching worse fails here."""

from __future__ import annotations

import dataclasses

import pytest

from paperwire import semantic
from paperwire.config import Settings
from paperwire.embeddings import get_embedder
from paperwire.store import Store

from .conftest import TODAY
from .relevance import evaluate, ingest_listings, load_judgments, report, word_matcher

JUDGMENTS = load_judgments()
HYBRID = Settings()  # the defaults: words and meaning


@pytest.fixture(scope="module")
def judged(databases, tmp_path_factory):
    """The judged listings in a real store, embedded by the embedding step."""
    url = databases.new(tmp_path_factory.mktemp("relevance") / "judged.sqlite3")
    store = Store(url)
    papers = ingest_listings(store, JUDGMENTS, today=TODAY)
    step = semantic.embed_step(store, get_embedder(HYBRID.relevance_embedder), papers)
    assert step.error is None and not step.failed
    yield store, papers
    store.close()
    databases.drop(url)


def hybrid_matcher(store: Store, papers):
    def match(query: str) -> list[str]:
        return semantic.match_topics([(0, query)], papers, HYBRID, store)[0].paper_ids()
    return match


# Measured (bench/README.md): tuning, words 0.49 / 0.89 -> words and meaning 0.55 / 0.81;
# held out, words 0.36 / 1.00 -> 0.64 / 0.83 (recall / precision). The fresh set was judged
# after the threshold was chosen, by someone who had not seen it chosen (the bar for meaning
# alone beside word matches came later, chosen on the tuning set): words 0.46 / 0.87 ->
# 0.61 / 0.84, and one of its seven topics that no paper fits got a paper (a 3D scene-graph
# paper for "robots learning from video"). Since beside_best and acronyms spelled out for
# meaning (2026-12-06): tuning 0.58 / 0.83, held out 0.64 / 0.86, fresh 0.63 / 0.86. The
# fresh2 set (2026-12-07), a later tester's 54 topics, never tuned on: words 0.46 / 0.81 ->
# 0.58 / 0.77, and its six topics no paper fits got nothing.
# Floors a little under them, so a change that loses ground is seen.
@pytest.mark.parametrize("name, recall_gain, precision, empty_misses", [
    ("tuning", 0.06, 0.80, 0), ("held_out", 0.25, 0.82, 0), ("fresh", 0.14, 0.82, 1), ("fresh2", 0.09, 0.74, 0)])
def test_meaning_finds_more_of_what_readers_want_and_nothing_for_topics_without_papers(
        judged, name: str, recall_gain: float, precision: float, empty_misses: int) -> None:
    store, papers = judged
    titles = {paper.id: paper.title for paper in papers}
    words = evaluate(word_matcher(papers), JUDGMENTS.set(name), f"{name} (words)")
    hybrid = evaluate(hybrid_matcher(store, papers), JUDGMENTS.set(name), f"{name} (words and meaning)")
    print("\n" + report(words) + "\n" + report(hybrid, titles))
    assert hybrid.recall >= words.recall + recall_gain, "meaning must find papers the words miss"
    assert hybrid.precision >= precision, "... without filling digests with papers readers do not want"
    passed, total = hybrid.empty_topics
    assert passed >= total - empty_misses, "a topic no paper fits must get nothing"


def test_beside_word_matches_a_weak_paper_of_meaning_alone_is_left_out(judged, monkeypatch) -> None:
    """Chosen on the tuning set: "image editing" found its papers by words, and meaning alone
    added PixelWorld (similarity 0.31), a benchmark the judgements do not count as image editing; papers meaning
    alone finds beside word matches need 0.32 (``Calibration.beside_words``), so the issue's
    examples below (0.32-0.36) stay. (PixelWorld is also far below the papers the words found:
    ``beside_best``, off here too.)"""
    from paperwire.match import meaning

    store, papers = judged
    pixelworld = "t-259680943d033fc3"
    topic = "image editing"
    assert word_matcher(papers)(topic) and pixelworld not in hybrid_matcher(store, papers)(topic)
    rule_off = dataclasses.replace(meaning.Calibration(), beside_words=meaning.Calibration.threshold, beside_best=1.0)
    monkeypatch.setattr(meaning.match_topics, "__defaults__", (rule_off,))
    (found,) = [match for match in semantic.match_topics([(0, topic)], papers, HYBRID, store)[0]
                if match.paper_id == pixelworld]
    assert found.why == ("meaning",) and 0.28 <= found.similarity < 0.32


# (topic, the paper its words find, a paper meaning alone found beside it, why that one is not wanted)
FAR_BELOW_THE_WORDS = [
    ("depth estimation", "t-226607f90c836d68", "t-e04dfcd333473502",
     "3D scene graphs from RGB-D streams read depth, they do not estimate it (judged in the fresh set)"),
    ("video diffusion physics", "t-240364ab2ede6642", "2403.05871",
     "a text-to-image distillation paper: image, not video, and no physics"),
]


@pytest.mark.parametrize("topic, by_words, below, reason", FAR_BELOW_THE_WORDS)
def test_beside_a_close_word_match_a_paper_of_meaning_alone_must_come_near_it(
        judged, monkeypatch, topic: str, by_words: str, below: str, reason: str) -> None:
    """``Calibration.beside_best``: a paper meaning alone finds beside the topic's word matches
    must come within 0.2 of the closest of them. Both papers here clear the absolute bar
    (0.32) and sit more than 0.2 under a paper the words found."""
    from paperwire.match import meaning

    store, papers = judged
    ranking = semantic.match_topics([(0, topic)], papers, HYBRID, store)[0]
    found = {match.paper_id: match for match in ranking}
    assert "words" in found[by_words].why and below not in found, reason
    rule_off = dataclasses.replace(meaning.Calibration(), beside_best=1.0)
    monkeypatch.setattr(meaning.match_topics, "__defaults__", (rule_off,))
    (weak,) = [match for match in semantic.match_topics([(0, topic)], papers, HYBRID, store)[0]
               if match.paper_id == below]
    assert weak.why == ("meaning",) and 0.32 <= weak.similarity < found[by_words].similarity - 0.2


def test_one_side_of_or_sets_no_bar_for_another(judged) -> None:
    """``beside_best`` measures a paper of meaning alone against the topic's word matches, which
    are not told apart by side: the video paper (0.64) must not push CodeGen2 (0.36, found for
    "code generation" by meaning alone) out of ``video diffusion physics OR code generation``."""
    store, papers = judged
    codegen2 = "t-f056d4318068149e"
    (found,) = [match for match in semantic.match_topics([(0, "video diffusion physics OR code generation")],
                                                         papers, HYBRID, store)[0] if match.paper_id == codegen2]
    assert found.why == ("meaning",)


# The issue's examples: papers that share no words with the topic, found by meaning.
ISSUE_EXAMPLES = [
    ("long context", "t-98dfadac17060268"),  # Extending Context Window of Large Language Models ...
    ("machine translation", "t-bc16fcf0da535ffc"),  # SCALE: ... Language Translation Engines
    ("code generation", "t-f056d4318068149e"),  # CodeGen2
]


@pytest.mark.parametrize("topic, paper_id", ISSUE_EXAMPLES)
def test_a_concept_finds_a_paper_that_shares_no_words_with_it_and_says_so(judged, topic: str, paper_id: str) -> None:
    store, papers = judged
    assert paper_id not in word_matcher(papers)(topic)
    ranking = semantic.match_topics([(0, topic)], papers, HYBRID, store)[0]
    (found,) = [match for match in ranking if match.paper_id == paper_id]
    assert found.why == ("meaning",) and not found.terms
    assert 0.28 <= found.similarity <= 1


def test_papers_found_by_words_report_their_terms_and_a_similarity_only_when_meaning_found_them_too(judged) -> None:
    store, papers = judged
    for topic in ("mathematical reasoning", "multimodal LLM evaluation benchmarks", "long context"):
        for match in semantic.match_topics([(0, topic)], papers, HYBRID, store)[0]:
            if "words" in match.why:
                assert match.terms
            if "meaning" in match.why:
                assert match.similarity >= 0.28
            else:
                assert match.similarity is None  # not computed: words alone picked it


def test_words_only_when_the_embedder_is_off(judged) -> None:
    store, papers = judged
    off = Settings(relevance_embedder="off")
    for judged_query in JUDGMENTS.set("tuning"):
        found = semantic.match_topics([(0, judged_query.query)], papers, off, store)[0]
        assert found.paper_ids() == word_matcher(papers)(judged_query.query)
