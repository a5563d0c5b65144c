"""What the pages and feeds show, computed from the store and kept until the data changes.

Everything here is read-only and derived: the latest listing, topic previews, feed
documents and archive digests. Results are cached under the store's ``DataStamp``
(newest ingest or paper update), so a new ingest is visible on the next request and
nothing is recomputed between ingests. Feeds are rendered from the store, not read
from files that ``paperwire feeds`` wrote, so they can never be stale or missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

from .. import digest, feeds, pipeline, semantic, typos, urls
from ..feeds import FeedItem
from ..config import Settings
from ..explain import ClosestSentences
from ..match.text import Stems
from ..models import Digest, Offered, Paper, StoredPaper, Subscriber
from ..query import reading_hints
from ..store import Store
from .tokens import reader_key

PRIVATE_CACHE = 256  # private feeds and archive pages kept per data version
ARCHIVE_LIMIT = 1000  # papers on one archive page; far above any listing's matches
# A preview (public, unauthenticated) matches this much of each abstract: real ones are under
# 2,000 characters, and this bounds its CPU cost whatever a listing holds.
PREVIEW_ABSTRACT_CHARS = 4_000


@dataclass(frozen=True)
class Latest:
    """The newest listing: its date (None before any ingest) and its papers in trending order."""

    date: dt.date | None
    papers: tuple[StoredPaper, ...]


@dataclass(frozen=True)
class Preview:
    query: str
    date: dt.date | None
    count: int
    matches: tuple[tuple[Paper, float], ...]  # best first, at most the limit asked for
    # What to tell its writer: how the grammar reads it otherwise than meant
    # (query.reading_hints), and its words the listing lacks when its words found nothing (typos).
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperPage:
    """What the paper page shows beyond the paper: the public topics it matches."""

    stored: StoredPaper
    topics: tuple[tuple[str, str], ...]  # (name, slug) of each public topic that matches it


@dataclass(frozen=True)
class Document:
    """Bytes to serve with their validators: a strong ETag over the bytes, and when the data last changed."""

    body: bytes
    etag: str
    last_modified: dt.datetime | None


def document(body: bytes, last_modified: dt.datetime | None) -> Document:
    return Document(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', last_modified)


class DataCache:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._values: OrderedDict[Hashable, Any] = OrderedDict()

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per data version; private entries are evicted oldest first."""
        stamp = self.store.data_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._values = stamp, OrderedDict()
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = compute()
        with self._lock:
            if stamp == self._stamp:
                self._values[key] = value
                while len(self._values) > PRIVATE_CACHE + 16:
                    self._values.popitem(last=False)
        return value

    @property
    def changed_at(self) -> dt.datetime | None:
        changed = self.store.data_stamp().changed_at
        return changed.replace(microsecond=0) if changed else None

    # -- the latest listing and previews ----------------------------------------------

    def latest(self) -> Latest:
        def compute() -> Latest:
            date = self.store.latest_listing_date()
            if date is None:
                return Latest(None, ())
            return Latest(date, tuple(self.store.papers(since=date, until=date)))
        return self._cached("latest", compute)

    def preview(self, query: str, limit: int = 10) -> Preview:
        """What ``query`` would have picked from the latest listing (the caller checked its syntax)."""
        latest = self.latest()
        papers = [_for_preview(item.paper) for item in latest.papers]
        ranking = semantic.match_topics([(0, query)], papers, self.settings, self.store, keep_new_vectors=False,
                                        embedded_as=[item.paper for item in latest.papers])[0]
        by_id = {paper.id: paper for paper in papers}
        top = tuple((by_id[pid], score) for pid, score in zip(ranking.paper_ids()[:limit], ranking.scores()[:limit]))
        hints = reading_hints(query)
        if papers and typos.words_found_nothing(ranking):
            stems = Stems()  # one a call: a public page's words must not pile up in a memo
            known = self._cached("vocabulary", lambda: typos.vocabulary_of(papers, stems))
            hints += typos.topic_notes(query, known, stems, self.settings.acronyms, "no paper of the latest listing")
        return Preview(query, latest.date, len(ranking), top, tuple(hints))

    def paper(self, paper_id: str) -> PaperPage | None:
        """A paper and the public topics it matches; None when no such paper (not kept:
        anyone can ask for any id, and misses must not push out what is worth keeping)."""
        stored = self.store.stored_paper(paper_id)
        if stored is None:
            return None
        public = tuple(self.store.public_topics())
        key = ("paper", paper_id, tuple((t.name, t.slug, t.query) for t in public))

        def compute() -> PaperPage:  # matching the public topics is the part worth keeping
            rankings = semantic.match_topics([(i, t.query) for i, t in enumerate(public)], [stored.paper],
                                             self.settings, self.store)
            return PaperPage(stored, tuple((t.name, t.slug) for i, t in enumerate(public) if len(rankings[i])))
        return self._cached(key, compute)

    # -- feeds ----------------------------------------------------------------------------

    def public_feeds(self) -> dict[str, dict[str, Document]]:
        """slug -> kind -> Document for the trending feed and every public topic, plus "opml"."""
        public = tuple(self.store.public_topics())
        key = ("public", tuple((t.name, t.slug, t.query) for t in public))
        return self._cached(key, self._render_public)

    def _render_public(self) -> dict[str, dict[str, Document]]:
        changed = self.changed_at
        built, opml = pipeline.build_feeds(self.store, self.settings, edition=self.store.latest_listing_date())
        documents = {feed.spec.slug: {kind: document(body, changed) for kind, body in feed.documents.items()}
                     for feed in built}
        documents["opml"] = {"opml": document(opml, changed)}
        return documents

    def private_feed(self, reader: Subscriber) -> dict[str, Document]:
        """The reader's own feed: papers of the last month matching any of their topics."""
        key = ("private", reader.token, tuple((t.name, t.query) for t in reader.topics))
        return self._cached(key, lambda: self._render_private(reader))

    def _render_private(self, reader: Subscriber) -> dict[str, Document]:
        settings = self.settings
        edition = self.store.latest_listing_date()
        items = pipeline.feed_items(self.store, edition) if edition else []
        rankings = semantic.match_topics(pipeline.reader_queries(reader), [item.paper for item in items],
                                         settings, self.store)
        # Each paper's best match, as a digest picks it (by score, then topic order), found by
        # ids and scores: only those matches are explained, not every match of every topic.
        best: dict[str, tuple[float, Any, int]] = {}  # paper -> (score, its topic's ranking, place in it)
        for index in sorted(rankings):
            ranking = rankings[index]
            for place, (paper_id, score) in enumerate(zip(ranking.paper_ids(), ranking.scores())):
                if paper_id not in best or score > best[paper_id][0]:
                    best[paper_id] = (score, ranking, place)

        def explained(item: FeedItem) -> FeedItem:
            _, ranking, place = best[item.paper.id]
            return replace(item, hits=digest.hits_of(ranking[place]))

        # Explained only for the items the feed shows (the newest 50 of a month of matches).
        shown = [explained(item) for item in feeds.order_items(item for item in items if item.paper.id in best)]
        # The feed id must not reveal the token: it ends up in feed readers' databases and logs.
        slug = "private-" + reader_key(reader.token)
        names = ", ".join(t.name for t in reader.topics)
        spec = feeds.FeedSpec("paperwire: " + names[:120], slug, "Your paperwire topics: " + names[:500],
                              self_urls=tuple((kind, urls.private_feed(settings.base_url, reader, kind))
                                              for kind in urls.FEED_KINDS))
        rendered = feeds.render_feed(spec, shown, settings.base_url, publisher=settings.sender_name,
                                     empty_date=edition)
        changed = self.changed_at
        return {kind: document(body, changed) for kind, body in rendered.items()}

    # -- archive ----------------------------------------------------------------------------

    def archive(self, reader: Subscriber, edition: dt.date, part: int = 1) -> Digest | None:
        """The reader's digest for ``edition`` as a web page shows it: every match, no cap.

        Re-rendered from stored papers and the reader's current topics, as the email of that
        edition chose them: the papers of its look back that the digests sent before it had not
        offered (``digest.unoffered_since``; shown, or under "And N more"), so a reader catching up sees
        the days they caught up on (those the email showed itself stay, so an old edition still
        shows what it showed). ``part`` 2, 3, ...: a later email of the edition (``Digest.part``),
        which came after the earlier ones as the pipeline made it; every page of an edition leaves
        out what its other emails offered. None when no listing (even an empty one) is dated that
        day, or for a ``part`` that would come after the next email.
        """
        offer = self.store.offered([reader.id], before=edition).get(reader.id)
        offers = self.store.edition_offers(reader.id, edition)
        if part > len(offers) + 1:
            return None
        if part > 1:  # after an email of this very edition (plan_digests' history says the same)
            offer = Offered(min(offer.first_edition, edition) if offer else edition, edition,
                            offer.dated_until if offer else None)
        others = frozenset(paper for number, papers in enumerate(offers, 1) if number != part for paper in papers)
        key = ("archive", reader.token, edition, part, offer, others, tuple((t.name, t.query) for t in reader.topics))
        return self._cached(key, lambda: self._build_archive(reader, edition, offer, others, part))

    def _build_archive(self, reader: Subscriber, edition: dt.date, offer: Offered | None, others: frozenset[str],
                       part: int) -> Digest | None:
        first, _ = digest.window(reader, edition, offer.last_edition if offer else None)
        since = digest.unoffered_since(reader, edition, offer)
        if not self.store.listed_on(edition):
            return None
        stored = self.store.papers(since=since, until=edition)
        papers = [s.paper for s in stored]
        placements = {s.paper.id: digest.Placement(*pipeline.newest_placement(s, edition)) for s in stored}
        queries = pipeline.reader_queries(reader)
        rankings = semantic.match_topics(queries, papers, self.settings, self.store, as_of=edition)
        found = [rankings.get(i, digest.NOTHING_FOUND) for i in range(len(reader.topics))]
        uncapped = replace(reader, max_papers=ARCHIVE_LIMIT)  # a web page is not clipped like an email
        earlier = self.store.sent_papers_among([p.id for p in papers], [reader.id], before=edition).get(reader.id, set())
        earlier |= others
        listed = digest.first_listed(pipeline.listing_days(stored), first, edition)
        result = digest.build_digest(uncapped, found, {p.id: p for p in papers}, placements, edition=edition,
                                     first_date=listed, since=since, already_sent=earlier,
                                     first_ids=pipeline.first_ids(stored),
                                     example_titles=semantic.example_titles(self.store, [q for _, q in queries],
                                                                            self.settings.acronyms))
        # The closest sentences the digest run stored (the emailed papers' ones): a page never embeds them.
        closest = ClosestSentences(self.store, pipeline.embedder(self.settings), self.settings.acronyms, new_papers=0)
        return replace(closest.digest(result), subscriber=reader, part=part)


def _for_preview(paper: Paper) -> Paper:
    if len(paper.abstract) <= PREVIEW_ABSTRACT_CHARS:
        return paper
    return replace(paper, abstract=paper.abstract[:PREVIEW_ABSTRACT_CHARS])
