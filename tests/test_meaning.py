"""Matching by meaning beside words (match/meaning.py), on vectors made by hand: which parts
of a topic may match by meaning, what stays literal, and how the evidence is fused.
The real model's part is tested in tests/test_relevance.py."""

from __future__ import annotations

import numpy as np
import pytest

from paperwire.match import meaning
from paperwire.match.acronyms import AcronymTable
from paperwire.models import Paper
from paperwire.normalize import referenced_id
from paperwire.query import parse_query

TABLE = AcronymTable()


def alternatives(text: str) -> list[tuple]:
    return [(a.meaning, a.like, a.required, a.excluded) for a in meaning.alternatives(parse_query(text), TABLE)]


@pytest.mark.parametrize("text, expected", [
    ("efficient LLM inference", [("efficient LLM inference", None, (), ())]),
    ("diffusion -video", [("diffusion", None, (), ("video",))]),
    ('robot "world model"', [("robot", None, ('"world model"',), ())]),
    ("title:RAG agents", [("agents", None, ("title:RAG",), ())]),
    ("MoE", []),  # an acronym alone stays literal
    ("MoE OR sparse experts", [("sparse experts", None, (), ())]),
    ('"scaling laws"', []),  # a quoted phrase alone stays literal
    ("*", []),
    ("(a OR b) c", [("c", None, ("a OR b",), ())]),
])
def test_which_parts_of_a_topic_match_by_meaning(text: str, expected: list[tuple]) -> None:
    assert alternatives(text) == expected


def test_a_meaning_topic_reads_phrases_and_acronyms_by_meaning_and_a_words_topic_nothing() -> None:
    assert alternatives('meaning: MoE "sparse routing" -survey') == [('MoE sparse routing', None, (), ("survey",))]
    assert alternatives("meaning: title:RAG agents") == [("agents", None, ("title:RAG",), ())]
    assert alternatives("words: efficient LLM inference") == []


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


@pytest.mark.parametrize("paper_id, ref, same", [
    ("2403.12345", "2403.12345v2", True),
    ("2403.12345", "2403.12346", False), ("t-abc", "t-abc", True), ("v2", "v3", False), ("hep-th/9901001", "hep-th/9901001v3", True),
])
def test_a_paper_is_named_by_its_id_or_arxiv_id_with_any_version(paper_id: str, ref: str, same: bool) -> None:
    assert meaning.same_paper(paper_id, ref) is same
