"""Papers, their links and the listings they appeared in: ingest with merging, and reads."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..models import Appearance, Link, Listing, Paper, StoredPaper
from ..normalize import merge_papers, title_hash
from .base import _chunks, _now
from .schema import PAPER_REFERENCES, fetch_state, listing_papers, listings, paper_links, papers, topics


@dataclass(frozen=True)
class FetchValidators:
    """What a server said identifies the version of ``url`` we stored."""

    url: str
    etag: str | None
    last_modified: str | None


@dataclass
class IngestCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: IngestCounts) -> IngestCounts:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


@dataclass(frozen=True)
class ListingSummary:
    source: str
    date: dt.date
    papers: int
    origin: str


def _paper_row(paper: Paper, now: dt.datetime) -> dict:
    return {
        "id": paper.id, "arxiv_id": paper.arxiv_id, "title_hash": title_hash(paper.title),
        "title": paper.title, "abstract": paper.abstract, "authors": list(paper.authors),
        "categories": list(paper.categories), "keywords": list(paper.keywords),
        "published": paper.published, "first_seen": paper.first_seen or now, "updated_at": now,
    }


def _link_rows(paper: Paper) -> list[dict]:
    return [{"paper_id": paper.id, "url": l.url, "kind": l.kind, "position": i} for i, l in enumerate(paper.links)]


def _content(paper: Paper) -> tuple:
    """What decides whether a merge changed a paper."""
    return (paper.id, paper.arxiv_id, paper.title, paper.abstract, tuple(paper.authors), tuple(paper.links),
            tuple(paper.categories), tuple(paper.keywords), paper.published)



class PaperStore:
    """Mixin of Store: everything about papers and listings, and how fresh fetched sources are."""

    engine: Engine

    # -- writing -----------------------------------------------------------------

    def save_listings(self, batch: Iterable[Listing], *, fetched: FetchValidators | None = None) -> IngestCounts:
        """Store the listings of one file in ONE transaction: all of it goes in, or nothing.

        ``fetched`` (for a downloaded listing) commits the URL's validators in the same
        transaction, so a 304 next time can only mean "already stored".
        """
        counts = IngestCounts()
        with self.engine.begin() as conn:
            for listing in batch:
                counts += self._save_listing(conn, listing)
            if fetched is not None:
                self._save_validators(conn, fetched)
        return counts

    # -- conditional fetching ------------------------------------------------------

    def fetch_validators(self, url: str) -> FetchValidators | None:
        """The ETag / Last-Modified last stored for ``url``, to ask "changed since?"."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(fetch_state).where(fetch_state.c.url == url)).first()
        return FetchValidators(row.url, row.etag, row.last_modified) if row else None

    @staticmethod
    def _save_validators(conn: Connection, validators: FetchValidators) -> None:
        values = {"etag": validators.etag, "last_modified": validators.last_modified, "fetched_at": _now()}
        updated = conn.execute(fetch_state.update().where(fetch_state.c.url == validators.url).values(**values))
        if not updated.rowcount:
            conn.execute(fetch_state.insert().values(url=validators.url, **values))

    def _save_listing(self, conn: Connection, listing: Listing) -> IngestCounts:
        now = _now()
        counts = IngestCounts()
        known = self._find_known(conn, listing.papers)
        final_ids: dict[str, None] = {}  # ordered set: rank order of the listing
        inserts: list[Paper] = []
        changed: list[tuple[str, Paper]] = []  # (stored id, merged paper)
        for incoming in listing.papers:
            stored = known.get(incoming.id) or known.get(f"hash:{title_hash(incoming.title)}")
            if stored is not None and stored.arxiv_id and incoming.arxiv_id and stored.arxiv_id != incoming.arxiv_id:
                stored = None  # same title, different arXiv papers: keep them apart
            if stored is None:
                paper = Paper(**{**_fields(incoming), "first_seen": now})
                inserts.append(paper)
                counts.added += 1
            else:
                paper = merge_papers(stored, incoming)
                if _content(paper) != _content(stored):
                    changed.append((stored.id, paper))
                    counts.updated += 1
                else:
                    counts.unchanged += 1
            self._remember(known, paper)
            final_ids.setdefault(paper.id)

        self._insert_papers(conn, inserts, now)
        for old_id, paper in changed:
            self._update_paper(conn, old_id, paper, now)
        appearance_changed = self._save_entries(conn, listing, list(final_ids), now)
        moved = appearance_changed - {p.id for p in inserts} - {p.id for _, p in changed}
        counts.updated += len(moved)
        counts.unchanged -= len(moved)
        return counts

    @staticmethod
    def _remember(known: dict[str, Paper], paper: Paper) -> None:
        known[paper.id] = paper
        known[f"hash:{title_hash(paper.title)}"] = paper
        if paper.arxiv_id:
            known[paper.arxiv_id] = paper

    def _find_known(self, conn: Connection, incoming: Sequence[Paper]) -> dict[str, Paper]:
        """Stored papers that any incoming paper may be: by id, arXiv id or title hash."""
        ids = list({p.id for p in incoming} | {p.arxiv_id for p in incoming if p.arxiv_id})
        hashes = list({title_hash(p.title) for p in incoming})
        rows: dict[str, sa.Row] = {}
        for column, values in ((papers.c.id, ids), (papers.c.arxiv_id, ids), (papers.c.title_hash, hashes)):
            for chunk in _chunks(values):
                for row in conn.execute(sa.select(papers).where(column.in_(chunk))):
                    rows[row.id] = row
        links = self._links_of(conn, list(rows))
        known: dict[str, Paper] = {}
        for row in rows.values():
            self._remember(known, _paper_from_row(row, links.get(row.id, [])))
        return known

    @staticmethod
    def _links_of(conn: Connection, ids: Sequence[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for chunk in _chunks(ids):
            query = sa.select(paper_links).where(paper_links.c.paper_id.in_(chunk)).order_by(
                paper_links.c.paper_id, paper_links.c.position)
            for row in conn.execute(query):
                found.setdefault(row.paper_id, []).append(Link(row.url, row.kind))
        return found

    @staticmethod
    def _insert_papers(conn: Connection, new: Sequence[Paper], now: dt.datetime) -> None:
        if not new:
            return
        conn.execute(papers.insert(), [_paper_row(p, now) for p in new])
        link_rows = [row for p in new for row in _link_rows(p)]
        if link_rows:
            conn.execute(paper_links.insert(), link_rows)

    @staticmethod
    def _update_paper(conn: Connection, old_id: str, paper: Paper, now: dt.datetime) -> None:
        row = _paper_row(paper, now)
        if old_id != paper.id:
            # Re-key: add the row under its new id, point every reference at it, drop the old row.
            first_id = conn.execute(sa.select(papers.c.first_id).where(papers.c.id == old_id)).scalar() or old_id
            conn.execute(papers.insert().values(**row, first_id=first_id))
            for table in PAPER_REFERENCES:
                conn.execute(table.update().where(table.c.paper_id == old_id).values(paper_id=paper.id))
            _rekey_likes(conn, old_id, paper.id)
            conn.execute(papers.delete().where(papers.c.id == old_id))
        else:
            row.pop("first_seen")
            conn.execute(papers.update().where(papers.c.id == paper.id).values(**row))
        conn.execute(paper_links.delete().where(paper_links.c.paper_id == paper.id))
        if paper.links:
            conn.execute(paper_links.insert(), _link_rows(paper))

    @staticmethod
    def _save_entries(conn: Connection, listing: Listing, ids: Sequence[str], now: dt.datetime) -> set[str]:
        """Make the listing's entries ``ids`` in rank order; returns the ids whose entry changed.

        A later capture of a day replaces its list (a paper the page dropped, or whose title
        changed, is gone), unless the capture had items it left out: then the papers it
        lacks stay, after its own, in their order. A bad item costs its update, never its
        place: readers whose send hour is later that day still get it."""
        key = (listings.c.source == listing.source) & (listings.c.date == listing.date)
        listing_id = conn.execute(sa.select(listings.c.id).where(key)).scalar()
        if listing_id is None:
            listing_id = conn.execute(listings.insert().values(
                source=listing.source, date=listing.date, origin=listing.origin, ingested_at=now)).inserted_primary_key[0]
        current = dict(conn.execute(sa.select(listing_papers.c.paper_id, listing_papers.c.rank)
                                    .where(listing_papers.c.listing_id == listing_id)).all())
        kept = sorted(set(current) - set(ids), key=current.__getitem__) if listing.errors else []
        wanted = {paper_id: rank for rank, paper_id in enumerate([*ids, *kept], start=1)}
        if current == wanted:
            return set()
        conn.execute(listing_papers.delete().where(listing_papers.c.listing_id == listing_id))
        if wanted:
            conn.execute(listing_papers.insert(), [
                {"listing_id": listing_id, "paper_id": pid, "rank": rank} for pid, rank in wanted.items()])
        return {pid for pid, rank in wanted.items() if current.get(pid) != rank}

    # -- reading -----------------------------------------------------------------

    def papers(self, since: dt.date | None = None, until: dt.date | None = None) -> list[StoredPaper]:
        """Every paper listed between ``since`` and ``until`` (inclusive), newest listing first, then by rank.

        Each paper comes once, placed by its newest appearance in that window; its
        ``listings`` still name every appearance, newest first.
        """
        appearances = (
            sa.select(listing_papers.c.paper_id, listing_papers.c.rank, listings.c.date, listings.c.source)
            .join(listings, listings.c.id == listing_papers.c.listing_id)
            .order_by(listings.c.date.desc(), listing_papers.c.rank, listings.c.source)
        )
        with self.engine.connect() as conn:
            seen: dict[str, list[Appearance]] = {}
            placed: dict[str, Appearance] = {}  # insertion order = newest in-window appearance first
            for row in conn.execute(appearances):
                here = Appearance(row.date, row.rank, row.source)
                seen.setdefault(row.paper_id, []).append(here)
                if (since is None or row.date >= since) and (until is None or row.date <= until):
                    placed.setdefault(row.paper_id, here)
            wanted = sorted(placed, key=lambda pid: (-placed[pid].date.toordinal(), placed[pid].rank))
            rows = {}
            for chunk in _chunks(wanted):
                rows.update({row.id: row for row in conn.execute(sa.select(papers).where(papers.c.id.in_(chunk)))})
            links = self._links_of(conn, wanted)
        return [StoredPaper(_paper_from_row(rows[pid], links.get(pid, [])), seen[pid], rows[pid].first_id)
                for pid in wanted]

    def papers_by_id(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among ``paper_ids``, by id; unknown ids are left out. A few queries
        however many ids (``like:`` examples of a whole dispatch are read at once)."""
        wanted = list(dict.fromkeys(paper_ids))
        with self.engine.connect() as conn:
            rows = {row.id: row for chunk in _chunks(wanted)
                    for row in conn.execute(sa.select(papers).where(papers.c.id.in_(chunk)))}
            links = self._links_of(conn, list(rows))
        return {pid: _paper_from_row(row, links.get(pid, [])) for pid, row in rows.items()}

    def latest_listing_date(self) -> dt.date | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(listings.c.date))).scalar()

    def listed_on(self, day: dt.date) -> bool:
        """Whether a listing is dated ``day``, even an empty one (an arXiv feed's weekend): a
        digest may be dated so, and its archive page must open."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(listings.c.id).where(listings.c.date == day).limit(1)).first() is not None

    def listing_summaries(self) -> list[ListingSummary]:
        query = (
            sa.select(listings.c.source, listings.c.date, listings.c.origin, sa.func.count(listing_papers.c.paper_id))
            .select_from(listings.outerjoin(listing_papers, listing_papers.c.listing_id == listings.c.id))
            .group_by(listings.c.id, listings.c.source, listings.c.date, listings.c.origin)
            .order_by(listings.c.date, listings.c.source)
        )
        with self.engine.connect() as conn:
            return [ListingSummary(source, date, count, origin) for source, date, origin, count in conn.execute(query)]

    def count_papers(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(papers)).scalar_one()


def _rekey_likes(conn: Connection, old_id: str, new_id: str) -> None:
    """Topics that ask for papers ``like:old_id`` (a reader's Liked topic above all) name the
    paper by its new id, so the example is still found, and still left out of its own matches."""
    reference = re.compile(rf"(?i)(like:){re.escape(old_id)}(?![\w./-])")
    for row in conn.execute(sa.select(topics.c.id, topics.c.query)
                            .where(sa.func.lower(topics.c.query).contains(f"like:{old_id}".lower()))):
        conn.execute(topics.update().where(topics.c.id == row.id)
                     .values(query=reference.sub(lambda found: found.group(1) + new_id, row.query)))


def _fields(paper: Paper) -> dict:
    return {name: getattr(paper, name) for name in Paper.__slots__}


def _paper_from_row(row: sa.Row, links: list[Link]) -> Paper:
    return Paper(
        id=row.id, arxiv_id=row.arxiv_id, title=row.title, abstract=row.abstract, authors=list(row.authors),
        links=links, categories=list(row.categories), keywords=list(row.keywords), published=row.published,
        first_seen=row.first_seen,
    )

