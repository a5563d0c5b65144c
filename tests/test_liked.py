"""A reader's liked papers (liked.py): the Liked topic's query written and read back, the
cap, and the store's one-transaction rewrite of it on a real SQLite file, also under
concurrent likes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperwire import liked, semantic
from paperwire.config import Settings
from paperwire.embeddings import get_embedder
from paperwire.errors import ValidationError
from paperwire.match import meaning
from paperwire.models import Listing, Topic
from paperwire.store import Store
from paperwire.subscribers import QUERY_MAX, build_subscriber, make_topic

ARXIV = st.from_regex(r"\A[0-9]{4}\.[0-9]{4,5}\Z")
TITLE_ONLY = st.from_regex(r"\At-[0-9a-f]{16}\Z")
OLD_STYLE = st.from_regex(r"\A[a-z][a-z-]{0,8}/[0-9]{7}\Z")
IDS = st.lists(st.one_of(ARXIV, TITLE_ONLY, OLD_STYLE), unique=True, max_size=60)


def test_the_query_is_like_terms_joined_by_or_newest_first() -> None:
    assert liked.query_text(["2403.12345", "2402.00001"]) == "like:2403.12345 OR like:2402.00001"
    assert liked.parse_ids("like:2403.12345 OR like:2402.00001") == ("2403.12345", "2402.00001")
    assert liked.parse_ids("like:hep-th/9901001 OR like:t-0123456789abcdef") == ("hep-th/9901001", "t-0123456789abcdef")


@pytest.mark.parametrize("query", [
    "", "scaling laws", "like:", "like:2403.1 or like:2402.2", "like:2403.1  OR like:2402.2", "like:2403.1 OR",
    " like:2403.1", "like:2403.1 OR like:2403.1", "LIKE:2403.1", "like:2403.1 like:2402.2", "like:-x",
    "like:2403.1 OR -like:2402.2", "like:a b", "title:like:2403.1", "like:" + "x" * 65,
])
def test_anything_but_the_written_form_is_not_a_liked_list(query: str) -> None:
    """The parser is strict: a topic a reader wrote by hand is never taken for the list."""
    assert liked.parse_ids(query) is None


@given(IDS)
def test_the_query_reads_back_as_written(ids: list[str]) -> None:
    assert liked.parse_ids(liked.query_text(ids)) == (tuple(ids) or None)


@given(st.text(max_size=300))
def test_reading_any_text_never_raises_and_what_it_accepts_it_writes_back_the_same(text: str) -> None:
    ids = liked.parse_ids(text)
    if ids is not None:
        assert liked.query_text(ids) == text and all(liked.valid_id(i) for i in ids)


@given(IDS, st.one_of(ARXIV, TITLE_ONLY, OLD_STYLE))
def test_liking_adds_once_newest_first_and_stays_within_the_caps(ids: list[str], new: str) -> None:
    start = liked.capped(ids)
    after = liked.with_like(start, new)
    assert len(after) <= liked.MAX_LIKED and len(liked.query_text(after)) <= QUERY_MAX
    assert len(set(after)) == len(after)
    if new in start:
        assert after == start  # liked twice: still one entry, where it was
    else:
        assert after[0] == new and after[1:] == start[:len(after) - 1]  # the oldest go first
    assert new not in liked.without_like(after, new)
    assert liked.with_like(after, new) == after


def test_the_cap_keeps_the_newest_fifty() -> None:
    ids: tuple[str, ...] = ()
    for n in range(60):
        ids = liked.with_like(ids, f"2403.{n:05d}")
    assert len(ids) == 50 and ids[0] == "2403.00059" and ids[-1] == "2403.00010"


def test_long_ids_are_capped_by_the_query_length_too() -> None:
    """A topic query holds at most QUERY_MAX characters (what import and the API accept)."""
    ids: tuple[str, ...] = ()
    for n in range(50):
        ids = liked.with_like(ids, f"t-{n:016x}")
    assert len(liked.query_text(ids)) <= QUERY_MAX < len(liked.query_text([f"t-{n:016x}" for n in range(50)]))
    assert ids[0] == "t-0000000000000031"


def test_which_topic_is_the_list() -> None:
    mine = Topic("Liked", "like:2403.1")
    assert liked.liked_topic([Topic("LLM", "LLM"), mine]) == mine
    assert liked.liked_topic([Topic("Liked", "diffusion")]) is None  # a reader's own topic of that name
    assert liked.liked_topic([Topic("Liked", "like:2403.1", public=True)]) is None
    assert liked.without_liked([Topic("LLM", "LLM"), mine]) == [Topic("LLM", "LLM")]


def test_a_form_without_the_list_keeps_it() -> None:
    mine = Topic("Liked", "like:2403.1", slug="liked")
    stored = [Topic("LLM", "LLM"), mine]
    assert liked.keep_liked([Topic("RAG", "RAG")], stored) == [Topic("RAG", "RAG"), mine]
    assert liked.keep_liked([Topic("RAG", "RAG")], [Topic("LLM", "LLM")]) == [Topic("RAG", "RAG")]
    own = [Topic("liked", "diffusion")]
    assert liked.keep_liked(own, stored) == own  # the form names a topic so itself: its choice


# -- the store ---------------------------------------------------------------------------------


@pytest.fixture
def reader(store: Store):
    return store.save_subscriber(build_subscriber("ada@example.org", topics=[make_topic("Mine", "LLM")]))[0]


def _like(store: Store, reader_id: int, paper_id: str) -> str | None:
    return store.rewrite_own_topic(reader_id, liked.NAME, liked.SLUG,
                                   liked.rewrite(lambda ids: liked.with_like(ids, paper_id)))


def _unlike(store: Store, reader_id: int, paper_id: str) -> str | None:
    return store.rewrite_own_topic(reader_id, liked.NAME, liked.SLUG,
                                   liked.rewrite(lambda ids: liked.without_like(ids, paper_id)))


def test_the_list_is_a_topic_added_last_changed_in_place_and_gone_when_empty(store: Store, reader) -> None:
    assert _like(store, reader.id, "2403.00001") == "like:2403.00001"
    _like(store, reader.id, "2403.00002")
    _like(store, reader.id, "2403.00001")
    stored = store.subscriber("ada@example.org")
    assert [(t.name, t.query, t.public, t.slug) for t in stored.topics] == [
        ("Mine", "LLM", False, "mine"), ("Liked", "like:2403.00002 OR like:2403.00001", False, "liked")]
    assert liked.liked_ids(stored) == ("2403.00002", "2403.00001")
    _unlike(store, reader.id, "2403.00002")
    assert _unlike(store, reader.id, "2403.00001") is None
    assert [t.name for t in store.subscriber("ada@example.org").topics] == ["Mine"]


def test_a_topic_of_the_readers_own_named_liked_is_never_rewritten(store: Store) -> None:
    reader = store.save_subscriber(build_subscriber("bo@example.org", topics=[make_topic("liked", "diffusion")]))[0]
    with pytest.raises(ValidationError, match="not a list of liked papers"):
        _like(store, reader.id, "2403.00001")
    assert [(t.name, t.query) for t in store.subscriber("bo@example.org").topics] == [("liked", "diffusion")]


def test_every_like_of_a_full_list_finds_papers_the_oldest_too(store: Store, reader, seed_listing: Listing) -> None:
    """On the real model, through the store as the like button writes the list: the seed papers
    have title-only ids, so a full list is as many as fit in a topic query (37), and its oldest
    like ("Extending Context Window ...", last in the query) still finds "CLEX: Continuous
    Length Extrapolation ..." (only the newest 8 used to count)."""
    store.save_listings([seed_listing])
    papers = seed_listing.papers
    assert semantic.embed_step(store, get_embedder(Settings().relevance_embedder), papers).error is None
    oldest = next(paper for paper in papers if paper.title.startswith("Extending Context Window"))
    similar = next(paper for paper in papers if paper.title.startswith("CLEX"))
    others = [paper.id for paper in papers if paper not in (oldest, similar)]
    newer = others[:len(liked.capped(others)) - 1]  # with the oldest: the list is full
    for paper_id in [oldest.id, *newer]:
        _like(store, reader.id, paper_id)
    query = liked.liked_topic(store.subscriber("ada@example.org").topics).query
    assert liked.parse_ids(query) == (*reversed(newer), oldest.id) and len(newer) + 1 > meaning.MAX_MEANING_PARTS
    found = semantic.match_topics([(0, query)], papers, Settings(), store)[0]
    assert (similar.id, ("example",), oldest.id) in [(m.paper_id, m.why, m.like) for m in found]


def test_likes_at_the_same_time_are_all_kept(new_db, tmp_path: Path) -> None:
    """Every rewrite reads and writes under one lock: no like is lost to another's write,
    also from separate connections (two web workers)."""
    url = new_db(tmp_path / "likes.sqlite3")
    first = Store(url)
    reader = first.save_subscriber(build_subscriber("ada@example.org", topics=[make_topic("Mine", "LLM")]))[0]
    stores = [first, Store(url)]
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def like(n: int) -> None:
        try:
            start.wait()
            _like(stores[n % 2], reader.id, f"2403.{n:05d}")
        except BaseException as exc:  # noqa: BLE001  -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=like, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(liked.liked_ids(first.subscriber("ada@example.org"))) == [f"2403.{n:05d}" for n in range(16)]
    for opened in stores:
        opened.close()
