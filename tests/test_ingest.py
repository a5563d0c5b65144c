"""Ingest of bad and oversized input into a real SQLite database: a bad item costs that item,
a bad file costs that file, nothing costs the run, and every field is bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperwire import pipeline
from paperwire.normalize import MAX_ABSTRACT_CHARS, MAX_AUTHORS, MAX_LINKS, MAX_TITLE_CHARS
from paperwire.sources import hf_json

from .conftest import SEED

DAY = "2024-03-11T00:00:00.000Z"


def item(number: int, **fields) -> dict:
    """One Hugging Face daily-papers item; ``fields`` replace or add keys of its ``paper``."""
    paper = {"id": f"2403.{number:05d}", "title": f"Paper number {number}", "summary": f"Abstract {number}.",
             "authors": [{"name": f"Author {number}"}], "ai_keywords": ["models"], "githubRepo": None,
             "projectPage": None, "publishedAt": DAY, "submittedOnDailyAt": DAY}
    return {"paper": {**paper, **fields}}


def write_json(path: Path, items: list) -> Path:
    path.write_text(json.dumps(items), encoding="utf-8")  # ensure_ascii: lone surrogates stay \ud800 escapes
    return path


# -- item 4: a bad item is an error naming file, item and field; the rest goes in -------------


@pytest.mark.parametrize(
    ("fields", "field", "got"),
    [
        ({"authors": 5}, "paper.authors", "a number"),
        ({"ai_keywords": 7}, "paper.ai_keywords", "a number"),
        ({"authors": ["Ada"]}, "paper.authors[0]", "text"),
        ({"authors": [{"name": 5}]}, "paper.authors[0].name", "a number"),
        ({"ai_keywords": ["ok", None]}, "paper.ai_keywords[1]", "null"),
        ({"title": ["a list"]}, "paper.title", "a list"),
        ({"summary": {"an": "object"}}, "paper.summary", "an object"),
        ({"githubRepo": 12}, "paper.githubRepo", "a number"),
        ({"projectPage": True}, "paper.projectPage", "true/false"),
        ({"id": 2403.00002}, "paper.id", "a number"),
        ({"title": "   "}, "paper.title", None),
    ],
)
def test_an_item_with_a_bad_field_is_an_error_naming_file_item_and_field(store, tmp_path, fields, field, got):
    path = write_json(tmp_path / "day.json", [item(1), item(2, **fields), item(3)])
    report = pipeline.ingest(store, [path])
    (error,) = report.errors
    assert error.file == str(path)
    assert error.message.startswith(f"item 2: field '{field}': ")
    if got:
        assert error.message.endswith(f"got {got}")
    assert report.counts.added == 2  # the other items of the same file went in
    assert [p.paper.arxiv_id for p in store.papers()] and {p.paper.arxiv_id for p in store.papers()} == {
        "2403.00001", "2403.00003"}


def test_a_later_capture_of_a_day_with_a_bad_item_takes_no_paper_off_the_listing(store, tmp_path):
    """A day's listing captured again with one item broken keeps the papers it listed: readers
    whose send hour is later that day still get them (the broken one was dropped). The
    capture's own papers come first, in its order. A clean capture replaces the list: a paper
    the page dropped, or whose title changed, is gone."""
    day = write_json(tmp_path / "day.json", [item(1), item(2), item(3), item(4)])
    assert not pipeline.ingest(store, [day]).errors
    broken = write_json(tmp_path / "again.json", [item(4), item(2), item(3, authors=5), item(5)])
    assert len(pipeline.ingest(store, [broken]).errors) == 1
    listed = [(p.paper.arxiv_id, p.listings[0].rank) for p in store.papers()]
    assert listed == [("2403.00004", 1), ("2403.00002", 2), ("2403.00005", 3), ("2403.00001", 4), ("2403.00003", 5)]
    clean = write_json(tmp_path / "clean.json", [item(2), item(5)])
    assert not pipeline.ingest(store, [clean]).errors
    assert [p.paper.arxiv_id for p in store.papers()] == ["2403.00002", "2403.00005"]


def test_an_item_that_is_not_an_object_is_an_error(tmp_path):
    (listing,) = hf_json.parse(json.dumps([item(1), 5, {"paper": "x"}]), "f.json")
    assert listing.errors == ["item 2: expected an object with a 'paper' object, got a number",
                              "item 3: field 'paper': expected an object, got text"]
    assert len(listing.papers) == 1


def test_a_file_whose_every_item_is_bad_is_one_error_naming_them(tmp_path):
    with pytest.raises(Exception, match=r"no usable item: item 1: field 'paper.authors'.*item 2: field"):
        hf_json.parse(json.dumps([item(1, authors=5), item(2, ai_keywords=7)]), "f.json")


def test_lone_surrogates_are_cleaned_and_the_paper_is_stored(store, tmp_path):
    path = write_json(tmp_path / "s.json", [item(
        1, title="Sur\ud800rogate title", summary="See https://example.org/x\udc00y and https://ok.example.org/.",
        githubRepo="https://github.com/a/b\ud83d", projectPage="https://proj.example.org/\udfff",
        authors=[{"name": "Ada \ud800Lovelace"}], ai_keywords=["key\udc00word"])])
    report = pipeline.ingest(store, [path])
    assert report.errors == [] and report.counts.added == 1
    (stored,) = store.papers()
    paper = stored.paper
    assert paper.title == "Surrogate title" and paper.authors == ["Ada Lovelace"] and paper.keywords == ["keyword"]
    assert [link.url for link in paper.links] == ["https://arxiv.org/abs/2403.00001",
                                                  "https://arxiv.org/pdf/2403.00001", "https://ok.example.org/"]
    assert any("githubRepo" in w for w in report.warnings) and any("projectPage" in w for w in report.warnings)


def test_a_bad_first_file_never_stops_the_next_one(run_cli, tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    write_json(folder / "0.json", [item(1, authors=5)])
    write_json(folder / "b.json", [item(2)])
    result = run_cli("ingest", folder)
    assert result.exit_code == 1
    assert f"{folder / '0.json'}: no usable item: item 1: field 'paper.authors'" in result.stderr
    assert "Traceback" not in result.output
    papers = json.loads(run_cli("papers", "--json").stdout)
    assert [p["id"] for p in papers] == ["2403.00002"]


def test_any_unexpected_failure_costs_its_file_only(run_cli, tmp_path, monkeypatch):
    """An injected fault (a bug in a parser) for one file: reported with the file's name, the rest goes in."""
    folder = tmp_path / "listings"
    folder.mkdir()
    write_json(folder / "a.json", [item(1)])
    (folder / "b.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    real_parse = hf_json.parse

    def broken(text, origin, **kwargs):
        if origin.endswith("a.json"):
            raise KeyError("injected")
        return real_parse(text, origin, **kwargs)

    monkeypatch.setattr(hf_json, "parse", broken)
    result = run_cli("ingest", "--json", folder)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    (error,) = report["errors"]
    assert error["file"] == str(folder / "a.json") and "KeyError" in error["message"] and "injected" in error["message"]
    assert report["added"] == 70  # the seed copy went in


def test_a_failure_while_storing_costs_its_file_only(store, tmp_path, monkeypatch):
    first = write_json(tmp_path / "a.json", [item(1)])
    second = write_json(tmp_path / "b.json", [item(2)])
    real_save = store.save_listings

    def failing(batch, **kwargs):
        batch = list(batch)
        if batch[0].origin == str(first):
            raise RuntimeError("disk on fire")
        return real_save(batch, **kwargs)

    monkeypatch.setattr(store, "save_listings", failing)
    report = pipeline.ingest(store, [first, second])
    assert [(e.file, "RuntimeError: disk on fire" in e.message) for e in report.errors] == [(str(first), True)]
    assert [p.paper.id for p in store.papers()] == ["2403.00002"]


# -- item 5: size limits ----------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_and_the_others_go_in(store, tmp_path):
    big = write_json(tmp_path / "big.json", [item(n) for n in range(1, 200)])
    small = write_json(tmp_path / "small.json", [item(500)])
    limit = small.stat().st_size + 10
    report = pipeline.ingest(store, [big, small], max_bytes=limit)
    (error,) = report.errors
    assert error.file == str(big) and f"over the {limit:,}-byte limit" in error.message
    assert "max_listing_bytes" in error.message
    assert [p.paper.id for p in store.papers()] == ["2403.00500"]


def test_the_size_limit_is_a_setting(run_cli, tmp_path, monkeypatch):
    path = write_json(tmp_path / "day.json", [item(n) for n in range(1, 50)])
    monkeypatch.setenv("PAPERWIRE_MAX_LISTING_BYTES", str(path.stat().st_size - 1))
    refused = run_cli("ingest", path)
    assert refused.exit_code == 1 and "byte limit" in refused.stderr
    monkeypatch.setenv("PAPERWIRE_MAX_LISTING_BYTES", str(path.stat().st_size))
    assert run_cli("ingest", path).exit_code == 0


def test_fields_are_cut_to_their_limits_at_ingest(store, tmp_path):
    words = "word " * (MAX_ABSTRACT_CHARS // 2)  # 50,000 characters
    path = write_json(tmp_path / "huge.json", [item(
        1, title="Title " * 1000, summary=words + " https://late.example.org/",
        authors=[{"name": f"Author {n} " + "x" * 500} for n in range(MAX_AUTHORS + 500)],
        ai_keywords=["k" * 1000] * 3,
        githubRepo="https://github.com/" + "a" * 5000)] + [])
    report = pipeline.ingest(store, [path])
    assert report.errors == []
    paper = store.papers()[0].paper
    assert len(paper.title) <= MAX_TITLE_CHARS and paper.title.endswith("Title…")
    assert len(paper.abstract) <= MAX_ABSTRACT_CHARS and paper.abstract.endswith("word…")
    assert len(paper.authors) == MAX_AUTHORS and all(len(a) <= 200 for a in paper.authors)
    assert all(len(k) <= 100 for k in paper.keywords)
    assert all(len(link.url) <= 2000 for link in paper.links)
    assert not any("github.com" in link.url for link in paper.links)  # over the URL limit: left out


def test_links_are_capped_in_number(tmp_path):
    summary = " ".join(f"https://site{n}.example.org/" for n in range(MAX_LINKS * 3))
    (listing,) = hf_json.parse(json.dumps([item(1, summary=summary)]), "f.json")
    assert len(listing.papers[0].links) == MAX_LINKS
