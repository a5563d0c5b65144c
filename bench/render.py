"""Benchmark: personalized digests -> rendered email -> complete MIME message bytes.

Each reader gets 5-15 random seed papers under 1-3 random topics, with random hits
(real spans of words in the abstracts); that digest (the given matches) is made up
untimed, then timed the full path a send takes: render (EmailRenderer, MJML compiled
once, each paper's blocks rendered once), ``mail.build_message``, ``bytes``. Messages
are streamed (built, serialized, dropped), so memory must not grow with the readers;
RSS is reported at 10k and at the end. The baseline, timed on a sample in the same run,
renders each reader's whole MJML in one Jinja pass and compiles it (PerReaderCompile).
Target: >= 2,000 messages/s and >= 5x the baseline.

    .venv/bin/python bench/render.py --readers 100000 [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from paperwire import render, sources
from paperwire.config import Settings
from paperwire.mail import build_message
from paperwire.models import Digest, DigestItem, DigestSection, Hit, Link, Paper, Subscriber, Topic
from paperwire.render import EmailRenderer, RenderedEmail

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "seeds" / "000_f1d956a196093e66.txt"
TEMPLATES = ROOT / "templates"
SETTINGS = Settings(base_url="https://papers.example.org")
RANDOM_SEED = 20240311
BATCH = 1000  # digests made up at a time, before they are rendered
BASELINE_SLICE = 100  # baseline readers timed at a time, between slices of ours
TOPIC_NAMES = ["scaling laws", "MoE", "language models", "diffusion", "depth estimation", "agents",
               "retrieval", "speech", "robotics", "benchmarks", "efficient inference", "multimodal"]
FIRST = "Wei Li Anna Maria Jun Omar Sara Ivan Chen Yuki Lucas Priya Elena Noah Fatima Tom".split()
LAST = "Zhang Wang Smith Garcia Kim Nguyen Müller Rossi Tanaka Ivanova Singh Haddad Silva Chen".split()
ZONES = ["Europe/Berlin", "UTC", "America/New_York", "Asia/Tokyo"]


Matches = tuple[dict[tuple[int, str], tuple[Hit, ...]], set[tuple[int, str]]]


def seed_papers(rng: random.Random) -> tuple[list[Paper], Matches]:
    """The seed listing with authors and arXiv links added, the hits of each (paper, topic),
    and which (paper, topic) pairs match beyond the topic a reader gets the paper under.

    Hits are random words of the abstract (their real spans) and the extra matches a
    one-in-five draw, both made once per paper and topic: as with real matching, every
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
        words = sorted({w for w in re.findall(r"[A-Za-z]{7,}", paper.abstract)})
        for topic in TOPIC_NAMES:
            hits[number, topic] = tuple(
                Hit(w.lower(), "abstract", tuple((m.start(), m.end()) for m in re.finditer(w, paper.abstract)))
                for w in rng.sample(words, min(len(words), rng.randint(1, 3))))
            if rng.random() < 0.2:
                also.add((number, topic))
    return papers, (hits, also)


def make_digest(number: int, rng: random.Random, papers: list[Paper], matches: Matches, unshared: bool = False) -> Digest:
    """One reader's digest. ``unshared``: the reader also follows a topic of their own
    wording that every paper matched, so no paper block is like any other reader's."""
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
        by_topic.setdefault(best, []).append(DigestItem(
            papers[index], 1.0, rank, dt.date(2024, 3, 11), (topics[best].name, *also), hits[index, topics[best].name]))
    sections = tuple(DigestSection(topics[n], tuple(items)) for n, items in sorted(by_topic.items()))
    return Digest(reader, "2024-03-11", dt.date(2024, 3, 11), sections, more=rng.choice((0, 0, 0, 3, 12)))


@dataclass(frozen=True, slots=True)
class WholeItem:
    """A paper as the baseline's single-pass templates see it: number, title and everything else."""

    number: int
    title: str
    heading: str
    paper: render.PaperView


