"""Word matching that says only what the text says (issue 14): glued forms never cross a
word boundary the text has, bare words must be near each other, boilerplate is not
text, like: is not a word, and the cycle collector's switch is safe across threads."""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperwire.match import compile_queries, match_one
from paperwire.match.matcher import bulk_allocation
from paperwire.match.results import Match
from paperwire.match.boilerplate import boilerplate_spans
from paperwire.match.text import Stems, field_text
from paperwire.models import Paper


def paper(title: str, abstract: str = "", number: int = 0) -> Paper:
    return Paper(id=f"made-{number}", title=title, abstract=abstract)


def ids(query: str, papers: Sequence[Paper]) -> set[str]:
    return set(match_one(query, papers).paper_ids())


def finds(texts: dict[int, str], found: dict[str, set[int]]) -> list[Paper]:
    """Asserts that each topic of ``found`` finds exactly those of ``texts`` (abstracts, by
    their number); returns the papers, in the order of ``texts``."""
    papers = [paper("Results", text, number) for number, text in texts.items()]
    for topic, numbers in found.items():
        assert ids(topic, papers) == {f"made-{number}" for number in numbers}, topic
    return papers


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


SPACED_FUNCTION_WORDS = {  # topic -> what a paper writes: a real word boundary, with a function word
    "maybe": "This may be effective.",
    "inline": "This is in line with theory.",
    "notable": "We are not able to verify it.",
    "infinite": "It converges in finite time.",
    "online": "Points on line segments are sampled.",
}


def test_words_a_space_apart_are_not_glued_across_a_function_word() -> None:
    """"may be" is two words, not "maybe": a space next to a function word is a boundary."""
    papers = [paper("Results", abstract, n) for n, abstract in enumerate(SPACED_FUNCTION_WORDS.values())]
    for topic in SPACED_FUNCTION_WORDS:
        assert ids(topic, papers) == set(), topic
    solid = [paper(f"An {topic} method", "", n) for n, topic in enumerate(SPACED_FUNCTION_WORDS)]
    for n, topic in enumerate(SPACED_FUNCTION_WORDS):  # the word itself is still found
        assert ids(topic, solid) == {f"made-{n}"}, topic


def test_spaced_compounds_of_content_words_and_hyphenated_forms_still_glue() -> None:
    """The real wins stay: "data set" is ``dataset``; a hyphen joins even a function word."""
    found = {
        "multimodal": "A multi modal model.",
        "dataset": "A new data set of images.",
        "finetuning": "Fine tuning helps.",
        "pretraining": "Pre training helps.",
        "online": "On-line learning of experts.",
        "inline": "An in-line cache.",
        "overfitting": "It avoids over-fitting.",
    }
    for topic, abstract in found.items():
        assert ids(topic, [paper("Results", abstract)]) == {"made-0"}, topic


def test_names_with_a_dot_or_an_at_inside_match_as_written() -> None:
    """Model versions and metrics carry a "." or "@" inside ("Qwen2.5", "Llama-3.1", "pass@1"):
    it holds the name together, as a hyphen does, where it used to break it in two, so such a
    topic matched nothing at all. The usual spellings of a version are one name; a sentence
    still ends at ". " and a comma still breaks."""
    texts = {
        1: "We fine-tune Qwen2.5-7B on math problems.",
        2: "Qwen-2.5 and Llama 3.1 are compared.",
        3: "Qwen 2.5 beats LLaMA-3.1-8B on pass@1.",
        4: "Qwen2 and Qwen3 are older and newer.",
        5: "The model reaches 72.5 pass@10 on HumanEval.",
        6: "We run Llama 3. 1 epoch is enough.",
        7: "It uses Qwen2, 5 adapters and pass, 1 more.",
    }
    papers = finds(texts, {
        '"Qwen2.5"': {1, 2, 3},
        "Qwen2.5": {1, 2, 3},
        "Llama-3.1": {2, 3},
        '"Llama 3.1"': {2, 3},
        "pass@1": {3},
        "pass@10": {5},
        '"72.5"': {5},
    })
    hit = match_one("pass@1", papers)[0].terms[0]
    assert field_text(papers[2], hit.field)[slice(*hit.spans[0])] == "pass@1"
    # A new sentence typed without its space is not a name; a soft hyphen and a minus sign join.
    more = [paper("Results", "We fix reward.Hacking is rare.", 1), paper("Results", "Multi\u00admodal GPT\u22124 results.", 2)]
    assert ids('"reward hacking"', more) == set()
    assert ids("multimodal", more) == ids("GPT-4", more) == {"made-2"}


def test_a_spaced_compound_inside_a_longer_run_is_read_as_the_one_word_papers_write() -> None:
    """``multi modal models`` means multimodal models, as ``multimodal models`` does: a paper
    writing "multimodal large language models" has the run's words near each other once
    "multi modal" is read as the one word it writes. It used to need "multi" and "modal"
    as words of their own, so the spaced topic found a third of what the solid one found.
    The highlight shows the solid word; near still means one sentence."""
    texts = {
        1: "We use multimodal large language models for charts.",
        2: "A multimodal approach. Other models exist.",
        3: "Pretraining on web data helps.",
        4: "A multi-modal benchmark of chart models.",
        5: "We fine-tune multimodal models on charts.",
    }
    papers = [paper("Results", text, number) for number, text in texts.items()]
    for spaced, solid, numbers in (("multi modal models", "multimodal models", {1, 4, 5}),
                                   ("pre training data", "pretraining data", {3})):
        assert ids(spaced, papers) == ids(solid, papers) == {f"made-{number}" for number in numbers}, spaced
    assert ids("multi modal models -benchmark", papers) == {"made-1", "made-5"}
    assert ids("title:results multi modal models", papers) == {"made-1", "made-4", "made-5"}
    hits = {match.paper_id: match.terms for match in match_one("multi modal models", papers)}
    shown = {(hit.term, field_text(papers[0], hit.field)[slice(*span)]) for hit in hits["made-1"] for span in hit.spans}
    assert shown == {("models", "models"), ("multi modal", "multimodal")}


def test_a_spaced_compound_inside_a_longer_run_finds_what_the_solid_word_finds(seed_papers: Sequence[Paper]) -> None:
    """On the seed's real abstracts: each spaced topic finds every paper its solid form finds."""
    for spaced, solid in (("multi modal models", "multimodal models"), ("pre training models", "pretraining models"),
                          ("data set collection", "dataset collection"), ("multi modal large models", "multimodal large models")):
        found = ids(solid, seed_papers)
        assert found and found <= ids(spaced, seed_papers), spaced


def test_the_connectives_of_a_run_need_not_be_near_its_words() -> None:
    """``scaling laws for LLMs`` names LLM scaling laws, whatever small word the paper puts
    between them ("Scaling Law in Large Language Model Pretraining"): a run's connectives
    (of, for, in, as, and, ...) need not be near its other words, as its phrase still reads
    them. It found nothing there. Negations, quantifiers and particles still count."""
    texts = {
        1: "Scaling Law in Large Language Model Pretraining",
        2: "We evaluate LLMs on math.",
        3: "Knowledge distillation helps.",
        4: "Using an LLM to judge answers.",
        5: "Learning with labels. Zero shot learning. Up sampling layers.",
    }
    papers = finds(texts, {
        "scaling laws for LLMs": {1},
        "evaluation of LLMs": {2},
        "distillation of knowledge": {3},
        "LLM as a judge": {4},
        "learning without labels": set(),
        "few shot learning": set(),
        "down sampling layers": set(),
        '"scaling laws for LLMs"': set(),  # a quoted phrase stays exact
    })
    finds({1: "The method works. A lot of data.", 2: "The best of all."}, {"the of": {2}})  # only connectives: all near
    (match,) = match_one("scaling laws for LLMs", papers)
    assert [hit.term for hit in match.terms] == ["scaling", "laws", "LLMs"]


