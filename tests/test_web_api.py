"""The JSON API: preview, admin auth, readers and topics, and schemathesis against its OpenAPI spec."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from paperwire.subscribers import make_topic

from .databases import sqlite_url
from .test_web import ADMIN, BASE, EDITION, Site, make_site, site  # noqa: F401  (site is a fixture)

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def test_preview(site: Site) -> None:
    answer = site.client.get("/api/preview", params={"q": '"language model" OR LLM', "limit": 3})
    assert answer.status_code == 200
    data = answer.json()
    assert data["listing_date"] == EDITION and data["count"] > 3 and len(data["papers"]) == 3
    assert data["papers"][0]["score"] >= data["papers"][-1]["score"]
    assert site.client.get("/api/preview", params={"q": "zzzqqq"}).json()["count"] == 0
    assert data["hints"] == []
    hinted = site.client.get("/api/preview", params={"q": "MoE or mixture of experts"}).json()
    assert hinted["hints"] and "write OR in capitals" in hinted["hints"][0]


def test_preview_names_the_words_no_paper_of_the_listing_has_when_its_words_found_nothing(site: Site) -> None:
    """`match` named them; the reader typing the topic on the site was told nothing."""
    typo = site.client.get("/api/preview", params={"q": "words: retreival augmented generation"}).json()
    assert typo["count"] == 0
    assert typo["hints"] == ["no paper of the latest listing has the word 'retreival'; did you mean 'retrieval'?"]
    found = site.client.get("/api/preview", params={"q": "words: retrieval augmented generation xyzzy OR RAG"}).json()
    assert found["count"] > 0 and found["hints"] == []  # a word only matters when the words found nothing


def test_the_public_preview_embeds_no_example_paper_it_has_no_vectors_for(site: Site) -> None:
    """Anyone's topic may name 50 papers: the preview compares only those already embedded, and
    never stores a vector for its input (an older paper, outside the listing it matches)."""
    import datetime as dt

    from paperwire.embeddings import get_embedder
    from paperwire.models import Listing, Paper
    from paperwire.semantic import paper_texts, text_key

    old = Paper(id="t-00000000000000aa", title="Mixture of experts for language models",
                abstract="We route tokens to sparse experts in large language models.")
    site.store.save_listings([Listing("old.txt", dt.date(2023, 1, 5), [old])])
    model = get_embedder(site.settings.relevance_embedder).model_id
    keys = [text_key(text) for text in paper_texts(old)]
    answer = site.client.get("/api/preview", params={"q": f"like:{old.id}"})
    assert answer.status_code == 200 and answer.json()["count"] == 0
    assert site.store.stored_vector_keys(model, keys) == set()


def test_preview_errors_name_the_field(site: Site) -> None:
    bad = site.client.get("/api/preview", params={"q": '(RAG OR "x'})
    assert bad.status_code == 422
    (error,) = bad.json()["detail"]
    assert error["loc"] == ["query", "topic"] and "never closed" in error["msg"] or "unbalanced" in error["msg"]
    missing = site.client.get("/api/preview")
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "q"]
    assert site.client.get("/api/preview", params={"q": "x", "limit": 99}).status_code == 422


def test_preview_before_any_listing(new_db, tmp_path: Path) -> None:
    empty = make_site(new_db, tmp_path, ingest=False)
    data = empty.client.get("/api/preview", params={"q": "LLM"}).json()
    assert data == {"query": "LLM", "listing_date": None, "count": 0, "papers": [], "hints": []}


@pytest.mark.parametrize("path", ["/api/subscribers", "/api/topics", "/api/subscribers/a@example.org"])
def test_admin_routes_need_the_token(site: Site, path: str) -> None:
    missing = site.client.get(path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert site.client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert site.client.get(path, headers={"Authorization": f"Basic {ADMIN}"}).status_code == 401
    assert site.client.get(path, headers=AUTH).status_code in (200, 404)


def test_admin_api_is_off_without_a_token(new_db, tmp_path: Path) -> None:
    off = make_site(new_db, tmp_path, admin_token="")
    answer = off.client.get("/api/subscribers", headers={"Authorization": "Bearer "})
    assert answer.status_code == 403 and "PAPERWIRE_ADMIN_TOKEN" in answer.json()["detail"]


def test_subscribers_crud(site: Site) -> None:
    client = site.client
    body = {"name": "Ada", "topics": [{"name": "Scaling", "query": "scaling laws"}], "cadence": "weekly:fri",
            "hour": 7, "timezone": "Europe/Berlin"}
    created = client.put("/api/subscribers/Ada@Example.org", json=body, headers=AUTH)
    assert created.status_code == 201
    assert created.json() == {"email": "ada@example.org", "name": "Ada", "status": "active", "cadence": "weekly:fri",
                              "hour": 7, "timezone": "Europe/Berlin", "max": 15,
                              "topics": [{"name": "Scaling", "query": "scaling laws"}], "last_bounce": None}
    updated = client.put("/api/subscribers/ada@example.org", json={"hour": 9}, headers=AUTH)
    assert updated.status_code == 200 and updated.json()["hour"] == 9 and updated.json()["cadence"] == "weekly:fri"
    assert client.get("/api/subscribers/ada@example.org", headers=AUTH).json()["hour"] == 9
    assert [r["email"] for r in client.get("/api/subscribers", headers=AUTH).json()] == ["ada@example.org"]
    assert client.get("/api/subscribers", params={"status": "paused"}, headers=AUTH).json() == []
    assert client.delete("/api/subscribers/ada@example.org", headers=AUTH).status_code == 204
    assert client.get("/api/subscribers/ada@example.org", headers=AUTH).status_code == 404
    assert client.delete("/api/subscribers/ada@example.org", headers=AUTH).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"topics": []}, "topic"),
    ({"topics": [{"query": "(x"}]}, "topic"),
    ({"topics": [{"query": "x"}], "timezone": "Mars/Base"}, "timezone"),
    ({"topics": [{"query": "x"}], "follow": ["nope"]}, "follow"),
])
def test_subscriber_domain_errors_are_422(site: Site, body: dict, field: str) -> None:
    answer = site.client.put("/api/subscribers/ada@example.org", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", field]
    assert site.store.subscribers() == []


def test_subscriber_schema_errors_are_422(site: Site) -> None:
    for body in ({"hour": 24, "topics": [{"query": "x"}]}, {"cadence": "hourly"}, {"status": "gone"}):
        assert site.client.put("/api/subscribers/ada@example.org", json=body, headers=AUTH).status_code == 422
    assert site.client.get("/api/subscribers/not-an-email", headers=AUTH).status_code == 422


def test_topics_crud(site: Site) -> None:
    client = site.client
    created = client.put("/api/topics/Language models", json={"query": "LLM"}, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["feeds"]["atom"] == f"{BASE}/feeds/topics/language-models.atom"
    assert client.put("/api/topics/Language models", json={"query": "LLM OR VLM"}, headers=AUTH).status_code == 200
    assert [t["query"] for t in client.get("/api/topics", headers=AUTH).json()] == ["LLM OR VLM"]
    client.put("/api/subscribers/ada@example.org", json={"follow": ["Language models"]}, headers=AUTH)
    refused = client.delete("/api/topics/Language models", headers=AUTH)
    assert refused.status_code == 409 and "follow" in refused.json()["detail"]
    assert client.delete("/api/topics/Language models", params={"force": True}, headers=AUTH).status_code == 204
    assert client.delete("/api/topics/Language models", headers=AUTH).status_code == 404
    bad = client.put("/api/topics/!!!", json={"query": "LLM"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "topic name"]


# -- schemathesis --------------------------------------------------------------------------


schemathesis = pytest.importorskip("schemathesis")


# Its database's folder, removed when the test process exits (it lives as long as the module).
_SCHEMA_FOLDER = tempfile.TemporaryDirectory(prefix="paperwire-schemathesis-", ignore_cleanup_errors=True)


def _schema_app():
    """One app (own temporary database) for all generated cases; made when this module is collected.

    (``schemathesis.pytest.from_fixture`` would be tidier, but schemathesis 4.32 breaks
    on pytest 9 there: it reads ``request.node._nodeid``.)
    """
    made = make_site(sqlite_url, Path(_SCHEMA_FOLDER.name))  # made at collection: SQLite
    made.store.add_public_topic(make_topic("Trending", "*", public=True))
    return made.client.app


schema = schemathesis.openapi.from_asgi("/api/openapi.json", _schema_app())


@schema.parametrize()
def test_api_conforms_to_its_openapi_spec(case) -> None:
    """Every generated request gets a documented status code, content type and body shape, and never a 500.

    Two checks are left out, on purpose: positive_data_acceptance, since a schema-valid
    string is not always a valid topic query, timezone or email address (those are
    rightly refused with 422); and negative_data_rejection, since unknown query
    parameters are ignored, as HTTP APIs usually do, and this test always sends the
    admin token (the auth tests above cover its absence). Negative cases still run
    and must still get documented answers and no 500.
    """
    from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

    case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance, negative_data_rejection])


def test_schema_loads_and_documents_every_route() -> None:
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert ("GET", "/api/preview") in operations and ("PUT", "/api/subscribers/{email}") in operations
    assert len(operations) == 11
    assert ("PUT", "/api/subscribers/{email}/liked/{paper_id}") in operations


def test_openapi_has_bearer_security(site: Site) -> None:
    spec = site.client.get("/api/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert "security" not in spec["paths"]["/api/preview"]["get"]
    assert spec["paths"]["/api/subscribers"]["get"]["security"] == [{"HTTPBearer": []}]


def test_fresh_client_has_no_state(site: Site) -> None:
    """The API needs no cookies: a bare client works."""
    bare = TestClient(site.client.app, base_url=BASE)
    assert bare.get("/api/subscribers", headers=AUTH).status_code == 200
