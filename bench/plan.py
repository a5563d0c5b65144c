"""Benchmark: one day's digests planned as production plans them (``pipeline.plan_digests``).

``bench/match.py`` times matching alone, on topics and vectors it holds in memory. This
times what a dispatch run does around it, from the database: N stored readers with the
topics of bench/match.py, one listing of M papers, and a vector stored for every paper,
topic text and abstract sentence (synthetic, as the embedding step and earlier runs would
have left them: bench/embed.py times embedding). ``plan_digests`` then runs as dispatch
runs it (``on_error`` set, histories read), timed by phase: parsing the topics, the
embedding step (which finds nothing missing), matching (``semantic.match_topics``: words
and meaning), the titles of ``like:`` examples, choosing each reader's papers
(``digest.build_digest``), the closest sentences of papers found by meaning alone
(``explain.ClosestSentences``), what their digests offered them (``Store.offered``, with
``--history DAYS`` of sent digests filled in), and the rest (reading the readers' histories
and what they were sent). ``--batches N`` instead plans N batches of ``workers.batch_size`` readers one by
one, as workers do. Figures and what they showed: bench/README.md, "Plan".

    PYTHONPATH=src .venv/bin/python bench/plan.py --readers 100000 --db /tmp/plan-100000.db

The database is filled once and kept at ``--db`` for later runs (filling 100,000 readers
takes a few minutes); without ``--db`` a temporary one is used. Every vector the run needs
is stored, so the model is never loaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import random
import resource
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from match import RANDOM_SEED, SEED_FILE, Vocabulary, load_seed, make_papers, make_subscribers

from paperwire import digest, explain, pipeline, semantic
from paperwire.config import Settings
from paperwire.embeddings import get_embedder, text_key
from paperwire.errors import ValidationError
from paperwire.match import meaning
from paperwire.models import Listing
from paperwire.normalize import paper_id
from paperwire.store import Store
from paperwire.subscribers import build_subscriber, make_topic

EDITION = dt.date(2024, 3, 11)


def accepted(queries: list[str]) -> list:
    """The generated topics a reader could save (subscribers.make_topic refuses one of only
    common words, such as "across"); "scaling" if none is left."""
    topics = []
    for number, query in enumerate(queries):
        try:
            topics.append(make_topic(f"Topic {number}", query))
        except ValidationError:
            continue
    return topics or [make_topic("Topic 0", "scaling")]


def fill(store: Store, readers: int, papers: int, model_id: str) -> None:
    """The listing, the readers and every vector the run reads, written as production would have."""
    rng = random.Random(RANDOM_SEED)
    seed = load_seed(SEED_FILE)
    # Stored papers are known by arXiv id or title: each variant gets a title of its own.
    listed = [replace(paper, id=paper_id(None, f"{paper.title} ({n})"), title=f"{paper.title} ({n})")
              for n, paper in enumerate(make_papers(seed, papers, rng))]
    store.save_listings([Listing("bench", EDITION, listed)])
    topics = make_subscribers(readers, Vocabulary(seed), rng)
    for start in range(0, readers, 5000):
        store.save_subscribers([build_subscriber(f"reader{n:06d}@example.org", name=f"Reader {n}", topics=accepted(topics[n]))
                                for n in range(start, min(start + 5000, readers))])
        print(f"  {min(start + 5000, readers):,} readers stored", flush=True)
    generator = np.random.default_rng(RANDOM_SEED)
    stored = [item.paper for item in store.papers()]
    text_rows = meaning.unit(generator.standard_normal((len(stored), 384)).astype(np.float32))
    rows: dict[str, np.ndarray] = {}
    for paper, row in zip(stored, text_rows, strict=True):
        text, title = semantic.paper_texts(paper)
        rows[text_key(text)] = row
        rows.setdefault(text_key(title), meaning.unit(row + 0.03 * generator.standard_normal(384).astype(np.float32)))
    for paper in stored:  # each abstract's sentences: a paper found by meaning alone shows its closest one
        for sentence in semantic.sentences(paper.abstract):
            rows.setdefault(text_key(sentence), meaning.unit(generator.standard_normal(384).astype(np.float32)))
    texts = {text for query in store.topic_queries() for text in semantic.topic_texts(query)}
    for text in texts:  # near three papers, as bench/match.py's topics: each finds a few by meaning
        near = generator.integers(0, len(stored), 3)
        rows[text_key(text)] = meaning.unit(text_rows[near].sum(axis=0)
                                            + 0.05 * generator.standard_normal(384).astype(np.float32))
    store.save_vectors(model_id, rows)
    print(f"  {len(rows):,} vectors stored (papers, their sentences, {len(texts):,} topic texts)", flush=True)


def fill_history(store: Store, days: int) -> None:
    """A sent digest a day for each reader, the ``days`` days before the edition (their papers
    of earlier listings, so today's digests are the same): what ``Store.offered`` reads back
    for every reader (when they were offered papers; which ones is in sent_papers)."""
    import sqlalchemy as sa

    from paperwire.store.schema import deliveries, runs

    rng = random.Random(RANDOM_SEED)
    start = dt.datetime.combine(EDITION, dt.time(), dt.timezone.utc) - dt.timedelta(days=days)
    ids = [row.id for row in store.subscribers(status="active")]
    with store.engine.begin() as conn:
        conn.execute(runs.insert().values(id="bench-history", kind="dispatch", pid=0, host="bench", started_at=start,
                                          heartbeat_at=start, finished_at=start, transport=""))
        for day in range(days):
            edition = EDITION - dt.timedelta(days=days - day)
            conn.execute(deliveries.insert(), [
                {"subscriber_id": reader, "slot": edition, "edition": edition.isoformat(), "status": "sent",
                 "run_id": "bench-history", "message_id": f"<{edition}.{reader}@bench>",
                 "papers": [f"2402.{rng.randrange(10**5):05d}" for _ in range(10)],
                 "left_out": [f"2402.{rng.randrange(10**5):05d}" for _ in range(10)],
                 "claimed_at": start, "finished_at": start} for reader in ids])
    print(f"  {days} days of sent digests stored for {len(ids):,} readers", flush=True)


def timed_phases(spent: dict[str, float]) -> None:
    """Wrap each phase's function (those this version of the code has) to add up its wall time."""
    phases = {"parse topics": (pipeline, ("parse_topics", "_parseable")),
              "embedding step": (pipeline, ("_ensure_vectors",)),
              "match": (semantic, ("match_topics",)),
              "like: titles": (semantic, ("example_titles",)),
              "choose each reader's papers": (digest, ("build_digest",)),
              "closest sentences": (explain.ClosestSentences, ("digests", "digest")),
              "what they were offered": (Store, ("offered",))}
    for phase, (module, names) in phases.items():
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _timer(getattr(module, name), phase, spent))


