"""Vectors for papers, topics and sentences: computed once, kept in the store, read as matrices.

What is embedded for each thing is decided here and only here (``paper_texts``,
``topic_texts``), and vectors are stored under the digest of that exact text
(``embeddings.text_key``), so a changed title, abstract or query is embedded again by
itself and a different model never reads another model's vectors.

``match_topics`` is the one way topics are matched (by words, and by meaning through
``meaning_vectors``: the papers' stored vectors, topic texts' vectors, example papers');
explanations use ``nearest_row`` (explain.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Hashable, TypeVar

import numpy as np

from .config import Settings
from .digest import Found
from .embeddings import Embedder, get_embedder, text_key
from .errors import EmbedderError, QueryError
from .match import meaning, split
from .match.acronyms import acronym_table
from .match.meaning import PaperSpace, Vectors
from .normalize import referenced_id
from .models import Paper
from .query import Query, as_query, by_text, may_have_likes, query_text, reading_hints
from .store import Store

log = logging.getLogger(__name__)
Key = TypeVar("Key", bound=Hashable)
CENTRE_DAYS = 30  # the papers listed in these last days give the centre similarities are measured from ...
CENTRE_PAPERS = 1000  # ... or the newest this many papers, when those days hold fewer
_SAVE_EVERY = 32  # papers embedded between two writes: an interrupted run keeps most of its work
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def paper_text(paper: Paper) -> str:
    """The text a paper is embedded as: its title, then its abstract."""
    title = paper.title.strip()
    abstract = paper.abstract.strip()
    if not abstract:
        return title
    return f"{title}{'' if title.endswith(('.', '?', '!')) else '.'} {abstract}"


def paper_texts(paper: Paper) -> tuple[str, str]:
    """The two texts a paper is embedded as: title with abstract, and title alone (meaning
    matching compares a topic with both: match/meaning.py)."""
    return paper_text(paper), paper.title.strip() or paper_text(paper)


def topic_texts(query: str | Query, acronyms: Mapping | None = None) -> list[str]:
    """The texts a topic is embedded as: the words of each part that matches by meaning
    (``meaning.alternatives``: bare words, one text per OR branch; not exclusions, fields or
    quoted phrases). ``*``, a words-only topic and a query the parser refuses have none."""
    return list(dict.fromkeys(part.meaning for part in _meaning_parts(query, acronyms) if part.meaning))


def example_refs(query: str | Query, acronyms: Mapping | None = None) -> list[str]:
    """The paper references a topic's ``like:`` parts compare papers with, as written."""
    return list(dict.fromkeys(part.like for part in _meaning_parts(query, acronyms) if part.like))


def example_papers(store: Store, refs: Iterable[str]) -> dict[str, Paper]:
    """The stored papers ``like:`` references name (an arXiv id with or without its version,
    or a paper id), by the reference as written; unknown references are left out."""
    named = {ref: referenced_id(ref) for ref in refs}
    stored = store.papers_by_id(named.values())
    return {ref: stored[paper_id] for ref, paper_id in named.items() if paper_id in stored}


def unknown_example_warnings(store: Store, queries: Iterable[str | Query], acronyms: Mapping | None = None) -> list[str]:
    """One line for each ``like:`` of these topics that names no stored paper: such an example
    finds nothing (until the paper is ingested: the topic is kept), which the reader who wrote
    it should be told rather than see an empty result."""
    refs = list(dict.fromkeys(ref for query in by_text(queries).values() for ref in example_refs(query, acronyms)))
    known = example_papers(store, refs) if refs else {}
    return [f"like:{ref} names no stored paper: it finds nothing until that paper is ingested"
            for ref in refs if ref not in known]


def example_titles(store: Store, queries: Iterable[str | Query], acronyms: Mapping | None = None) -> dict[str, str]:
    """The titles of the papers these topics compare with (``like:``), by the reference as
    written: what "like: <title>" shows. A topic is its text or the query parsed from it."""
    distinct = by_text(queries)
    refs = [ref for text, query in distinct.items() if may_have_likes(text) for ref in example_refs(query, acronyms)]
    return {ref: paper.title for ref, paper in example_papers(store, refs).items()}


