"""The only module that speaks SQL: papers, links and listings in SQLAlchemy Core.

The schema is owned by the Alembic migrations beside this file; the tables below
mirror it for queries (a test checks they agree). Opening a store upgrades an older
database in place. Everything is portable SQL, so PostgreSQL works as well as the
default SQLite (which runs in WAL mode so readers never block the writer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine, make_url

from .errors import StoreError, ValidationError
from .models import Appearance, Link, Listing, Paper, StoredPaper, Subscriber, Topic
from .normalize import merge_papers, title_hash

MIGRATIONS = Path(__file__).with_name("migrations")
_CHUNK = 500  # ids per IN (...) clause, well under every database's parameter limit

metadata = sa.MetaData()
papers = sa.Table(
    "papers", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("arxiv_id", sa.String(32), nullable=True),
    sa.Column("title_hash", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False, server_default=""),
    sa.Column("authors", sa.JSON, nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("keywords", sa.JSON, nullable=False),
    sa.Column("published", sa.Date, nullable=True),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_papers_arxiv_id", "arxiv_id", unique=True),
    sa.Index("ix_papers_title_hash", "title_hash"),
)
paper_links = sa.Table(
    "paper_links", metadata,
    sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)
listings = sa.Table(
    "listings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("origin", sa.Text, nullable=False, server_default=""),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("source", "date", name="uq_listings_source_date"),
    sa.Index("ix_listings_date", "date"),
)
listing_papers = sa.Table(
    "listing_papers", metadata,
    sa.Column("listing_id", sa.Integer, sa.ForeignKey("listings.id"), primary_key=True),
    sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Index("ix_listing_papers_paper_id", "paper_id"),
)
subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cadence", sa.String(16), nullable=False),
    sa.Column("send_hour", sa.Integer, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("max_papers", sa.Integer, nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_subscribers_email", "email", unique=True),
    sa.Index("ix_subscribers_token", "token", unique=True),
)
topics = sa.Table(
    "topics", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("slug", sa.String(80), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("public", sa.Boolean, nullable=False),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_topics_owner_id", "owner_id"),
    sa.Index("ix_topics_slug", "slug"),
)
subscriber_topics = sa.Table(
    "subscriber_topics", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_subscriber_topics_topic_id", "topic_id"),
)
# Every table with a paper_id column: re-keying a paper (title id -> arXiv id) updates them all.
PAPER_REFERENCES = (paper_links, listing_papers)


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the packaged Alembic migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: {exc.orig}") from None


def _chunks(values: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


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


class Store:
    """Papers and listings in one database. Open once per process; cheap to query."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------

    def save_listings(self, batch: Iterable[Listing]) -> IngestCounts:
        """Store the listings of one file in ONE transaction: all of it goes in, or nothing."""
        counts = IngestCounts()
        with self.engine.begin() as conn:
            for listing in batch:
                counts += self._save_listing(conn, listing)
        return counts

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
            conn.execute(papers.insert().values(**row))
            for table in PAPER_REFERENCES:
                conn.execute(table.update().where(table.c.paper_id == old_id).values(paper_id=paper.id))
            conn.execute(papers.delete().where(papers.c.id == old_id))
        else:
            row.pop("first_seen")
            conn.execute(papers.update().where(papers.c.id == paper.id).values(**row))
        conn.execute(paper_links.delete().where(paper_links.c.paper_id == paper.id))
        if paper.links:
            conn.execute(paper_links.insert(), _link_rows(paper))

    @staticmethod
    def _save_entries(conn: Connection, listing: Listing, ids: Sequence[str], now: dt.datetime) -> set[str]:
        """Make the listing's entries exactly ``ids`` in rank order; return ids whose entry changed."""
        key = (listings.c.source == listing.source) & (listings.c.date == listing.date)
        listing_id = conn.execute(sa.select(listings.c.id).where(key)).scalar()
        if listing_id is None:
            listing_id = conn.execute(listings.insert().values(
                source=listing.source, date=listing.date, origin=listing.origin, ingested_at=now)).inserted_primary_key[0]
        wanted = {paper_id: rank for rank, paper_id in enumerate(ids, start=1)}
        current = dict(conn.execute(sa.select(listing_papers.c.paper_id, listing_papers.c.rank)
                                    .where(listing_papers.c.listing_id == listing_id)).all())
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
        return [StoredPaper(_paper_from_row(rows[pid], links.get(pid, [])), seen[pid]) for pid in wanted]

    def latest_listing_date(self) -> dt.date | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(listings.c.date))).scalar()

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

    # -- readers and topics ------------------------------------------------------

    def save_subscriber(self, subscriber: Subscriber) -> tuple[Subscriber, bool]:
        """Insert or update by email (never a second row); returns (stored, created)."""
        with self.engine.begin() as conn:
            return self._save_subscriber(conn, subscriber)

    def save_subscribers(self, batch: Sequence[Subscriber]) -> tuple[int, int]:
        """Many readers in ONE transaction (an import): (created, updated)."""
        created = 0
        with self.engine.begin() as conn:
            for subscriber in batch:
                created += self._save_subscriber(conn, subscriber)[1]
        return created, len(batch) - created

    def _save_subscriber(self, conn: Connection, subscriber: Subscriber) -> tuple[Subscriber, bool]:
        now = _now()
        existing = conn.execute(sa.select(subscribers.c.id, subscribers.c.confirmed_at)
                                .where(subscribers.c.email == subscriber.email)).first()
        values = {
            "email": subscriber.email, "name": subscriber.name, "status": subscriber.status,
            "cadence": subscriber.cadence, "send_hour": subscriber.hour, "timezone": subscriber.timezone,
            "max_papers": subscriber.max_papers, "token": subscriber.token, "updated_at": now,
            "confirmed_at": subscriber.confirmed_at or (now if subscriber.status == "active" else None),
        }
        if existing is None:
            values["created_at"] = subscriber.created_at or now
            existing_id = conn.execute(subscribers.insert().values(**values)).inserted_primary_key[0]
            created = True
        else:
            # A reader's token is in every link they were sent: an update never changes it,
            # and the first confirmation time stays.
            existing_id = existing.id
            del values["token"]
            if existing.confirmed_at is not None:
                del values["confirmed_at"]
            conn.execute(subscribers.update().where(subscribers.c.id == existing_id).values(**values))
            created = False
        self._replace_topics(conn, existing_id, subscriber.topics, now)
        return self._subscribers(conn, subscribers.c.id == existing_id)[0], created

    def _replace_topics(self, conn: Connection, subscriber_id: int, wanted: Sequence[Topic], now: dt.datetime) -> None:
        conn.execute(subscriber_topics.delete().where(subscriber_topics.c.subscriber_id == subscriber_id))
        conn.execute(topics.delete().where(topics.c.owner_id == subscriber_id))
        for position, topic in enumerate(wanted):
            if topic.public:
                topic_id = self._public_topic_id(conn, topic.name)
            else:
                topic_id = conn.execute(topics.insert().values(
                    name=topic.name, slug=topic.slug, query=topic.query, public=False, owner_id=subscriber_id,
                    created_at=now)).inserted_primary_key[0]
            conn.execute(subscriber_topics.insert().values(
                subscriber_id=subscriber_id, topic_id=topic_id, position=position))

    @staticmethod
    def _public_topic_id(conn: Connection, name: str) -> int:
        found = conn.execute(sa.select(topics.c.id).where(
            topics.c.public.is_(True), sa.func.lower(topics.c.name) == name.lower())).scalar()
        if found is None:
            raise ValidationError("topic", f"there is no public topic named {name!r} (see 'paperwire topics')")
        return found

    def set_status(self, email: str, status: str) -> bool:
        """Change a reader's status; False when no reader has that email."""
        with self.engine.begin() as conn:
            result = conn.execute(subscribers.update().where(subscribers.c.email == email)
                                  .values(status=status, updated_at=_now()))
            return result.rowcount > 0

    def subscriber(self, email: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            found = self._subscribers(conn, subscribers.c.email == email)
        return found[0] if found else None

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        condition = subscribers.c.status == status if status else sa.true()
        with self.engine.connect() as conn:
            return self._subscribers(conn, condition)

    @staticmethod
    def _subscribers(conn: Connection, condition) -> list[Subscriber]:
        rows = conn.execute(sa.select(subscribers).where(condition).order_by(subscribers.c.email)).all()
        followed: dict[int, list[Topic]] = {}
        ids = [row.id for row in rows]
        for chunk in _chunks(ids):
            query = (sa.select(subscriber_topics.c.subscriber_id, topics)
                     .join(topics, topics.c.id == subscriber_topics.c.topic_id)
                     .where(subscriber_topics.c.subscriber_id.in_(chunk))
                     .order_by(subscriber_topics.c.subscriber_id, subscriber_topics.c.position))
            for row in conn.execute(query):
                followed.setdefault(row.subscriber_id, []).append(
                    Topic(name=row.name, query=row.query, public=row.public, slug=row.slug))
        return [Subscriber(
            id=row.id, email=row.email, name=row.name, status=row.status, cadence=row.cadence, hour=row.send_hour,
            timezone=row.timezone, max_papers=row.max_papers, token=row.token, created_at=row.created_at,
            confirmed_at=row.confirmed_at, topics=followed.get(row.id, [])) for row in rows]

    def add_public_topic(self, topic: Topic) -> bool:
        """Create or update a public topic by name; True when it was created."""
        with self.engine.begin() as conn:
            clash = conn.execute(sa.select(topics.c.name).where(
                topics.c.public.is_(True), topics.c.slug == topic.slug,
                sa.func.lower(topics.c.name) != topic.name.lower())).scalar()
            if clash:
                raise ValidationError("topic name", f"{topic.name!r} would share the feed name '{topic.slug}' with {clash!r}")
            existing = conn.execute(sa.select(topics.c.id).where(
                topics.c.public.is_(True), sa.func.lower(topics.c.name) == topic.name.lower())).scalar()
            if existing is None:
                conn.execute(topics.insert().values(name=topic.name, slug=topic.slug, query=topic.query,
                                                    public=True, owner_id=None, created_at=_now()))
                return True
            conn.execute(topics.update().where(topics.c.id == existing).values(query=topic.query))
            return False

    def remove_public_topic(self, name: str, *, force: bool = False) -> int:
        """Delete a public topic; returns how many readers followed it (refuses unless force)."""
        with self.engine.begin() as conn:
            topic_id = self._public_topic_id(conn, name)
            followers = conn.execute(sa.select(sa.func.count()).select_from(subscriber_topics)
                                     .where(subscriber_topics.c.topic_id == topic_id)).scalar_one()
            if followers and not force:
                raise ValidationError("topic", f"{followers} reader(s) follow {name!r}; use --force to remove it anyway")
            conn.execute(subscriber_topics.delete().where(subscriber_topics.c.topic_id == topic_id))
            conn.execute(topics.delete().where(topics.c.id == topic_id))
            return followers

    def public_topics(self) -> list[Topic]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(topics).where(topics.c.public.is_(True)).order_by(topics.c.name))
            return [Topic(name=r.name, query=r.query, public=True, slug=r.slug) for r in rows]


def _fields(paper: Paper) -> dict:
    return {name: getattr(paper, name) for name in Paper.__slots__}


def _paper_from_row(row: sa.Row, links: list[Link]) -> Paper:
    return Paper(
        id=row.id, arxiv_id=row.arxiv_id, title=row.title, abstract=row.abstract, authors=list(row.authors),
        links=links, categories=list(row.categories), keywords=list(row.keywords), published=row.published,
        first_seen=row.first_seen,
    )