def _timer(function: Any, phase: str, spent: dict[str, float]) -> Any:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - start
    return timed


def planned_in_batches(store: Store, settings: Settings, readers: list, batches: int) -> None:
    """Plan ``batches`` batches of ``workers.batch_size`` readers one after the other, each as a
    worker's job plans it (its own ``plan_digests``), and print the time of each."""
    size = settings.workers_batch_size
    times = []
    for start in range(0, min(len(readers), batches * size), size):
        wall = time.perf_counter()
        planned = list(pipeline.plan_digests(store, settings, readers[start:start + size], edition=EDITION,
                                             on_error=lambda reader, stage, exc: None))
        times.append(time.perf_counter() - wall)
        print(f"  batch {len(times)}: {len(planned):,} digests in {times[-1]:.2f} s", flush=True)
    per_reader = sum(times) / min(len(readers), batches * size) * 1000
    print(f"{len(times)} batches of {size} readers: {sum(times):.2f} s, {per_reader:.2f} ms a reader "
          f"(x {len(readers):,} readers = {per_reader * len(readers) / 1000:,.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file, filled on first use and kept")
    parser.add_argument("--words-only", action="store_true", help='relevance.embedder = "off"')
    parser.add_argument("--history", type=int, default=0, metavar="DAYS",
                        help="when filling: DAYS days of sent digests per reader before the edition")
    parser.add_argument("--batches", type=int, default=0, metavar="N",
                        help="plan the first N batches of workers.batch_size readers, each on its own, "
                             "as workers do (each batch matches its readers alone)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory() if args.db is None else None
    path = args.db if args.db is not None else Path(folder.name) / "plan.db"
    settings = Settings(relevance_embedder="off") if args.words_only else Settings()
    model_id = get_embedder(Settings().relevance_embedder).model_id
    store = Store(f"sqlite:///{path}")
    if store.count_papers() == 0:
        print(f"filling {path} ...", flush=True)
        fill(store, args.readers, args.papers, model_id)
        if args.history:
            fill_history(store, args.history)
    readers = store.subscribers(status="active")
    if args.batches:
        planned_in_batches(store, settings, readers, args.batches)
        return
    spent: dict[str, float] = defaultdict(float)
    timed_phases(spent)
    wall, cpu = time.perf_counter(), time.process_time()
    planned = list(pipeline.plan_digests(store, settings, readers, edition=EDITION,
                                         on_error=lambda reader, stage, exc: print("error:", reader.email, stage, exc)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{len(readers):,} readers, {store.count_papers():,} papers, "
          f"{'words only' if args.words_only else 'words and meaning'}: {len(planned):,} digests planned "
          f"in {wall:.2f} s wall ({cpu:.2f} s CPU of this process; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB, children "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:,.0f} MB)")
    for phase, seconds in spent.items():
        print(f"  {phase:28} {seconds:6.2f} s")
    print(f"  {'the rest':28} {wall - sum(spent.values()):6.2f} s")
    store.close()
    if folder is not None:
        folder.cleanup()


if __name__ == "__main__":
    main()
