"""Matching by meaning beside words (match/meaning.py), on vectors made by hand: which parts
of a topic may match by meaning, what stays literal, and how the evidence is fused.
The real model's part is tested in tests/test_relevance.py."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from collections import Counter

import numpy as np
import pytest

from paperwire.errors import QueryError
from paperwire import liked, semantic
from paperwire.config import Settings
from paperwire.match import compile_queries, match_one, meaning, split
from paperwire.match.acronyms import AcronymTable
from paperwire.models import Paper
from paperwire.normalize import referenced_id
from paperwire.query import Node, parse_query, render_query

TABLE = AcronymTable()


def alternatives(text: str) -> list[tuple]:
    return [(a.meaning, a.like, tuple(map(render_query, a.required)), tuple(map(render_query, a.excluded)))
            for a in meaning.alternatives(parse_query(text), TABLE)]


@pytest.mark.parametrize("text, expected", [
    ("efficient LLM inference", [("efficient LLM (large language model) inference", None, (), ())]),
    ("diffusion -video", [("diffusion", None, (), ("video",))]),
    ('robot "world model"', [("robot", None, ('"world model"',), ())]),
    ("title:RAG agents", [("agents", None, ("title:RAG",), ())]),
    ("MoE", []),  # an acronym alone stays literal
    ("MoE OR sparse experts", [("sparse experts", None, (), ())]),
    ('"scaling laws"', []),  # a quoted phrase alone stays literal
    ("*", []),
    ("(a OR b) c", [("c", None, ("a OR b",), ())]),
    # words that only ask for papers are no words of the topic (to the model they were)
    ("keep me posted on anything about small language models", [("small language models", None, (), ())]),
    ("interests: scaling laws OR LLM papers please", [("scaling laws", None, (), ())]),  # "LLM" alone: literal
    ("paper recommendation", [("paper recommendation", None, (), ())]),
    ('papers about "model merging"', []),  # the phrase is literal: nothing is left to mean
    ("LLM reasoning -survey papers", [("LLM (large language model) reasoning", None, (), ("survey",))]),
])
def test_which_parts_of_a_topic_match_by_meaning(text: str, expected: list[tuple]) -> None:
    assert alternatives(text) == expected


def test_a_meaning_topic_reads_phrases_and_acronyms_by_meaning_and_a_words_topic_nothing() -> None:
    assert alternatives('meaning: MoE "sparse routing" -survey') == [
        ('MoE (mixture of experts) sparse routing', None, (), ("survey",))]
    assert alternatives("meaning: title:RAG agents") == [("agents", None, ("title:RAG",), ())]
    assert alternatives("words: efficient LLM inference") == []


def test_a_topic_embeds_its_acronyms_with_what_they_stand_for() -> None:
    """The model barely knows acronyms: ``meaning: MoE`` embedded as typed found nothing, and
    "why do LLMs hallucinate?" missed what "why language models hallucinate" found (0.28 / 0.66)."""
    assert alternatives("meaning: rlhf") == [("rlhf (reinforcement learning from human feedback)", None, (), ())]
    assert alternatives("meaning: SAM LLMs") == [
        ("SAM (segment anything model) LLMs (large language model)", None, (), ())]
    assert alternatives("meaning: VLM") == [
        ("VLM (vision language model or visual language model or vision and language model)", None, (), ())]
    extra = AcronymTable({"SD": "stable diffusion"})
    assert [a.meaning for a in meaning.alternatives(parse_query("meaning: SD"), extra)] == ["SD (stable diffusion)"]
    assert alternatives("efficient LLM inference OR like:2401.00001 MoE") == [
        ("efficient LLM (large language model) inference", None, (), ()), (None, "2401.00001", ("MoE",), ())]
    assert alternatives("why do LLMs hallucinate?") == [
        ("why do LLMs (large language model) hallucinate", None, (), ())]


def paper(number: int, title: str, abstract: str = "") -> Paper:
    return Paper(f"2401.0000{number}", title, abstract or f"Abstract of paper {number}.")


def unit(*rows: list[float]) -> np.ndarray:
    return meaning.unit(np.array(rows, dtype=np.float32))


# Three directions: 0 = robots, 1 = language models, 2 = videos. Each paper leans on one.
PAPERS = [paper(1, "Robot arms grasp objects"), paper(2, "Robot video datasets", "We film robots on video."),
          paper(3, "Language models reason"), paper(4, "A paper without vectors")]
TEXTS = unit([1, 0, 0], [0.8, 0, 0.6], [0, 1, 0], [0, 0, 0])
KNOWN = {"2401.00001": 0, "2401.00002": 1, "2401.00003": 2}  # papers with vectors, by id
TOPIC = {"embodied agents": unit([1, 0.05, 0])[0], "reasoning": unit([0, 1, 0.02])[0]}


def vectors() -> meaning.Vectors:
    known = np.array([True, True, True, False])
    space = meaning.PaperSpace(TEXTS, TEXTS, known, np.zeros(3, np.float32), np.zeros(3, np.float32))
    return meaning.Vectors(space, lambda texts: np.array([TOPIC.get(text, np.zeros(3, np.float32)) for text in texts]),
                           lambda refs: {ref: (TEXTS[number], TEXTS[number]) for ref in refs
                                         if (number := KNOWN.get(referenced_id(ref))) is not None})


def matched(text: str) -> list[tuple[str, tuple[str, ...]]]:
    (found,) = meaning.match_topics([(0, text)], PAPERS, None, vectors()).values()
    return [(match.paper_id, match.why) for match in found]


def test_a_topic_finds_papers_by_meaning_without_its_words() -> None:
    assert matched("embodied agents") == [("2401.00001", ("meaning",)), ("2401.00002", ("meaning",))]


def test_exclusions_still_apply_to_papers_found_by_meaning() -> None:
    assert matched("embodied agents -video") == [("2401.00001", ("meaning",))]


def test_literal_parts_must_hold_by_words() -> None:
    assert matched('embodied agents "robot video"') == [("2401.00002", ("meaning",))]
    assert matched("title:grasp embodied agents") == [("2401.00001", ("meaning",))]


def explained(text: str) -> list[tuple[str, tuple[tuple[str, str, tuple], ...]]]:
    (found,) = meaning.match_topics([(0, text)], PAPERS, None, vectors()).values()
    return [(match.paper_id, tuple(tuple(hit) for hit in match.terms)) for match in found]


def test_a_paper_found_by_meaning_or_example_shows_the_words_its_topic_required() -> None:
    """Its literal conditions were checked by words: the paper lists them as matched, with
    their spans (a field, a phrase, a group, the words beside an example), never an exclusion."""
    assert explained("title:grasp embodied agents") == [("2401.00001", (("grasp", "title", ((11, 16),)),))]
    assert explained('embodied agents "robot video"') == [("2401.00002", (("robot video", "title", ((0, 11),)),))]
    assert explained("embodied agents (arms OR video)") == [
        ("2401.00001", (("arms", "title", ((6, 10),)),)),
        ("2401.00002", (("video", "title", ((6, 11),)), ("video", "abstract", ((18, 23),))))]
    assert explained("like:2401.00001 robot") == [
        ("2401.00002", (("robot", "title", ((0, 5),)), ("robot", "abstract", ((8, 14),))))]
    assert explained("embodied agents -video") == [("2401.00001", ())]  # nothing required: nothing listed
    # Found by two parts: the conditions of both, in the topic's order.
    assert explained("title:video embodied agents OR title:robot like:2401.00001") == [
        ("2401.00002", (("video", "title", ((6, 11),)), ("robot", "title", ((0, 5),))))]


def test_a_words_topic_matches_by_words_alone_and_a_meaning_topic_by_meaning_alone() -> None:
    assert matched("words: embodied agents") == []
    assert matched("words: reason") == [("2401.00003", ("words",))]
    assert matched("meaning: reasoning") == [("2401.00003", ("meaning",))]
    assert matched("meaning: reason") == []  # no vector for "reason" here: the words do not count


def test_words_and_meaning_together_rank_first() -> None:
    found = matched("reasoning")
    assert found == [("2401.00003", ("words", "meaning"))]


def test_a_paper_without_vectors_matches_by_words_only() -> None:
    assert matched("vectors OR reasoning") == [("2401.00003", ("words", "meaning")), ("2401.00004", ("words",))]


def test_like_finds_similar_papers_but_not_the_example_itself() -> None:
    (found,) = meaning.match_topics([(0, "like:2401.00001v2")], PAPERS, None, vectors()).values()
    assert [(m.paper_id, m.why, m.like) for m in found] == [("2401.00002", ("example",), "2401.00001v2")]
    assert matched("like:2401.00001 -video") == []  # exclusions apply to examples too
    assert matched("like:2409.99999") == []  # an unknown example finds nothing


def test_no_example_finds_a_paper_the_topic_likes() -> None:
    """A "Liked" topic: each liked paper is like the others, but the reader knows them all,
    so none is found by an example (each was, found by the other, before). A meaning part
    may still find one (test below)."""
    both = "like:2401.00001 OR like:2401.00002"
    assert matched(both) == []
    assert [(m.paper_id, m.why) for m in next(iter(meaning.match_topics(
        [(0, "like:2401.00002")], PAPERS, None, vectors()).values()))] == [("2401.00001", ("example",))]
    assert np.isnan(similarities(both)[:2]).all()


def test_a_paper_found_by_meaning_and_by_example_says_both_and_which_example() -> None:
    """Each kind of evidence is kept, not only the best part's: the reason line then names the
    liked paper (digest.reason) with the paper's similarity to it, not the meaning's."""
    (found,) = meaning.match_topics([(0, "embodied agents OR like:2401.00001")], PAPERS, None, vectors()).values()
    assert [(m.paper_id, m.why, m.like) for m in found] == [
        ("2401.00001", ("meaning",), None), ("2401.00002", ("meaning", "example"), "2401.00001")]
    alone, both = found
    assert both.like_similarity == pytest.approx(float(TEXTS[0] @ TEXTS[1]), abs=1e-6)
    assert both.similarity == pytest.approx(max(both.like_similarity, float(TOPIC["embodied agents"] @ TEXTS[1])))
    assert alone.like_similarity is None


def test_similarity_and_scores_are_reported() -> None:
    (found,) = meaning.match_topics([(0, "embodied agents")], PAPERS, None, vectors()).values()
    first = found[0]
    assert first.similarity == pytest.approx(float(TOPIC["embodied agents"] @ TEXTS[0]), abs=1e-6)
    assert found.scores() == sorted(found.scores(), reverse=True)
    assert found.paper_ids() == ["2401.00001", "2401.00002"]
    assert found[:1] == [found[0]] and list(found)[1] == found[-1] and len(found) == 2
    (words_alone,) = meaning.match_topics([(0, "vectors")], PAPERS, None, vectors()).values()
    assert isinstance(words_alone, meaning.WordsAlone) and words_alone[:5] == list(words_alone)
    assert words_alone[0].why == ("words",) and words_alone[0].similarity is None
    assert words_alone.scores() == [words_alone[0].score] and 0 < words_alone[0].score < 1


def test_every_like_a_reader_keeps_counts_the_oldest_too() -> None:
    """A full Liked list (newest first): the oldest like, last, still finds its similar paper.
    Only the topic's words are limited (each must be embedded), to the first MAX_MEANING_PARTS."""
    newer = [f"2409.{n:05d}" for n in range(liked.MAX_LIKED - 1)]  # not stored: they find nothing
    topic = liked.query_text([*newer, "2401.00001"])
    assert len(alternatives(topic)) == liked.MAX_LIKED
    (found,) = meaning.match_topics([(0, topic)], PAPERS, None, vectors()).values()
    assert [(m.paper_id, m.why, m.like) for m in found] == [("2401.00002", ("example",), "2401.00001")]
    words = [f"idea{n}" for n in range(meaning.MAX_MEANING_PARTS + 1)]
    assert [text or like for text, like, _, _ in alternatives(" OR ".join([*words, "like:2401.00001"]))] == [
        *words[:meaning.MAX_MEANING_PARTS], "2401.00001"]


