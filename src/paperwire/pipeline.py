"""The one place that calls the stages in order: read sources, then store what they gave.

cli/ and web/ call these functions; each returns a report the caller can print or
serialize, and never prints itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import digest, feeds, files, mail, redact, sources, urls
from .config import MAX_LISTING_BYTES, Settings
from .errors import QueryError, SourceError, described
from .digest import Found
from .match import split
from .match.matcher import bulk_allocation, refused_topic
from .models import Digest, Offered, StoredPaper, Subscriber
from .query import Query, as_query, by_text, query_text
from .store import FetchValidators, IngestCounts, ReaderHistory, Store

if TYPE_CHECKING:  # rendering loads MJML and Jinja: only when digests are written
    from .embeddings import Embedder
    from .render import EmailRenderer, RenderedEmail
    from .semantic import EmbedReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileError:
    file: str
    line: int | None
    message: str


@dataclass
class IngestReport:
    files: int = 0  # files read and URLs fetched
    not_modified: int = 0  # URLs whose server said "unchanged since last time" (304)
    counts: IngestCounts = field(default_factory=IngestCounts)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        summary = {
            "files": self.files, "added": self.counts.added, "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "errors": [{"file": e.file, "line": e.line, "message": e.message} for e in self.errors],
        }
        if self.not_modified:  # only URLs can be "not modified"; file-only reports keep their keys
            summary["not_modified"] = self.not_modified
        return summary


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def listing_sources(paths: Sequence[Path | str]) -> list[Path | str]:
    """What an ingest reads, in order: the listing files under ``paths``, then the URLs."""
    urls = [source for source in paths if is_url(source)]
    return [*sources.expand_paths([Path(source) for source in paths if not is_url(source)]), *urls]


def ingest(
    store: Store,
    paths: Sequence[Path | str],
    *,
    format: str | None = None,
    date: dt.date | None = None,
    today: dt.date | None = None,
    timeout: float = 20.0,
    on_file: Callable[[Path | str], None] | None = None,
    stop: threading.Event | None = None,
    max_bytes: int = MAX_LISTING_BYTES,
) -> IngestReport:
    """Read every file under ``paths``, and every http(s) URL among them, into ``store``.

    One transaction per file or URL: a bad one is recorded in the report and leaves
    the database as it was; the others still go in. Whatever goes wrong with one file
    (a bug included) costs that file only. Items a parser left out as bad are errors
    of their file, whose other items go in. URLs are fetched conditionally
    (ETag / Last-Modified from the last successful ingest), so an unchanged listing
    costs one 304. ``stop`` (the daemon shutting down) ends the batch between sources.
    ``max_bytes`` caps each file and download (the ``max_listing_bytes`` setting).
    """
    report = IngestReport()
    items = listing_sources(paths)
    if not items:
        report.errors.append(FileError(", ".join(map(str, paths)), None, "no listing files found"))
    for item in items:
        if stop is not None and stop.is_set():
            break
        report.files += 1
        try:
            if isinstance(item, Path):
                batch = sources.read_path(item, format=format, date=date, today=today, max_bytes=max_bytes)
                report.counts += store.save_listings(batch)
            else:
                batch = _ingest_url(store, item, report, format=format, date=date, today=today, timeout=timeout,
                                    max_bytes=max_bytes)
            for listing in batch:
                report.warnings.extend(listing.warnings)
                report.errors.extend(FileError(listing.origin or str(item), None, error) for error in listing.errors)
        except SourceError as exc:
            report.errors.append(FileError(exc.origin or str(item), exc.line, exc.reason))
        except Exception as exc:  # a bug or a database failure: this file fails, the others still go in
            report.errors.append(_unexpected(item, exc))
        if on_file:
            on_file(item)
    return report


def _unexpected(item: Path | str, exc: Exception) -> FileError:
    """An error no parser foresaw, named by file and kind, without a URL's secrets; the
    traceback goes to the debug log (``-v``)."""
    log.debug("unexpected failure ingesting %s", redact.url(str(item)), exc_info=True)
    if isinstance(item, Path):
        return FileError(str(item), None, f"unexpected error ({type(exc).__name__}: {exc}); nothing of it was stored")
    return FileError(redact.url(item), None,
                     f"unexpected error ({type(exc).__name__}: {redact.scrub(str(exc), item)}); nothing of it was stored")


def _ingest_url(store: Store, url: str, report: IngestReport, *, format: str | None, date: dt.date | None,
                today: dt.date | None, timeout: float, max_bytes: int) -> list:
    """Fetch ``url`` if it changed since its last ingest and store it with its new validators."""
    from . import fetch  # httpx only when a URL is configured

    known = store.fetch_validators(url)
    result = fetch.fetch(url, etag=known.etag if known else None,
                         last_modified=known.last_modified if known else None, timeout=timeout, max_bytes=max_bytes)
    if result.status == "not-modified":
        report.not_modified += 1
        return []
    shown = redact.url(url)  # the name errors and listings carry: no credentials or tokens
    batch = sources.parse_text(sources.decode(result.body, shown), shown, format=format, date=date, today=today)
    report.counts += store.save_listings(batch, fetched=FetchValidators(url, result.etag, result.last_modified))
    return batch


# -- vectors ------------------------------------------------------------------------


def embedder(settings: Settings) -> Embedder | None:
    """The process's embedder for ``relevance.embedder`` (None when it is ``off``)."""
    from .embeddings import get_embedder  # numpy and the model only for runs that match

    return get_embedder(settings.relevance_embedder)