def test_a_word_a_run_repeats_needs_an_occurrence_of_its_own() -> None:
    """``end to end`` is not "To this end": a word the run says twice must be in the paper
    twice, near the others; one "end" stood for both."""
    texts = {
        1: "To this end, we propose X.",
        2: "An end-to-end model.",
        3: "We train end to end models.",
        4: "We map text to image.",
        5: "Image to image translation.",
        6: "Map each image to a sequence.",
    }
    papers = finds(texts, {"end to end": {2, 3}, "end to end models": {2, 3}, "image to image": {5},
                           "sequence to sequence": set(), "end to ends": {2, 3}, "learning to learn": set()})
    # One occurrence never stands for two: a hyphenated word's two readings, a glued reading
    finds({1: "A multi-modal model for charts.", 2: "A multimodal to multimodal mapping."},
          {"multi-modal to multi-modal": {2}, "multi modal to multi modal": {2}})
    ends = [hit for match in match_one("end to end models", papers) if match.paper_id == "made-3"
            for hit in match.terms if hit.term == "end"]
    assert [field_text(papers[2], hit.field)[slice(*span)] for hit in ends for span in hit.spans] == ["end", "end"]


def test_an_acronym_in_a_run_is_as_wide_as_its_expansion_for_nearness() -> None:
    """``efficient LLM inference`` finds "efficient training and inference of large language
    models" as it finds the same sentence saying "LLMs": the window counts the acronym's
    spelled-out words. It counted one, so the spelled-out sentence was too long."""
    papers = [paper("Results", "Efficient training and inference of LLMs.", 1),
              paper("Results", "Efficient training and inference of large language models.", 2),
              paper("Results", "Efficient kernels, many other small things, then inference for LLMs at last.", 3)]
    assert ids("efficient LLM inference", papers) == ids("efficient large language model inference", papers) \
        == {"made-1", "made-2"}


def test_an_expansion_does_not_find_papers_whose_letters_stand_for_something_else() -> None:
    """SAM, MAE, TTS and IR are as often other things in papers (Segment Anything, mean absolute
    error, test-time scaling, infrared): a topic that spells one out found those papers."""
    papers = [paper("Results", "We fine-tune SAM, the segment anything model.", 1),
              paper("Results", "We report the mean absolute error (MAE).", 2),
              paper("Results", "Test-time scaling (TTS) helps reasoning.", 3),
              paper("Results", "We fuse infrared (IR) images.", 4)]
    for topic in ("sharpness aware minimization", "masked autoencoder", "text to speech", "information retrieval"):
        assert ids(topic, papers) == set(), topic
    assert ids("segment anything model", [paper("Results", "We fine-tune SAM on cells.", 1)]) == {"made-1"}


def test_a_number_after_a_word_in_a_run_names_a_version_with_it() -> None:
    """``Llama 3`` is the model Llama 3 (written "Llama 3", "Llama-3" or "Llama3"), not a
    Llama and a 3 near each other: it matched "We fine-tune Llama 2 on 3 tasks"."""
    texts = {
        1: "We fine-tune Llama 2 on 3 tasks.",
        2: "GPT-4 solves 5 of 10 puzzles.",
        3: "Llama-3 and Llama 3.1 are strong.",
        4: "We use Llama3 for math.",
        5: "Qwen2.5-Math is good at math problems.",
        6: "Top 5 accuracy rises.",
    }
    papers = finds(texts, {"Llama 3": {3, 4}, "GPT 5": set(), "GPT 4": {2}, "Qwen 2.5 math": {5},
                           "top 5 accuracy": {6}, "Llama 3 for math": {4}})
    # The rest of the run reads as any run: an expansion it spells is one part (MoE, LLMs)
    finds({1: "We scale Llama 3 with MoE layers.", 2: "Llama 3 outperforms other LLMs.",
           3: "Llama 3 and large pre-trained language models."},
          {"Llama 3 mixture of experts": {1}, "Llama 3 large language models": {2}})
    (match,) = match_one("Qwen 2.5 math", papers)
    assert [hit.term for hit in match.terms] == ["Qwen 2.5", "math", "Qwen 2.5 math"]


def test_author_words_are_near_within_one_name_only() -> None:
    """``author:(Xiang Li)`` is an author called Xiang Li (in either order), not a paper with a
    Xiang Wang and a Wei Li: names run one into the next in the author field."""
    papers = [Paper("made-1", "T", authors=["Xiang Wang", "Wei Li"]), Paper("made-2", "T", authors=["Xiang Li", "Bo Wu"]),
              Paper("made-3", "T", authors=["Li Xiang"])]
    assert ids("author:(Xiang Li)", papers) == {"made-2", "made-3"}
    assert ids("author:Li", papers) == {"made-1", "made-2", "made-3"}
    # A name's small words are name words, not connectives a run may leave out
    names = [Paper("made-4", "T", authors=["Yang Liu"]), Paper("made-5", "T", authors=["An Yang"]),
             Paper("made-6", "T", authors=["John Smith"]), Paper("made-7", "T", authors=["A Smith"])]
    assert ids("author:(An Yang)", names) == {"made-5"} and ids("author:(A Smith)", names) == {"made-7"}
    ended = [Paper("made-8", "T", authors=["Albert No", "Wei Zhang"])]  # "No" is an abbreviation elsewhere ("No. 5")
    assert ids("author:(No Wei)", ended) == set()


def test_an_expansion_finds_the_other_expansions_of_its_acronym() -> None:
    """``vision language model`` is VLM, so it finds every way the table spells VLM out, as
    ``VLM`` does: it found "visual language model" only in papers that also wrote "VLM"."""
    papers = [paper("Results", "We study vision-and-language models.", 1), paper("Results", "A visual language model.", 2),
              paper("Results", "VLMs are here.", 3), paper("Results", "A vision language model.", 4),
              paper("Results", "Vision models for language.", 5)]
    for topic in ("VLM", "vision language model", "visual language model", '"vision language model"'):
        assert ids(topic, papers) == {"made-1", "made-2", "made-3", "made-4"}, topic


def test_particles_that_begin_spaced_compounds_still_glue() -> None:
    """"down sampling" is ``downsampling``: up/down/over/under/out/off may begin a compound."""
    found = {
        "downsampling": "Frames go through down sampling first.",
        "upsampling": "Up sampling restores the size.",
        "overfitting": "It avoids over fitting.",
        "underfitting": "Small models suffer from under fitting.",
        "offline": "We train off line.",
    }
    for topic, abstract in found.items():
        assert ids(topic, [paper("Results", abstract)]) == {"made-0"}, topic


def test_a_topic_written_apart_is_not_glued_across_a_function_word_either() -> None:
    """The topic side keeps the paper side's rule: a topic ``"may be"`` or ``not able`` never
    finds "maybe" or "notable"; ``down sampling`` and ``"data set"`` still find the solid words."""
    solid = [paper("Results", "This maybe helps a notable inline downsampling of the dataset online.")]
    for topic in ('"may be"', "not able", '"in line"', "on line"):
        assert ids(topic, solid) == set(), topic
    for topic in ("down sampling", '"data set"', "data set", '"on-line"'):
        assert ids(topic, solid) == {"made-0"}, topic


def test_a_pair_written_apart_and_hyphenated_in_one_listing_is_read_each_way() -> None:
    """The index remembers each pair's glued stem; "on line" must not borrow "on-line"'s."""
    for order in ((1, 2), (2, 1)):
        texts = {1: "Points on line segments.", 2: "On-line learning."}
        papers = [paper("Results", texts[n], n) for n in order]
        assert ids("online", papers) == {"made-2"}, order


def test_stems_glue_words_apart_only_when_both_are_content_words() -> None:
    stems = Stems()
    assert stems.glued_apart("data", "set") == stems.of("dataset")
    assert stems.glued_apart("multi", "modal") == stems.of("multimodal")
    for first, second in (("may", "be"), ("in", "line"), ("not", "able"), ("a", "part"), ("of", "ten")):
        assert stems.glued_apart(first, second) is None, (first, second)
    assert stems.glued("on", "line") == stems.of("online")  # hyphenated pairs: no such limit


# --- like: is for the meaning engine ------------------------------------------------------


def test_like_matches_nothing_by_words_and_leaves_the_rest_alone() -> None:
    papers = [paper("LLM agents", "", 1), paper("Vision", "", 2)]
    assert ids("like:2403.12345", papers) == set()
    assert ids("LLM like:2403.12345", papers) == set()
    assert ids("LLM OR like:2403.12345", papers) == {"made-1"}
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
        with bulk_allocation():
            a_inside.set()
            b_inside.wait(5)
        a_done.set()

    def second() -> None:
        a_inside.wait(5)
        with bulk_allocation():
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