def similarities(text: str) -> list[float] | None:
    found = meaning.similarities(parse_query(text), TABLE, PAPERS, vectors())
    return None if found is None else [round(value, 4) for value in found.tolist()]


def test_similarities_of_papers_found_or_not_are_computed_when_the_topic_has_a_meaning() -> None:
    """What ``paperwire match --json`` shows of papers found by words alone: how near they came."""
    topic = TOPIC["embodied agents"]
    assert similarities("embodied agents")[:3] == [round(float(topic @ TEXTS[n]), 4) for n in range(3)]
    assert np.isnan(similarities("embodied agents")[3])  # no vectors: not computed
    (found,) = meaning.match_topics([(0, "embodied agents")], PAPERS, None, vectors()).values()
    assert [round(m.similarity, 4) for m in found] == similarities("embodied agents")[:2]  # as the ranking says
    by_example = similarities("reasoning OR like:2401.00001")
    assert np.isnan(similarities("like:2401.00001")[0])  # the example is not compared with itself
    assert by_example[0] == round(float(TOPIC["reasoning"] @ TEXTS[0]), 4)
    assert by_example[1] == round(float(TEXTS[0] @ TEXTS[1]), 4)
    assert similarities("words: embodied agents") is None and similarities("MoE") is None
    assert similarities("like:2409.99999") is None  # an unknown example: nothing to compare