def embed(store: Store, settings: Settings, *, since: dt.date | None = None, until: dt.date | None = None,
          on_start: Callable[[int], None] | None = None, on_paper: Callable[[object], None] | None = None,
          stop: threading.Event | None = None) -> EmbedReport:
    """The embedding step: vectors for the papers listed from ``since`` to ``until`` (all papers
    when both are None) and for every stored topic, each computed once (``semantic.embed_step``).

    Runs on its own, never inside ingest: `paperwire embed`, the commands that match (before
    matching, with a progress bar), and the daemon after each ingest."""
    from . import semantic

    papers = [item.paper for item in store.papers(since=since, until=until)]
    return semantic.embed_step(store, embedder(settings), papers, topic_queries=store.topic_queries(),
                               acronyms=settings.acronyms, on_start=on_start, on_paper=on_paper, stop=stop)


def matching_window(edition: dt.date) -> dt.date:
    """The first listing day any run matching for ``edition`` looks at (feeds: a month)."""
    return edition - FEED_WINDOW + dt.timedelta(days=1)


# -- digests ------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestFiles:
    email: str
    subject: str
    papers: int
    html: Path
    text: Path
    eml: Path

    def as_dict(self) -> dict:
        return {"email": self.email, "subject": self.subject, "papers": self.papers,
                "html": str(self.html), "text": str(self.text), "eml": str(self.eml)}


def reader_file_stem(email: str) -> str:
    """A file name for a reader that no address can turn into a path outside the folder, and
    no two readers share: where the name cannot say the address as it is (``jörg`` and
    ``jürg`` both become ``j_rg``, a long address is cut), a hash of the address follows it."""
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", email.replace("@", "_at_"))
    if stem.replace("_at_", "@", 1) == email and email.count("@") == 1 and "_at_" not in email and len(stem) <= 150:
        return stem
    return f"{stem[:134]}={hashlib.sha256(email.encode()).hexdigest()[:16]}"  # "=": never in a plain stem


def digest_file_stem(item: Digest) -> str:
    """The reader's file name for one email of an edition: ``reader_file_stem``, and ``.2``,
    ``.3`` ... for its later emails (``Digest.part``, as its archive page is ``.../<date>/2``), so
    a second email (the listing grew) never overwrites the first's files. No other reader's
    stem ends so: a stored address's top-level domain is never all digits (``normalize_email``)."""
    stem = reader_file_stem(item.subscriber.email)
    return f"{stem}.{item.part}" if item.part > 1 else stem