# --- a run of bare words names one idea -----------------------------------------------------


def test_bare_words_must_be_near_each_other_in_one_sentence() -> None:
    papers = [
        paper("One", "We study code generation with language models.", 1),
        paper("Two", "The generation of code by large models.", 2),  # any order, a few words apart
        paper("Three", "We study the code of conduct. The generation gap is large.", 3),  # two sentences
        paper("Four", "Our code base is old, and it is only tested after each nightly generation.", 4),  # far apart
        paper("Code generation", "Nothing else here.", 5),  # in the title
    ]
    assert ids("code generation", papers) == {"made-1", "made-2", "made-5"}
    assert ids("code OR generation", papers) == {f"made-{n}" for n in range(1, 6)}  # OR keeps each word alone
    assert ids("code AND generation", papers) == {"made-1", "made-2", "made-5"}  # AND is the same run
    assert ids('"code" "generation"', papers) == {f"made-{n}" for n in range(1, 6)}  # quoted one by one: anywhere


def test_the_window_is_the_run_length_plus_four() -> None:
    """Two words may have at most four other words between them; a third word widens it by one."""
    four_between = paper("A", "Sparse models with many small experts.", 1)  # sparse .. experts: 4 between
    five_between = paper("B", "Sparse models with very many small experts.", 2)  # 5 between
    assert ids("sparse experts", [four_between, five_between]) == {"made-1"}
    assert ids("sparse small experts", [five_between]) == {"made-2"}


def test_a_hyphenated_solid_word_takes_one_place_in_the_window() -> None:
    """``pretraining data quality`` finds what ``pre-training data quality`` finds: the paper's
    "pre-training" took two positions of a window that counts the solid word as one, so the
    solid topic missed the sentence. Only the excess is discounted: one word more, and
    neither finds it. The highlights are where matching found the run, in both spellings."""
    texts = {
        1: "We study what happens during pre-training, and high-quality text data helps.",
        2: "We study what happens during pre-training, and the high-quality text data helps.",
        3: "A multi-modal to multi-modal and fully learned mapping.",
    }
    papers = finds(texts, {"pretraining data quality": {1}, "pre-training data quality": {1},
                           "multimodal to multimodal mapping": {3}, "multi-modal to multi-modal mapping": {3}})
    for topic in ("pretraining data quality", "pre-training data quality"):
        (match,) = match_one(topic, papers)
        assert [texts for _, _, texts in shown(match, papers)] == [["pre-training"], ["data"], ["quality"]], topic
    (match,) = match_one("multimodal to multimodal mapping", papers)
    assert ("multimodal", "abstract", ["multi-modal", "multi-modal"]) in shown(match, papers)
    assert ("mapping", "abstract", ["mapping"]) in shown(match, papers)


def _occurrences():
    """Sorted, non-overlapping (first, last) occurrences: gaps and lengths drawn."""
    def placed(drawn: list[tuple[int, int]]) -> list[tuple[int, int]]:
        found, position = [], 0
        for gap, length in drawn:
            position += gap
            found.append((position, position + length - 1))
            position += length
        return found
    return st.lists(st.tuples(st.integers(0, 6), st.integers(1, 4)), min_size=1, max_size=4).map(placed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=2, max_size=4).flatmap(
    lambda widths: st.tuples(st.just(widths), st.tuples(*[_occurrences() for _ in widths]), st.integers(2, 12))))
def test_nearness_is_the_best_choice_of_occurrences(drawn) -> None:
    """The window test (matching's and explaining's, ``results.fits``) is exact: some choice of
    one occurrence per part spans fewer than ``limit`` positions once each occurrence's
    positions beyond its part's width are taken off."""
    from itertools import product

    from paperwire.match.results import fits

    widths, lists, limit = drawn
    best = min(max(last for _, last in chosen) - min(first for first, _ in chosen)
               - sum(max(0, last - first + 1 - width) for (first, last), width in zip(chosen, widths))
               for chosen in product(*lists))
    assert fits(list(map(list, lists)), limit, widths) == (best < limit)


def test_abbreviations_do_not_end_a_sentence() -> None:
    from paperwire.match.sentences import sentence_spans

    text = "Tasks (e.g. retrieval) are hard, as in Fig. 2 and Smith et al. 2020. Next one."
    assert [text[start:end] for start, end in sentence_spans(text)] == [text[:-10], "Next one."]
    papers = [paper("A", "We compare vs. retrieval.", 1), paper("B", "We compare. Retrieval is next.", 2)]
    assert ids("compare retrieval", papers) == {"made-1"}


def test_the_other_rules_still_hold_for_runs() -> None:
    papers = [
        paper("A", "We build LLM-based agents for the web.", 1),
        paper("B", "Large language model agents act.", 2),
        paper("C", "A survey of large language models. Agents are covered elsewhere.", 3),
        paper("D", "Multi modal agents act.", 4),
    ]
    assert ids("LLM agents", papers) == {"made-1", "made-2"}
    assert ids("LLM agents -survey", papers) == {"made-1", "made-2"}
    assert ids("multimodal agents", papers) == {"made-4"}
    assert ids('"language model" agents', papers) == {"made-2", "made-3"}  # a quoted phrase is its own item
    moe = [
        paper("A", "We train sparse MoE models.", 1),
        paper("B", "Sparse attention. We also use MoE.", 2),
        paper("C", "A sparse and very large mixture-of-experts model.", 3),
    ]
    assert ids("sparse mixture of experts", moe) == {"made-1", "made-3"}


def shown(match: Match, papers: Sequence[Paper]) -> list[tuple[str, str, list[str]]]:
    """Each hit of a match as (term, field, the texts it highlights)."""
    text = {field: field_text(papers[match.rank - 1], field) for field in ("title", "abstract")}
    return [(hit.term, hit.field, [text[hit.field][start:end] for start, end in hit.spans]) for hit in match.terms]


def found(query: str, papers: Sequence[Paper], title: str) -> Match:
    return next(match for match in match_one(query, papers) if papers[match.rank - 1].title == title)


def test_a_run_highlights_its_words_only_where_they_made_it_match(seed_papers: list[Paper]) -> None:
    """The run matched in one sentence of the abstract ("... training and inference
    efficiency, particularly for deploying LLMs ..."): "LLMs" of the title, the first
    sentence's "LLMs" and the later "efficiency" are not why, so they are not shown."""
    densing = found("efficient LLM inference", seed_papers, "Densing Law of LLMs")
    abstract = seed_papers[densing.rank - 1].abstract
    sentence = abstract.index("However, this scaling"), abstract.index("This paper introduces")
    assert shown(densing, seed_papers) == [
        ("efficient", "abstract", ["efficiency"]), ("LLM", "abstract", ["LLMs"]), ("inference", "abstract", ["inference"])]
    assert all(sentence[0] < start < end < sentence[1] for hit in densing.terms for start, end in hit.spans)
    # Written outside the run too, the word is shown wherever it is, as a single word always was.
    alone = found("LLM OR efficient LLM inference", seed_papers, "Densing Law of LLMs")
    assert ("LLM", "title", ["LLMs"]) in shown(alone, seed_papers)
    assert ("efficient", "abstract", ["efficiency"]) in shown(alone, seed_papers)


def test_a_runs_function_words_are_shown_only_inside_its_phrase() -> None:
    """``state of the art`` lit up "the" and "of" wherever they stood near its other words ("a
    new state-of-the-art in the open-source community"): on their own they say nothing."""
    papers = [paper("Results", "We set a new state-of-the-art in the open-source community.", 0)]
    (match,) = match_one("state of the art", papers)
    assert [(term, texts) for term, _, texts in shown(match, papers)] == [
        ("state", ["state"]), ("art", ["art"]), ("state of the art", ["state-of-the-art"])]


def test_a_run_word_in_capitals_is_shown_though_it_is_spelled_like_a_function_word() -> None:
    """"IT" of ``IT security`` may be an acronym, as topics of common words count it."""
    papers = [paper("Securing IT systems", "We study security of IT systems.", 0)]
    (match,) = match_one("IT security", papers)
    assert "IT" in [term for term, _, _ in shown(match, papers)]


