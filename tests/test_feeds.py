"""Feeds are parsed back (feedparser, json, ElementTree), compared with golden files, and attacked.

Golden files live in tests/golden/feeds/. After an intended change of output, rewrite
them and review the diff before committing:

    PAPERWIRE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_feeds.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperwire import feeds, urls
from paperwire.feeds import FeedItem, FeedSpec, render_feed, render_opml
from paperwire.models import Link, Listing, Paper

BASE = "https://papers.example.org"
GOLDEN = Path(__file__).parent / "golden" / "feeds"
UPDATE_GOLDEN = os.environ.get("PAPERWIRE_UPDATE_GOLDEN") == "1"
KINDS = ("atom", "rss", "json")
SPEC = FeedSpec(title="Language models", slug="llm", description="Papers about LLMs.", query='"language model" OR LLM')
TRENDING = FeedSpec(title="Trending papers", slug="trending", description="Today's trending papers.")
CONTROL = "".join(map(chr, range(0x00, 0x09))) + "\x0b\x0c\x1b\x7f"
HOSTILE = f"<script>alert(1)</script> \"double\" 'single' & AT&T 🚀🧪 שלום עולם مرحبا{CONTROL}end"


def utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def hand_items() -> list[FeedItem]:
    """Three days, given oldest first and out of rank order, with every kind of link set."""
    with_abs = Paper(
        id="2403.06789",
        title="Sparse Mixture of Experts at Scale",
        abstract="We scale MoE layers & measure <b>throughput</b>.",
        arxiv_id="2403.06789",
        authors=["Ada Lovelace", "Alan Turing"],
        links=[
            Link("https://github.com/example/moe", "code"),
            Link("https://arxiv.org/abs/2403.06789", "abs"),
            Link("https://example.org/moe", "project"),
        ],
        categories=["cs.LG", "cs.CL"],
    )
    only_code = Paper(
        id="t-0123456789abcdef",
        title="A Paper With Only Code",
        abstract="No arXiv link here.",
        links=[Link("https://github.com/example/only", "code")],
    )
    bare = Paper(id="t-fedcba9876543210", title="A Bare Paper")
    second = Paper(id="2403.00001", title="Second On The Newest Day", arxiv_id="2403.00001",
                   links=[Link("https://arxiv.org/abs/2403.00001", "abs")])
    return [
        FeedItem(bare, dt.date(2024, 3, 9), 1),
        FeedItem(second, dt.date(2024, 3, 11), 2),
        FeedItem(only_code, dt.date(2024, 3, 10), 4),
        FeedItem(with_abs, dt.date(2024, 3, 11), 1),
    ]


def parse(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def seed_items(listing: Listing, count: int | None = None) -> list[FeedItem]:
    return [FeedItem(p, listing.date, rank) for rank, p in enumerate(listing.papers[:count], start=1)]


# -- Atom and RSS read back ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_entries_come_back_newest_first_with_ids_links_and_dates(kind: str) -> None:
    parsed = parse(render_feed(SPEC, hand_items(), BASE)[kind])
    entries = parsed.entries
    assert [e.id for e in entries] == [
        "urn:paperwire:paper:2403.06789",
        "urn:paperwire:paper:2403.00001",
        "urn:paperwire:paper:t-0123456789abcdef",
        "urn:paperwire:paper:t-fedcba9876543210",
    ]
    assert [e.title for e in entries] == [
        "Sparse Mixture of Experts at Scale",
        "Second On The Newest Day",
        "A Paper With Only Code",
        "A Bare Paper",
    ]
    assert [e.link for e in entries] == [
        "https://arxiv.org/abs/2403.06789",  # the abs link, though not listed first
        "https://arxiv.org/abs/2403.00001",
        "https://github.com/example/only",  # no abs link: the first link
        f"{BASE}/papers/t-fedcba9876543210",  # no link at all: our own page
    ]
    published = [dt.datetime(*e.published_parsed[:6], tzinfo=dt.timezone.utc) for e in entries]
    assert published == [utc(dt.date(2024, 3, d)) for d in (11, 11, 10, 9)]
    assert [t.term for t in entries[0].tags] == ["cs.LG", "cs.CL"]
    assert [a.name for a in entries[0].authors] == ["Ada Lovelace", "Alan Turing"]


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_summary_is_escaped_html_with_authors_and_links(kind: str) -> None:
    entry = parse(render_feed(SPEC, hand_items(), BASE)[kind]).entries[0]
    assert entry.summary_detail.type == "text/html"
    assert "We scale MoE layers &amp; measure &lt;b&gt;throughput&lt;/b&gt;." in entry.summary
    assert "<b>" not in entry.summary  # the abstract's markup is text, not markup
    assert "Ada Lovelace, Alan Turing" in entry.summary
    assert '<a href="https://github.com/example/moe">Code</a>' in entry.summary
    assert '<a href="https://example.org/moe">Project page</a>' in entry.summary


def test_feed_level_fields_come_from_the_data() -> None:
    out = render_feed(SPEC, hand_items(), BASE)
    atom, rss = parse(out["atom"]).feed, parse(out["rss"]).feed
    newest = utc(dt.date(2024, 3, 11))
    assert dt.datetime(*atom.updated_parsed[:6], tzinfo=dt.timezone.utc) == newest
    assert b"<lastBuildDate>Mon, 11 Mar 2024 00:00:00 +0000</lastBuildDate>" in out["rss"]
    assert atom.id == "urn:paperwire:feed:llm"
    links = {link.rel: link.href for link in atom.links}
    assert links == {"self": urls.topic_feed(BASE, "llm", "atom"), "alternate": urls.home(BASE)}
    assert {link.rel: link.href for link in rss.links}["self"] == urls.topic_feed(BASE, "llm", "rss")
    assert rss.link == urls.home(BASE)
    assert '"language model" OR LLM' in atom.subtitle and '"language model" OR LLM' in rss.description


def test_trending_feed_links_to_the_trending_urls() -> None:
    out = render_feed(TRENDING, hand_items(), BASE)
    assert {l.rel: l.href for l in parse(out["atom"]).feed.links}["self"] == urls.trending_feed(BASE, "atom")
    assert json.loads(out["json"])["feed_url"] == urls.trending_feed(BASE, "json")


def test_the_seed_listing_renders_valid_feeds_capped_at_fifty(seed_listing: Listing) -> None:
    out = render_feed(TRENDING, seed_items(seed_listing), BASE)
    for kind in ("atom", "rss"):
        entries = parse(out[kind]).entries
        assert len(entries) == feeds.DEFAULT_LIMIT
        assert [e.title for e in entries[:3]] == [p.title for p in seed_listing.papers[:3]]  # rank order
    assert len(json.loads(out["json"])["items"]) == feeds.DEFAULT_LIMIT


# -- JSON Feed and OPML ------------------------------------------------------------


def test_json_feed_has_the_required_keys_in_order() -> None:
    feed = json.loads(render_feed(SPEC, hand_items(), BASE)["json"])
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Language models"
    assert feed["home_page_url"] == urls.home(BASE)
    assert feed["feed_url"] == urls.topic_feed(BASE, "llm", "json")
    items = feed["items"]
    assert [i["id"] for i in items][:2] == ["urn:paperwire:paper:2403.06789", "urn:paperwire:paper:2403.00001"]
    assert [i["date_published"] for i in items] == [
        "2024-03-11T00:00:00+00:00", "2024-03-11T00:00:00+00:00", "2024-03-10T00:00:00+00:00", "2024-03-09T00:00:00+00:00"
    ]
    first = items[0]
    assert first["url"] == "https://arxiv.org/abs/2403.06789"
    assert first["authors"] == [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}]
    assert first["tags"] == ["cs.LG", "cs.CL"]
    assert "&lt;b&gt;throughput&lt;/b&gt;" in first["content_html"]
    assert "<b>throughput</b>" in first["content_text"]  # plain text stays as written
    for item in items:
        assert {"id", "url", "title", "content_html", "content_text", "date_published"} <= item.keys()
        dt.datetime.fromisoformat(item["date_published"])


def test_opml_lists_trending_then_every_topic_escaped() -> None:
    data = render_opml([("LLMs & <agents>", "llm"), ("Robots\x00\x1b", "robots")], BASE)
    root = ET.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = root.findall("./body/outline")
    assert [(o.get("title"), o.get("xmlUrl")) for o in outlines] == [
        ("Trending papers", urls.trending_feed(BASE, "atom")),
        ("LLMs & <agents>", urls.topic_feed(BASE, "llm", "atom")),
        ("Robots", urls.topic_feed(BASE, "robots", "atom")),
    ]
    for outline in outlines:
        assert outline.get("type") == "rss"
        assert outline.get("text") == outline.get("title")
        assert outline.get("htmlUrl") == urls.home(BASE)


def test_opml_does_not_list_trending_twice_and_can_leave_it_out() -> None:
    listed = ET.fromstring(render_opml([("Hot", "trending"), ("LLMs", "llm")], BASE)).findall("./body/outline")
    assert [o.get("title") for o in listed] == ["Hot", "LLMs"]
    alone = ET.fromstring(render_opml([("LLMs", "llm")], BASE, trending_title=None)).findall("./body/outline")
    assert [o.get("title") for o in alone] == ["LLMs"]


# -- determinism, duplicates, limits, empty feeds ----------------------------------------


def test_same_input_gives_identical_bytes_whatever_the_input_order() -> None:
    items = hand_items()
    first = render_feed(SPEC, items, BASE)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert render_feed(SPEC, items, BASE) == first
    assert render_feed(SPEC, shuffled, BASE) == first
    assert render_opml([("LLMs", "llm")], BASE) == render_opml([("LLMs", "llm")], BASE)


def test_a_paper_listed_twice_keeps_its_newest_listing_only() -> None:
    paper = hand_items()[0].paper
    items = [FeedItem(paper, dt.date(2024, 3, 1), 3), FeedItem(paper, dt.date(2024, 3, 5), 9),
             FeedItem(paper, dt.date(2024, 3, 5), 2)]
    out = render_feed(SPEC, items, BASE)
    for kind in ("atom", "rss"):
        entries = parse(out[kind]).entries
        assert len(entries) == 1
        assert entries[0].published_parsed[:3] == (2024, 3, 5)
        assert "#2 in the 2024-03-05 listing" in entries[0].summary
    assert [i["id"] for i in json.loads(out["json"])["items"]] == [feeds.entry_id(paper.id)]


def test_limit_keeps_the_newest() -> None:
    out = render_feed(SPEC, hand_items(), BASE, limit=2)
    assert [e.title for e in parse(out["atom"]).entries] == ["Sparse Mixture of Experts at Scale", "Second On The Newest Day"]
    assert len(parse(render_feed(SPEC, hand_items(), BASE, limit=None)["rss"]).entries) == 4


@pytest.mark.parametrize("empty_date, expected", [(None, dt.date(1970, 1, 1)), (dt.date(2024, 3, 11), dt.date(2024, 3, 11))])
def test_an_empty_feed_is_valid_and_dated_from_the_input(empty_date: dt.date | None, expected: dt.date) -> None:
    out = render_feed(SPEC, [], BASE, empty_date=empty_date)
    atom, rss = parse(out["atom"]), parse(out["rss"])
    assert atom.entries == [] and rss.entries == []
    assert dt.datetime(*atom.feed.updated_parsed[:6], tzinfo=dt.timezone.utc) == utc(expected)
    assert dt.datetime(*rss.feed.updated_parsed[:6], tzinfo=dt.timezone.utc) == utc(expected)
    assert json.loads(out["json"])["items"] == []


def test_links_that_are_not_http_never_reach_the_reader() -> None:
    paper = Paper(id="t-1", title="x", links=[Link("javascript:alert(1)", "abs"), Link("data:text/html,hi", "code")])
    out = render_feed(SPEC, [FeedItem(paper, dt.date(2024, 3, 11), 1)], BASE)
    for data in out.values():
        assert b"javascript:" not in data and b"data:text" not in data
    assert parse(out["atom"]).entries[0].link == urls.paper(BASE, "t-1")


# -- hostile input ------------------------------------------------------------------


def hostile_items() -> list[FeedItem]:
    paper = Paper(
        id="t-hostile",
        title=HOSTILE,
        abstract=f"Abstract {HOSTILE} <img src=x onerror=alert(2)>",
        authors=[f"Eve <script>{CONTROL}</script>", "דוד כהן"],
        links=[Link('https://example.org/?a=1&b="2"<script>', "code")],
        categories=[f"cs.CR{CONTROL}", "<b>"],
    )
    return [FeedItem(paper, dt.date(2024, 3, 11), 1)]


def test_hostile_text_stays_text_in_every_format() -> None:
    out = render_feed(FeedSpec(title=HOSTILE, slug="hostile", description=HOSTILE, query=HOSTILE), hostile_items(), BASE)
    expected_title = HOSTILE.replace(CONTROL, "")
    for kind, data in out.items():
        text = data.decode("utf-8")
        assert not any(ch in text for ch in CONTROL), kind
        if kind != "json":  # in XML, markup from the input appears only escaped
            assert "<script" not in text.lower() and "<img" not in text.lower(), kind
            assert "&lt;script&gt;" in text
    for kind in ("atom", "rss"):
        parsed = parse(out[kind])
        entry = parsed.entries[0]
        assert entry.title == expected_title
        assert parsed.feed.title == expected_title
        assert "<script" not in entry.summary.lower() and "<img" not in entry.summary.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry.summary
        assert "שלום עולם مرحبا" in entry.summary
    item = json.loads(out["json"])["items"][0]
    assert item["title"] == expected_title  # JSON Feed titles are plain text
    assert "<script" not in item["content_html"] and "<img" not in item["content_html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in item["content_html"]
    assert item["tags"] == ["cs.CR", "<b>"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(min_size=0, max_size=40), abstract=st.text(max_size=80), author=st.text(max_size=20))
def test_any_text_gives_well_formed_feeds(title: str, abstract: str, author: str) -> None:
    paper = Paper(id="t-any", title=title, abstract=abstract, authors=[author], categories=[author])
    out = render_feed(FeedSpec(title=title, slug="any", query=abstract), [FeedItem(paper, dt.date(2024, 3, 11), 1)], BASE)
    for kind in ("atom", "rss"):
        ET.fromstring(out[kind])
        assert len(parse(out[kind]).entries) == 1
    assert len(json.loads(out["json"])["items"]) == 1
    ET.fromstring(render_opml([(title, "any")], BASE))


# -- golden files -------------------------------------------------------------------


def golden_outputs() -> dict[str, bytes]:
    topic = render_feed(SPEC, hand_items(), BASE)
    empty = render_feed(TRENDING, [], BASE, empty_date=dt.date(2024, 3, 11))
    outputs = {f"llm.{kind}": topic[kind] for kind in KINDS}
    outputs |= {f"trending-empty.{kind}": empty[kind] for kind in KINDS}
    outputs["feeds.opml"] = render_opml([("Language models", "llm"), ("Robotics & control", "robotics")], BASE)
    return outputs


@pytest.mark.parametrize("name", sorted(golden_outputs()))
def test_output_matches_golden_file(name: str) -> None:
    produced = golden_outputs()[name]
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(produced)
    assert path.exists(), f"{path} is missing; run with PAPERWIRE_UPDATE_GOLDEN=1 to create it"
    assert produced == path.read_bytes(), f"{name} changed; if intended, rerun with PAPERWIRE_UPDATE_GOLDEN=1"
