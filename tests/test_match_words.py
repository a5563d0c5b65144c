"""Word matching that says only what the text says (issue 14): glued forms never cross a
word boundary the text has, bare words must be near each other, boilerplate is not
text, like: is not a word, and the cycle collector's switch is safe across threads."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence

from paperwire.match import compile_queries, match_one
from paperwire.match.matcher import _bulk_allocation
from paperwire.models import Paper


def paper(title: str, abstract: str = "", number: int = 0) -> Paper:
    return Paper(id=f"made-{number}", title=title, abstract=abstract)


def ids(query: str, papers: Sequence[Paper]) -> set[str]:
    return set(match_one(query, papers).paper_ids())


# --- glued forms only where the text writes one term ------------------------------------


def test_mode_does_not_match_model_is() -> None:
    """"model is" glued is "modelis", stemmed to ``mode``: a seam the text has, crossed."""
    papers = [paper("Our approach", "The model is small.", 1), paper("A mode of operation", "", 2)]
    assert ids("mode", papers) == {"made-2"}
    assert ids("modes", papers) == {"made-2"}


def test_a_quoted_phrase_is_not_found_in_one_of_its_words() -> None:
    """"sift lies" glued is "siftlies", stemmed to ``sift``: a paper saying only SIFT lacks the phrase."""
    papers = [paper("Keypoints", "We use SIFT features.", 1), paper("Where SIFT lies", "", 2)]
    assert ids('"sift lies"', papers) == {"made-2"}


def test_real_glued_forms_still_match() -> None:
    papers = [
        paper("Multi modal pre training", "", 1),
        paper("Multimodal pretraining", "", 2),
        paper("Multi-modal pre-training", "", 3),
        paper("The model's output", "", 4),
    ]
    everything = {"made-1", "made-2", "made-3"}
    for query in ("multimodal", "multi-modal", "multi modal", '"multi modal"', "pretraining", '"pre training"'):
        assert ids(query, papers) == everything, query
    assert ids("model", papers) == {"made-4"}


# --- like: is for the meaning engine ------------------------------------------------------


def test_like_matches_nothing_by_words_and_leaves_the_rest_alone() -> None:
    papers = [paper("LLM agents", "", 1), paper("Vision", "", 2)]
    assert ids("like:2403.12345", papers) == set()
    assert ids("LLM like:2403.12345", papers) == set()
    assert ids("LLM OR like:2403.12345", papers) == {"made-1"}
    assert ids("agents -like:2403.12345", papers) == {"made-1"}
    [match] = match_one("LLM OR like:2403.12345", papers)
    assert [hit.term for hit in match.terms] == ["LLM"]


# --- the cycle collector ------------------------------------------------------------------


def test_overlapping_matches_in_two_threads_leave_the_collector_on() -> None:
    """Thread A starts, B starts, A ends, B ends: collection stays off until the last
    one ends (A must not turn it on under B), and is on afterwards."""
    assert gc.isenabled()
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with _bulk_allocation():
            a_inside.set()
            b_inside.wait(5)
        a_done.set()

    def second() -> None:
        a_inside.wait(5)
        with _bulk_allocation():
            b_inside.set()
            a_done.wait(5)
            seen["while B still runs"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"while B still runs": False}
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_many_threads_matching_at_once_leave_the_collector_as_it_was(seed_papers: list[Paper]) -> None:
    def work() -> None:
        for _ in range(5):
            compile_queries([("a", "RAG agents"), ("b", '"language models" -survey')]).match(seed_papers)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not gc.isenabled()
    finally:
        gc.enable()