class PerReaderCompile:
    """The baseline: each reader's whole email rendered in one Jinja pass, the MJML compiled per reader.

    The paper templates are inlined into the frame templates, so Jinja renders every paper
    inside the reader's template (no shared blocks), then MRML compiles that reader's MJML
    (``render.compile_mjml``, the compile ours runs once).
    The parts are whole documents, so MIME encodes all of it per message too. The text is
    byte-for-byte the text part of ours (checked on the first readers of each run).
    """

    def __init__(self) -> None:
        ours = EmailRenderer(TEMPLATES)
        env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.mjml_template = env.from_string(self._inlined(
            "email.mjml.j2", "{{ section.papers }}", "email_paper.html.j2",
            "{% for item in section.items %}{% with paper = item.paper %}", "{% endwith %}{% endfor %}"))
        self.text_template = ours.text_template.environment.from_string(self._inlined(
            "email.txt.j2", "{{ item.text }}", "email_paper.txt.j2", "{% with paper = item.paper %}", "{% endwith %}"))

    @staticmethod
    def _inlined(frame: str, slot: str, paper: str, before: str, after: str) -> str:
        source = (TEMPLATES / frame).read_text(encoding="utf-8")
        assert source.count(slot) == 1, f"{frame} no longer has one {slot}"
        return source.replace(slot, before + (TEMPLATES / paper).read_text(encoding="utf-8") + after)

    def render(self, digest: Digest, settings: Settings) -> RenderedEmail:
        views = [[render.item_view(item, section.topic.name, settings) for item in section.items]
                 for section in digest.sections]
        values = render.context(digest, settings, views)  # it reads only the titles of the papers
        values["sections"] = [
            render.SectionView(section.name, tuple(WholeItem(slot.number, slot.title, slot.heading, view)  # type: ignore[misc]
                                                   for slot, view in zip(section.items, section_views)))
            for section, section_views in zip(values["sections"], views)]
        html = render.compile_mjml(self.mjml_template.render(values))  # what ours does once
        return RenderedEmail(values["subject"], values["preheader"], (html,), (self.text_template.render(values),))


def check_same_email(readers: int = 20) -> None:
    """The baseline and ours make the same email: subject and text identical, HTML equal up to whitespace."""
    papers, matches = seed_papers(random.Random(RANDOM_SEED))
    rng = random.Random(RANDOM_SEED)
    ours, theirs = EmailRenderer(TEMPLATES), PerReaderCompile()
    squeeze = lambda html: re.sub(r"\s+", " ", html).replace("> <", "><")
    for number in range(readers):
        digest = make_digest(number, rng, papers, matches)
        a, b = ours.render(digest, SETTINGS), theirs.render(digest, SETTINGS)
        assert (a.subject, a.text, squeeze(a.html)) == (b.subject, b.text, squeeze(b.html)), number


def rss_mb() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Totals:
    messages: int = 0
    papers: int = 0
    html_chars: int = 0
    max_html: int = 0
    message_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("render", "mime", "bytes"), 0.0))
    rss: dict[int, float] = field(default_factory=dict)  # messages done -> current RSS (MB)

    def add(self, other: Totals) -> None:
        self.messages += other.messages
        self.papers += other.papers
        self.html_chars += other.html_chars
        self.max_html = max(self.max_html, other.max_html)
        self.message_bytes += other.message_bytes
        for phase, seconds in other.seconds.items():
            self.seconds[phase] += seconds

    @property
    def busy(self) -> float:
        """Seconds spent turning digests into messages."""
        return sum(self.seconds.values())


class Runner:
    """Builds, serializes and drops messages for readers ``first``, ``first + 1``, ... on demand.

    The digests (the given matches) are made up BATCH at a time, untimed, as a send run
    plans its digests before it renders them; the clock runs from each digest to its
    message's bytes.
    """

    def __init__(self, first: int, per_reader_compile: bool = False, checkpoints: tuple[int, ...] = (),
                 unshared: bool = False) -> None:
        self.next = first
        self.unshared = unshared
        self.rng = random.Random(RANDOM_SEED + first)
        self.papers, self.matches = seed_papers(random.Random(RANDOM_SEED))
        self.renderer = PerReaderCompile() if per_reader_compile else EmailRenderer(TEMPLATES)
        self.checkpoints = checkpoints
        self.totals = Totals()

    def run(self, count: int) -> None:
        totals, seconds, clock = self.totals, self.totals.seconds, time.perf_counter
        for start in range(self.next, self.next + count, BATCH):
            batch = [make_digest(number, self.rng, self.papers, self.matches, self.unshared)
                     for number in range(start, min(start + BATCH, self.next + count))]
            for digest in batch:
                t1 = clock()
                rendered = self.renderer.render(digest, SETTINGS)
                t2 = clock()
                message = build_message(digest, rendered, SETTINGS)  # finished wire bytes
                t3 = clock()
                data = bytes(message)
                t4 = clock()
                seconds["render"] += t2 - t1
                seconds["mime"] += t3 - t2
                seconds["bytes"] += t4 - t3
                totals.messages += 1
                totals.papers += digest.papers
                html_chars = sum(map(len, rendered.html_parts))
                totals.html_chars += html_chars
                if html_chars > totals.max_html:  # UTF-8 is never shorter than the characters
                    totals.max_html = max(totals.max_html, sum(len(part.encode()) for part in rendered.html_parts))
                totals.message_bytes += len(data)
                if totals.messages in self.checkpoints:
                    totals.rss[totals.messages] = rss_mb()
        self.next += count


