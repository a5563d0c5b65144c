"""Text clean-up and identity rules, each with a case that must change and one that must not."""

from __future__ import annotations

import pytest

from paperwire.models import Link, Paper
from paperwire.normalize import (classify_url, clean_text, extract_links, merge_papers, paper_id,
                                 parse_arxiv_id, title_key)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  two\n\tlines  ", "two lines"),
        ("bell\x07 and nul\x00 and esc\x1b", "bell and nul and esc"),
        ("C1\x85 control", "C1 control"),
        ("teal{Tool-use} and orange{Planning}", "Tool-use and Planning"),
        ("three textit{O}bstacles", "three Obstacles"),
        ("saving sim4.4 million", "saving ~4.4 million"),
        (r"\textbf{bold} move", "bold move"),
        # Not residue: ordinary words and braces stay as they are.
        ("simple similarity sim card", "simple similarity sim card"),
        ("a set {x, y} of items", "a set {x, y} of items"),
        ("emoji 🚀 and עברית", "emoji 🚀 and עברית"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_extract_links_trims_and_dedupes():
    text = ("Code: https://github.com/a/b. Also https://github.com/a/b and (see https://x.org/p). "
            "Page https://y.io/{https://y.io/}. Wiki https://en.wikipedia.org/wiki/Foo_(bar).")
    assert [l.url for l in extract_links(text)] == [
        "https://github.com/a/b", "https://x.org/p", "https://y.io/", "https://en.wikipedia.org/wiki/Foo_(bar)"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/org/repo", "code"),
        ("https://huggingface.co/datasets/org/data", "dataset"),
        ("https://huggingface.co/org/model", "model"),
        ("https://huggingface.co/spaces/org/demo", "project"),
        ("https://arxiv.org/abs/2403.01234", "abs"),
        ("https://arxiv.org/pdf/2403.01234", "pdf"),
        ("https://some-lab.github.io/project", "project"),
    ],
)
def test_classify_url(url, kind):
    assert classify_url(url) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2403.06789", ("2403.06789", None)),
        ("http://arxiv.org/abs/2403.06789v2", ("2403.06789", 2)),
        ("oai:arXiv.org:2403.06789v1", ("2403.06789", 1)),
        ("http://arxiv.org/abs/hep-th/9901001v3", ("hep-th/9901001", 3)),
        ("version 12.3456 of nothing", None),
        ("", None),
    ],
)
def test_parse_arxiv_id(text, expected):
    assert parse_arxiv_id(text) == expected


def test_title_identity_ignores_case_punctuation_and_spacing():
    assert title_key("MiniCPM:  Unveiling the Potential") == title_key("minicpm - unveiling the potential")
    assert paper_id(None, "A Title") == paper_id(None, "a title!")
    assert paper_id(None, "A Title") != paper_id(None, "Another Title")
    assert paper_id("2403.00001", "A Title") == "2403.00001"


def test_merge_fills_missing_fields_and_keeps_known_ones():
    text_only = Paper(id=paper_id(None, "T"), title="T", abstract="from the page",
                      links=[Link("https://github.com/a/b", "code")])
    from_api = Paper(id="2404.06395", arxiv_id="2404.06395", title="t", abstract="from the api",
                     authors=["Ada"], links=[Link("https://arxiv.org/abs/2404.06395", "abs"),
                                             Link("https://github.com/a/b", "code")])
    merged = merge_papers(text_only, from_api)
    assert merged.id == "2404.06395" and merged.arxiv_id == "2404.06395"
    assert merged.title == "T" and merged.abstract == "from the page" and merged.authors == ["Ada"]
    assert [l.url for l in merged.links] == ["https://github.com/a/b", "https://arxiv.org/abs/2404.06395"]