@pytest.mark.parametrize("paper_id, ref, same", [
    ("2403.12345", "2403.12345v2", True),
    ("2403.12345", "2403.12346", False), ("t-abc", "t-abc", True), ("v2", "v3", False), ("hep-th/9901001", "hep-th/9901001v3", True),
])
def test_a_paper_is_named_by_its_id_or_arxiv_id_with_any_version(paper_id: str, ref: str, same: bool) -> None:
    assert meaning.same_paper(paper_id, ref) is same


# --- the batched path against a plain per-topic reference ---------------------------------

def _generated_topics(papers: list[Paper], count: int, rng: random.Random) -> list[str]:
    """Topics of every kind meaning matching reads differently: bare words, phrases, acronyms,
    exclusions, fields, OR groups and branches, ``like:`` (known, unknown, with words), modes."""
    words = sorted({w.lower() for p in papers for w in re.findall(r"[A-Za-z]{5,}", p.title)})
    phrases = sorted({" ".join(pair).lower() for p in papers
                      for pair in zip(p.title.split()[:-1], p.title.split()[1:]) if all(w.isalpha() for w in pair)})
    acronyms = ["RAG", "LLM", "LLMs", "MoE", "VLM"]

    def item(first: bool) -> str:
        roll = rng.random()
        if roll < 0.4:
            return rng.choice(words)
        if roll < 0.55:
            return f'"{rng.choice(phrases)}"'
        if roll < 0.65:
            return rng.choice(acronyms)
        if roll < 0.75 and not first:
            return "-" + rng.choice(words + acronyms)
        if roll < 0.82:
            return f"title:{rng.choice(words)}"
        if roll < 0.9:
            return f"({rng.choice(words)} OR {rng.choice(acronyms)})"
        return f"like:{rng.choice(papers).id if rng.random() < 0.8 else '2409.99999'}"

    def branch() -> str:
        return " ".join(item(n == 0) for n in range(rng.randint(1, 3)))

    topics: list[str] = []
    while len(topics) < count:
        text = branch() if rng.random() < 0.8 else f"{branch()} OR {branch()}"
        text = rng.choice(["", "", "", "meaning: ", "words: "]) + text
        try:
            parse_query(text)
        except QueryError:
            continue
        topics.append(text)
    return topics


