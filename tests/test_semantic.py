"""What semantic says about a topic's parts without the model: the example papers of ``like:``."""

from __future__ import annotations

import pytest

from paperwire import semantic, sources
from paperwire.query import parse_query

from .conftest import DATA, TODAY


@pytest.mark.parametrize("prefix", ["like:", "LIKE:", "Like:"])
def test_example_titles_read_like_in_any_case_as_the_parser_does(store, prefix: str) -> None:
    """A paper found by example says "like: <its title>" whatever the prefix's case (for
    ``LIKE:`` it said the bare id)."""
    store.save_listings(sources.read_path(DATA / "daily_wrapped.txt", today=TODAY))
    paper = store.papers()[0].paper
    topic = f"agents {prefix}{paper.id}"
    assert semantic.example_titles(store, [topic]) == {paper.id: paper.title}
    assert semantic.example_titles(store, [parse_query(topic)]) == {paper.id: paper.title}


def test_an_editions_centre_is_what_it_was_when_its_digest_went_out(store) -> None:
    """Similarities are measured from the centre of the newest papers. An edition's digest,
    feeds and archive page take it as of that edition, so later days do not move it: they did,
    and a paper near the bar dropped out of an archive page whose email had counted it."""
    import datetime as dt

    import numpy as np

    from paperwire.embeddings import get_embedder
    from paperwire.models import Listing, Paper

    embedder = get_embedder()
    day = dt.date(2024, 3, 11)
    first = [Paper(f"2403.0000{n}", f"Agents that plan {n}", f"We study planning agents, part {n}.") for n in range(4)]
    store.save_listings([Listing("daily-papers", day, first)])
    semantic.embed_step(store, embedder, first)
    before = semantic._centre(store, embedder, day)
    later = [Paper(f"2403.1000{n}", f"Protein folding {n}", f"We fold proteins with diffusion, part {n}.") for n in range(3)]
    store.save_listings([Listing("daily-papers", day + dt.timedelta(days=1), later)])
    semantic.embed_step(store, embedder, later)
    for kept, now in zip(before, semantic._centre(store, embedder, day), strict=True):
        assert np.array_equal(kept, now)
    assert not np.array_equal(before[0], semantic._centre(store, embedder)[0])  # the newest day's centre moved
