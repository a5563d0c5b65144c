"""What one paper can cost a reader or the server is bounded, even for data stored before
the ingest limits (written here straight to the store): feeds and the public preview."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import feedparser

from paperwire.feeds import FeedItem, FeedSpec, render_feed
from paperwire.models import Listing, Paper
from paperwire.normalize import SHOWN_ABSTRACT_CHARS, SHOWN_AUTHORS, SHOWN_TITLE_CHARS

from .test_web import make_site

BASE = "https://papers.example.org"
DAY = dt.date(2024, 3, 11)


def huge_paper(marker: str = "") -> Paper:
    return Paper(id="t-0123456789abcdef", title="Enormous " * 2_000, abstract="word " * 200_000 + marker,
                 authors=[f"Author {n}" for n in range(10_000)])


def test_feeds_show_a_bounded_part_of_a_huge_paper():
    out = render_feed(FeedSpec("All", "all"), [FeedItem(huge_paper(), DAY, 1)], BASE)
    for kind, data in out.items():
        assert len(data) < 3 * SHOWN_ABSTRACT_CHARS + 20 * SHOWN_AUTHORS + 4 * SHOWN_TITLE_CHARS + 3_000, kind
    entry = feedparser.parse(out["atom"]).entries[0]
    assert len(entry.title) <= SHOWN_TITLE_CHARS and entry.title.endswith("Enormous…")
    assert "word…" in entry.summary and "et al." in entry.summary
    item = json.loads(out["json"])["items"][0]
    assert len(item["title"]) <= SHOWN_TITLE_CHARS and "Author 49 et al." in item["content_text"]


def test_the_public_preview_is_bounded_too(new_db, tmp_path: Path):
    site = make_site(new_db, tmp_path, ingest=False)
    site.store.save_listings([Listing("test", DAY, [huge_paper(" zzzlatemarker"), Paper(id="t-1", title="LLM agents")])])
    found = site.client.get("/api/preview", params={"q": "Enormous"}).json()
    assert found["count"] == 1 and len(found["papers"][0]["title"]) <= SHOWN_TITLE_CHARS
    late = site.client.get("/api/preview", params={"q": "zzzlatemarker"}).json()
    assert late["count"] == 0  # past what a preview reads of an abstract
    assert site.client.get("/api/preview", params={"q": "x" * 1001}).status_code == 422
    page = site.client.get("/")
    assert page.status_code == 200 and "Enormous " * 40 not in page.text
    site.client.close()
    site.store.close()


def test_the_paper_page_is_bounded_and_unknown_ids_are_not_kept(new_db, tmp_path: Path):
    site = make_site(new_db, tmp_path, ingest=False)
    paper = huge_paper()
    site.store.save_listings([Listing("test", DAY, [paper])])
    page = site.client.get(f"/papers/{paper.id}")
    assert page.status_code == 200
    assert len(page.content) < 3 * SHOWN_ABSTRACT_CHARS + 20 * SHOWN_AUTHORS + 4 * SHOWN_TITLE_CHARS + 20_000
    assert "Author 49 et al." in page.text and "Author 50" not in page.text
    web = site.client.app.state.web
    for n in range(50):
        assert site.client.get(f"/papers/t-unknown{n}").status_code == 404
    assert not any(isinstance(key, tuple) and "t-unknown0" in key for key in web.data._values)
    site.client.close()
    site.store.close()