def _synthetic_vectors(papers: list[Paper], dims: int = 16) -> meaning.Vectors:
    """Random paper vectors (a few papers without any), and each text's vector near one to
    three papers, the same whenever and with whatever else it is asked for."""
    generator = np.random.default_rng(7)
    texts = meaning.unit(generator.standard_normal((len(papers), dims)).astype(np.float32))
    titles = meaning.unit(texts + 0.3 * generator.standard_normal(texts.shape).astype(np.float32))
    known = np.arange(len(papers)) % 11 != 5
    space = meaning.PaperSpace(texts, titles, known, texts[known].mean(axis=0), titles[known].mean(axis=0))
    number = {paper.id: n for n, paper in enumerate(papers)}

    def of_text(text: str) -> np.ndarray:
        own = np.random.default_rng(zlib.crc32(text.encode()))
        near = own.integers(0, len(papers), own.integers(1, 4))
        return meaning.unit(texts[near].sum(axis=0) + 0.3 * own.standard_normal(dims).astype(np.float32))

    def of_papers(refs):
        return {ref: (texts[number[referenced_id(ref)]], titles[number[referenced_id(ref)]]) for ref in refs
                if referenced_id(ref) in number and known[number[referenced_id(ref)]]}

    return meaning.Vectors(space, lambda many: np.array([of_text(text) for text in many], np.float32).reshape(-1, dims),
                           of_papers)


def _papers_matching(condition: Node, papers: list[Paper], known: dict[str, set[int]]) -> set[int]:
    """The listing ranks of the papers a literal condition matches, as a query of its own (``known``: memo)."""
    text = render_query(condition)
    if text not in known:
        known[text] = set(match_one(text, papers).paper_ranks())
    return known[text]


def _hits_of(condition: Node, papers: list[Paper], number: int) -> tuple:
    """Where a literal condition is in paper ``number``, as its own query's ranking explains it."""
    ranking = match_one(render_query(condition), papers)
    return next((match.terms for match in ranking if match.rank == number + 1), ())


def _reference(text: str, papers: list[Paper], vectors: meaning.Vectors,
               calibration: meaning.Calibration, conditions: dict[str, set[int]]) -> list[meaning.Fused]:
    """One topic the plain way: its word ranking, each meaning or example part's similarity
    row, each literal condition as a query of its own, and the fused order by sorting."""
    query = parse_query(text)
    space = vectors.space
    words = match_one(query, papers) if query.mode != "meaning" else []
    found: dict[int, tuple[float, str, str | None]] = {}  # paper -> the best part's (similarity, kind)
    required: dict[int, dict[Node, None]] = {}  # paper -> the literal conditions of every part that found it
    kinds: dict[int, set[str]] = {}  # paper -> every kind of part that found it
    closest: dict[int, tuple[float, str]] = {}  # paper -> the closest example's (similarity, reference)
    alts = meaning.alternatives(query, TABLE)
    named = [alt.like for alt in alts if alt.like is not None]  # never found by an example
    for alt in alts:
        if alt.meaning is not None:
            vector = vectors.of_texts([alt.meaning])
            sides, threshold, kind = (vector, vector), calibration.threshold, "meaning"
        else:
            liked = vectors.of_papers([alt.like])
            if alt.like not in liked:
                continue
            sides = (liked[alt.like][0][None, :], liked[alt.like][1][None, :])
            threshold, kind = calibration.like_threshold, "example"
        centred = space.centred(*sides)[0]
        allowed = [_papers_matching(node, papers, conditions) for node in alt.required]
        excluded = [_papers_matching(node, papers, conditions) for node in alt.excluded]
        for number, paper in enumerate(papers):
            if centred[number] < threshold:
                continue
            plain = space.plain(sides[0], sides[1], np.array([number]))[0]
            if kind == "meaning" and plain < calibration.floor:
                continue
            if kind == "example" and any(meaning.same_paper(paper.id, ref) for ref in named):
                continue
            if not all(number + 1 in ranks for ranks in allowed) or any(number + 1 in ranks for ranks in excluded):
                continue
            required.setdefault(number, {}).update(dict.fromkeys(alt.required))
            similarity = float(centred[number])
            if number not in found or found[number][0] < similarity:
                found[number] = (similarity, kind)
            kinds.setdefault(number, set()).add(kind)
            if kind == "example" and (number not in closest or closest[number][0] < similarity):
                closest[number] = (similarity, alt.like)

    def why(number: int) -> tuple[str, ...]:
        return tuple(kind for kind in ("meaning", "example") if kind in kinds.get(number, ()))

    fused = []
    for position, match in enumerate(words):
        strength = match.score / (match.score + calibration.word_half) if match.score > 0 else 0.0
        similarity, _ = found.get(match.rank - 1, (None, None))
        like_similarity, like = closest.get(match.rank - 1, (None, None))
        fused.append(meaning.Fused(match.paper_id, match.rank, strength + (similarity or 0.0), tuple(match.terms),
                                   similarity, ("words",) + why(match.rank - 1), like, like_similarity))
    by_words = {match.rank - 1 for match in words}
    one_meaning = sum(alt.meaning is not None for alt in alts) == 1  # else sides are no measure of each other
    closest_by_words = max((found[number][0] for number in by_words if kinds.get(number) == {"meaning"}),
                           default=-np.inf) if one_meaning else -np.inf
    bar = max(np.float32(calibration.beside_words), closest_by_words - calibration.beside_best)
    for number, (similarity, _) in found.items():
        if words and kinds[number] == {"meaning"} and similarity < bar:
            continue  # beside the topic's word matches, a weak paper of meaning alone is left out
        if number not in by_words:
            like_similarity, like = closest.get(number, (None, None))
            terms = tuple(hit for node in required[number] for hit in _hits_of(node, papers, number))
            fused.append(meaning.Fused(papers[number].id, number + 1, similarity, terms, similarity, why(number),
                                       like, like_similarity))
    return sorted(fused, key=lambda match: (-match.score, match.rank))