def test_an_expansion_in_a_run_is_shown_as_the_phrase_that_made_it_match(seed_papers: list[Paper]) -> None:
    """``sparse mixture of experts`` matched Uni-MoE by "sparse MoE": not by every "of"."""
    uni_moe = found("sparse mixture of experts", seed_papers,
                    "Uni-MoE: Scaling Unified Multimodal LLMs with Mixture of Experts")
    assert shown(uni_moe, seed_papers) == [("sparse", "abstract", ["sparse"]), ("mixture of experts", "abstract", ["MoE"]),
                                           ("sparse mixture of experts", "abstract", ["sparse MoE"])]


# --- boilerplate is not matched text --------------------------------------------------------

BOILERPLATE = [
    "Code is available at https://github.com/example/project.",
    "Our code and data will be released.",
    "Project page: https://example.github.io/project",
    "Code for reproduction: https://example.org/repo",
    "The code is available at github.com/foo/bar.",
    "We release our code and models.",
    "Our code, data, and models are publicly available.",
]


def test_code_generation_ignores_code_availability_sentences() -> None:
    """The issue's example: a paper whose only "code" is boilerplate is not about code generation."""
    papers = [
        paper(f"Paper {n}", f"We study image generation with diffusion. {sentence} It works well.", n)
        for n, sentence in enumerate(BOILERPLATE)
    ]
    assert ids("code generation", papers) == set()
    assert ids("code", papers) == set()
    assert len(ids("generation", papers)) == len(BOILERPLATE)


def test_a_paper_about_code_is_found_and_its_spans_index_the_original_abstract() -> None:
    abstract = "Code is available at https://x.org/y. We improve code generation for Python. Our code will be released."
    [match] = match_one("code generation", [paper("A", abstract, 1)])
    for hit in match.terms:
        assert hit.field == "abstract"
        for start, end in hit.spans:
            assert abstract[start:end].lower() in ("code", "generation", "code generation")
            assert start > abstract.index("We improve") and end < abstract.index("Our code")


def test_substantive_sentences_are_not_boilerplate() -> None:
    for text in (
        "We release a new dataset of 10k videos for evaluating long video understanding across many domains.",
        "The model is available to the public via an API and it outperforms GPT-4 on reasoning.",
        "We evaluate on code generation benchmarks.",
        "Data quality matters more than model size.",
    ):
        assert boilerplate_spans(text) == [], text
    for sentence in BOILERPLATE:
        assert boilerplate_spans(f"We do X. {sentence}") != [], sentence


def test_a_claim_with_a_link_is_matched_text_but_its_link_is_not() -> None:
    """A sentence that says something and cites a link is what the paper is about; only the
    address is not matched text, whatever the sentence's length ("leaderboard-multimodal" in
    a link is no paper saying "multimodal"). A sentence that only points to a link still is
    boilerplate. Before, every sentence of 25 words or fewer with a link was left out, and
    a longer one was matched, address and all."""
    claims = {
        "SWE-bench": "Our model outperforms GPT-4 on SWE-bench (https://www.swebench.com).",
        "HumanEval": "We evaluate on HumanEval (https://example.org/humaneval) and MBPP.",
    }
    for n, (topic, sentence) in enumerate(claims.items()):
        text = f"We study agents. {sentence}"
        link = re.search(r"https://\S+(?=\))", sentence).group()  # type: ignore[union-attr]
        assert boilerplate_spans(text) == [(text.index(link), text.index(link) + len(link))], sentence
        assert ids(topic, [paper("Results", text, n)]) == {f"made-{n}"}, sentence
    long = ("We evaluate many long tasks across domains and settings, and report all results on the leaderboard at "
            "https://rank.example.org/leaderboard-multimodal, which compares the models and keeps growing.")
    assert ids("multimodal", [paper("Results", long)]) == set() and ids("leaderboard", [paper("Results", long)])
    around = paper("Results", "We report the leaderboard https://x.org/z multimodal results for many models and tasks.")
    assert ids('"leaderboard multimodal"', [around]) == set()  # a removed link leaves no phrase across it
    assert ids("multimodal", [paper("Results", "Results: see rank.example.ai/leaderboard-multimodal for the table.")]) \
        == set()  # a bare host and path, .ai too
    claim = "Models are found to be brittle when prompts change (https://example.org/a) in our study."
    assert ids("brittle prompts", [paper("Results", f"We study agents. {claim}")]) == {"made-0"}  # starts like a pointer
    for pointer in ("See https://example.org/x for details.", "Code and models: https://github.com/a/b.",
                    "The dataset and code are at https://github.com/a/b."):
        assert boilerplate_spans(f"We study agents. {pointer}") == [(17, 17 + len(pointer))], pointer


MORE_BOILERPLATE = [
    "The code and data are publicly available.",
    "Our code will be made available upon acceptance.",
    "Code and models will be released.",
    "Code can be found on our project page.",
    "The source code is open-sourced.",
    "Code and data are hosted on GitHub.",
    "Code will be shared upon request.",
    "The data is provided in the supplementary material.",
    "Code and data are provided.",
    "Model weights are publicly accessible.",
    "The dataset is made public.",
    "Code: available upon request.",
    "Demo: huggingface.co/spaces/org/demo",
    "We open-source our code.",
    "We make our code and data publicly available.",
    "We will share our code and models.",
    "We share our code and data with the research community.",
    "We make our code public.",
    "We share our code publicly.",
]

# Sentences that start like availability statements (an artifact, then "found", "shared",
# "public", "provided", or "we make / share" it) but say what the paper is about.
CONTENT_SENTENCES = {
    "brittle prompts": "Models are found to be brittle when prompts are paraphrased.",
    "transformer layers": "The weights are shared across all transformer layers.",
    "public health": "Data is scarce for many public health applications.",
    "ten demonstrations": "The model is provided with ten demonstrations per task.",
    "shared weights": "We share the weights across all transformer layers.",
    "label noise": "We make the model robust to label noise.",
}


def test_more_ways_of_saying_where_the_code_is_are_boilerplate() -> None:
    for sentence in MORE_BOILERPLATE:
        for text in (f"We do X. {sentence}", f"We do X: a study. {sentence}"):
            assert boilerplate_spans(text) == [(len(text) - len(sentence), len(text))], text
    papers = [
        paper(f"Paper {n}", f"We study image generation. {sentence}", n) for n, sentence in enumerate(MORE_BOILERPLATE)
    ]
    assert ids("code", papers) == set()


AVAILABILITY_PREDICATES = ["are released", "are publicly available", "will be made public", "are open-sourced",
                           "can be found on GitHub", "are provided in the supplementary material",
                           "will be shared upon request"]


@settings(max_examples=300, deadline=None)
@given(st.permutations(["code", "data", "models", "scripts"]).flatmap(lambda order: st.tuples(
    st.integers(1, 3).map(lambda count: order[:count]),  # three: within STATEMENT_WORDS with the longest predicate
    st.lists(st.sampled_from(["", "evaluation ", "training ", "trained ", "the ", "our ", "synthetic "]),
             min_size=len(order), max_size=len(order)),
    st.sampled_from([", ", " and "]),
    st.sampled_from(AVAILABILITY_PREDICATES),
)))
def test_availability_sentences_are_boilerplate_in_any_order_and_with_words_that_say_which(drawn) -> None:
    """"Data and evaluation code are released" is boilerplate as "Code and data are released" is:
    any order of the artifacts, each with a word that says which (evaluation code, training data)."""
    artifacts, modifiers, joiner, predicate = drawn
    named = [modifier + artifact for modifier, artifact in zip(modifiers, artifacts)]
    subject = named[0] if len(named) == 1 else joiner.join(named[:-1]) + " and " + named[-1]
    sentence = f"{subject[0].upper()}{subject[1:]} {predicate}."
    text = f"We study image generation. {sentence}"
    assert boilerplate_spans(text) == [(len(text) - len(sentence), len(text))], sentence