def interleaved(first: int, readers: int, baseline_readers: int, checkpoints: tuple[int, ...],
                unshared: bool) -> tuple[Totals, Totals]:
    """Ours for ``readers`` and the baseline for ``baseline_readers``, in alternating slices,
    so that whatever else the machine does at a time slows both alike."""
    ours = Runner(first, checkpoints=checkpoints, unshared=unshared)
    baseline = Runner(first, per_reader_compile=True, unshared=unshared)
    slices = max(1, baseline_readers // BASELINE_SLICE)
    for n in range(slices):
        baseline.run(baseline_readers * (n + 1) // slices - baseline_readers * n // slices)
        ours.run(readers * (n + 1) // slices - readers * n // slices)
    ours.totals.rss[ours.totals.messages] = rss_mb()
    return ours.totals, baseline.totals


def _worker(job: tuple[int, int, int, tuple[int, ...], bool]) -> tuple[Totals, Totals, float]:
    first, count, baseline_count, checkpoints, unshared = job
    ours, baseline = interleaved(first, count, baseline_count, checkpoints, unshared)
    return ours, baseline, peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=2000,
                        help="readers timed with per-reader MJML compile, in slices between ours")
    parser.add_argument("--workers", type=int, default=1, help="processes; each renders its share of the readers")
    parser.add_argument("--unshared", action="store_true",
                        help="worst case: every reader has a topic of their own on every paper, so no block is shared")
    args = parser.parse_args()

    started = time.perf_counter()
    renderer = EmailRenderer(TEMPLATES)
    print(f"template setup (MJML compile + Jinja parse): {(time.perf_counter() - started) * 1000:.1f} ms, once per process")
    del renderer
    print(f"RSS before: {rss_mb():.0f} MB")
    check_same_email()

    started = time.perf_counter()
    workers = max(1, args.workers)
    share, base_share = -(-args.readers // workers), -(-args.baseline_sample // workers)
    marks = tuple(n // workers for n in (10_000, 50_000, 100_000) if n < args.readers)
    jobs = [(w * share, min(share, args.readers - w * share), min(base_share, args.baseline_sample - w * base_share),
             marks, args.unshared) for w in range(workers)]
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_worker, jobs)
    wall = time.perf_counter() - started
    totals, baseline = Totals(), Totals()
    for ours_part, base_part, _ in results:
        totals.add(ours_part)
        baseline.add(base_part)
    # Each worker's own rate; workers run side by side, so the rates add up.
    rate = sum(ours_part.messages / ours_part.busy for ours_part, _, _ in results)
    base_rate = sum(base_part.messages / base_part.busy for _, base_part, _ in results)
    busy = totals.busy

    print(f"baseline, MJML compiled per reader ({baseline.messages:,} readers, timed in {BASELINE_SLICE}-reader slices "
          f"between ours): {base_rate:,.0f} messages/s -> {args.readers / base_rate:,.1f} s for {args.readers:,}; "
          f"render {baseline.seconds['render'] / baseline.messages * 1e6:,.0f} µs, "
          f"mime {baseline.seconds['mime'] / baseline.messages * 1e6:,.0f} µs per message")
    print(f"\n{totals.messages:,} messages, {totals.papers:,} papers ({totals.papers / totals.messages:.1f} per message), "
          f"{workers} worker(s)")
    print(f"overall: {rate:,.0f} messages/s = {rate / base_rate:.1f}x the per-reader-compile baseline "
          f"({busy / workers:.1f} s rendering per worker; {wall:.1f} s wall with the baseline and making up the digests)")
    print("time per message: " + ", ".join(f"{phase} {seconds / totals.messages * 1e6:,.0f} µs"
                                            for phase, seconds in totals.seconds.items())
          + f" (sum {busy / totals.messages * 1e6:,.0f} µs)")
    ours, theirs = totals.seconds["render"] / totals.messages, baseline.seconds["render"] / baseline.messages
    print(f"render alone: {ours * 1e6:,.0f} µs per message = {totals.seconds['render'] / totals.papers * 1e6:.1f} µs "
          f"per paper, {1 / ours:,.0f} renders/s per process; {theirs / ours:.1f}x faster than compiling per reader")
    print(f"HTML: {totals.html_chars / totals.messages / 1024:.1f} K characters mean, {totals.max_html / 1024:.1f} KiB max "
          f"(Gmail clips at {render.GMAIL_CLIP_BYTES / 1000:.0f} KB); MIME message {totals.message_bytes / totals.messages / 1024:.1f} KiB mean")
    for worker, (ours_part, _, _) in enumerate(results):
        print(("RSS (current)" if workers == 1 else f"worker {worker} RSS") + " after N of its readers: "
              + ", ".join(f"{n:,}: {mb:.0f} MB" for n, mb in sorted(ours_part.rss.items())))
    peaks = [peak for _, _, peak in results]
    print(f"peak RSS: {max(peaks):.0f} MB" + (f" per worker (parent {peak_rss_mb():.0f} MB)" if workers > 1 else ""))


if __name__ == "__main__":
    main()