def _meaning_parts(query: str | Query, acronyms: Mapping | None) -> tuple[meaning.Alternative, ...]:
    try:
        return meaning.alternatives(as_query(query), acronym_table(acronyms))
    except QueryError:
        return ()


def sentences(abstract: str) -> list[str]:
    """An abstract cut into sentences (at . ! ? followed by a capital or a digit)."""
    return [part.strip() for part in _SENTENCE_END.split(abstract.strip()) if part.strip()]


@dataclass
class EmbedFailure:
    paper_id: str
    error: str


@dataclass
class EmbedReport:
    """What an embedding step did. ``error`` is set when the model itself could not be used."""

    model: str | None
    papers: int = 0  # papers looked at
    missing: int = 0  # of them, without a vector of this model
    embedded: int = 0
    topics: int = 0  # topic texts embedded
    failed: list[EmbedFailure] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return {"model": self.model, "papers": self.papers, "missing": self.missing, "embedded": self.embedded,
                "topics": self.topics, "failed": [{"paper": f.paper_id, "error": f.error} for f in self.failed],
                "error": self.error}


def pending(store: Store, embedder: Embedder, papers: Sequence[Paper]) -> list[Paper]:
    """The papers among ``papers`` without a vector of ``embedder``'s model, each once."""
    unique = list({paper.id: paper for paper in papers}.values())
    keys = [tuple(map(text_key, paper_texts(paper))) for paper in unique]
    stored = store.stored_vector_keys(embedder.model_id, [key for pair in keys for key in pair])
    return [paper for paper, pair in zip(unique, keys) if not stored.issuperset(pair)]


def embed_papers(store: Store, embedder: Embedder, papers: Sequence[Paper], report: EmbedReport, *,
                 on_paper: Callable[[Paper], None] | None = None, stop: threading.Event | None = None) -> None:
    """Embed and store each of ``papers``. A paper whose text makes the model raise is
    logged and counted in ``report.failed``; the others go on."""
    batch: dict[str, np.ndarray] = {}
    for paper in papers:
        if stop is not None and stop.is_set():
            break
        try:
            for text in dict.fromkeys(paper_texts(paper)):
                batch[text_key(text)] = embedder.embed([text])[0]
            report.embedded += 1
        except EmbedderError:
            raise  # the model, not this paper: the caller reports it once
        except Exception as exc:
            log.warning("paper %s not embedded: %s: %s", paper.id, type(exc).__name__, exc,
                        extra={"fields": {"event": "embed-error", "paper": paper.id,
                                          "error": f"{type(exc).__name__}: {exc}"}})
            log.debug("paper %s not embedded", paper.id, exc_info=exc)  # the traceback with -v
            report.failed.append(EmbedFailure(paper.id, f"{type(exc).__name__}: {exc}"))
        if len(batch) >= _SAVE_EVERY:
            store.save_vectors(embedder.model_id, batch)
            batch = {}
        if on_paper is not None:
            on_paper(paper)
    store.save_vectors(embedder.model_id, batch)


def embed_topics(store: Store, embedder: Embedder, queries: Iterable[str | Query], acronyms: Mapping | None = None) -> int:
    """Store the vectors of these topic queries (as written, or parsed already) that have none
    yet; returns how many were embedded."""
    distinct = by_text(queries)
    texts = {text for query in distinct.values() for text in topic_texts(query, acronyms)}
    return len(_missing_vectors(store, embedder, texts))


