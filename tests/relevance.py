"""Judged relevance queries and how well a matcher does on them (issue 14, item 6).

The judgments live in ``tests/data/relevance_judgments.toml`` (its header documents the format).
Any matcher can be scored: a callable ``match(query) -> list[paper_id]`` over the papers of the
judged listings. Borderline papers are ignored; every other returned paper that is not judged
relevant counts against precision, and for a "none" query (no paper fits) any such paper is a
false alarm.

Print the word-only matcher's scores, per set and per query::

    PYTHONPATH=src python -m tests.relevance
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paperwire import pipeline
from paperwire.match import match_one
from paperwire.models import Paper
from paperwire.store import Store

ROOT = Path(__file__).resolve().parent.parent
JUDGMENTS = ROOT / "tests" / "data" / "relevance_judgments.toml"
SETS = ("tuning", "held_out", "fresh", "fresh2")
KINDS = ("concept", "keyword", "none")
VERDICTS = ("relevant", "borderline", "not_relevant")

Matcher = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Judged:
    id: str
    title: str
    reason: str


@dataclass(frozen=True)
class JudgedQuery:
    set: str
    query: str
    kind: str
    relevant: tuple[Judged, ...]
    borderline: tuple[Judged, ...]
    not_relevant: tuple[Judged, ...]

    def ids(self, verdict: str) -> frozenset[str]:
        return frozenset(entry.id for entry in getattr(self, verdict))


@dataclass(frozen=True)
class ListingFile:
    path: Path
    date: dt.date | None


@dataclass(frozen=True)
class Judgments:
    listings: tuple[ListingFile, ...]
    queries: tuple[JudgedQuery, ...]

    def set(self, name: str) -> list[JudgedQuery]:
        return [query for query in self.queries if query.set == name]


def load_judgments(path: Path = JUDGMENTS) -> Judgments:
    """The file as records; a missing field is a KeyError naming it (the tests check the rest)."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    listings = tuple(ListingFile(ROOT / item["path"], dt.date.fromisoformat(item["date"]) if "date" in item else None)
                     for item in data["listings"])
    queries = tuple(
        JudgedQuery(set=name, query=table["query"], kind=table["kind"],
                    **{verdict: tuple(Judged(e["id"], e["title"], e["reason"]) for e in table.get(verdict, []))
                       for verdict in VERDICTS})
        for name in SETS for table in data.get(name, []))
    return Judgments(listings, queries)


def ingest_listings(store: Store, judgments: Judgments, *, today: dt.date | None = None) -> list[Paper]:
    """Ingest the judged listings into ``store`` (one file at a time: each may carry its own date);
    returns the stored papers. A listing that fails is an error of the judgments file."""
    for listing in judgments.listings:
        report = pipeline.ingest(store, [listing.path], date=listing.date, today=today)
        if report.errors:
            raise ValueError(f"{listing.path}: {report.errors[0]}")
    return [stored.paper for stored in store.papers()]


def word_matcher(papers: Sequence[Paper]) -> Matcher:
    """Today's word-only engine, as ``paperwire match QUERY`` runs it (no limit)."""
    return lambda query: [found.paper_id for found in match_one(query, papers)]


@dataclass(frozen=True)
class QueryScore:
    judged: JudgedQuery
    found: frozenset[str]    # relevant papers returned
    missed: frozenset[str]   # relevant papers not returned
    wrong: frozenset[str]    # returned, neither relevant nor borderline

    @property
    def recall(self) -> float | None:
        """None for a "none" query: there is nothing to find."""
        wanted = len(self.found) + len(self.missed)
        return len(self.found) / wanted if wanted else None

    @property
    def precision(self) -> float | None:
        """None when nothing judged was returned (precision is undefined, not perfect)."""
        returned = len(self.found) + len(self.wrong)
        return len(self.found) / returned if returned else None

    @property
    def passed(self) -> bool:
        return not self.missed and not self.wrong


def score_query(judged: JudgedQuery, returned: Iterable[str]) -> QueryScore:
    got = set(returned) - judged.ids("borderline")
    relevant = judged.ids("relevant")
    return QueryScore(judged, frozenset(got & relevant), frozenset(relevant - got), frozenset(got - relevant))


def _mean(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None


@dataclass(frozen=True)
class SetScore:
    name: str
    queries: tuple[QueryScore, ...]

    @property
    def recall(self) -> float | None:
        """Micro-averaged: every relevant paper of the set counts once."""
        wanted = sum(len(q.found) + len(q.missed) for q in self.queries)
        return sum(len(q.found) for q in self.queries) / wanted if wanted else None

    @property
    def precision(self) -> float | None:
        """Micro-averaged over every judged paper returned, "none" queries' false alarms included."""
        returned = sum(len(q.found) + len(q.wrong) for q in self.queries)
        return sum(len(q.found) for q in self.queries) / returned if returned else None

    @property
    def macro_recall(self) -> float | None:
        return _mean(q.recall for q in self.queries)

    @property
    def macro_precision(self) -> float | None:
        return _mean(q.precision for q in self.queries)

    @property
    def empty_topics(self) -> tuple[int, int]:
        """(how many "none" queries returned nothing judged, how many "none" queries there are)."""
        empty = [q for q in self.queries if q.judged.kind == "none"]
        return sum(1 for q in empty if not q.wrong), len(empty)


def evaluate(match: Matcher, queries: Sequence[JudgedQuery], name: str = "") -> SetScore:
    return SetScore(name, tuple(score_query(judged, match(judged.query)) for judged in queries))


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def report(score: SetScore, titles: dict[str, str] | None = None) -> str:
    """Set totals, then one line per query, with the missed and wrong papers of the failures."""
    passed, total = score.empty_topics
    lines = [f"{score.name}: recall {_figure(score.recall)} precision {_figure(score.precision)} "
             f"(macro {_figure(score.macro_recall)} / {_figure(score.macro_precision)}), "
             f"empty topics returned nothing: {passed}/{total}"]
    for q in score.queries:
        lines.append(f"  {'ok  ' if q.passed else 'FAIL'} [{q.judged.kind:7}] {q.judged.query!r}: "
                     f"recall {_figure(q.recall)} precision {_figure(q.precision)}")
        for label, ids in (("missed", q.missed), ("wrong", q.wrong)):
            for paper_id in sorted(ids):
                lines.append(f"         {label}: {paper_id} {(titles or {}).get(paper_id, '')[:70]}")
    return "\n".join(lines)


def main() -> None:
    judgments = load_judgments()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'judged.sqlite3'}")
        try:
            papers = ingest_listings(store, judgments)
        finally:
            store.close()
    titles = {paper.id: paper.title for paper in papers}
    match = word_matcher(papers)
    for name in SETS:
        print(report(evaluate(match, judgments.set(name), name), titles))


if __name__ == "__main__":
    sys.exit(main())