def plan_digests(
    store: Store,
    settings: Settings,
    readers: Sequence[Subscriber],
    *,
    edition: dt.date,
    with_history: bool = True,
    histories: Mapping[int, ReaderHistory] | None = None,
    on_error: Callable[[Subscriber, str, Exception], None] | None = None,
) -> Iterator[Digest]:
    """Each reader's next digest for ``edition``, matching every reader's topics in one pass.

    ``on_error(reader, stage, exception)``: whatever raises for one reader (a stored topic
    the matcher refuses, a digest that cannot be built) is handed to it and costs only that
    reader; without it the exception propagates.

    The reader's history decides what is new: the papers their digests have not offered yet
    (shown, or under "And N more"), listed since their last digest's listing, the last week
    at least (``digest.unoffered_since``); ``with_history=False`` shows
    the digest as a first one (the demo's pages, which must not empty out once the
    demo has delivered them). ``histories`` saves the look-up when the caller has them.
    Readers with nothing new are
    skipped unless ``settings.send_empty``. The matcher sees the widest window any
    reader needs (a week, ``digest.LONGEST_WINDOW`` at most); each digest then keeps the papers
    of its own window.
    A paper found by meaning alone highlights its abstract's sentence closest to the topic
    (explain.py; bounded work per run).
    """
    if with_history:
        histories = histories if histories is not None else store.histories(reader.id for reader in readers)
        offered = _offered(store, readers, histories, edition)
        # Readers sent this edition already (its listing grew since): their digest is its next email.
        again = store.edition_counts([r.id for r in readers if histories[r.id].last_edition == edition], edition)
    else:
        histories = {reader.id: ReaderHistory(None, None) for reader in readers}
        offered, again = {}, {}
    # The papers each reader may be offered (digest.unoffered_since), read once for all of them.
    takes_from = {reader.id: digest.unoffered_since(reader, edition, offered.get(reader.id)) for reader in readers}
    stored = store.papers(since=min([digest.week_before(edition), *takes_from.values()]), until=edition)
    papers = [item.paper for item in stored]
    report = None if on_error is None else (lambda reader, exc: on_error(reader, "matching", exc))
    # Each distinct topic is parsed once for the run: the embedding step and matching take it so.
    groups = parse_topics([(reader, [((index, topic_index), topic.query) for topic_index, topic in enumerate(reader.topics)])
                           for index, reader in enumerate(readers)], report, _topic_left_out)
    _ensure_vectors(store, settings, papers, [query for _, pairs in groups for _, query in pairs])
    by_id = {paper.id: paper for paper in papers}
    placements = {item.paper.id: digest.Placement(*newest_placement(item, edition)) for item in stored}
    renamed = first_ids(stored)
    days = listing_days(stored)
    # Papers offered already (shown, or under "And N more"): never again.
    already_sent = store.sent_papers_among(list(by_id), [reader.id for reader in readers]) if with_history else {}
    from . import semantic  # numpy and the model only for runs that match
    from .explain import ClosestSentences

    rankings = match_each(groups, papers, settings.acronyms, on_error=report,
                          matcher=lambda pairs: semantic.match_topics(pairs, papers, settings, store, as_of=edition))
    parsed = by_text(query for _, pairs in groups for _, query in pairs)
    examples = semantic.example_titles(store, parsed.values(), settings.acronyms)
    closest = ClosestSentences(store, embedder(settings), settings.acronyms, parsed=parsed)  # one bound for the run
    matched = {index for index, _ in rankings}  # the readers whose topics were matched (some may be left out)

    def made(index: int, reader: Subscriber) -> Digest | Exception | None:
        """The reader's digest, or what it raised; None when there is nothing to send (or its
        topics could not be matched: reported already)."""
        if reader.topics and index not in matched:
            return None
        try:
            covers_from, _ = digest.window(reader, edition, histories[reader.id].last_edition)
            first = digest.first_listed(days, covers_from, edition)
            found = [rankings.get((index, topic_index), digest.NOTHING_FOUND) for topic_index in range(len(reader.topics))]
            result = digest.build_digest(reader, found, by_id, placements, edition=edition, first_date=first,
                                         since=takes_from[reader.id], already_sent=already_sent.get(reader.id, frozenset()),
                                         example_titles=examples, first_ids=renamed)
        except Exception as exc:
            return exc
        if reader.id in again:
            result = replace(result, part=again[reader.id] + 1)
        return result if result.papers or settings.send_empty else None

    for start in range(0, len(readers), DIGESTS_AT_ONCE):
        # By now the heap holds every topic's matches, and each run of the cycle collector scans
        # it all: it waits while a batch is made (about 11 of 22-25 s at 100,000 readers,
        # bench/plan.py), not while the caller uses the batch or hears of a failure.
        with bulk_allocation():
            batch = [(reader, made(index, reader)) for index, reader in enumerate(readers[start:start + DIGESTS_AT_ONCE],
                                                                                 start)]
            # papers found by meaning alone: their sentence closest to the topic
            highlighted = iter(closest.digests([outcome for _, outcome in batch if isinstance(outcome, Digest)]))
        for reader, outcome in batch:  # in the readers' order, each failure when its reader's turn comes
            if isinstance(outcome, Exception):
                if on_error is None:
                    raise outcome
                on_error(reader, "selecting papers", outcome)
            elif outcome is not None:
                yield next(highlighted)


