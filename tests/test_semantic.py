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
