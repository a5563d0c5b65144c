"""A paper found by meaning alone highlights its abstract's sentence closest to the topic
(explain.py), on the real model: in the digest's HTML part, the excerpt, the archive page.
"""

from __future__ import annotations

import dataclasses
import email
import logging
import re
from email import policy
from pathlib import Path


from paperwire import embeddings, explain, pipeline, semantic, sources
from paperwire.config import Settings
from paperwire.digest import by_meaning_alone
from paperwire.embeddings import get_embedder, text_key
from paperwire.models import Digest, DigestItem
from paperwire.paperview import item_view
from paperwire.render import EmailRenderer
from paperwire.store import Store
from paperwire.subscribers import build_subscriber, make_topic

from .conftest import SEED, TODAY
from .test_web import EDITION, make_site

SCALE = "SCALE: Synergized Collaboration of Asymmetric Language Translation Engines"
# The sentence that says what SCALE is: a translation engine (the model picks it; it is the right one).
SCALE_SENTENCE = ("In this paper, we introduce SCALE, a collaborative framework that connects compact Specialized "
                  "Translation Models (STMs) and general-purpose Large Language Models (LLMs) as one unified "
                  "translation engine.")
CODEGEN2 = "CodeGen2: Lessons for Training LLMs on Programming and Natural Languages"
# Past the excerpt's cut: the one sentence of CodeGen2's abstract about program synthesis.
CODEGEN2_SENTENCE = ("In this study, we attempt to render the training of LLMs for program synthesis more efficient "
                     "by unifying four key components: (1) model architectures, (2) learning methods, (3) infill "
                     "sampling, and, (4) data distributions.")


def _seeded(store: Store, *queries: str) -> None:
    store.save_listings(sources.read_path(SEED, today=TODAY))
    store.save_subscribers([build_subscriber("lin@example.org", status="active",
                                             topics=[make_topic(None, query) for query in queries])])


def _plan(store: Store, settings: Settings) -> Digest:
    (planned,) = pipeline.plan_digests(store, settings, store.subscribers(), edition=store.latest_listing_date(),
                                       with_history=False)
    return planned


def _item(planned: Digest, title: str) -> DigestItem:
    return next(item for section in planned.sections for item in section.items if item.paper.title == title)


def _sentence_vectors(store: Store, item: DigestItem) -> int:
    keys = [text_key(part) for part in semantic.sentences(item.paper.abstract)]
    return len(store.stored_vector_keys(get_embedder().model_id, keys))


def test_a_paper_found_by_meaning_alone_shows_its_closest_sentence_in_the_html_part(store, tmp_path):
    _seeded(store, "machine translation", "code generation")
    settings = Settings(out_dir=tmp_path / "out")
    planned = _plan(store, settings)
    scale = _item(planned, SCALE)
    assert by_meaning_alone(scale) and scale.reason.startswith("related to your topic, similarity")
    start = scale.paper.abstract.index(SCALE_SENTENCE)
    assert scale.hits == (("", "abstract", ((start, start + len(SCALE_SENTENCE)),)),)
    (written,) = pipeline.write_digests([planned], settings, EmailRenderer(settings.templates_dir), tmp_path / "out")
    message = email.message_from_bytes(written.eml.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    # In <strong>, and the excerpt starts with it (nothing of the abstract, no "…", before it).
    assert re.search(rf">\s*<strong>{re.escape(SCALE_SENTENCE)}</strong> By introducing translation", html)
    view = item_view(scale, settings)
    assert view.abstract_html.startswith(f"<strong>{SCALE_SENTENCE}</strong>") and view.matched == ""
    # Beyond the cut, the excerpt starts at the sentence.
    codegen = item_view(_item(planned, CODEGEN2), settings)
    assert codegen.abstract_html.startswith(f"…<strong>{CODEGEN2_SENTENCE}</strong>")


def test_word_matches_keep_their_highlights_and_gain_none(store):
    _seeded(store, "machine translation", "code generation")
    planned = _plan(store, Settings())
    words_only = _plan(store, Settings(relevance_embedder="off"))
    by_words = {item.paper.id: item.hits for section in words_only.sections for item in section.items}
    shown = [item for section in planned.sections for item in section.items if item.paper.id in by_words]
    assert len(shown) >= 5 and all(item.hits == by_words[item.paper.id] for item in shown)
    predictable = _item(planned, "Deep Learning Scaling is Predictable, Empirically")
    assert "<strong>machine translation</strong>" in item_view(predictable, Settings()).abstract_html


def test_the_work_of_a_run_is_bounded_and_stored_sentences_are_free(store, monkeypatch):
    _seeded(store, "machine translation", "code generation")
    monkeypatch.setattr(explain, "NEW_PAPERS_PER_RUN", 1)
    first = _plan(store, Settings())
    found = [item for item in (_item(first, SCALE), _item(first, CODEGEN2)) if item.hits]
    assert len(found) == 1  # one paper's sentences embedded, the other shown without a highlight
    stored = {title: _sentence_vectors(store, _item(first, title)) for title in (SCALE, CODEGEN2)}
    assert sorted(stored.values())[0] == 0
    second = _plan(store, Settings())  # the first paper's sentences are stored: only the other is new
    assert _item(second, SCALE).hits and _item(second, CODEGEN2).hits
    assert _item(second, found[0].paper.title).hits == found[0].hits


def test_a_model_that_cannot_load_costs_the_highlight_not_the_digest(store, monkeypatch, caplog):
    _seeded(store, "machine translation")
    semantic.embed_step(store, get_embedder(), [item.paper for item in store.papers()],
                        topic_queries=store.topic_queries())  # matching then reads stored vectors only
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)  # a corrupted install since
    monkeypatch.setattr(embeddings, "_loaded", {})
    with caplog.at_level(logging.ERROR):
        planned = _plan(store, Settings())
    scale = _item(planned, SCALE)
    assert by_meaning_alone(scale) and scale.hits == ()  # still found by meaning, without the highlight
    assert "no closest-sentence highlights in this run" in caplog.text and "expected 0000" in caplog.text