# Readers whose digests are made together: their closest sentences are read in a few queries
# (explain.py), and the cycle collector waits meanwhile.
DIGESTS_AT_ONCE = 1000


def _ensure_vectors(store: Store, settings: Settings, papers: Sequence, queries: Sequence[str | Query]) -> None:
    """Every run that matches passes here: the papers and topics it matches get their vectors
    first (usually all stored already by the embedding step, so this is one look-up)."""
    from . import semantic

    semantic.embed_step(store, embedder(settings), papers, topic_queries=queries, acronyms=settings.acronyms)


def _offered(store: Store, readers: Sequence[Subscriber], histories: Mapping[int, ReaderHistory],
             edition: dt.date) -> dict[int, Offered]:
    """What ``digest.unoffered_since`` needs of each reader's past (Store.offered), read over
    the run's look back only (by the index; a reader's whole history grows without end):
    a first edition before it is as good as any older one."""
    look_back = edition - digest.LONGEST_WINDOW
    recent = store.offered([reader.id for reader in readers if histories[reader.id].last_slot is not None],
                           before=edition + dt.timedelta(days=1), since=look_back)
    offered = {}
    for reader in readers:
        history, found = histories[reader.id], recent.get(reader.id)
        if history.last_slot is None:
            continue
        older = history.first_slot is not None and history.first_slot < look_back
        offered[reader.id] = Offered(look_back if older or found is None else found.first_edition,
                                     history.last_edition, found.dated_until if found else None)
    return offered


def _topic_left_out(reader: Subscriber, key: tuple[int, int], error: QueryError) -> None:
    """A reader's stored topic the parser refuses now (saved under older rules): their digest
    (and their archive pages and feed) is made from their other topics, and this is said each
    time until they change it. ``key``: (the reader's place in the run, the topic's)."""
    log.warning("topic %d of %s left out of their digest: %s", key[1] + 1, reader.email, error,
                extra={"fields": {"event": "topic-refused", "email": reader.email, "detail": str(error)}})


def reader_queries(reader: Subscriber) -> list[tuple[int, Query]]:
    """The reader's topics that parse, by their place: the web's archive pages and private
    feed match these as digests do, a topic the parser refuses now left out (``_topic_left_out``)."""
    groups = parse_topics([(reader, [((0, place), topic.query) for place, topic in enumerate(reader.topics)])],
                          lambda owner, error: None, _topic_left_out)
    return [(place, query) for (_, place), query in groups[0][1]] if groups else []


Owner = TypeVar("Owner")
Key = TypeVar("Key")