@pytest.mark.parametrize("sentence, boilerplate", [
    ("Data and evaluation code are released.", True),
    ("Our code, data and models are publicly available.", True),
    ("The dataset and code will be made public.", True),
    ("All code, data, and trained models are available.", True),
    ("We release our evaluation code and data.", True),
    # generated outputs and the code that makes them (a user's poetry paper matched `code generation`)
    ("Our generation code is open-sourced.", True),
    ("Our code and generation scripts will be released.", True),
    ("Source code and generated samples are available online.", True),
    ("All code, data and generations are released at our project page.", True),
    ("Audio samples are available on our demo page.", True),
    ("Generated samples are noisy for rare prompts.", False),
    ("Generations are often repetitive.", False),
    ("We release a dataset of 10k code reviews to study code generation.", False),
    ("We evaluate code generation on released benchmarks.", False),
    ("Code generation data are scarce and rarely released.", False),  # words that name a topic, not which data
    ("Training data are scarce for low-resource languages.", False),
    ("We make the training data robust to label noise.", False),
    # how often others make theirs available: a claim about the field, matched text
    ("Annotated data are rarely available.", False),
    ("Data are rarely available for low-resource languages.", False),
    ("Pretrained models are widely released by many labs.", False),
    ("Trained models are released every month by many labs.", False),
])
def test_which_availability_sentences_are_boilerplate(sentence: str, boilerplate: bool) -> None:
    text = f"We study robustness: a survey. {sentence}"  # a colon: the cheap pre-check passes
    assert boilerplate_spans(text) == ([(len(text) - len(sentence), len(text))] if boilerplate else []), sentence


def test_a_paper_whose_only_code_and_generation_are_its_release_sentence_is_not_about_code_generation() -> None:
    abstract = ("We study the meter of sonnets in English poetry across four centuries. "
                "Our generation code is open-sourced. We hope this helps.")
    assert ids("code generation", [paper("A Study of Sonnets and Meter in English Poetry", abstract, 0)]) == set()


def test_a_sentence_is_not_boilerplate_for_starting_with_models_or_data() -> None:
    """Only saying how artifacts can be had makes boilerplate: these sentences' words match."""
    for n, (topic, sentence) in enumerate(CONTENT_SENTENCES.items()):
        abstract = f"We study robustness: a survey. {sentence} It helps."  # a colon: the cheap pre-check passes
        assert boilerplate_spans(abstract) == [], sentence
        assert ids(topic, [paper("Results", abstract, n)]) == {f"made-{n}"}, sentence


def test_an_expansion_may_write_another_acronym_inside_it() -> None:
    """"multimodal LLM" is MLLM and "RL from human feedback" is RLHF: an expansion that
    contains another acronym's expansion may be written with that acronym. ``MLLM`` did not
    find "multimodal LLMs". A run that spells the expansion either way is that one term, so
    "an LLM that is multimodal" is not it."""
    finds({1: "We build multimodal LLMs for charts.", 2: "A multimodal large language model.",
           3: "MLLMs are here.", 4: "An LLM that is multimodal in some ways.", 5: "Large multimodal models."},
          {"MLLM": {1, 2, 3}, "multimodal LLM": {1, 2, 3}, '"multimodal LLM"': {1, 2, 3},
           "multimodal large language model": {1, 2, 3}})
    finds({1: "We align models with RL from human feedback.", 2: "RLHF aligns them.",
           3: "Reinforcement learning from human feedback.", 4: "RL on feedback from humans."},
          {"RLHF": {1, 2, 3}, '"RL from human feedback"': {1, 2, 3}, "VQA": set()})
    finds({1: "Visual QA is hard.", 2: "A deep RL agent.", 3: "Large VLMs see."},
          {"VQA": {1}, "DRL": {2}, "LVLM": {3}, "deep reinforcement learning": {2}})


def test_an_exclusion_at_the_end_excludes_from_every_side() -> None:
    """The tester's topic: ``MoE OR "mixture of experts" -survey`` brought a survey of MoE."""
    finds({1: "A survey of MoE models.", 2: "MoE layers scale.", 3: "A survey of the mixture of experts.",
           4: "Mixture of experts routing."},
          {'MoE OR "mixture of experts" -survey': {2, 4}, "(MoE -survey) OR routing": {2, 4},
           "(MoE -survey) OR survey": {1, 2, 3, 4}})


def test_a_number_grouped_with_commas_is_one_number() -> None:
    """"1,000 GPUs" never matched: the comma left a gap, as one between list items does."""
    finds({1: "Training on 1,000 GPUs.", 2: "Training on 1000 GPUs.", 3: "Steps 1, 000 GPUs and 1,2,3 GPUs.",
           4: "We use 10,000 GPUs.", 5: "A run on 1,000,000 GPUs."},
          {"1,000 GPUs": {1, 2}, '"1,000 GPUs"': {1, 2}, '"1000 GPUs"': {1, 2}, '"2,3 GPUs"': {3}, '"23 GPUs"': set(),
           '"10,000 GPUs"': {4}, "1000000": {5}, "1000": {1, 2}, "000": {3}})


def test_a_pasted_title_finds_its_paper_whatever_punctuation_it_has() -> None:
    """A comma, colon or "%" between a quoted phrase's words leaves a word position in the
    topic as in the paper ("Rotate, Then Round" found nothing); a phrase written without it
    still never runs across a list, while the same words unquoted are near each other."""
    papers = [paper("Rotate, Then Round: Outlier-Free 2-bit Weight Quantization", "", 1),
              paper("Transcending Scaling Laws with 0.1% Extra Compute", "", 2),
              paper("Inverse Scaling: When Bigger Isn't Better", "", 3),
              paper("Stress-testing RAG: what happens when retrieval fails", "", 4),
              paper("Results", "We rotate, then round the weights; vision, language and speech.", 5)]
    for title, number in [('"Rotate, Then Round: Outlier-Free 2-bit"', 1),
                          ('"Transcending Scaling Laws with 0.1% Extra Compute"', 2),
                          ('"Inverse Scaling: When Bigger Isn\'t Better"', 3), ('"Stress-testing RAG: what happens"', 4)]:
        assert ids(title, papers) == {f"made-{number}"}, title
    assert ids('"Rotate, Then Round"', papers) == {"made-1", "made-5"}
    assert ids('"rotate; then round"', papers) == {"made-1", "made-5"}  # any punctuation inside a sentence
    assert ids('"Rotate Then Round"', papers) == set()
    assert ids('"vision language"', papers) == set()
    assert ids('"vision, language"', papers) == {"made-5"}
    assert ids("Rotate Then Round", papers) == {"made-1", "made-5"}
    assert ids('"Rotate (Then) Round"', papers) == set()  # two gaps where the paper has one


def test_a_topic_phrased_as_a_question_needs_only_the_words_it_asks_about() -> None:
    """``what is RAG?`` found only the RAG paper that says "what", ``how do LLMs do math?``
    needed "do" twice, ``how does speculative decoding work?`` a paper saying "work". Question
    words and auxiliaries only ask, as connectives only connect; elsewhere they are words."""
    finds({1: "Stress-testing RAG: what happens when the index fails.", 2: "RAG for medicine.",
           3: "Speculative decoding with draft heads.", 4: "How do LLMs do math? We test them.",
           5: "LLMs solve math problems.", 6: "We study when to retrieve passages.", 7: "We retrieve passages.",
           8: "Retrieval augmented generation for law.", 9: "Can LLMs reason about plans?",
           10: "A bus network for intrusion detection.", 11: "Intrusion detection on the CAN bus can help.",
           12: "Pruning attention heads without retraining.", 13: "LLMs reason step by step."},
          {"what is RAG?": {1, 2, 8}, "What is RAG": {1, 2, 8}, "how does speculative decoding work?": {3},
           "how do LLMs do math?": {4, 5}, "why do LLMs solve math": {5},
           "can LLMs reason?": {9, 13}, "can LLMs reason ?": {9, 13}, "(can LLMs reason?) OR bus": {9, 10, 11, 13},
           "can LLMs reason": {9},  # an auxiliary alone opens a question only when a "?" closes it ...
           "do LLMs solve math?": {5}, "does speculative decoding work?": {3}, "should I prune attention heads?": {12},
           "should I use speculative decoding?": {3}, "do we need speculative decoding?": {3},
           "can bus intrusion detection": {11},  # ... "can" is a word here
           "CAN bus intrusion detection?": {11},  # in capitals, an acronym
           "how do we prune attention heads?": {12}, "how can I solve math": {5},  # who asks is no word of the paper
           "what is retrieval augmented generation?": {1, 2, 8},  # an expansion: its words read as one part
           "when to retrieve": {6}, "retrieve when": {6},  # no auxiliary after "when": not a question
           '"how do LLMs do math"': {4},  # a quoted phrase stays exact
           "speculative decoding work": set()})  # "work" only asks after "how"


