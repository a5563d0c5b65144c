"""Relevance on the judged queries (tests/data/relevance_judgments.toml): words alone against
words and meaning, per set, and the sweep of the meaning threshold the default was chosen
from (on the tuning set only; the held-out set is printed for the record, not for choosing).

    PYTHONPATH=src .venv/bin/python bench/relevance.py [--sweep]

Runs the real model over the judged listings in a fresh SQLite database (about a minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paperwire import semantic  # noqa: E402
from paperwire.embeddings import get_embedder  # noqa: E402
from paperwire.match import meaning  # noqa: E402
from paperwire.store import Store  # noqa: E402
from tests.relevance import SETS, evaluate, ingest_listings, load_judgments, report, word_matcher  # noqa: E402

THRESHOLDS = (0.20, 0.22, 0.24, 0.26, 0.28, 0.30, 0.32, 0.36)
FLOORS = (0.0, 0.30, 0.35, 0.40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="also print recall/precision for other thresholds")
    parser.add_argument("--per-query", action="store_true", help="print every query's figures and misses")
    args = parser.parse_args()
    judgments = load_judgments()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'judged.sqlite3'}")
        papers = ingest_listings(store, judgments, today=dt.date(2024, 11, 26))
        embedder = get_embedder()
        step = semantic.embed_step(store, embedder, papers)
        print(f"{len(papers)} papers, {step.embedded} embedded ({embedder.model_id})")
        vectors = semantic.meaning_vectors(store, embedder, papers)
        titles = {paper.id: paper.title for paper in papers}

        def hybrid(calibration: meaning.Calibration, queries):
            found = meaning.match_topics([(q.query, q.query) for q in queries], papers, None, vectors, calibration)
            return lambda query: found[query].paper_ids()

        default = meaning.Calibration()
        print(f"default: threshold {default.threshold}, floor {default.floor}, like {default.like_threshold}")
        for name in SETS:
            queries = judgments.set(name)
            for label, match in (("words", word_matcher(papers)), ("words and meaning", hybrid(default, queries))):
                score = evaluate(match, queries, f"{name}, {label}")
                print(report(score, titles) if args.per_query else report(score).splitlines()[0])
        if args.sweep:
            queries = judgments.set("tuning")
            print("\ntuning set: recall / precision / topics without papers left empty, by threshold and floor")
            print("threshold " + "".join(f"   floor {floor:<14}" for floor in FLOORS))
            for threshold in THRESHOLDS:
                cells = []
                for floor in FLOORS:
                    score = evaluate(hybrid(replace(default, threshold=threshold, floor=floor), queries), queries)
                    empty, total = score.empty_topics
                    cells.append(f"{score.recall:.2f} / {score.precision:.2f} / {empty}/{total}  ")
                print(f"{threshold:<9} " + "".join(f"{cell:<22}" for cell in cells))
        store.close()


if __name__ == "__main__":
    main()