def match_each(groups: Sequence[tuple[Owner, Sequence[tuple[Key, str | Query]]]], papers: Sequence,
               acronyms: Mapping | None, *, on_error: Callable[[Owner, Exception], None] | None = None,
               matcher: Callable[[list[tuple[Key, Query]]], dict[Key, Found]] | None = None) -> dict[Key, Found]:
    """The rankings of every owner's (key, query) pairs, all owners compiled and matched in one pass.

    ``matcher`` matches a list of pairs over ``papers`` (``semantic.match_topics``: words and
    meaning); without it, words alone with ``acronyms``.

    Each distinct query is parsed first, once (:func:`parse_topics`; queries parsed already
    are taken as they are), and handed on parsed. With ``on_error``, a faulty owner costs that
    owner only (a reader, or a feed), who goes to ``on_error`` and is left out. The usual
    fault, a stored query the parser refuses, is found by that parsing, so the error names
    that query. Should the one pass still raise, the owners are split in halves and each half
    tried again, down to the owners that raise on their own (about two passes per bad owner
    and level of halving). When the papers alone make matching raise, no owner is to blame:
    that is raised.
    """
    parsed = parse_topics(groups, on_error)

    def attempt(chosen: Sequence[tuple[Owner, Sequence[tuple[Key, Query]]]]) -> dict[Key, Found]:
        pairs = [pair for _, pairs in chosen for pair in pairs]
        return matcher(pairs) if matcher is not None else split.match_words(pairs, papers, acronyms)

    def isolate(chosen: Sequence[tuple[Owner, Sequence[tuple[Key, Query]]]]) -> dict[Key, Found]:
        try:
            return attempt(chosen)
        except Exception as exc:
            if len(chosen) == 1:
                on_error(chosen[0][0], exc)
                return {}
        # Halved outside the handler, so no owner's error carries the tracebacks of the others.
        half = len(chosen) // 2
        return {**isolate(chosen[:half]), **isolate(chosen[half:])}

    try:
        return attempt(parsed)
    except Exception:
        if on_error is None or not parsed:
            raise
    attempt([])  # the papers alone: raises when no owner is to blame
    return isolate(parsed)


def parse_topics(groups: Sequence[tuple[Owner, Sequence[tuple[Key, str | Query]]]],
                 on_error: Callable[[Owner, Exception], None] | None,
                 on_refused: Callable[[Owner, Key, QueryError], None] | None = None,
                 ) -> list[tuple[Owner, list[tuple[Key, Query]]]]:
    """The owners with their queries parsed, each distinct query once (a query parsed already
    is kept as it is). An owner with a query the parser refuses goes to ``on_error`` with the
    first such query's error, named by its text (the reader and the operator know it so), and
    is left out; without ``on_error`` that error is raised, naming the query's key as the
    matcher does.

    With ``on_refused``, an owner keeps the queries that parse, and each refused one goes
    there instead (a reader's topic saved under older rules costs that topic, not their
    digest); only an owner left with none goes to ``on_error`` (or raises without it)."""
    parsed: dict[str, Query | QueryError] = {}

    def parse(key: Key, query: str | Query) -> Query | QueryError:
        text = query_text(query)
        found = parsed.get(text)
        if found is None:
            try:
                found = parsed[text] = as_query(query)
            except QueryError as exc:
                if on_error is None and on_refused is None:
                    raise refused_topic(key, exc) from exc
                found = parsed[text] = refused_topic(text, exc)
        return found

    kept, refused, partly = [], [], []
    with bulk_allocation():  # 1.6 s at 100,000 readers (bench/plan.py); 5.9 s with the collector running
        for owner, pairs in groups:
            queries = [(key, parse(key, query)) for key, query in pairs]
            error = next((found for _, found in queries if isinstance(found, QueryError)), None)
            if error is None:
                kept.append((owner, queries))
                continue
            good = [(key, found) for key, found in queries if not isinstance(found, QueryError)]
            if on_refused is not None and good:
                kept.append((owner, good))
                partly.append((owner, [(key, found) for key, found in queries if isinstance(found, QueryError)]))
            elif on_error is None:
                raise error  # every query refused, and nobody to tell
            else:
                refused.append((owner, error))
    # Outside the section: the callbacks' own work is not ours to hurry.
    for owner, errors in partly:
        for key, error in errors:
            on_refused(owner, key, error)
    for owner, error in refused:
        on_error(owner, error)
    return kept


