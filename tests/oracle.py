"""The reference renderer (an oracle) and a generator of realistic digests.

``PerReaderCompile`` is the plain way to make a digest email: render each reader's whole
MJML with Jinja (the paper templates included as they are), then compile that reader's
MJML with MRML. paperwire compiles the MJML once and renders the compiled HTML per reader
instead; tests/test_render_oracle.py checks the two give the same emails, and
bench/render.py times it as the baseline.

``seed_papers`` and ``make_digest`` make up digests from the seed listing with random
readers, topics and hits (real spans of words in the abstracts), as the benchmark does.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from paperwire import email_templates, render, sources
from paperwire.config import Settings
from paperwire.mail import as_references
from paperwire.models import Digest, DigestItem, DigestSection, Hit, Link, Paper, Subscriber, Topic
from paperwire.render import RenderedEmail

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "seeds" / "000_f1d956a196093e66.txt"
TEMPLATES = ROOT / "templates"
TOPIC_NAMES = ["scaling laws", "MoE", "language models", "diffusion", "depth estimation", "agents",
               "retrieval", "speech", "robotics", "benchmarks", "efficient inference", "multimodal"]
FIRST = "Wei Li Anna Maria Jun Omar Sara Ivan Chen Yuki Lucas Priya Elena Noah Fatima Tom".split()
LAST = "Zhang Wang Smith Garcia Kim Nguyen Müller Rossi Tanaka Ivanova Singh Haddad Silva Chen".split()
ZONES = ["Europe/Berlin", "UTC", "America/New_York", "Asia/Tokyo"]


class PerReaderCompile:
    """Each reader's MJML rendered by Jinja in one pass, then compiled by MRML for that reader."""

    def __init__(self, templates_dir: Path = TEMPLATES) -> None:
        options = {"loader": FileSystemLoader(templates_dir), "undefined": StrictUndefined, "trim_blocks": True,
                   "lstrip_blocks": True, "keep_trailing_newline": True}
        html_env = Environment(autoescape=True, **options)
        text_env = Environment(autoescape=False, extensions=[email_templates.NoTrailingWhitespace], **options)
        text_env.filters.update(wrap=render.wrap, numbered=render.numbered)
        # include_shared without keeping anything: the named template rendered with the values, every time.
        html_env.filters["include_shared"] = lambda name, **values: Markup(html_env.get_template(name).render(values))
        text_env.filters["include_shared"] = lambda name, **values: text_env.get_template(name).render(values)
        self.mjml_template = html_env.get_template("email.mjml.j2")
        self.text_template = text_env.get_template("email.txt.j2")

    def render(self, digest: Digest, settings: Settings) -> RenderedEmail:
        values = render.context(digest, settings)
        html = email_templates.compile_mjml(self.mjml_template.render(values))  # what paperwire does once
        return RenderedEmail(values["subject"], values["preheader"], html, self.text_template.render(values))


def squeezed_html(html: str) -> str:
    """HTML with whitespace runs made one space and none between tags, and every non-ASCII
    character as its reference (the renderer writes them so): "equal up to whitespace"."""
    return as_references(re.sub(r"\s+", " ", html).replace("> <", "><"))


Matches = tuple[dict[tuple[int, str], tuple[Hit, ...]], set[tuple[int, str]]]


def seed_papers(rng: random.Random) -> tuple[list[Paper], Matches]:
    """The seed listing with authors and arXiv links added, the hits of each (paper, topic),
    and which (paper, topic) pairs match beyond the topic a reader gets the paper under.

    Hits are random words of the abstract (their real spans, ``drawn_hits``) and the extra
    matches a one-in-five draw, both made once per paper and topic: as with real matching, every
    reader of a topic gets the same hits on a paper, and a paper that matches two of a
    reader's topics is tagged with both.
    """
    (listing,) = sources.read_path(SEED_FILE, today=dt.date(2024, 11, 26))
    papers, hits, also = [], {}, set()
    for number, paper in enumerate(listing.papers):
        arxiv = f"2403.{number:05d}"
        links = [Link(f"https://arxiv.org/abs/{arxiv}", "abs"), Link(f"https://arxiv.org/pdf/{arxiv}", "pdf")]
        authors = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 9))]
        papers.append(Paper(paper.id, paper.title, paper.abstract, arxiv, authors, links + paper.links))
        for topic in TOPIC_NAMES:
            hits[number, topic] = drawn_hits(paper, rng)
            if rng.random() < 0.2:
                also.add((number, topic))
    return papers, (hits, also)


def make_digest(number: int, rng: random.Random, papers: list[Paper], matches: Matches, unshared: bool = False) -> Digest:
    """One reader's digest. ``unshared``: the worst case for reuse between readers: the reader
    also follows a topic of their own wording that every paper matched, and each paper shows
    hits drawn for the reader alone (``drawn_hits``), so a paper's block is seldom like
    another reader's (bench/render.py counts how often it was)."""
    hits, matched_also = matches
    topics = [Topic(name, name) for name in rng.sample(TOPIC_NAMES, rng.randint(1, 3))]
    own = [Topic(f"my own topic {number}", "x")] if unshared else []
    reader = Subscriber(email=f"reader{number}@example.org", name=rng.choice(("", rng.choice(FIRST))),
                        token=f"tok{number:08d}", timezone=rng.choice(ZONES), topics=topics + own)
    chosen = rng.sample(range(len(papers)), rng.randint(5, 15))
    by_topic: dict[int, list[DigestItem]] = {}
    for rank, index in enumerate(chosen, 1):
        best = rng.randrange(len(topics))
        also = tuple(topic.name for n, topic in enumerate(topics) if n != best and (index, topic.name) in matched_also)
        also += tuple(topic.name for topic in own)
        shown = drawn_hits(papers[index], rng) if unshared else hits[index, topics[best].name]
        by_topic.setdefault(best, []).append(DigestItem(
            papers[index], 1.0, rank, dt.date(2024, 3, 11), (topics[best].name, *also), shown))
    sections = tuple(DigestSection(topics[n], tuple(items)) for n, items in sorted(by_topic.items()))
    return Digest(reader, "2024-03-11", dt.date(2024, 3, 11), sections, more=rng.choice((0, 0, 0, 3, 12)))


def drawn_hits(paper: Paper, rng: random.Random) -> tuple[Hit, ...]:
    """Hits as a topic's on ``paper``: one to three long words of its abstract, every occurrence."""
    words = sorted({w for w in re.findall(r"[A-Za-z]{7,}", paper.abstract)})
    return tuple(Hit(w.lower(), "abstract", tuple((m.start(), m.end()) for m in re.finditer(w, paper.abstract)))
                 for w in rng.sample(words, min(len(words), rng.randint(1, 3))))
