"""The renderer against the oracle (tests/oracle.py): compiling the MJML once and rendering
the compiled HTML per reader gives the same emails as rendering each reader's MJML and
compiling it for that reader: HTML equal up to whitespace, the same subject and text."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest

from paperwire.config import Settings
from paperwire.models import Digest, DigestItem, DigestSection, Hit, Paper, Subscriber, Topic
from paperwire.render import EmailRenderer

from .oracle import TEMPLATES, PerReaderCompile, make_digest, seed_papers, squeezed_html

SETTINGS = Settings(base_url="https://papers.example.org")
DAY = dt.date(2024, 3, 11)


@pytest.fixture(scope="module")
def renderers() -> tuple[EmailRenderer, PerReaderCompile]:
    return EmailRenderer(TEMPLATES), PerReaderCompile()


def assert_same_email(renderers: tuple[EmailRenderer, PerReaderCompile], digest: Digest) -> None:
    ours, oracle = (renderer.render(digest, SETTINGS) for renderer in renderers)
    assert ours.subject == oracle.subject and ours.preheader == oracle.preheader
    assert ours.text == oracle.text
    assert squeezed_html(ours.html) == squeezed_html(oracle.html)


def test_the_seed_listing_as_digests(renderers, seed_papers: list[Paper]) -> None:
    """The real seed papers, every one matched on its own words, in sections of up to 15."""
    topics = [Topic(name, name) for name in ("scaling laws", "language models", "diffusion", "agents", "Ümlaut & <tags>")]
    reader = Subscriber(email="ana@example.org", name="Ana <Ö>", token="tok123", timezone="Europe/Berlin", topics=topics)
    items = []
    for rank, paper in enumerate(seed_papers, 1):
        words = re.findall(r"[A-Za-z]{8,}", paper.abstract)[-2:]  # late words: some lie beyond the cut
        hits = tuple(Hit(word.lower(), "abstract", tuple((m.start(), m.end()) for m in re.finditer(word, paper.abstract)))
                     for word in words)
        topic = topics[rank % len(topics)]
        items.append((topic, DigestItem(paper, 1.0, rank, DAY, (topic.name, topics[(rank + 1) % 5].name)[: 1 + rank % 2],
                                        hits)))
    for start in range(0, len(items), 15):
        chunk = items[start:start + 15]
        sections = tuple(DigestSection(topic, tuple(item for t, item in chunk if t is topic)) for topic in topics
                         if any(t is topic for t, _ in chunk))
        assert_same_email(renderers, Digest(reader, "2024-03-11", DAY, sections, more=start, more_from=chunk[0][1].paper.id))


@pytest.mark.parametrize("unshared", [False, True], ids=["shared", "unshared"])
def test_generated_digests(renderers, unshared: bool) -> None:
    papers, matches = seed_papers(random.Random(20240311))
    rng = random.Random(7 + unshared)
    for number in range(60):
        assert_same_email(renderers, make_digest(number, rng, papers, matches, unshared))


def test_an_empty_digest(renderers) -> None:
    reader = Subscriber(email="bo@example.org", token="tok456", topics=[Topic("MoE", "MoE")])
    assert_same_email(renderers, Digest(reader, "2024-03-11", DAY, ()))