def test_nothing_is_highlighted_with_the_embedder_off(store):
    _seeded(store, "machine translation")
    planned = _plan(store, Settings(relevance_embedder="off"))
    assert all(hit.term for section in planned.sections for item in section.items for hit in item.hits)
    assert store.count_vectors() == 0


def test_the_archive_page_shows_the_sentences_the_digest_run_stored_and_embeds_none(new_db, tmp_path: Path):
    site = make_site(new_db, tmp_path)
    try:
        reader = site.reader("lin@example.org", "machine translation")
        semantic.embed_step(site.store, get_embedder(), [item.paper for item in site.store.papers()],
                            topic_queries=[t.query for t in reader.topics])  # web pages never embed papers
        url = f"/archive/{reader.token}/{EDITION}"
        page = site.client.get(url)
        assert page.status_code == 200 and "SCALE: Synergized" in page.text
        assert SCALE_SENTENCE in page.text and f"<strong>{SCALE_SENTENCE}" not in page.text
        assert not site.store.stored_vector_keys(get_embedder().model_id, [text_key(SCALE_SENTENCE)])  # none embedded
        _plan(site.store, site.settings)  # the digest run embeds and stores the sentences
        again = site.client.get(url)
        assert f"<strong>{SCALE_SENTENCE}</strong>" in again.text
        assert "<strong>machine translation</strong>" in again.text  # word matches as they were
    finally:
        site.client.close()
        site.store.close()


def test_highlights_of_many_digests_cost_the_same_few_statements_as_of_a_few(store, monkeypatch):
    """The closest sentences' vectors are read for many digests together, not item by item:
    item by item, the look-ups took 113-120 s of a 163-172 s 100,000-reader run (bench/plan.py)."""
    import sqlalchemy as sa

    store.save_listings(sources.read_path(SEED, today=TODAY))
    # Each reader's own topic text, the same meaning: per-topic and per-item reads would grow.
    store.save_subscribers([build_subscriber(f"r{n:02d}@example.org", status="active",
                                             topics=[make_topic(None, f"machine translation -zebra{n}")])
                            for n in range(40)])
    readers, edition = store.subscribers(), store.latest_listing_date()
    list(pipeline.plan_digests(store, Settings(), readers, edition=edition, with_history=False))  # vectors stored
    monkeypatch.setattr(explain, "NEW_PAPERS_PER_RUN", 0)  # then only reads are counted

    def planned(count_of: int) -> tuple[int, int]:
        statements: list[str] = []

        def count(*args):
            statements.append(args[2])

        sa.event.listen(store.engine, "before_cursor_execute", count)
        digests = list(pipeline.plan_digests(store, Settings(), readers[:count_of], edition=edition, with_history=False))
        sa.event.remove(store.engine, "before_cursor_execute", count)
        highlighted = [item for digest in digests for section in digest.sections for item in section.items
                       if by_meaning_alone(item) and item.hits]
        assert len(highlighted) >= count_of  # every reader has SCALE at least, highlighted
        return len(statements), len(digests)

    planned(3)  # the run's caches (the papers' vectors as a matrix) filled
    few, many = planned(3), planned(40)
    assert few[0] == many[0] and many[1] == 40, (few, many)


def test_the_collector_waits_while_a_batch_of_digests_is_made_never_while_the_caller_uses_it(store, monkeypatch):
    """With 100,000 readers' matches on the heap each collection scans them all (11 s of a
    run, bench/plan.py), so a batch is made with the collector paused; the caller's own work
    between batches (rendering, sending) runs with it, or its cycles would pile up."""
    import gc

    from paperwire import digest

    _seeded(store, "machine translation", "LLM")
    collecting = []
    real = digest.build_digest
    monkeypatch.setattr(digest, "build_digest", lambda *args, **kwargs: collecting.append(gc.isenabled())
                        or real(*args, **kwargs))
    planned = pipeline.plan_digests(store, Settings(relevance_embedder="off"), store.subscribers(),
                                    edition=store.latest_listing_date())
    assert gc.isenabled()
    for _ in planned:
        assert gc.isenabled()
    assert collecting == [False] and gc.isenabled()