def write_digests(
    digests: Iterable[Digest],
    settings: Settings,
    renderer: EmailRenderer,
    out_dir: Path,
    *,
    now: dt.datetime | None = None,
    on_error: Callable[[Subscriber, str, Exception], None] | None = None,
) -> list[DigestFiles]:
    """Render each digest and write ``digests/<edition>/<reader>.html|.txt|.eml`` under ``out_dir``
    (``<reader>.2.html`` ... for a later email of the edition: ``digest_file_stem``).

    ``on_error(reader, stage, exception)`` as in ``plan_digests``: a digest that cannot be
    rendered (or its message built) costs that reader only, and its files of an earlier run
    are removed (a template author who opened them would take them for the edit's result);
    without ``on_error`` the exception propagates. A folder that cannot be written stops the
    run: it would fail every reader."""
    signer = mail.Signer.from_settings(settings)
    written = []
    for item in digests:
        try:
            item, rendered = renderer.render_under_clip(item, settings)  # as a send would show it
            data = mail.message_bytes(mail.build_message(item, rendered, settings, now=now), signer)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(item.subscriber, "rendering", exc)
            for path in _digest_paths(item, out_dir):
                path.unlink(missing_ok=True)
            continue
        written.append(_write_digest(item, rendered, data, out_dir))  # a folder that cannot be written stops the run
    return written


def _digest_paths(item: Digest, out_dir: Path) -> list[Path]:
    """Where ``item``'s .html, .txt and .eml are written."""
    folder = out_dir / "digests" / item.edition
    stem = digest_file_stem(item)
    return [folder / f"{stem}.{suffix}" for suffix in ("html", "txt", "eml")]


def _write_digest(item: Digest, rendered: RenderedEmail, message: bytes, out_dir: Path) -> DigestFiles:
    paths = _digest_paths(item, out_dir)
    # The reader's own links (their secret token) are in all three: readable by the owner only.
    for path, data in zip(paths, (rendered.html.encode("utf-8"), rendered.text.encode("utf-8"), message)):
        files.replace_file(path, data, mode=0o600)
    return DigestFiles(item.subscriber.email, rendered.subject, item.papers, *paths)


class UnwrittenDigests:
    """``on_error`` for ``plan_digests`` and ``write_digests`` where nothing is sent (``digest``,
    ``demo``): a reader whose digest raises is logged, with the traceback (their link secret
    blanked), and listed in ``failures``; the other readers' digests are written."""

    def __init__(self) -> None:
        self.failures: list[dict[str, str]] = []

    def __call__(self, reader: Subscriber, stage: str, exc: Exception) -> None:
        detail = reader_error(reader, stage, exc)
        self.failures.append({"email": reader.email, "error": detail})
        log.error("digest of %s not written: %s", reader.email, detail,
                  extra={"fields": {"event": "digest-error", "email": reader.email, "detail": detail},
                         "trace": reader_traceback(reader, exc)})


def reader_error(reader: Subscriber, stage: str, exc: Exception) -> str:
    """What one reader's digest raised, in one line for reports and logs: ``rendering raised
    RuntimeError: ... (at templates/email_paper.html.j2:6)`` with the exception's notes, the
    reader's link secret blanked (``send`` and ``digest`` alike)."""
    return redact.without(reader.token, f"{stage} raised {described(exc)}")


def reader_traceback(reader: Subscriber, exc: Exception) -> str:
    """The traceback of what one reader's digest raised, for the log, their link secret blanked."""
    return redact.without(reader.token, "".join(traceback.format_exception(exc)).rstrip())


# -- feeds --------------------------------------------------------------------------

FEED_WINDOW = dt.timedelta(days=30)  # topic feeds show matches from the last month of listings


