"""Ingest benchmark: a generated Daily Papers listing of N papers into a fresh SQLite file.

Prints papers/s for the first ingest (all new) and for a re-ingest (all unchanged),
split into parse and store time, and the process's peak memory. Target (issue 2):
at least 5,000 papers/s into SQLite on a 2-core machine.

    .venv/bin/python bench/ingest.py [--papers 10000]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperwire import pipeline, sources  # noqa: E402
from paperwire.store import Store  # noqa: E402

SEED = ROOT / "seeds" / "000_f1d956a196093e66.txt"


def generate_listing(count: int, seed: int = 7) -> str:
    """A capture in the seed's format: seed titles and abstracts, recombined and numbered."""
    (listing,) = sources.read_path(SEED)
    rng = random.Random(seed)
    sentences = [s.strip() + "." for p in listing.papers for s in p.abstract.split(". ") if s.strip()]
    lines = ["new", "", "Get trending papers in your email inbox!", "", "Subscribe", "",
             "byAK and the research community", "", "Mar 11", ""]
    for number in range(count):
        title = f"{rng.choice(listing.papers).title} ({number})"
        abstract = " ".join(rng.sample(sentences, 8))
        if number % 10 == 0:
            abstract += f" Code: https://github.com/lab{number}/repo{number}."
        lines += [title, "", abstract, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        listing_file = Path(folder) / "listing.txt"
        listing_file.write_text(generate_listing(args.papers))
        store = Store(f"sqlite:///{folder}/bench.sqlite3")
        print(f"listing: {args.papers:,} papers, {listing_file.stat().st_size / 1e6:.1f} MB")

        for label in ("first ingest (all new)", "re-ingest (all unchanged)"):
            start = time.perf_counter()
            batch = sources.read_path(listing_file)
            parsed = time.perf_counter()
            counts = store.save_listings(batch)
            stored = time.perf_counter()
            total = stored - start
            print(f"{label:28s} {args.papers / total:8,.0f} papers/s  "
                  f"(parse {parsed - start:.2f} s, store {stored - parsed:.2f} s, total {total:.2f} s; "
                  f"added {counts.added}, unchanged {counts.unchanged})")

        start = time.perf_counter()
        report = pipeline.ingest(store, [listing_file])
        print(f"{'pipeline.ingest (CLI path)':28s} {args.papers / (time.perf_counter() - start):8,.0f} papers/s"
              f"  (errors {len(report.errors)})")
        store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of the process): {peak_mb:.0f} MB")
    print("target: >= 5,000 papers/s into SQLite")


if __name__ == "__main__":
    main()