def test_a_failure_while_reading_costs_the_highlights_it_touches_only(store, monkeypatch, caplog):
    """A batch's vectors are read together; should that fail, each (paper, topic) is tried on
    its own: here every read of one topic's vectors fails, and the other topic's papers keep
    their highlights."""
    _seeded(store, "machine translation", "code generation")
    real = explain.ClosestSentences._topic_vectors

    def topic_vectors(self, queries):
        if "code generation" in queries:
            raise RuntimeError("injected: this topic's vectors cannot be read")
        return real(self, queries)

    monkeypatch.setattr(explain.ClosestSentences, "_topic_vectors", topic_vectors)
    with caplog.at_level(logging.WARNING):
        planned = _plan(store, Settings())
    assert _item(planned, SCALE).hits  # under "machine translation"
    codegen = _item(planned, CODEGEN2)  # under "code generation"
    assert by_meaning_alone(codegen) and codegen.hits == ()
    assert "trying each alone" in caplog.text and f"no closest sentence for paper {codegen.paper.id}" in caplog.text


def test_a_paper_found_by_meaning_alone_without_an_abstract_is_shown_without_a_highlight(store, caplog):
    """Nothing to highlight is no failure: nothing logged."""
    from paperwire.models import DigestSection, Paper

    _seeded(store, "machine translation")
    planned = _plan(store, Settings())
    scale = _item(planned, SCALE)
    bare = dataclasses.replace(scale, paper=dataclasses.replace(scale.paper, id="t-bare", abstract=""), hits=())
    digest = dataclasses.replace(planned, sections=(DigestSection(planned.sections[0].topic, (bare,)),))
    closest = explain.ClosestSentences(store, get_embedder())
    with caplog.at_level(logging.WARNING):
        (item,) = closest.digest(digest).sections[0].items
    assert item == bare and isinstance(item.paper, Paper) and caplog.text == ""


SUPER = "t-ef1f7d998a85e442"  # SUPER: Evaluating Agents on Setting Up and Executing Tasks from Research Repositories
MMAU = "MMAU: A Holistic Benchmark of Agent Capabilities Across Diverse Domains"


def test_a_paper_an_example_found_names_it_though_the_topics_meaning_came_closer(store):
    """``agents OR like:SUPER`` finds MMAU by its words, its meaning and the example: each is
    said (``why``), and the reason line names the liked paper with MMAU's similarity to it,
    not the meaning's (it was "related to your topic, similarity 0.41", the example unsaid)."""
    topic = f"agents OR like:{SUPER}"
    _seeded(store, topic)
    settings = Settings()
    mmau = _item(_plan(store, settings), MMAU)
    papers = [found.paper for found in store.papers()]

    def found(query: str):
        (match,) = [m for m in semantic.match_topics([(0, query)], papers, settings, store)[0]
                    if m.paper_id == mmau.paper.id]
        return match

    both, example = found(topic), found(f"like:{SUPER}")
    assert both.why == ("words", "meaning", "example") and both.like == SUPER
    assert abs(both.like_similarity - example.similarity) < 1e-6
    assert example.similarity < both.similarity  # the topic's meaning came closer
    assert mmau.reason.startswith("like: SUPER: Evaluating Agents on Setting Up")
    assert mmau.reason.endswith(f"(similarity {example.similarity:.2f})") and mmau.hits  # its words are shown too


FAST = "Fast and Slow Generating: An Empirical Study on Large and Small Language Models Collaborative Decoding"


def test_a_paper_found_by_meaning_lists_the_words_its_topic_required_and_its_closest_sentence(store, tmp_path):
    """``title:(efficient OR fast)`` was checked by words: "Fast" in the title is listed under
    "matched:" (it was not: issue 14). It says only that the paper passed the condition, not
    why it is about the topic, so the closest sentence is highlighted too, as without it."""
    _seeded(store, "faster decoding title:(efficient OR fast)")
    settings = Settings(out_dir=tmp_path / "out")
    planned = _plan(store, settings)
    fast = _item(planned, FAST)
    assert fast.reason.startswith("related to your topic") and by_meaning_alone(fast)
    sentence = fast.hits[1]
    assert fast.hits == (("fast", "title", ((0, 4),)), ("", "abstract", sentence.spans))
    view = item_view(fast, settings)
    assert view.matched == "fast" and "<strong>" in view.abstract_html
    (written,) = pipeline.write_digests([planned], settings, EmailRenderer(settings.templates_dir), tmp_path / "out")
    message = email.message_from_bytes(written.eml.read_bytes(), policy=policy.default)
    assert re.search(r"matched:\s*fast\b", message.get_body(("plain",)).get_content())
    store.save_subscribers([build_subscriber("lin@example.org", status="active",
                                             topics=[make_topic(None, "faster decoding")])])
    alone = _item(_plan(store, settings), FAST)
    assert alone.hits == (sentence,)  # the same sentence, without the condition's word