def embed_saved_topics(store: Store, settings: Settings, queries: Iterable[str]) -> int:
    """Store the vectors of topics just saved: their texts (``topic_texts``) and the papers
    they name with ``like:``. Returns how many texts were embedded.

    Called by every path that saves topics, after they are committed (the CLI's commands;
    the web app after its answer, ``WebContext.embed_topics_later``), so that matching
    reads the vectors instead of computing them. It never raises: a topic is saved whatever
    the model does, and what is missed here (a model that cannot load: one log line) is
    embedded by the next embedding step or when the topic is first matched.
    ``relevance.embedder = "off"`` embeds nothing. Being the one hook after every save, it
    also warns about what the reader may not have meant (``_warn_about_topics``)."""
    queries = list(dict.fromkeys(queries))
    _warn_about_topics(store, settings, queries)
    embedder = get_embedder(settings.relevance_embedder)
    if embedder is None:
        return 0
    try:
        count = embed_topics(store, embedder, queries, settings.acronyms)
        refs = [ref for query in queries for ref in example_refs(query, settings.acronyms)]
        texts = {text for paper in example_papers(store, refs).values() for text in paper_texts(paper)}
        return count + len(_missing_vectors(store, embedder, texts))
    except Exception as exc:  # noqa: BLE001  -- the save is done; its vectors can wait
        error = str(exc) if isinstance(exc, EmbedderError) else f"{type(exc).__name__}: {exc}"
        log.warning("topic vectors not stored at save (the next embedding step stores them): %s", error,
                    extra={"fields": {"event": "embed-error", "error": error}})
        log.debug("topic vectors not stored at save", exc_info=exc)
        return 0


def topic_warnings(store: Store, queries: Sequence[str], acronyms: Mapping | None = None) -> list[str]:
    """What a reader should be told about topics they wrote: ``like:`` naming no stored paper
    (``unknown_example_warnings``) and what the grammar reads otherwise than the reader may have
    meant (``query.reading_hints``: ``author:Xu Han``, a lower-case "or")."""
    hints = [hint for text in dict.fromkeys(map(query_text, queries)) for hint in reading_hints(text)]
    return unknown_example_warnings(store, queries, acronyms) + hints


def _warn_about_topics(store: Store, settings: Settings, queries: Sequence[str]) -> None:
    """Topics just saved (``topic_warnings``), logged as warnings: on stderr for the CLI's
    commands, in the log for the web app. Never raises: the save is done, and a note about
    it must not fail it."""
    try:
        for warning in topic_warnings(store, queries, settings.acronyms):
            log.warning("%s", warning, extra={"fields": {"event": "topic-warning"}})
    except Exception as exc:  # noqa: BLE001  -- only a note is lost
        log.debug("unknown examples not checked", exc_info=exc)


def vectors_for(store: Store, embedder: Embedder, texts: Sequence[str], *, keep: bool = True) -> np.ndarray:
    """One row per text: stored ones read, the others embedded now (and stored unless
    ``keep`` is False: the public preview must not grow the database for anyone's input)."""
    if not texts:
        return np.empty((0, embedder.dimensions), dtype=np.float32)
    found = store.vectors(embedder.model_id, [text_key(text) for text in texts])
    missing = [text for text in dict.fromkeys(texts) if text_key(text) not in found]
    if keep:
        found.update(_missing_vectors(store, embedder, missing))
    elif missing:
        found.update(zip(map(text_key, missing), embedder.embed(missing)))
    return np.stack([found[text_key(text)] for text in texts])


def _missing_vectors(store: Store, embedder: Embedder, texts: Iterable[str]) -> dict[str, np.ndarray]:
    texts = list(texts)
    stored = store.stored_vector_keys(embedder.model_id, [text_key(text) for text in texts])
    fresh = {text_key(text): text for text in texts if text_key(text) not in stored}
    rows = dict(zip(fresh, embedder.embed(list(fresh.values())))) if fresh else {}
    store.save_vectors(embedder.model_id, rows)
    return rows


def nearest_row(rows: np.ndarray, topic_vector: np.ndarray) -> tuple[int, float]:
    """The row of ``rows`` (a paper's sentences, say) nearest to the topic, and its similarity.

    ``topic_vector`` may be several rows (a topic's texts, one per OR branch): then the row
    nearest to any of them."""
    topic = np.atleast_2d(np.asarray(topic_vector, dtype=np.float32))
    scores = (rows @ topic.T).max(axis=1)
    best = int(np.argmax(scores))
    return best, float(scores[best])


