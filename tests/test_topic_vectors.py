"""Topic vectors are stored when a topic is saved, by every path that saves topics, on the
real model (loaded once per session); a model that cannot load never fails the save.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from paperwire import embeddings, pipeline, semantic, sources
from paperwire.config import Settings
from paperwire.embeddings import MiniLMInt8, get_embedder, text_key
from paperwire.store import Store

from .conftest import DATA, SEED, TODAY
from .test_web import ADMIN, Site, make_site

MODEL = MiniLMInt8.model_id


def _stored(store: Store, *texts: str) -> set[str]:
    """Which of ``texts`` have a vector of the default model."""
    keys = {text_key(text): text for text in texts}
    return {keys[key] for key in store.stored_vector_keys(MODEL, list(keys))}


@pytest.fixture
def broken_model(monkeypatch):
    """The model as a corrupted install makes it: it cannot load (its file's digest is wrong)."""
    monkeypatch.setattr(embeddings, "MODEL_SHA256", "0" * 64)
    monkeypatch.setattr(embeddings, "_loaded", {})


# -- the CLI ------------------------------------------------------------------------------


def test_subscribe_stores_the_vector_of_each_topic_text(run_cli, store):
    result = run_cli("subscribe", "ada@example.org", "--topic", "walking robots",
                     "--topic", "Serving=LLM serving -survey", "--topic", "MoE OR sparse experts", "--topic", "*")
    assert result.exit_code == 0, result.output
    serving = "LLM (large language model) serving"  # an acronym among words: with what it stands for
    assert _stored(store, "walking robots", serving, "sparse experts") == {"walking robots", serving, "sparse experts"}
    assert store.count_vectors() == 3  # an acronym alone and * have nothing to embed
    vector = store.vectors(MODEL, [text_key("walking robots")])[text_key("walking robots")]
    assert vector @ get_embedder().embed(["walking robots"])[0] == pytest.approx(1.0, abs=1e-5)


def test_topics_add_and_subscribers_import_store_topic_vectors(run_cli, store, tmp_path):
    assert run_cli("topics", "add", "Legged", "legged locomotion").exit_code == 0
    assert _stored(store, "legged locomotion") == {"legged locomotion"}
    readers = tmp_path / "readers.json"
    readers.write_text(json.dumps([{"email": "bob@example.org", "topics": [{"name": "T", "query": "protein folding"},
                                                                          {"name": "Legged", "query": "legged locomotion"}]}]),
                       encoding="utf-8")  # a public topic is followed by its name and query (import has no "follow")
    result = run_cli("subscribers", "import", readers)
    assert result.exit_code == 0, result.output
    assert _stored(store, "protein folding") == {"protein folding"}


def test_a_model_that_cannot_load_costs_the_vectors_not_the_save(run_cli, store, broken_model):
    result = run_cli("subscribe", "ada@example.org", "--topic", "walking robots")
    assert result.exit_code == 0, result.output
    assert [t.query for t in store.subscriber("ada@example.org").topics] == ["walking robots"]
    assert store.count_vectors() == 0
    said = [line for line in result.stderr.splitlines() if "topic vectors not stored" in line]
    assert len(said) == 1 and "expected 0000" in said[0]


def test_nothing_is_embedded_when_the_embedder_is_off(run_cli, store, monkeypatch):
    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")
    assert run_cli("subscribe", "ada@example.org", "--topic", "walking robots").exit_code == 0
    assert store.count_vectors() == 0


def test_a_like_topic_stores_its_example_papers_vectors(store):
    store.save_listings(sources.read_path(DATA / "daily_wrapped.txt", today=TODAY))
    paper = store.papers()[0].paper
    assert semantic.embed_saved_topics(store, Settings(), [f"like:{paper.id} OR walking robots"]) == 3
    assert _stored(store, *semantic.paper_texts(paper), "walking robots") == {*semantic.paper_texts(paper),
                                                                               "walking robots"}
    assert semantic.embed_saved_topics(store, Settings(), [f"like:{paper.id}", "like:2401.99999"]) == 0  # once


def test_a_meaning_topic_finds_papers_by_what_its_acronyms_stand_for_with_the_vector_stored_at_save(store):
    """The model barely knows "MoE": ``meaning: MoE`` embedded as typed found nothing in the seed
    listing. Its acronym is embedded spelled out, and saving, the embedding step and matching
    all use that one text, so matching embeds nothing the save should have."""
    store.save_listings(sources.read_path(SEED, today=TODAY))
    settings = Settings()
    topics = ["meaning: MoE", "meaning: rag -survey"]
    assert semantic.embed_saved_topics(store, settings, topics) == 2
    spelled = ("MoE (mixture of experts)", "rag (retrieval augmented generation)")
    assert _stored(store, *spelled) == set(spelled)
    assert pipeline.embed(store, settings).topics == 0  # the step has them already
    papers = [found.paper for found in store.papers()]
    stored = store.count_vectors()
    found = semantic.match_topics(list(enumerate(topics)), papers, settings, store)
    assert store.count_vectors() == stored  # nothing embedded while matching
    titles = {paper.id: paper.title for paper in papers}
    by_meaning = {topic: [titles[match.paper_id] for match in found[topic] if match.why == ("meaning",)]
                  for topic in found}
    assert "A Survey on Mixture of Experts" in by_meaning[0]
    assert any(title.startswith("Pistis-RAG") for title in by_meaning[1])


def test_example_papers_are_read_in_a_few_queries_however_many(store):
    """A dispatch reads the ``like:`` examples of every reader at once: not a query per paper."""
    import sqlalchemy as sa

    store.save_listings(sources.read_path(DATA / "daily_wrapped.txt", today=TODAY))
    stored = [found.paper for found in store.papers()]
    refs = [paper.arxiv_id + "v2" if paper.arxiv_id else paper.id for paper in stored] + ["2401.99999"]
    statements = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    found = semantic.example_papers(store, refs)
    assert {ref: paper.id for ref, paper in found.items()} == {
        ref: paper.id for ref, paper in zip(refs, stored)}  # versions dropped, the unknown left out
    assert found[refs[0]] == stored[0]  # links and all
    assert len(statements) <= 3, statements


# -- the web app: after the answer -------------------------------------------------------------


@pytest.fixture
def site(new_db, tmp_path) -> Site:
    made = make_site(new_db, tmp_path)
    yield made
    made.client.close()
    made.store.close()


def _form(site: Site, url: str, topics: str) -> dict:
    return {"csrf_token": site.csrf(url), "topics": topics, "cadence": "daily", "hour": "8", "timezone": "UTC",
            "max_papers": "15"}


def test_the_manage_page_stores_the_vectors_of_the_topics_it_saves(site: Site):
    reader = site.reader("ada@example.org", "LLM")
    url = f"/manage/{reader.token}"
    saved = site.client.post(url, data=_form(site, url, "Robots = walking robots\nLLM"), follow_redirects=False)
    assert saved.status_code == 303
    assert _stored(site.store, "walking robots") == {"walking robots"}


def test_confirming_and_the_api_store_topic_vectors_but_a_subscribe_request_does_not(site: Site):
    site.subscribe(topics="Robots = walking robots")
    assert site.store.count_vectors() == 0  # a pending address: anyone can send the form
    link = re.search(r"http://testserver/confirm/\S+", site.last_text()).group(0)
    assert site.client.post(link, data={"csrf_token": site.csrf(link)}, follow_redirects=False).status_code == 303
    assert _stored(site.store, "walking robots") == {"walking robots"}
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert site.client.put("/api/topics/Folding", json={"query": "protein folding"}, headers=auth).status_code == 201
    answer = site.client.put("/api/subscribers/bob@example.org", headers=auth,
                             json={"topics": [{"name": "Q", "query": "quantum error correction"}]})
    assert answer.status_code == 201, answer.text
    assert _stored(site.store, "protein folding", "quantum error correction") == {"protein folding",
                                                                                  "quantum error correction"}


def test_a_manage_save_succeeds_when_the_model_cannot_load(site: Site, broken_model, caplog):
    reader = site.reader("ada@example.org", "LLM")
    url = f"/manage/{reader.token}"
    saved = site.client.post(url, data=_form(site, url, "walking robots"), follow_redirects=False)
    assert saved.status_code == 303
    assert [t.query for t in site.store.subscriber("ada@example.org").topics] == ["walking robots"]
    assert site.store.count_vectors() == 0
    assert "topic vectors not stored at save" in caplog.text


# -- trying a topic: paperwire match -----------------------------------------------------------


def test_match_json_says_why_and_embeds_only_what_runs_match(run_cli, store):
    """``match`` without --since reads the whole store, which may be years of papers: it embeds
    the papers a run can match (the last month) and says how many older ones have no vectors."""
    assert run_cli("ingest", str(DATA / "daily_wrapped.txt"), "--date", "2024-01-02").exit_code == 0
    assert run_cli("ingest", str(DATA / "arxiv_listing.atom"), "--date", "2024-03-11").exit_code == 0
    old = len(store.papers(until=dt.date(2024, 1, 2)))
    result = run_cli("match", "--json", "language models")
    assert result.exit_code == 0, result.output
    assert f"note: {old:,} older paper(s) have no vectors yet" in result.stderr
    found = json.loads(result.stdout)
    assert found and all({"similarity", "why"} <= set(item) for item in found)
    assert all(item["why"] and set(item["why"]) <= {"words", "meaning", "example"} for item in found)
    assert all((item["similarity"] is None) == ("meaning" not in item["why"] and "example" not in item["why"])
               or "words" in item["why"] for item in found)
    assert run_cli("embed").exit_code == 0
    assert "have no vectors" not in run_cli("match", "--json", "language models").stderr  # all embedded now
    assert "have no vectors" not in run_cli("match", "--since", "2024-03-11", "robots").stderr