@dataclass(frozen=True)
class FeedFiles:
    title: str
    slug: str
    files: dict[str, Path]  # kind ("atom", "rss", "json") -> path

    def as_dict(self) -> dict:
        return {"title": self.title, "slug": self.slug, **{kind: str(path) for kind, path in self.files.items()}}


@dataclass(frozen=True)
class BuiltFeed:
    """One feed in every format: ``documents`` maps atom/rss/json to bytes."""

    spec: feeds.FeedSpec
    topic: bool  # a public topic's feed (under topics/), else the trending feed
    documents: dict[str, bytes]


def feed_items(store: Store, edition: dt.date) -> list[feeds.FeedItem]:
    """The papers feeds draw from: a month of listings up to ``edition``, each at its newest place."""
    stored = store.papers(since=edition - FEED_WINDOW + dt.timedelta(days=1), until=edition)
    return [feeds.FeedItem(s.paper, *newest_placement(s, edition), first_id=s.first_id) for s in stored]


FeedError = Callable[[str, Exception], None]  # (feed slug, what it raised)


def log_feed_error(slug: str, exc: Exception) -> None:
    """One log line, with the traceback, for a feed that was left out."""
    log.error("feed %s not written: %s: %s", slug, type(exc).__name__, exc, exc_info=exc,
              extra={"fields": {"event": "feed-error", "feed": slug, "error": f"{type(exc).__name__}: {exc}"}})


def build_feeds(store: Store, settings: Settings, *, edition: dt.date | None,
                on_error: FeedError = log_feed_error) -> tuple[list[BuiltFeed], bytes]:
    """The trending feed (last week), one feed per public topic (last month) and the OPML.

    Everything comes from stored data (no clock), so the same database gives
    byte-identical bytes. Both `paperwire feeds` and the web app serve these. A feed
    whose topic or papers make matching or rendering raise is left out and handed to
    ``on_error`` (logged by default): one bad feed never costs the others.
    """
    items = feed_items(store, edition) if edition else []
    public = store.public_topics()
    papers = [item.paper for item in items]
    from . import semantic  # numpy and the model only for runs that match

    rankings = match_each([(t.slug, [(t.slug, t.query)]) for t in public], papers, settings.acronyms, on_error=on_error,
                          matcher=lambda pairs: semantic.match_topics(pairs, papers, settings, store, as_of=edition))
    position = {item.paper.id: item for item in items}

    def topic_items(slug: str) -> list[feeds.FeedItem]:
        """The items a topic's feed shows, each with what the topic matched in it: only those
        matches are explained (a month of matches, of which a feed shows the newest 50)."""
        ranking = rankings[slug]
        place = {paper_id: number for number, paper_id in enumerate(ranking.paper_ids())}
        return [replace(item, hits=digest.hits_of(ranking[place[item.paper.id]]))
                for item in feeds.order_items(position[paper_id] for paper_id in place)]

    week_start = digest.week_before(edition) if edition else None
    trending = feeds.FeedSpec("Trending papers", feeds.TRENDING_SLUG, "The trending papers of each day's listing.")
    specs = [(trending, False, lambda: [i for i in items if week_start and i.date >= week_start])]
    for topic in public:
        if topic.slug in rankings:
            spec = feeds.FeedSpec(topic.name, topic.slug, f"Papers on {topic.name}", query=topic.query)
            specs.append((spec, True, lambda slug=topic.slug: topic_items(slug)))
    built = []
    for spec, is_topic, matched in specs:
        try:
            documents = feeds.render_feed(spec, matched(), settings.base_url, publisher=settings.sender_name,
                                          empty_date=edition)
        except Exception as exc:
            on_error(spec.slug, exc)
            continue
        built.append(BuiltFeed(spec, is_topic, documents))
    listed = {feed.spec.slug for feed in built}  # the OPML never links a feed that failed
    return built, feeds.render_opml([(t.name, t.slug) for t in public if t.slug in listed], settings.base_url)