@pytest.mark.parametrize("order", [1, -1])
def test_a_question_and_the_same_words_without_its_mark_are_two_topics_in_one_run(order: int) -> None:
    """Plans were shared by the topic's rendering, which has no "?": whichever of ``can LLMs
    reason?`` and ``can LLMs reason`` came first, both got its reading."""
    papers = [paper("Results", "Can LLMs reason about plans?", 9), paper("Results", "LLMs reason step by step.", 13)]
    topics = [("asks", "can LLMs reason?"), ("says", "can LLMs reason")][::order]
    found = compile_queries(topics).match(papers)
    assert {key: set(ranking.paper_ids()) for key, ranking in found.items()} == {
        "asks": {"made-9", "made-13"}, "says": {"made-9"}}


def test_words_that_only_ask_for_papers_need_not_be_in_them() -> None:
    """A tester's topics typed as requests found nothing by words, or a few papers where the
    topic alone found many: ``papers about model merging``, ``recent work on scaling laws``,
    ``scaling laws research``, ``latest diffusion models``, ``benchmarks for multimodal LLMs
    please``. A run's leading stretch that asks (ending in "on", "about", ...) and its trailing
    "papers", "please" or "research" are read as connectives; elsewhere they are words."""
    finds({1: "We merge models with task arithmetic.", 2: "Scaling laws for data.", 3: "Diffusion models for audio.",
           4: "Work stealing schedulers for GPUs.", 5: "Paper recommendation with citations.",
           6: "Operations research meets deep learning.", 7: "New physics from old data.",
           8: "Benchmarks for multimodal LLMs.", 9: "Summarizing scientific papers with citations.",
           10: "Deep research agents browse the web.", 11: "A pleasing picture."},
          {"papers about model merging": {1}, "anything on merging models": {1}, "recent work on scaling laws": {2},
           "scaling laws research": {2}, "latest diffusion models": {3}, "interests: scaling laws": {2},
           "keep me posted on anything about diffusion models": {3}, "I am interested in diffusion models": {3},
           "what are the latest papers on scaling laws?": {2}, "benchmarks for multimodal LLMs please": {8},
           "diffusion papers": {3},
           # a run that only asks, beside other terms: no condition (a reviewer's)
           'papers about "merge models"': {1}, "scaling laws -audio papers": {2}, "recent work on abstract:Benchmarks": {8},
           # a trailing word that is the topic: after a word that makes it one, or a connective
           "scientific papers": {9}, "summarizing for papers": {9}, "LLM deep research": set(), "deep research": {6, 10},
           # words, not requests: no word that leads to the topic, a field's name, a lone word
           "work stealing schedulers": {4}, "paper recommendation": {5}, "operations research": {6},
           "new physics": {7}, "papers": {5, 9},
           "recent papers": set(), "latest results": set(),  # nothing but asking words: those are the topic
           # a second tester's: "recent" before one word names a thing ("recent tokens")
           "recent data": set(), "latest diffusion models": {3}, "keywords: diffusion models": {3},
           "keywords data": set(),  # "keywords extraction" is a topic
           "I'm interested in diffusion models": {3}, "show me diffusion models": {3}, "diffusion models stuff": {3},
           "are there papers on scaling laws?": {2}, "can you recommend papers on scaling laws?": {2},
           # a side of a list that only asks is none ("scaling laws, please" found a paper "pleasing")
           "scaling laws, please": {2}, "scaling laws; papers please": {2}, "please": {11}})  # alone, the topic


def test_an_able_word_is_not_its_verb() -> None:
    """Snowball reads "interpretability" as "interpret": a tester's ``interpretability`` found a
    paper that only "interpreted" its inputs. The -able family keeps "abl", as "scalable" does."""
    finds({1: "Interpretable features of transformers.", 2: "Mechanistic interpretability at scale.",
           3: "The inputs are interpreted as tokens.", 4: "Explainable AI for health.", 5: "We explain the gains.",
           6: "Observables of the system.", 7: "An observable quantity.", 8: "Responsible AI in practice.",
           9: "Response generation for chat."},
          {"interpretability": {1, 2}, "interpretable": {1, 2}, "interpret": {3}, "explainability": {4},
           "observable": {6, 7}, "responsibility": {8}, "response": {9}})  # -ible as -able


def test_a_comparative_is_its_adjective() -> None:
    """A tester's ``smaller models`` missed the papers on small models: Snowball leaves "smaller"
    apart from "small". Not "longer": abstracts say "no longer"."""
    finds({1: "Long context for agents.", 2: "Longer context windows.", 3: "Small models can reason.",
           4: "The smallest models win.", 5: "Faster inference with drafts.", 6: "A later layer helps.",
           7: "Bigger and wider networks.", 8: "The context window is no longer a bottleneck.",
           9: "The longest context wins.", 10: "Large language models.", 11: "Fine-tuning models."},
          {"long context": {1, 9}, "longest context": {1, 9}, "longer context": {2, 8},  # the word as written "smaller models": {3, 4}, "fast inference": {5},
           "late layer": set(),  # "later" is not a comparative of papers
           "big networks": {7}, "wide networks": {7},
           "larger models": set(), "finer models": set()})  # a second tester's: "large language models", "fine-tuning"