def _split_runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make every run split its word pass (match.split) and read its meanings in small batches;
    the list returned is told, per run, whether the child's own rankings were used."""
    used: list[bool] = []
    rankings = split.ForkedWordPass.rankings

    def recorded(self: split.ForkedWordPass, matched):  # type: ignore[no-untyped-def]
        found = rankings(self, matched)
        used.append(not self._failed)
        return found

    monkeypatch.setattr(split, "SPLIT_FROM", 2)
    monkeypatch.setattr(split, "WORDS_SPLIT_FROM", 2)
    monkeypatch.setattr(split, "usable_cores", lambda: 2)  # also on a runner that gives this process one core
    monkeypatch.setattr(split.os, "getloadavg", lambda: (0.4, 0.4, 0.4))
    monkeypatch.setattr(split.ForkedWordPass, "rankings", recorded)
    monkeypatch.setattr(meaning, "TOPICS_READ_AT_ONCE", 32)
    monkeypatch.setattr(meaning, "TOPICS_AT_ONCE", 16)
    return used


@pytest.mark.parametrize("two_processes", [False, True], ids=["one process", "two processes, small batches"])
def test_all_topics_at_once_rank_as_each_topic_on_its_own(seed_papers: list[Paper], two_processes: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Batching (shared parts, products in a thread as topics are read, conditions as bitsets,
    fusing in bulk) changes nothing; nor does matching a share of the topics' words in a second
    process, whose rankings are explained here (same terms, same spans)."""
    papers = list(seed_papers[:40])
    topics = _generated_topics(papers, 250, random.Random(14))
    rng = random.Random(3)  # and topics whose meaning and example find some paper both
    topics += [f"{rng.choice(['robots', 'agents', 'scaling', 'reasoning'])} OR like:{rng.choice(papers).id}"
               for _ in range(40)]
    vectors = _synthetic_vectors(papers)
    calibration = meaning.Calibration()
    pairs = [(n, text) for n, text in enumerate(topics)] + [(len(topics) + n, text) for n, text in enumerate(topics[:20])]
    used = _split_runs(monkeypatch) if two_processes else []
    batched = meaning.match_topics(pairs, papers, None, vectors, calibration)
    assert used == ([True] if two_processes else [])
    kinds: Counter[str] = Counter()
    conditions: dict[str, set[int]] = {}
    for key, text in pairs:
        expected = _reference(text, papers, vectors, calibration, conditions)
        # A product of many rows may round its last float32 bit unlike a product of one row.
        got = list(batched[key])
        assert [_without_numbers(match) for match in got] == [_without_numbers(match) for match in expected], text
        assert [m.score for m in got] == batched[key].scores() == pytest.approx([m.score for m in expected], abs=1e-6)
        assert [m.similarity or 0 for m in got] == pytest.approx([m.similarity or 0 for m in expected], abs=1e-6)
        assert [m.like_similarity or 0 for m in got] == pytest.approx([m.like_similarity or 0 for m in expected],
                                                                       abs=1e-6)
        assert batched[key].paper_ids() == [match.paper_id for match in expected]
        kinds.update(why for match in expected for why in match.why)
        kinds.update("meaning and example" for match in expected if {"meaning", "example"} <= set(match.why))
        kinds.update("required words" for match in expected if "words" not in match.why and match.terms)
    assert kinds["words"] > 100 and kinds["meaning"] > 100 and kinds["example"] > 10  # every path was taken
    assert kinds["meaning and example"] > 0 and kinds["required words"] > 10


@pytest.mark.parametrize("failure", ["raises", "exits", "hangs"])
def test_a_failed_second_process_costs_time_not_results(seed_papers: list[Paper], failure: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """If the child fails after saying what its index keeps (an error, or killed: it just
    exits, or stuck: it never answers), this process matches the child's share itself and
    the results are the same."""
    papers = list(seed_papers[:40])
    pairs = list(enumerate(_generated_topics(papers, 80, random.Random(5))))
    vectors = _synthetic_vectors(papers)
    expected = meaning.match_topics(pairs, papers, None, vectors)
    used = _split_runs(monkeypatch)

    def broken(*args: object) -> None:  # runs in the child, after its plans were sent
        if failure == "raises":
            raise MemoryError("no more")
        if failure == "hangs":
            time.sleep(600)
        os._exit(3)

    monkeypatch.setattr(split, "_as_data", broken)
    monkeypatch.setattr(split, "CHILD_PATIENCE_SECONDS", 2.0)
    # As in `paperwire send`, whose SIGTERM handler only asks it to stop: the child must end anyway.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        got = meaning.match_topics(pairs, papers, None, vectors)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert used == [False]
    assert "matching its share here" in caplog.text
    _assert_same_rankings(got, expected)


def _words_topics(papers: list[Paper], count: int, seed: int) -> list[str]:
    """Generated topics without the meaning-only kinds (``like:``, ``meaning:``), which words alone refuse."""
    return [topic for topic in _generated_topics(papers, count, random.Random(seed))
            if "like:" not in topic and "meaning:" not in topic]


def test_words_alone_split_over_two_processes_rank_and_explain_as_one(seed_papers: list[Paper],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``split.match_words`` (a large words-only run: each process parses, plans and matches
    half the distinct topics) gives every key what ``compile_queries`` gives it: the same
    papers, scores, terms and spans; keys with the same topic share one ranking, in either
    half; a key given twice keeps its last topic's, as in a dict."""
    papers = list(seed_papers[:40])
    topics = _words_topics(papers, 200, 21)
    glued = ["multi modal models", "pre training models", "data set collection", "multi modal large models -video",
             "scaling laws for language models", "end to end models", "evaluation of the models"]
    topics = glued + topics + [f"title:{word} " + topic for word in ("towards", "a") for topic in glued]  # both halves
    pairs: list[tuple[object, str]] = [("twice", topics[0]), ("twice", topics[1])]  # the first key of both topics
    pairs += [(n, text) for n, text in enumerate(topics)]
    pairs += [(f"again {n}", text) for n, text in enumerate(topics[:15] + topics[-15:])]
    expected = compile_queries(pairs).match(papers)
    used = _split_runs(monkeypatch)
    got = split.match_words(pairs, papers, None)
    assert used == [True]  # the child's own rankings, explained here
    assert list(got) == list(expected)
    for key, text in pairs:
        assert list(got[key]) == list(expected[key]), text  # Match: id, rank, score, terms with their spans
    assert sum(len(ranking) for ranking in got.values()) > 200
    assert got[0] is got["again 0"] and got[len(topics) - 1] is got["again 29"]  # this half's, the child's
    assert list(got["twice"]) == list(got[1]) and list(got[0]) != list(got[1])


def test_words_alone_with_no_embedder_split_too(seed_papers: list[Paper], monkeypatch: pytest.MonkeyPatch) -> None:
    """``semantic.match_topics`` matches by words alone when no model is set, and a large run
    of that is split as well (the path digests take with ``relevance.embedder = "off"``)."""
    papers = list(seed_papers[:40])
    pairs = list(enumerate(_words_topics(papers, 60, 4)))
    used = _split_runs(monkeypatch)
    got = semantic.match_topics(pairs, papers, Settings(relevance_embedder="off"), None)
    assert used == [True]
    expected = compile_queries(pairs).match(papers)
    assert {key: list(ranking) for key, ranking in got.items()} == {key: list(ranking) for key, ranking in expected.items()}


@pytest.mark.parametrize("bad", ['scaling "laws', "words: scaling (laws"], ids=["plain", "with a mode"])
@pytest.mark.parametrize("where", ["this process's half", "the child's half"])
def test_a_bad_topic_in_a_split_words_run_is_named_as_compile_queries_names_it(
        seed_papers: list[Paper], where: str, bad: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Callers check topics first (pipeline.py), but a bad one that gets through is refused
    as ``compile_queries`` refuses it: named by its caller's key, in either half, before any
    paper is matched, and the child's refusal is no failure of the child (nothing logged).
    (A topic with a mode once gave the parser's error the text without its prefix, which
    named no topic: StopIteration.)"""
    papers = list(seed_papers[:10])
    pairs: list[tuple[object, str]] = [(("reader", n), text) for n, text in enumerate(_words_topics(papers, 20, 3))]
    at = 0 if where == "this process's half" else len(pairs) - 1
    pairs[at] = (("reader", at), bad)
    with pytest.raises(QueryError) as expected:
        compile_queries(pairs)
    _split_runs(monkeypatch)
    monkeypatch.setattr(split.Matcher, "match_all", lambda *args, **kwargs: pytest.fail("matched before refusing"))
    with pytest.raises(QueryError) as got:
        split.match_words(pairs, papers, None)
    assert (str(got.value), got.value.query, got.value.position) == (
        str(expected.value), expected.value.query, expected.value.position)
    assert str(got.value).startswith(f"topic ('reader', {at}): unbalanced ") and got.value.query == bad
    assert "second matching process" not in caplog.text


def test_a_child_that_cannot_be_listened_to_is_ended_and_the_run_goes_on(seed_papers: list[Paper],
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """If the thread that reads the child's messages cannot start (no threads left), the
    child, already forked, is ended at once, and this process matches every topic itself."""
    papers = list(seed_papers[:20])
    pairs = list(enumerate(_words_topics(papers, 30, 9)))
    expected = compile_queries(pairs).match(papers)
    _split_runs(monkeypatch)

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(split.threading.Thread, "start", no_thread)
    got = split.match_words(pairs, papers, None)
    assert "no second matching process (can't start new thread)" in caplog.text
    assert split.multiprocessing.active_children() == []  # ended and reaped, not left running
    assert {key: list(ranking) for key, ranking in got.items()} == {key: list(ranking) for key, ranking in expected.items()}


def test_a_failed_child_of_a_words_run_costs_time_not_results(seed_papers: list[Paper],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    papers = list(seed_papers[:40])
    pairs = list(enumerate(_words_topics(papers, 80, 8)))
    expected = compile_queries(pairs).match(papers)
    used = _split_runs(monkeypatch)

    def broken(*args: object) -> None:  # runs in the child, after its plans were sent
        raise MemoryError("no more")

    monkeypatch.setattr(split, "_as_data", broken)
    got = split.match_words(pairs, papers, None)
    assert used == [False] and "matching its share here" in caplog.text
    assert {key: list(ranking) for key, ranking in got.items()} == {key: list(ranking) for key, ranking in expected.items()}


def test_a_run_that_cannot_start_a_process_matches_every_topic_itself(seed_papers: list[Paper],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    papers = list(seed_papers[:40])
    pairs = list(enumerate(_generated_topics(papers, 60, random.Random(6))))
    vectors = _synthetic_vectors(papers)
    expected = meaning.match_topics(pairs, papers, None, vectors)
    used = _split_runs(monkeypatch)

    def no_fork(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(split.ForkedWordPass, "__init__", no_fork)
    got = meaning.match_topics(pairs, papers, None, vectors)
    assert used == [] and "no second matching process" in caplog.text
    _assert_same_rankings(got, expected)


def test_a_run_is_split_only_when_large_and_a_core_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split, "usable_cores", lambda: 2)
    monkeypatch.setattr(split.os, "getloadavg", lambda: (0.9, 0.9, 0.9))
    assert split.worth_splitting(split.SPLIT_FROM, split.SPLIT_FROM)
    assert not split.worth_splitting(split.SPLIT_FROM - 1, split.SPLIT_FROM)
    assert split.WORDS_SPLIT_FROM < split.SPLIT_FROM  # words alone: the second index is most of the fixed cost
    assert split.worth_splitting(split.WORDS_SPLIT_FROM, split.WORDS_SPLIT_FROM)
    assert not split.worth_splitting(split.WORDS_SPLIT_FROM - 1, split.WORDS_SPLIT_FROM)
    monkeypatch.setattr(split.os, "getloadavg", lambda: (1.6, 0.9, 0.9))  # the other core is busy
    assert not split.worth_splitting(split.SPLIT_FROM, split.SPLIT_FROM)
    monkeypatch.setattr(split.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    with monkeypatch.context() as inside:  # a daemonic process (a pool's worker) may not have children
        inside.setattr(split.multiprocessing, "current_process", lambda: type("Daemon", (), {"daemon": True})())
        assert not split.worth_splitting(split.SPLIT_FROM, split.SPLIT_FROM)
    monkeypatch.setattr(split, "usable_cores", lambda: 1)
    assert not split.worth_splitting(split.SPLIT_FROM, split.SPLIT_FROM)


def test_the_cores_a_run_counts_are_those_it_may_use() -> None:
    """A process held to one core (taskset, a cpuset, a container's CPUs) on a bigger machine
    must not split: os.cpu_count() counts the machine's."""
    held = subprocess.run([sys.executable, "-c", "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
                           "from paperwire.match import split; print(split.usable_cores(), os.cpu_count())"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert held[0] == "1" and int(held[1]) >= 1


def test_overlapping_runs_leave_blas_threads_as_they_were(seed_papers: list[Paper]) -> None:
    """Web requests match in worker threads at once, and the BLAS limit is process-wide: A
    limited (saving N), B limited (saving 1), A restored N, B restored 1, and the process kept
    one BLAS thread for good. Overlapping runs now share the limit (match.sections)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    before = blas()
    if not before or max(before) < 2:
        pytest.skip("one BLAS thread here already")
    papers = list(seed_papers[:40])
    vectors = _synthetic_vectors(papers)
    a_reading, b_reading, a_done = threading.Event(), threading.Event(), threading.Event()

    def of_texts_a(texts):  # type: ignore[no-untyped-def]
        a_reading.set()
        assert b_reading.wait(10)
        return vectors.of_texts(texts)

    def of_texts_b(texts):  # type: ignore[no-untyped-def]
        b_reading.set()
        assert a_done.wait(10)
        return vectors.of_texts(texts)

    def run(of_texts, done=None):  # type: ignore[no-untyped-def]
        meaning.match_topics([(0, "diffusion models")], papers, None,
                             meaning.Vectors(vectors.space, of_texts, vectors.of_papers))
        if done is not None:
            done.set()

    first = threading.Thread(target=run, args=(of_texts_a, a_done))
    first.start()
    assert a_reading.wait(10)
    second = threading.Thread(target=run, args=(of_texts_b,))
    second.start()
    first.join(20)
    second.join(20)
    assert blas() == before


_LEADER_MATCHING = r'''  # a daemon holding the leader lock, its split run's child slow

import os, random, sys, threading, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from paperwire import sources, leader
from paperwire.match import meaning, split
from tests.conftest import SEED, TODAY
from tests.test_meaning import _generated_topics, _synthetic_vectors
lock = leader.FileLock(Path(sys.argv[1]))
assert lock.try_acquire()
(listing,) = sources.read_path(SEED, today=TODAY)
papers = listing.papers[:40]
pairs = list(enumerate(_generated_topics(papers, 80, random.Random(5))))
split.SPLIT_FROM = 2
split.os.getloadavg = lambda: (0.0, 0.0, 0.0)
split.usable_cores = lambda: 2
split._as_data = lambda *args: time.sleep(30)  # a slow (or stuck) child
threading.Thread(target=meaning.match_topics, args=(pairs, papers, None, _synthetic_vectors(papers)), daemon=True).start()
print("matching", flush=True)
time.sleep(600)
'''


def test_the_leader_lock_dies_with_the_daemon(tmp_path: Path) -> None:
    """The daemon (SQLite: flock on <db>.schedule.lock) is killed (OOM killer, crash) while a
    second matching process runs: the child has a copy of the lock's open file, and kept it
    (so no standby could take over) until it finished. Now it dies with its parent."""
    from paperwire import leader

    path = tmp_path / "db.sqlite.schedule.lock"
    root = str(Path(__file__).resolve().parents[1])
    daemon = subprocess.Popen([sys.executable, "-c", _LEADER_MATCHING, str(path), root], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": root + "/src"}, start_new_session=True)
    try:
        assert daemon.stdout.readline().strip() == b"matching"
        time.sleep(1.5)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        time.sleep(0.5)
        standby = leader.FileLock(path)
        taken = standby.try_acquire()
        standby.release()
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)  # the orphaned child is still in the group
    assert taken, "the dead daemon's lock is still held (by its orphaned matching child)"


def _without_numbers(match: meaning.Fused) -> meaning.Fused:
    return match._replace(score=None, similarity=match.similarity is None,
                          like_similarity=match.like_similarity is None)


def _assert_same_rankings(got: dict, expected: dict) -> None:
    """The same papers, order, reasons and examples for every key, and the same scores and
    similarities up to float32 rounding: products batched differently may round the last bit
    differently (it depends on the CPU's BLAS kernels: exact on some machines, not on others)."""
    assert list(got) == list(expected)
    for key in expected:
        mine, theirs = list(got[key]), list(expected[key])
        assert [_without_numbers(m) for m in mine] == [_without_numbers(m) for m in theirs], key
        for field in ("score", "similarity", "like_similarity"):
            assert [getattr(m, field) or 0 for m in mine] == pytest.approx(
                [getattr(m, field) or 0 for m in theirs], abs=1e-6), (key, field)


def test_an_example_with_words_of_any_wording_is_not_a_syntax_error() -> None:
    """The words beside ``like:`` must hold by words; made from the words themselves, a
    phrase of a ``meaning:`` topic cannot turn them into bad syntax (a lone parenthesis)."""
    assert matched('meaning: like:2401.00001 "video (datasets"') == [("2401.00002", ("example",))]
    assert matched('meaning: like:2401.00001 "grasp (objects"') == []


@pytest.mark.parametrize(("topic", "compared_as"), [
    ("machine-translation", "machine translation"), ("few-step diffusion -video", "few step diffusion"),
    ("pre\u2010training data", "pre training data"), ("GPT-4o mini", "GPT 4o mini"),
])
def test_a_topic_is_compared_by_meaning_as_the_word_engine_reads_its_hyphens(topic: str, compared_as: str) -> None:
    """``machine-translation`` lost SCALE (similarity 0.287) that ``machine translation`` found
    (0.322): to the model the hyphen is a token of its own. Both are one topic to the words."""
    from paperwire.query import parse_query

    assert [alt.meaning for alt in meaning.alternatives(parse_query(topic), AcronymTable())] == [compared_as]


@pytest.mark.parametrize(("topic", "compared"), [
    ("diffusion not video", []), ("RAG OR agents except tools", []), ("diffusion -video", ["diffusion"]),
    ("pruning without retraining", ["pruning without retraining"]),
    ("meaning: diffusion not video", ["diffusion not video"]), ("no-reference image quality", ["no reference image quality"]),
])
def test_a_side_that_says_not_is_matched_by_its_words_only(topic: str, compared: list[str]) -> None:
    """To the model "diffusion not video" is about video diffusion: it put "Are Video Diffusion
    Models Zero-Shot Physics Simulators?" first (0.59). Such a side is not compared by meaning;
    ``-video`` is the exclusion, and a ``meaning:`` topic asked for meaning."""
    from paperwire.query import parse_query

    assert [alt.meaning for alt in meaning.alternatives(parse_query(topic), AcronymTable())] == compared


@pytest.mark.parametrize(("topic", "listed"), [
    ("diffusion not video", [("diffusion not video", "not")]),
    ("RAG OR agents except tools", [("agents except tools", "except")]), ("pruning without retraining", []),
    ("Diffusion NOT video", []), ("diffusion -video", []), ('"not video" diffusion', []), ("title:no agents", []),
    ("meaning: diffusion not video", []), ("words: diffusion not video", []), ("like:2403.12345 not video", []),
    ("no-reference image quality", []),
])
def test_negated_sides_are_the_sides_a_negation_word_keeps_from_meaning(topic: str, listed: list) -> None:
    """What `paperwire topics check` lists as "negation-side": each such side, alone, has nothing
    ``alternatives`` compares by meaning (the rule it names is the rule matching applies)."""
    from paperwire.query import parse_query

    sides = meaning.negated_sides(parse_query(topic))
    assert [(render_query(side), word) for side, word in sides] == listed
    for side, _ in sides:
        assert meaning.alternatives(parse_query(render_query(side)), AcronymTable()) == ()