def embed_step(store: Store, embedder: Embedder | None, papers: Sequence[Paper], *,
               topic_queries: Iterable[str | Query] = (), acronyms: Mapping | None = None, on_start: Callable[[int], None] | None = None,
               on_paper: Callable[[Paper], None] | None = None,
               stop: threading.Event | None = None) -> EmbedReport:
    """Embed whatever of ``papers`` and ``topic_queries`` has no vector yet: the step before matching.

    ``on_start(n)`` is told how many papers will be embedded (for a progress bar), then
    ``on_paper`` is called after each. A paper that fails costs that paper; a model that
    cannot load (not installed, wrong file) is ``report.error``, logged, and matching goes
    on with the words alone. ``embedder=None`` (``relevance.embedder = "off"``) does nothing.
    """
    report = EmbedReport(embedder.model_id if embedder is not None else None, papers=len(papers))
    if embedder is None:
        return report
    try:
        todo = pending(store, embedder, papers)
        report.missing = len(todo)
        if on_start is not None:
            on_start(len(todo))
        embed_papers(store, embedder, todo, report, on_paper=on_paper, stop=stop)
        report.topics = embed_topics(store, embedder, topic_queries, acronyms)
    except EmbedderError as exc:
        report.error = str(exc)
    except Exception as exc:  # topics embedded at match time instead; the papers done so far are stored
        report.error = f"{type(exc).__name__}: {exc}"
        log.debug("embedding step failed", exc_info=exc)
    if report.error:
        log.error("embedding skipped (matching uses the words alone): %s", report.error,
                  extra={"fields": {"event": "embed-error", "error": report.error}})
    return report


def paper_space(store: Store, embedder: Embedder, papers: Sequence[Paper], as_of: dt.date | None = None) -> PaperSpace:
    """The papers as meaning matching compares them (match/meaning.py): their stored text and
    title vectors, and the centre of the store's newest papers (those of the last
    ``CENTRE_DAYS`` days, or the newest ``CENTRE_PAPERS`` when that is more), listed up to
    ``as_of`` when given.

    The centre is the store's, not the matched papers': one paper's page and a week's digest
    then judge a paper alike. An edition's digest, feeds and archive page take it as of that
    edition, so the page still shows what the email chose after newer days came in (it
    moved the centre, and a paper near the bar dropped out of its "And N more"). Reads
    only: papers are embedded by the embedding step."""
    texts, titles, known = stored_pairs(store, embedder, papers)
    return PaperSpace(texts, titles, known, *_centre(store, embedder, as_of))


_centres: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # (database, model, data version, as of) -> centres
_centres_lock = threading.Lock()


