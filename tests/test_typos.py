"""The words of a topic no paper has (typos.py), as `match` and the web preview name them."""

from __future__ import annotations

import pytest

from paperwire import typos
from paperwire.match.acronyms import acronym_table
from paperwire.match.text import Stems
from paperwire.query import parse_query

PAPERS = [
    "Rotate, Then Round: 2-bit Quantization of Llama-2",
    "We mitigate reward over-optimization in RLHF. Retrieval-augmented generation helps.",
    "Data-constrained scaling laws for language models.",
    "Results indicate gains.",
]


def unknown(topic: str) -> list[str]:
    stems = Stems()
    known = typos.vocabulary(PAPERS, stems)
    return typos.unknown_words(parse_query(topic), known, acronym_table(None), stems)


@pytest.mark.parametrize(("topic", "flagged"), [
    ("retreival augmented generation", ["retreival"]),
    # a tester's false alarms: the words were read whole, not as the matcher reads them
    ("Llama-2 quantization", []), ("data-constrained scaling", []), ('"Stress-testing RAG: what happens"', ["Stress", "testing", "happens"]),
    ("over-optimisation of reward models", []),  # British spelling, a hyphenated word
    ("dataconstrained retreival", ["retreival"]),  # the papers' "Data-constrained" is one word too
    ("anything on retreival, please", ["retreival"]),  # words that ask for papers are no typos
    ("meaning: Llama-2", []), ("RAG OR chemistry", ["chemistry"]),  # an acronym is never flagged
    ("quantization -survey", []), ("2403.99999 OR 1,000,000", []), ("author:Xyzzy", []), ("title:xyzzy", ["xyzzy"]),  # exclusions and authors are not
])
def test_a_word_is_flagged_only_when_no_paper_has_it_as_the_matcher_reads_it(topic: str, flagged: list[str]) -> None:
    assert unknown(topic) == flagged


def test_a_note_names_a_close_spelling_when_the_papers_have_one() -> None:
    stems = Stems()
    known = typos.vocabulary(PAPERS, stems)
    assert typos.notes(["retreival", "chemistry", "indices"], known, "no stored paper") == [
        "no stored paper has the word 'retreival'; did you mean 'retrieval'?",
        "no stored paper has the word 'chemistry'",
        "no stored paper has the word 'indices'",  # "indicate" is another word (0.8 alike)
    ]


@pytest.mark.parametrize(("word", "said"), [
    # testers' false suggestions: everyday English words, the papers' spelling only a longer form of them
    ("necessary", "no stored paper has the word 'necessary'"), ("see", "no stored paper has the word 'see'"),
    # typos keep theirs: one inside the word, and ones at its end that are no English word
    ("retreival", "no stored paper has the word 'retreival'; did you mean 'retrieval'?"),
    ("retrievl", "no stored paper has the word 'retrievl'; did you mean 'retrieval'?"),
    ("transformr", "no stored paper has the word 'transformr'; did you mean 'transformer'?"),
    ("pruing", "no stored paper has the word 'pruing'; did you mean 'pruning'?"),
])
def test_an_english_word_is_not_told_it_meant_a_longer_form_of_itself(word: str, said: str) -> None:
    known = typos.vocabulary(["It is necessarily seen. Retrieval with a transformer. Pruning."], Stems())
    assert typos.notes([word], known, "no stored paper") == [said]


def test_words_found_nothing_reads_why_and_word_rankings_alike() -> None:
    class Found:
        def __init__(self, *why: str) -> None:
            self.why = why

    class WordMatch:  # a words-only ranking's match has no ``why``
        pass

    assert typos.words_found_nothing([]) and typos.words_found_nothing([Found("meaning")])
    assert not typos.words_found_nothing([Found("meaning"), Found("words", "meaning")])
    assert not typos.words_found_nothing([WordMatch()])


def test_a_close_spelling_is_looked_for_a_few_words_only_so_a_long_topic_costs_little() -> None:
    """The public preview takes anyone's topic: 110 made-up words took 4.8 s over 25,000 spellings."""
    import random
    import time

    rng = random.Random(1)
    spellings = ["".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(25_000)]
    known = typos.vocabulary([" ".join(spellings)], Stems())
    made_up = ["".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(110)]
    started = time.perf_counter()
    shown = typos.notes(made_up, known, "no stored paper")
    assert len(shown) == 110 and sum("did you mean" in note for note in shown) <= typos.SUGGESTED_WORDS
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("topic", "said"), [
    ("faster inference", ["no stored paper has the words 'faster inference' near each other (in one sentence, a few "
                          "words apart at most), as a topic's words must be; each of them is in some paper"]),
    ("faster for inference", ["no stored paper has the words 'faster inference' near each other (in one "
                              "sentence, a few words apart at most), as a topic's words must be; each of "
                              "them is in some paper"]),
    # a second tester's: words that may ask, or a small word the run needs, would be missing from the note
    ("papers about faster inference", []), ("does faster inference work?", []), ("faster inference only", []),
    # an exclusion, a field, a phrase or OR may be why instead; one word is no nearness
    ("faster inference -video", []), ("title:faster inference", []), ('"faster inference"', []),
    ("faster OR inference", []), ("inference", []), ("meaning: faster inference", []),
])
def test_words_that_are_all_there_but_apart_get_a_note_that_says_so(topic: str, said: list[str]) -> None:
    """A tester's ``faster inference`` found nothing and nothing said why: each word is in papers."""
    stems = Stems()
    known = typos.vocabulary(["Faster decoding for all.", "Inference on phones."], stems)
    assert typos.topic_notes(topic, known, stems, None, "no stored paper") == said



@pytest.mark.parametrize(("topic", "said"), [
    # a tester's: a meaning: topic listed a paper under "no stored paper has the word 'phones'"
    ("meaning: running language models on phones", []),
    ("meaning: retreival augmented generation", ["no stored paper has the word 'retreival'; did you mean 'retrieval'?"]),
    ("running language models on phones", ["no stored paper has the word 'phones'"]),  # the words must be found
])
def test_a_meaning_topic_is_told_only_of_a_close_spelling(topic: str, said: list[str]) -> None:
    """A ``meaning:`` topic is not matched by its words: a word no paper has is no reason it
    found little, but a typo is read by the model as typed."""
    stems = Stems()
    known = typos.vocabulary(PAPERS + ["Running language models is cheap."], stems)
    assert typos.topic_notes(topic, known, stems, None, "no stored paper") == said
