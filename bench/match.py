"""Benchmark: every subscriber's topics against one day's listing.

Generates N subscribers (1-3 topics of 1-4 terms each: words, quoted phrases,
acronyms, exclusions, the odd OR / field prefix, all drawn from the real vocabulary of
the seed abstracts) and M papers (the seed papers plus variants that recombine seed
sentences), then times compiling and matching, reports peak memory, and compares with
a naive per-subscriber regex loop timed on a sample and extrapolated.

    PYTHONPATH=src .venv/bin/python bench/match.py --subscribers 100000 --papers 1000 [--repeat 3]

``--peers 1000,10000,100000`` instead times paperwire against tantivy (``pip install
'.[bench]'``) and SQLite FTS5 on the same topics and papers at each number of
subscribers: each engine indexes the papers and answers every distinct topic with all
its hits, best first (paperwire: compile + match as a run without an embedder does it,
``split.match_words``, which splits a large run over two processes; the peers: build an
in-memory index, then one query per distinct topic). Medians of ``--repeat`` runs, interleaved.
Without ``--meaning``, the main figure is that same path (``--one-process`` times compiling
and matching apart, in one process).
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import resource
import sqlite3
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paperwire.match import ACRONYMS, Match, compile_queries, split
from paperwire.models import Paper

SEED_FILE = Path(__file__).resolve().parent.parent / "seeds" / "000_f1d956a196093e66.txt"
RANDOM_SEED = 20240311
STOPWORDS = set(
    """a about above after again against all also an and any are as at be because been before being
    between both but by can could did do does each few for from further had has have having here how
    however if in into is it its itself just more most no nor not now of off on once only or other our
    out over own same so such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you
    your which our us via both while thus may might must shall should""".split()
)
FIRST_NAMES = "Wei Li Anna Maria Jun Omar Sara Ivan Chen Yuki Lucas Priya Elena Noah Fatima Tom".split()
LAST_NAMES = "Zhang Wang Smith Garcia Kim Nguyen Müller Rossi Tanaka Ivanova Singh Haddad Silva Chen".split()


def load_seed(path: Path) -> list[Paper]:
    """The seed listing: header lines, a date line (``Mar 11``), then title / abstract pairs."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", line.strip()))
    body = [line.strip() for line in lines[start + 1 :] if line.strip()]
    return [Paper(id=f"seed-{n}", title=body[2 * n], abstract=body[2 * n + 1]) for n in range(len(body) // 2)]


def make_papers(seed: list[Paper], count: int, rng: random.Random) -> list[Paper]:
    """The seed papers, then variants: a seed title and 4-9 sentences from any seed abstract."""
    sentences = [s for paper in seed for s in re.split(r"(?<=[.!?])\s+", paper.abstract) if len(s) > 20]
    papers = [Paper(p.id, p.title, p.abstract, authors=_authors(rng)) for p in seed[:count]]
    while len(papers) < count:
        title = rng.choice(seed).title
        abstract = " ".join(rng.sample(sentences, rng.randint(4, 9)))
        papers.append(Paper(f"gen-{len(papers)}", title, abstract, authors=_authors(rng)))
    return papers


def _authors(rng: random.Random) -> list[str]:
    return [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(rng.randint(1, 6))]


class Vocabulary:
    """Words, phrases and acronyms that people would plausibly subscribe to."""

    def __init__(self, seed: list[Paper]):
        words: list[str] = []
        phrases: set[str] = set()
        for paper in seed:
            for sentence in re.split(r"[.;:,()!?]", paper.abstract):
                tokens = re.findall(r"[A-Za-z][A-Za-z-]+", sentence)
                content = [t for t in tokens if t.lower() not in STOPWORDS and len(t) > 3]
                words.extend(t.lower() for t in content)
                for i in range(len(tokens) - 1):
                    pair = tokens[i : i + 2]
                    if all(t.lower() not in STOPWORDS for t in pair):
                        phrases.add(" ".join(pair).lower())
                    if i + 2 < len(tokens) and tokens[i + 1].lower() in ("of", "for"):
                        phrases.add(" ".join(tokens[i : i + 3]).lower())
        self.frequent = words  # repeats: sampling from it favours common words
        self.distinct = sorted(set(words))
        self.phrases = sorted(phrases)
        self.acronyms = sorted(ACRONYMS)

    def word(self, rng: random.Random) -> str:
        return rng.choice(self.frequent if rng.random() < 0.3 else self.distinct)

    def acronym(self, rng: random.Random) -> str:
        name = rng.choice(self.acronyms)
        return rng.choice((name, name.lower(), name.upper()))


def make_topic(vocab: Vocabulary, rng: random.Random) -> str:
    """1-4 terms; at least one positive; sometimes an OR pair or a field prefix."""
    terms: list[str] = []
    for n in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.45:
            term = vocab.word(rng)
        elif kind < 0.70:
            term = f'"{rng.choice(vocab.phrases)}"'
        elif kind < 0.85:
            term = vocab.acronym(rng)
        elif n > 0:
            term = "-" + vocab.word(rng)
        else:
            term = vocab.word(rng)
        if not term.startswith("-"):
            roll = rng.random()
            if roll < 0.05:
                term = f"title:{term}"
            elif roll < 0.10 and terms:
                term = f"({term} OR {vocab.acronym(rng)})"
        terms.append(term)
    return " ".join(terms)


def make_subscribers(count: int, vocab: Vocabulary, rng: random.Random) -> list[list[str]]:
    return [[make_topic(vocab, rng) for _ in range(rng.randint(1, 3))] for _ in range(count)]


def naive_regex_loop(subscribers: list[list[str]], papers: list[Paper]) -> int:
    """The obvious way: per subscriber, per topic, per paper, run each term's regex.

    It knows nothing of stems, acronyms or joined forms (so it does less work than the
    real matcher); it only counts hits to rank. Returns how many matches it found.
    """
    texts = [f"{p.title}\n{p.abstract}" for p in papers]
    found = 0
    for topics in subscribers:
        for topic in topics:
            positives, negatives = _naive_terms(topic)
            hits = []
            for number, text in enumerate(texts):
                if any(n.search(text) for n in negatives):
                    continue
                counts = [len(p.findall(text)) for p in positives]
                if all(counts):
                    hits.append((-sum(counts), number))
            hits.sort()
            found += len(hits)
    return found


def _naive_terms(topic: str) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
    positives, negatives = [], []
    for negated, phrase, word in re.findall(r'(-?)(?:"([^"]+)"|([^\s()"]+))', topic):
        text = (phrase or word).split(":")[-1]
        if text in ("OR", ""):
            continue
        words = [re.escape(w) for w in re.findall(r"\w+", text)]
        if not words:
            continue
        pattern = re.compile(r"\b" + r"[\s-]+".join(words) + r"\b", re.IGNORECASE)
        (negatives if negated else positives).append(pattern)
    return positives, negatives


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class MemorySampler:
    """The peak of this process's and its children's summed proportional set sizes (PSS: a page
    shared by two processes counts half in each), read from /proc every ``every`` seconds.
    RSS alone counts the pages a forked child shares with its parent twice (``--memory``)."""

    def __init__(self, every: float = 0.1):
        self.peak_mb = 0.0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak_mb = max(self.peak_mb, sum(map(_pss_mb, [os.getpid(), *_children(os.getpid())])))


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def explain_top(results: dict[object, Sequence[Match]], count: int) -> int:
    """What an email run does next: build the best ``count`` matches, with reasons, per topic."""
    built = 0
    for ranking in results.values():
        built += len(ranking[:count])
    return built


def synthetic_vectors(papers: list[Paper], rng: random.Random, dims: int = 384) -> Any:
    """Vectors as the store would hold them (``--meaning``): unit vectors for each paper's text
    and title, and for each topic a unit vector near three papers, so every topic finds a few
    papers by meaning and the matrix products, thresholds and fusion do their real work.
    Embedding is not timed here: bench/embed.py measures it."""
    import numpy as np

    from paperwire.match import meaning

    generator = np.random.default_rng(rng.randrange(2**32))
    texts = meaning.unit(generator.standard_normal((len(papers), dims)).astype(np.float32))
    titles = meaning.unit(texts + 0.03 * generator.standard_normal(texts.shape).astype(np.float32))
    space = meaning.PaperSpace(texts, titles, np.ones(len(papers), bool), texts.mean(axis=0), titles.mean(axis=0))

    def of_texts(topics: Sequence[str]) -> Any:  # stands for reading stored vectors: kept cheap and lean
        near = generator.integers(0, len(papers), (len(topics), 3))
        noise = 0.05 * generator.standard_normal((len(topics), dims), dtype=np.float32)
        return meaning.unit(texts[near[:, 0]] + texts[near[:, 1]] + texts[near[:, 2]] + noise)

    return meaning.Vectors(space, of_texts, lambda refs: {})


def meaning_and_words(topics: list[tuple[object, str]], papers: list[Paper], vectors: Any) -> tuple[Any, dict, tuple]:
    """Compile, match by words and by meaning, fuse and rank: what a dispatch run does with vectors stored."""
    from paperwire.match import meaning

    return _timed_whole(lambda: meaning.match_topics(topics, papers, None, vectors))


def words_alone(topics: list[tuple[object, str]], papers: list[Paper]) -> tuple[Any, dict, tuple]:
    """Match by words alone as a run with no embedder does (``split.match_words``: a large run
    splits its topics over two processes); compiling is inside the one figure."""
    return _timed_whole(lambda: split.match_words(topics, papers, None))


def _timed_whole(match: Any) -> tuple[Any, dict, tuple]:
    """``match()``'s results and its wall and CPU seconds as one figure (no compile step of its own)."""
    wall, cpu = time.perf_counter(), time.process_time()
    results = match()
    return None, results, (0.0, time.perf_counter() - wall, 0.0, time.process_time() - cpu)


def compile_and_match(
    topics: list[tuple[object, str]], papers: list[Paper], limit: int | None
) -> tuple[Any, dict[Any, Sequence[Match]], tuple[float, float, float, float]]:
    """Compile the topics, then match and rank them: (matcher, results, wall and CPU seconds of each)."""
    wall, cpu = time.perf_counter(), time.process_time()
    matcher = compile_queries(topics)
    compiled_wall, compiled_cpu = time.perf_counter(), time.process_time()
    results = matcher.match(papers, limit=limit)
    finished_wall, finished_cpu = time.perf_counter(), time.process_time()
    timing = (compiled_wall - wall, finished_wall - compiled_wall, compiled_cpu - cpu, finished_cpu - compiled_cpu)
    return matcher, results, timing


# --- peers: the tools a user would reach for ----------------------------------------------
# Topics are translated into each engine's own syntax with the same meaning as far as it
# goes: every positive item required, exclusions subtracted, "(a OR b)" an alternative,
# title: a field; words and phrases go through the engine's English stemmer. (Neither peer
# knows acronyms, joined forms or nearness; they do less than paperwire.)

_TOPIC_ITEM = re.compile(r'(-?)(?:(title):)?(\([^)]*\)|"[^"]*"|\S+)')


def _items(topic: str) -> list[tuple[bool, str | None, list[str]]]:
    """(excluded, field, alternatives) per item of a bench topic (bench topics only)."""
    items = []
    for dash, field, body in _TOPIC_ITEM.findall(topic):
        if body.startswith("("):
            options = [option.strip().strip('"') for option in body[1:-1].split(" OR ")]
        else:
            options = [body.strip('"')]
        options = [" ".join(re.findall(r"[^\W_]+", option)) for option in options]
        options = [option for option in options if option]
        if options:
            items.append((dash == "-", field or None, options))
    return items


def tantivy_run(topics: list[str], papers: list[Paper]) -> int:
    """Index the papers in RAM, then one query per topic (``+a +"b c" -d``): all hits, best first."""
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=False, tokenizer_name="en_stem")
    builder.add_text_field("abstract", stored=False, tokenizer_name="en_stem")
    builder.add_integer_field("number", stored=True, fast=True)
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    for number, paper in enumerate(papers):
        writer.add_document(tantivy.Document(title=paper.title, abstract=paper.abstract, number=number))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    found = 0
    for topic in topics:
        parts = []
        for excluded, field, options in _items(topic):
            quoted = " ".join(f'{field + ":" if field else ""}"{option}"' for option in options)
            parts.append(("-" if excluded else "+") + (f"({quoted})" if len(options) > 1 else quoted))
        query = index.parse_query(" ".join(parts), ["title", "abstract"])
        found += len(searcher.search(query, limit=len(papers)).hits)
    return found


def fts5_run(topics: list[str], papers: list[Paper]) -> int:
    """An in-memory FTS5 table (porter stemmer), then one query per topic ordered by bm25."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE papers USING fts5(title, abstract, tokenize='porter unicode61')")
    db.executemany("INSERT INTO papers(rowid, title, abstract) VALUES (?, ?, ?)",
                   [(number, paper.title, paper.abstract) for number, paper in enumerate(papers)])
    found = 0
    for topic in topics:
        positives, negatives = [], []
        for excluded, field, options in _items(topic):
            terms = [f'{field + " : " if field else ""}"{option}"' for option in options]
            (negatives if excluded else positives).append("(" + " OR ".join(terms) + ")")
        if not positives:
            continue
        query = " AND ".join(positives) + "".join(f" NOT {negative}" for negative in negatives)
        found += len(db.execute("SELECT rowid FROM papers WHERE papers MATCH ? ORDER BY rank", (query,)).fetchall())
    db.close()
    return found


def compare_with_peers(sizes: list[int], papers: list[Paper], vocab: Vocabulary, repeat: int) -> None:
    """paperwire, tantivy and FTS5 at each number of subscribers: median wall seconds of ``repeat`` runs."""
    print(f"{len(papers):,} papers; median wall seconds of {repeat} interleaved runs")
    print(f"{'subscribers':>11} {'topics':>8} {'distinct':>8} | {'paperwire':>9} {'tantivy':>8} {'FTS5':>8}")
    for size in sizes:
        rng = random.Random(RANDOM_SEED + size)
        subscribers = make_subscribers(size, vocab, rng)
        topics = [((who, n), topic) for who, mine in enumerate(subscribers) for n, topic in enumerate(mine)]
        distinct = list(dict.fromkeys(topic for _, topic in topics))
        times: dict[str, list[float]] = {"paperwire": [], "tantivy": [], "FTS5": []}
        splits = 0  # paperwire runs that split over two processes (split.worth_splitting: size and load)
        for _ in range(repeat):
            splits += split.worth_splitting(len(distinct), split.WORDS_SPLIT_FROM)
            for name, run in (
                ("paperwire", lambda: words_alone(topics, papers)),
                ("tantivy", lambda: tantivy_run(distinct, papers)),
                ("FTS5", lambda: fts5_run(distinct, papers)),
            ):
                gc.collect()
                started = time.perf_counter()
                result = run()
                times[name].append(time.perf_counter() - started)
                del result  # freeing paperwire's rankings is not part of its time (nor of the others')
        medians = {name: statistics.median(found) for name, found in times.items()}
        print(
            f"{size:>11,} {len(topics):>8,} {len(distinct):>8,} | {medians['paperwire']:>8.2f}s"
            f" {medians['tantivy']:>7.2f}s {medians['FTS5']:>7.2f}s"
            + (f"   (paperwire split in {splits} of {repeat} runs)" if splits else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument("--naive-sample", type=int, default=500, help="subscribers timed with the naive loop")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep only the best N matches per topic (words alone, in one process)")
    parser.add_argument("--one-process", action="store_true",
                        help="words alone: compile, then match, in this process (timed apart), never split")
    parser.add_argument("--repeat", type=int, default=1, help="compile and match this many times (fresh each time)")
    parser.add_argument("--peers", default=None, help="compare with tantivy and FTS5 at these subscriber counts: 1000,10000")
    parser.add_argument("--memory", action="store_true",
                        help="also sample the summed PSS of this process and its forked child (costs a little time)")
    parser.add_argument("--meaning", action="store_true",
                        help="match by words and meaning (synthetic stored vectors), as digests do by default")
    args = parser.parse_args()

    rng = random.Random(RANDOM_SEED)
    seed = load_seed(SEED_FILE)
    papers = make_papers(seed, args.papers, rng)
    vocab = Vocabulary(seed)
    if args.peers:
        compare_with_peers([int(size) for size in args.peers.split(",")], papers, vocab, args.repeat)
        return
    subscribers = make_subscribers(args.subscribers, vocab, rng)
    topics = [((who, n), topic) for who, mine in enumerate(subscribers) for n, topic in enumerate(mine)]
    rss_before = peak_rss_mb()
    print(f"{len(subscribers):,} subscribers, {len(topics):,} topics, {len(papers):,} papers")
    print(f"example topics: {[t for _, t in topics[:6]]}")

    # What one dispatch run needs before building digests: compile every topic, then match
    # and rank them all. Wall time is what the target is about; CPU time is shown too,
    # since other work on a shared machine can stretch the wall clock.
    timings: list[tuple[float, float, float, float]] = []
    matcher = results = None
    sampler = MemorySampler() if args.memory else None
    for attempt in range(args.repeat):
        matcher = results = None  # drop the previous run's objects before timing the next
        gc.collect()
        if args.meaning:
            matcher, results, timing = meaning_and_words(topics, papers, synthetic_vectors(papers, random.Random(1)))
        else:
            matcher, results, timing = (compile_and_match(topics, papers, args.limit) if args.limit or args.one_process
                                        else words_alone(topics, papers))
        timings.append(timing)
        compile_wall, match_wall, compile_cpu, match_cpu = timing
        label = f"run {attempt + 1}: " if args.repeat > 1 else ""
        print(
            f"{label}compile {compile_wall:.2f} s + match and rank {match_wall:.2f} s = {compile_wall + match_wall:.2f} s"
            f" wall (CPU {compile_cpu:.2f} + {match_cpu:.2f} = {compile_cpu + match_cpu:.2f} s)"
        )
    assert results is not None
    if args.repeat > 1:
        totals = sorted(compile_wall + match_wall for compile_wall, match_wall, _, _ in timings)
        print(f"wall total over {args.repeat} runs: best {totals[0]:.2f} s, median {totals[len(totals) // 2]:.2f} s")
    ours = timings[-1][0] + timings[-1][1]
    total_matches = sum(len(matches) for matches in results.values())
    distinct_matches = sum(len(m) for m in {id(m): m for m in results.values()}.values())
    if matcher is not None:
        print(
            f"distinct queries {matcher.distinct_queries:,}, distinct terms {matcher.distinct_terms:,}"
            " (a run of words becomes a phrase term only when a listing needs it)"
        )
    elif args.meaning:
        by_meaning = sum(1 for ranking in {id(r): r for r in results.values()}.values()
                         for position in range(len(ranking)) if ranking[position].why[-1] != "words")
        print(f"distinct queries {len({id(r) for r in results.values()}):,}; matches found by meaning: {by_meaning:,}")
    else:
        print(f"distinct topics {len({text for _, text in topics}):,} (words alone: split.match_words)")
    print(f"matches: {total_matches:,} over all topics ({distinct_matches:,} for distinct queries)")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"peak RSS {peak_rss_mb():.0f} MB (before compiling: {rss_before:.0f} MB)"
          + (f"; the forked word process (match/split.py): {children.ru_maxrss / 1024:.0f} MB,"
             f" CPU {children.ru_utime + children.ru_stime:.2f} s" if children.ru_maxrss else ""))
    if sampler is not None:
        print(f"peak PSS of this process and its forked child together: {sampler.stop():.0f} MB")

    # A long-lived process keeps the compiled queries and rankings: freezing them keeps the
    # cycle collector from rescanning millions of objects while the explanations are built
    # (without it, this step took 7.9 s instead of about 2 s on the 2-core test machine).
    gc.freeze()
    explain_started = time.perf_counter()
    built = explain_top(results, 10)
    print(
        f"then building the top 10 with explanations for every topic: {time.perf_counter() - explain_started:.2f} s"
        f" ({built:,} matches), peak RSS {peak_rss_mb():.0f} MB"
    )

    sample = subscribers[: args.naive_sample]
    naive_started = time.perf_counter()
    naive_found = naive_regex_loop(sample, papers)
    naive_sample_time = time.perf_counter() - naive_started
    naive_total = naive_sample_time * len(subscribers) / max(1, len(sample))
    print(
        f"naive regex loop: {naive_sample_time:.2f} s for {len(sample):,} subscribers ({naive_found:,} matches)"
        f" -> ~{naive_total:.0f} s for all; compile + match is {naive_total / ours:.0f}x faster"
    )


if __name__ == "__main__":
    main()