def write_feeds(store: Store, settings: Settings, out_dir: Path, *, edition: dt.date,
                on_error: FeedError = log_feed_error) -> tuple[list[FeedFiles], Path]:
    """Write ``build_feeds`` under ``out_dir/feeds``: trending.*, topics/<slug>.*, feeds.opml.

    A feed that cannot be built or written goes to ``on_error`` and keeps its old files;
    the others are still written. The files of a topic that is no longer public are removed."""
    built, opml_bytes = build_feeds(store, settings, edition=edition, on_error=on_error)
    folder = out_dir / "feeds"
    (folder / "topics").mkdir(parents=True, exist_ok=True)
    _remove_feeds_of_topics_gone(folder / "topics", {topic.slug for topic in store.public_topics()})
    written = []
    for feed in built:
        paths = {}
        try:
            for kind, data in feed.documents.items():
                path = (folder / "topics" if feed.topic else folder) / f"{feed.spec.slug}.{kind}"
                _replace_if_changed(path, data)
                paths[kind] = path
        except Exception as exc:
            on_error(feed.spec.slug, exc)
            continue
        written.append(FeedFiles(feed.spec.title, feed.spec.slug, paths))
    opml = folder / "feeds.opml"
    _replace_if_changed(opml, opml_bytes)
    return written, opml


def _remove_feeds_of_topics_gone(folder: Path, public_slugs: set[str]) -> None:
    """A published ``out/`` folder would otherwise serve a removed topic's feed, frozen, for
    ever. Only feed files (``<slug>.atom``, ``.rss``, ``.json``) go: the folder is ours."""
    for path in folder.iterdir():
        slug, _, kind = path.name.rpartition(".")
        if kind in urls.FEED_KINDS and slug not in public_slugs and path.is_file():
            path.unlink(missing_ok=True)
            log.info("removed %s: its topic is no longer public", path)


def _replace_if_changed(path: Path, data: bytes) -> None:
    """Feeds are rewritten every few minutes by the scheduler and served while that happens:
    swap whole files in (``files.replace_file``), and leave an unchanged file (and its mtime, which
    is its Last-Modified) alone."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    files.replace_file(path, data)


def newest_placement(stored: StoredPaper, edition: dt.date) -> tuple[dt.date, int]:
    """Where a paper stands for ``edition``: its newest listing day up to it, and its rank there."""
    newest = next(a for a in stored.listings if a.date <= edition)
    return newest.date, newest.rank


def first_ids(stored: Iterable[StoredPaper]) -> dict[str, str]:
    """The ids re-keyed papers were first stored under, by their id now: emails sent before the
    re-key name them so (their "And N more" link), and every page of the paper keeps that anchor."""
    return {item.paper.id: item.first_id for item in stored if item.first_id}


def listing_days(stored: Iterable[StoredPaper]) -> list[dt.date]:
    """The days these papers were listed, ascending: what ``digest.first_listed`` looks in."""
    return sorted({appearance.date for item in stored for appearance in item.listings})


# -- the index page of out/ ---------------------------------------------------------


def write_index(store: Store, settings: Settings, out_dir: Path, *, edition: dt.date,
                digests: Sequence[DigestFiles], feed_files: Sequence[FeedFiles], opml: Path | None) -> Path:
    """``out_dir/index.html``: one page linking every digest and feed a run wrote."""
    import jinja2  # only this step needs it

    from .email_templates import template_problem

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(settings.templates_dir), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    try:
        template = env.get_template("index.html.j2")
    except jinja2.TemplateError as exc:
        raise template_problem(exc, settings.templates_dir) from None

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, out_dir)).as_posix()

    page = template.render(
        out_dir=str(out_dir), edition=edition.isoformat(), listings=store.listing_summaries(),
        digests=[{"email": d.email, "subject": d.subject, "html": rel(d.html), "text": rel(d.text), "eml": rel(d.eml)}
                 for d in digests],
        feeds=[{"title": f.title, "files": [(kind, rel(path)) for kind, path in f.files.items()]} for f in feed_files],
        opml=rel(opml) if opml else None,
    )
    index = out_dir / "index.html"
    files.replace_file(index, page.encode("utf-8"))
    return index