def _centre(store: Store, embedder: Embedder, as_of: dt.date | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mean text and title vectors of the store's newest papers (listed up to ``as_of``),
    computed once per database, model, data version and day (a web page or a digest run asks
    for it every time)."""
    key = (str(store.engine.url), embedder.model_id, store.data_stamp(), as_of)
    with _centres_lock:
        if key in _centres:
            return _centres[key]
    latest = store.latest_listing_date()
    if latest is not None and as_of is not None:
        latest = min(latest, as_of)
    recent = store.papers(since=latest - dt.timedelta(days=CENTRE_DAYS - 1), until=latest) if latest else []
    if len(recent) < CENTRE_PAPERS:
        recent = store.papers(until=as_of)[:CENTRE_PAPERS]
    texts, titles, known = stored_pairs(store, embedder, [item.paper for item in recent])
    if known.any():
        centre = texts[known].mean(axis=0), titles[known].mean(axis=0)
    else:
        centre = np.zeros(embedder.dimensions, np.float32), np.zeros(embedder.dimensions, np.float32)
    with _centres_lock:
        if len(_centres) > 16:
            _centres.clear()
        _centres[key] = centre
    return centre


def stored_pairs(store: Store, embedder: Embedder, papers: Sequence[Paper]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored text and title vectors of ``papers`` (zero rows where missing) and which are known.

    Reads only: papers are embedded by the embedding step, never while matching."""
    pairs = [tuple(map(text_key, paper_texts(paper))) for paper in papers]
    found = store.vectors(embedder.model_id, [key for pair in pairs for key in pair])
    texts = np.zeros((len(papers), embedder.dimensions), dtype=np.float32)
    titles = np.zeros_like(texts)
    known = np.zeros(len(papers), dtype=bool)
    for index, (text_key_, title_key) in enumerate(pairs):
        text, title = found.get(text_key_), found.get(title_key)
        if text is not None and title is not None and text.shape == title.shape == (embedder.dimensions,):
            texts[index], titles[index], known[index] = text, title, True
    return texts, titles, known


def meaning_vectors(store: Store, embedder: Embedder, papers: Sequence[Paper], *, keep_new: bool = True,
                    as_of: dt.date | None = None) -> Vectors:
    """All that meaning matching reads for ``papers``: the paper space (its centre as of
    ``as_of``: ``paper_space``), topic texts' vectors (embedded and stored when new), and
    example papers' vectors by reference (``like:``)."""

    def of_papers(refs: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        # All examples' vectors in one read (a Liked topic alone names up to liked.MAX_LIKED
        # papers); one not stored yet is embedded and stored, as the embedding step would.
        # Not for the public preview (keep_new False): anyone's topic may name 50 papers, so
        # there an example without stored vectors finds nothing rather than cost embeddings.
        papers = example_papers(store, refs)
        if not keep_new:
            stored = store.stored_vector_keys(embedder.model_id, [text_key(text) for paper in papers.values()
                                                                  for text in paper_texts(paper)])
            papers = {ref: paper for ref, paper in papers.items()
                      if all(text_key(text) in stored for text in paper_texts(paper))}
        rows = vectors_for(store, embedder, [text for paper in papers.values() for text in paper_texts(paper)])
        return {ref: (rows[2 * number], rows[2 * number + 1]) for number, ref in enumerate(papers)}

    return Vectors(paper_space(store, embedder, papers, as_of),
                   lambda texts: vectors_for(store, embedder, list(texts), keep=keep_new), of_papers)


def similarities(store: Store, settings: Settings, query: str | Query, papers: Sequence[Paper]) -> list[float | None]:
    """Each paper's similarity to the topic, whether or not it was found by meaning
    (``meaning.similarities``); None where it is not computed: no meaning or example part
    (``*``, ``words:``, an acronym alone), no vectors, or ``relevance.embedder = "off"``.

    For one topic (``paperwire match``): its few results, or, when it found none, every paper,
    to say how near the closest came; a digest run computes the similarities of the papers
    close enough only (match/meaning.py), and must stay so."""
    embedder = get_embedder(settings.relevance_embedder)
    found = None
    if embedder is not None and papers:
        try:
            found = meaning.similarities(as_query(query), acronym_table(settings.acronyms), papers,
                                         meaning_vectors(store, embedder, papers))
        except EmbedderError as exc:  # matching said so already; the results stand without
            log.debug("similarities not computed: %s", exc)
    if found is None:
        return [None] * len(papers)
    return [None if np.isnan(value) else value for value in found.tolist()]


def match_topics(pairs: Sequence[tuple[Key, str | Query]], papers: Sequence[Paper], settings: Settings,
                 store: Store | None, *, embedded_as: Sequence[Paper] | None = None,
                 keep_new_vectors: bool = True, as_of: dt.date | None = None) -> dict[Key, Found]:
    """Every (key, topic) matched over ``papers`` (each topic as written, or parsed already):
    by words and by meaning when an embedder is set and a store holds the vectors, else by
    words alone (``relevance.embedder = "off"``, or a model that cannot load: logged once a
    run, and the words still match).

    The one way topics are matched: digests, feeds, the web pages and ``paperwire match``.
    ``embedded_as``: the stored papers whose vectors stand for ``papers``, one for one (the
    preview matches papers with shortened abstracts). ``keep_new_vectors=False``: topic texts
    not stored yet are embedded but not stored (the public preview). ``as_of``: the edition
    matched for (a digest, its feeds, its archive page), whose centre similarities are
    measured from (``paper_space``)."""
    pairs = list(pairs)
    embedder = get_embedder(settings.relevance_embedder) if store is not None else None
    if embedder is not None:
        try:  # the model loads on first use, which may be anywhere in here
            vectors = meaning_vectors(store, embedder, embedded_as if embedded_as is not None else papers,
                                      keep_new=keep_new_vectors, as_of=as_of)
            return meaning.match_topics(pairs, papers, settings.acronyms, vectors)
        except EmbedderError as exc:
            log.error("matching by words alone: %s", exc, extra={"fields": {"event": "embed-error", "error": str(exc)}})
    return split.match_words(pairs, papers, settings.acronyms)
