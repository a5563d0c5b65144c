"""The shipped seed listing, read by the real parser: the numbers the README promises."""

from __future__ import annotations

import datetime as dt

import pytest

from paperwire.sources import daily_papers

from .conftest import SEED


def test_seed_has_70_papers_listed_on_march_11_in_page_order(seed_listing):
    assert seed_listing.source == "daily-papers"
    assert seed_listing.date == dt.date(2024, 3, 11)
    assert len(seed_listing.papers) == 70
    assert seed_listing.papers[0].title.startswith("ScaleDepth: ")
    assert seed_listing.papers[-1].title == "Holistic Evaluation of Language Models"
    assert seed_listing.warnings == []


def test_every_seed_paper_has_a_distinct_id_and_an_abstract(seed_papers):
    assert len({p.id for p in seed_papers}) == 70
    assert all(p.abstract and len(p.abstract) > 200 for p in seed_papers)
    assert all(p.id.startswith("t-") and p.arxiv_id is None for p in seed_papers)


def test_title_that_ends_in_a_question_mark_stays_a_title(seed_papers):
    titles = [p.title for p in seed_papers]
    assert ("Why Has Predicting Downstream Capabilities of Frontier AI Models with Scale Remained Elusive?"
            in titles)


def test_latex_residue_is_cleaned(seed_papers):
    text = " ".join(p.abstract for p in seed_papers)
    for residue in ("teal{", "orange{", "textit{", "sim4.4"):
        assert residue not in text
    assert "Tool-use" in text and "~4.4 million" in text and "three critical Obstacles" in text


def test_urls_lose_trailing_dots_and_brace_wrappers(seed_papers):
    links = {link.url: link.kind for p in seed_papers for link in p.links}
    assert links["https://github.com/RulinShao/retrieval-scaling"] == "code"
    assert links["https://llm-stacking.github.io/"] == "project"
    assert links["https://huggingface.co/datasets/m-a-p/II-Bench"] == "dataset"
    assert links["https://huggingface.co/NexaAIDev/Dolphin"] == "model"
    assert links["https://rank.opencompass.org.cn/leaderboard-multimodal"] == "project"
    assert not [url for url in links if url.endswith((".", ")", "}")) or "{" in url]


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.date(2024, 11, 26), dt.date(2024, 3, 11)),
        (dt.date(2024, 3, 11), dt.date(2024, 3, 11)),   # today itself is not the future
        (dt.date(2024, 3, 10), dt.date(2023, 3, 11)),   # tomorrow would be: last year
        (dt.date(2025, 1, 2), dt.date(2024, 3, 11)),
    ],
)
def test_year_is_the_latest_that_is_not_in_the_future(today, expected):
    (listing,) = daily_papers.parse(SEED.read_text(), "seed", today=today)
    assert listing.date == expected


def test_date_flag_overrides_the_date_line():
    (listing,) = daily_papers.parse(SEED.read_text(), "seed", date=dt.date(2020, 1, 2))
    assert listing.date == dt.date(2020, 1, 2)


def test_february_29_goes_back_to_a_leap_year():
    text = "Feb 29\n\nA Title\n\nAn abstract that says things. It has two sentences.\n"
    (listing,) = daily_papers.parse(text, "x", today=dt.date(2026, 11, 26))
    assert listing.date == dt.date(2024, 2, 29)