REQUESTISH = st.lists(st.sampled_from(["papers", "about", "recent", "work", "on", "please", "research", "show", "me",
                                       "I", "am", "interested", "in", "latest", "keywords", "scaling", "laws", "RAG",
                                       "can", "LLMs", "reason", "do", "we", "need", "scientific", "for", "Papers"]),
                      min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(REQUESTISH, st.booleans())
def test_asking_words_leave_a_word_to_find_and_spare_capitals(words: list[str], question_mark: bool) -> None:
    """Whatever a reader types: some word of a run is left to find, and a word in capitals
    (maybe an acronym) never only asks; matching such a topic never fails."""
    from paperwire.match.plan import _asking

    asking = _asking(words, question_mark)
    if asking is not None:
        assert len(asking) == len(words) and not all(asking)
        assert not any(asks for word, asks in zip(words, asking) if len(word) > 1 and word.isupper())
    topic = " ".join(words) + ("?" if question_mark else "")
    match_one(topic, [paper("Scaling laws for RAG", "Can LLMs reason? We need papers on it.")])


def test_latex_dollars_are_not_punctuation() -> None:
    """"$k$-NN" and "$k$-means" are what a reader types as ``k-NN`` and ``k-means``."""
    finds({1: "A $k$-NN baseline.", 2: "We run $k$-means on the features.", 3: "A k nearest baseline, NN."},
          {"k-NN": {1}, '"k-NN"': {1}, "kNN": {1}, "k-means": {2}, '"k means"': {2}})


def test_an_expansion_in_a_run_is_as_wide_as_its_acronyms_longest_spelling() -> None:
    """``vision language model`` may be written "vision and language model", one position
    longer: a run holding it had a window one position short for that spelling."""
    finds({1: "Efficient methods for training the vision language model.",
           2: "Efficient methods for training the vision and language model.",
           3: "Efficient methods for training, then a lot of other things, the vision and language model."},
          {"efficient vision language model": {1, 2}})


def test_a_word_that_spells_two_expansions_is_as_wide_as_both_written_longest() -> None:
    """``vision-language-model/vision-language-model`` spells VLM twice, each of which may be
    written a word longer ("vision and language model"): the window gave a paper room for one
    such word, not two, so a shorter spelling had a word less room than one expansion gets."""
    words = " ".join(f"w{n}" for n in range(6))
    finds({1: f"We study vision language model {words[:-3]} agents.",  # five words between: one more than 4
           2: f"We study vision language model/vision language model {words} agents."},  # six: two more
          {"vision-language-model agents": {1}, "vision-language-model/vision-language-model agents": {2}})


def test_a_list_written_with_commas_finds_each_of_its_items() -> None:
    finds({1: "We prune the weights.", 2: "Distillation of a teacher.", 3: "A study of quantization.",
           4: "Pruning, quantization and distillation together."},
          {"quantization, pruning, distillation": {1, 2, 3, 4}, "RAG; quantization": {3, 4},
           "quantization pruning distillation": {4},
           "quantization,pruning,distillation": {1, 2, 3, 4}, "RAG;quantization": {3, 4}})  # no space: a list too


def test_a_slash_between_words_holds_them_together_as_a_hyphen_does() -> None:
    """``LLM/VLM`` and ``encoder/decoder`` are one term each (side by side, in any written form),
    not either word: a reader who means either is told by a reading hint (query.py)."""
    finds({1: "We compare LLM/VLM agents on web tasks.", 2: "An LLM-VLM pipeline.", 3: "VLM agents for robots.",
           4: "Encoder-decoder models translate.", 5: "The encoder and the decoder share weights."},
          {"LLM/VLM": {1, 2}, "LLM/VLM agents": {1}, "encoder/decoder": {4}, "LLM OR VLM": {1, 2, 3}})


def test_a_decimal_number_is_one_word() -> None:
    """``5B`` found "0.5B" and "Qwen2.5-Math-1.5B", ``3B`` "0.3B": the point split the number."""
    finds({1: "A 0.5B model and Qwen2.5-Math-1.5B-Instruct.", 2: "A 5B model.", 3: "We train a 3B model and a 0.3B one.",
           4: "Qwen 2.5 and Qwen-2.5 and Llama3.1."},
          {"5B": {2}, "3B": {3}, "0.3B": {3}, "1.5B": {1}, "Qwen2.5": {1, 4}, "Llama 3.1": {4}, "2.5": {4}})


def test_quantization_and_interpretability_acronyms_find_their_expansions() -> None:
    """``PTQ`` found nothing in two papers about "post-training quantization"; ``SAE features``
    missed "Sparse Autoencoders Find Interpretable Routing Features"."""
    finds({1: "We study post-training quantization of LLMs.", 2: "Quantization-aware training helps.",
           3: "Sparse autoencoders find interpretable features.", 4: "PTQ and QAT compared."},
          {"PTQ": {1, 4}, "QAT": {2, 4}, "SAE features": {3}, "sparse autoencoder": {3}})


def test_a_few_stems_snowball_gets_wrong_for_topics_are_our_own() -> None:
    """``adapters`` found papers that only "adapt"; ``data repetition`` missed "repeated data"
    and ``router collapse`` "routing collapse" (text.OWN_STEMS)."""
    finds({1: "We add LoRA adapters to each layer.", 2: "An adaptive method to adapt quickly.",
           3: "Training on repeated data hurts.", 4: "We study routing collapse in MoE."},
          {"adapters": {1}, "adaptation": {2}, "data repetition": {3}, "router collapse": {4}, "adaptor": {1}})
    finds({1: "Models under 3B parameters.", 2: "A 3B-param model."}, {"3B params": {1, 2}, "parameters": {1, 2}})



def test_the_ize_family_keeps_its_stem_and_latin_plurals_are_their_singulars() -> None:
    """A tester's ``tokenisation`` found 31 papers that only said "token", ``indices`` found
    "indicate", ``generalisation`` "General-Purpose", and ``criteria`` nothing beside "criterion"."""
    finds({1: "A new tokenizer for code.", 2: "Trillion-token pretraining.", 3: "Out-of-distribution generalization.",
           4: "A general-purpose model.", 5: "Sparse index structures.", 6: "Results indicate gains.",
           7: "Each criterion is scored.", 8: "We visualize attention maps.", 9: "A visual encoder.",
           10: "The size of the prize."},
          {"tokenisation": {1}, "tokens": {2}, "generalisation": {3}, "general": {4}, "indices": {5},
           "criteria": {7}, "visualisation": {8}, "visual": {9}, "size": {10}})

# --- what counts as a link: the edges (written before one regex served both questions) ----

@pytest.mark.parametrize("sentence, boilerplate", [
    ("Code: https://.", "Code: https://."),  # a scheme with nothing after it (a lost address) is a link
    ("Code: https://", "Code: https://"),
    ("See http://. for details", "See http://."),  # the sentence ends at ". "
    ("See www.x for details.", "See www.x for details."),
    ("See .com/x for details.", "See .com/x for details."),  # a host suffix and a path: a link, as before
    ("See example.com/. now", "See example.com/."),
    ("See example.com/ for details.", None),  # nothing after the slash: no link
    ("Code: HTTPS://EXAMPLE.ORG/A.", "Code: HTTPS://EXAMPLE.ORG/A."),
    ("Results: https://example.org/a).", "Results: https://example.org/a)."),
    ("Accepted at WWW.", None),  # a conference, not "www." (upper case)
])
def test_the_edges_of_what_is_a_link(sentence: str, boilerplate: str | None) -> None:
    text = f"We study agents: a survey. {sentence}"
    assert [text[start:end] for start, end in boilerplate_spans(text)] == ([boilerplate] if boilerplate else []), text


CLAIM = "We beat GPT-4 on many tasks in our long study of code agents {} and more."


@pytest.mark.parametrize("link, masked", [
    ("https://example.org/a_b", "https://example.org/a_b"),
    ("(https://example.org/a)", "https://example.org/a"),
    ("at example.ai/x.", "example.ai/x"),
    ("(see www.example.org).", "www.example.org"),
    # a claim's link that is only a scheme, "www." or a host and slash: masked since _LINK and
    # _ADDRESS became one (before, the sentence had a link but no address to mask)
    ("(https://)", "https://"),
    ("(see www.)", "www."),
    ("at example.com/. now", "example.com/"),
])
def test_a_claims_address_is_masked_without_the_punctuation_around_it(link: str, masked: str) -> None:
    text = CLAIM.format(link)
    assert [text[start:end] for start, end in boilerplate_spans(text)] == [masked], text


# --- short pointers: a demo, a bare host on a hosting domain --------------------------------

@pytest.mark.parametrize("sentence", [
    "A demo is available online.",
    "An interactive demo is available.",
    "A video is available on our project page.",
    "Project page: x.github.io.",
    "Project page: my-lab.gitlab.io",
    "Demo: huggingface.co.",
    "Docs: paperwire.readthedocs.io.",
    "See demo.netlify.app for details.",
    "Website: project.vercel.app.",
    "Demo at project.pages.dev.",
    "Project page: sites.google.com.",
    "Code and data are at lab.github.io.",
])
def test_a_demo_or_a_bare_host_on_a_hosting_domain_is_boilerplate(sentence: str) -> None:
    """No scheme and no path: "x.github.io" is a link all the same, on the domains that host
    project pages and demos. "A demo" starts an availability statement as "Our demo" does."""
    text = f"We study agents. {sentence}"
    assert boilerplate_spans(text) == [(17, len(text))], sentence


@pytest.mark.parametrize("sentence", [
    "A model is available for only three of the languages we study.",
    "A dataset is available for each task, but not for the rare ones.",
    "We compare pages hosted on github.io with those on other domains.",  # a domain, no host
    "Project pages are often hosted on huggingface.com mirrors.",  # not huggingface.co
])
def test_an_indefinite_artifact_or_a_bare_hosting_domain_is_not_a_pointer(sentence: str) -> None:
    text = f"We study agents: a survey. {sentence}"
    assert boilerplate_spans(text) == [], sentence


# --- short claims about the field are matched text -----------------------------------------

@pytest.mark.parametrize("sentence", [
    "Models for code generation are publicly available, but their training data is not.",
    "Models for code generation are publicly available.",
    "Datasets for low-resource languages are rarely public.",
    "Benchmarks for code generation are released while their test sets leak.",
    "Code for most papers is never released.",
    "Data for many tasks are not publicly available.",
    "Models are released, but their data are not.",
    "Our code is available, although the data cannot be shared.",
    "The weights are public whereas the training data are not.",
])
def test_a_short_claim_about_the_field_is_matched_text(sentence: str) -> None:
    """What others make available (a noun "for" some task, with no "our" or "the"), a contrast
    ("but", "while", "although", "whereas") or a negation: a claim, not a pointer."""
    text = f"We study robustness: a survey. {sentence}"
    assert boilerplate_spans(text) == [], sentence


@pytest.mark.parametrize("sentence", [
    "Code for reproducing our experiments is available.",
    "Code for Superpipeline is available.",
    "The code for our experiments is released.",
    "Code is available now, while data will be released upon acceptance.",  # both halves point
    "Our code is released, but the data will be shared upon request.",
])
def test_pointers_with_for_or_with_two_halves_are_still_boilerplate(sentence: str) -> None:
    text = f"We study robustness: a survey. {sentence}"
    assert boilerplate_spans(text) == [(len(text) - len(sentence), len(text))], sentence


# --- release statements of any length --------------------------------------------------------

RELEASE_STATEMENTS = [
    "We are publicly releasing the TicketTalk dataset and our code to facilitate future research on dialogue systems.",
    "We are publicly releasing the TicketTalk dataset with this paper to facilitate future work on transaction-based "
    "dialogs.",
    "To facilitate future research on multilingual code generation, we release our code, data and trained models.",
    "We will release the MassiveDS dataset and all our code to support further research in retrieval-based language "
    "models.",
    "We make the benchmark and our evaluation code publicly available to enable future research on long-context "
    "reasoning.",
    "We make publicly available the dataset, the code and the model checkpoints to encourage further research in this "
    "area.",
    "We release all code, data and model weights under the MIT license to foster reproducibility and further research.",
    "The TicketTalk dataset and our code are publicly released to facilitate future research on dialogue systems.",
    "We also release the code and the annotated data to allow for further investigation of inverse scaling in language "
    "models.",
    "Finally, we open-source our code and the trained models to facilitate reproducibility and future research on code "
    "agents.",
    "We release our code and models.",
    "We also release the code to replicate our results.",
    "We publish the dataset and the models to enable future research in this area.",
]

# Sentences that begin like a release statement but say what the work does or found: matched text.
RELEASE_LIKE_CLAIMS = [
    "We release the model's hidden states to the verifier at every step.",
    "We release the model's hidden states early.",
    "We release the data to annotators in small batches.",
    "We release the code and show it works.",
    "Our models are released to the public for research on code generation and outperform GPT-4.",
    "We release our models for future research on program repair, where they beat GPT-4.",
    "The data are made available for research on dialogue and we find they improve agents.",
    "We release our model from the constraint early.",
    "We release a new dataset of 10k videos to facilitate future research on long video understanding.",
    "We release a benchmark of 2,000 code generation tasks with unit tests to facilitate future research on program "
    "synthesis.",
    "To support further research in this area, we release three new 13B parameter long-context models which we call "
    "Giraffe.",
    "We release our code generation models, which achieve state-of-the-art results on HumanEval, to facilitate future "
    "research.",
    "We make our models publicly available and show that they transfer to twelve new languages, supporting future "
    "research.",
    "We release the data to annotators in small batches to enable future research on annotation agreement.",
    "We release the weights of the reward model to the policy only after convergence to facilitate stable training.",
    "We release the constraint on sequence length gradually during training to enable future research on curricula.",
    "We make the code generation model robust to adversarial prompts to support future research on safety.",
    "We release models that are three times smaller than prior work to facilitate future research on efficient "
    "inference.",
    "We publish the models' predictions on the leaderboard after each round to enable fair comparison in future "
    "research.",
    "We release the dataset in stages so that models cannot memorize it, to support future research on contamination.",
    "We open-source the training recipe and find that it cuts compute by 40% to facilitate further research.",
    "We share the model weights across all layers of the decoder to enable future research on parameter-efficient "
    "models.",
    "We provide the model with ten demonstrations per task to enable future research on in-context learning.",
    "We release the code generation benchmark, which contains 1,200 problems in 14 languages, to support future "
    "research.",
    "We make the data available to the model only at test time to facilitate future research on retrieval.",
    "We release the first open dataset of code review comments to facilitate future research on code generation.",
    "We release the model checkpoints every 1,000 steps so that we can study how code generation abilities emerge.",
    "We are releasing the models in a staged manner to study misuse and to facilitate future research on safety.",
    "To facilitate future research, we show that code generation models can be trained with ten times less data.",
]


@pytest.mark.parametrize("sentence", RELEASE_STATEMENTS)
def test_a_release_statement_is_boilerplate_at_any_length(sentence: str) -> None:
    """"We release X and Y to facilitate future research on Z" says where things are, however
    long the topic it names: over STATEMENT_WORDS words and without a link it was matched."""
    text = f"We study dialogue: a survey. {sentence}"
    assert boilerplate_spans(text) == [(len(text) - len(sentence), len(text))], sentence


@pytest.mark.parametrize("sentence", RELEASE_LIKE_CLAIMS)
def test_a_claim_that_starts_like_a_release_statement_is_matched_text(sentence: str) -> None:
    """Something new ("a new dataset of 10k videos"), a clause that says more ("which achieve
    state-of-the-art results", "and show that"), or a release that is part of the method ("to
    the verifier", "to annotators"): what the paper is about."""
    text = f"We study dialogue: a survey. {sentence}"
    assert boilerplate_spans(text) == [], sentence


def test_a_release_statement_is_found_in_an_abstract_with_no_other_cue_word() -> None:
    """"publish" and "provide" are cue words too: without them the abstract was not split."""
    for statement in ("We publish the dataset and the models to enable future research in this area.",
                      "We provide the code and the data to facilitate reproducibility."):
        text = f"We study dialogue agents. {statement}"
        assert boilerplate_spans(text) == [(26, len(text))], statement


def test_a_paper_that_only_releases_code_is_not_about_code_generation() -> None:
    abstract = ("We study dialogue agents for ticket booking. We are publicly releasing the TicketTalk dataset and our "
                "code to facilitate future research on code generation and dialogue systems.")
    assert ids("code generation", [paper("TicketTalk", abstract)]) == set()
    claim = ("We study dialogue agents for ticket booking. We release our code generation models, which achieve "
             "state-of-the-art results on HumanEval, to facilitate future research.")
    assert ids("code generation", [paper("TicketTalk", claim)]) == {"made-0"}


@settings(max_examples=200, deadline=None)
@given(st.tuples(
    st.sampled_from(["We release", "We are publicly releasing", "We will release", "We open-source",
                     "We will make publicly available"]),
    st.lists(st.sampled_from(["the TicketTalk dataset", "our code", "the trained models", "all data",
                              "our evaluation scripts", "the benchmark"]), min_size=1, max_size=3, unique=True),
    st.sampled_from(["to facilitate future research on dialogue systems", "to support further research in this area",
                     "to enable reproducibility", "for future research on code generation and program repair"]),
    st.sampled_from([", which outperform GPT-4 on HumanEval", " and show that they transfer to new languages",
                     " to the verifier at every step", " in stages so that models cannot memorize them",
                     ", but not the raw logs"]),
))
def test_a_release_statement_with_a_claim_after_it_is_matched_text(drawn) -> None:
    """The same release statement is boilerplate alone and matched text with a claim after it."""
    verb, things, why, claim = drawn
    released = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
    statement = f"{verb} {released} {why}."
    text = f"We study dialogue: a survey. {statement}"
    assert boilerplate_spans(text) == [(len(text) - len(statement), len(text))], statement
    sentence = f"{verb} {released}{claim} {why}."
    assert boilerplate_spans(f"We study dialogue: a survey. {sentence}") == [], sentence


def test_text2image_is_text_to_image() -> None:
    """``text2image`` found nothing where ``t2i`` and ``text to image`` found the papers."""
    finds({1: "Text2Image models draw.", 2: "Text-to-image models draw.", 3: "T2I models draw.", 4: "Image to text."},
          {"text2image": {1, 2, 3}, "T2I": {1, 2, 3}, "text to image": {1, 2, 3}})


def test_a_long_release_like_sentence_is_read_in_linear_time() -> None:
    """A sentence of many "how" words that fails the release rule backtracked 2**n ways: 20
    repeats of " publicly" took 6.6 s, and every abstract is read so when a listing is indexed."""
    import time

    for repeats in (20, 200):
        text = "We release our code" + " publicly" * repeats + " x."
        started = time.perf_counter()
        boilerplate_spans(text)
        assert time.perf_counter() - started < 0.5, repeats
