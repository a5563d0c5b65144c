"""The abstract sentence closest to the topic, highlighted for papers found by meaning alone.

A paper found by its words shows the words it matched. One found by meaning alone has no
matched word that says why it is about the topic (at most the words its topic required
beside its meaning, such as ``title:benchmark``, which it lists too), so its digest item
gets the sentence of its abstract nearest to its section's topic as a highlight without a
term (``Hit("", "abstract", span)``): paperview puts it in <strong>, starts the excerpt
near it when it lies beyond the cut, and lists no term for it under "matched:".

Embedding a sentence costs ~15-50 ms on this machine the first time (an abstract has ~9,
so ~0.1-0.5 s a paper), then it is stored. So a run looks only at the papers in its
digests, once per (paper, topic), and embeds the sentences of at most
``NEW_PAPERS_PER_RUN`` papers; papers whose sentences are stored cost a look-up and are
not counted. Past the bound, a paper is shown without the sentence highlight (its reason
line still says it was found by meaning).

The vectors are read for many digests at once (:meth:`ClosestSentences.digests`): a few
queries per batch of digests, each paper's sentences once a run (read item by item, the
look-ups took 113-120 s of a 163-172 s 100,000-reader run: bench/plan.py). Should a batch's
reads fail, each (paper, topic) is tried on its own, so a failure costs its own highlight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from . import semantic
from .digest import by_meaning_alone
from .embeddings import Embedder, text_key
from .errors import EmbedderError
from .models import Digest, DigestItem, DigestSection, Hit, Paper
from .query import Query
from .store import Store

log = logging.getLogger(__name__)
# Papers whose sentences one run may embed: ~3-15 s at most, once (see above). A daily run for
# a few hundred readers has about this many distinct papers found by meaning alone; a bigger
# run shows the rest without the highlight rather than wait on the model.
NEW_PAPERS_PER_RUN = 30

Span = tuple[int, int]


def _wants_sentence(item: DigestItem) -> bool:
    """Found by meaning alone, and not highlighted yet (the sentence is the hit without a term).
    The words its topic required, if any, stay listed beside the sentence."""
    return by_meaning_alone(item) and all(hit.term for hit in item.hits)


class ClosestSentences:
    """One run's closest-sentence highlights (a digest run, or one web page).

    ``new_papers``: how many papers' sentences may be embedded (0: only sentences already
    stored are read, as a web request does). ``embedder`` None (``relevance.embedder = "off"``) adds nothing.
    A model that cannot load is logged once and the run goes on without highlights.
    ``parsed``: the run's topics parsed already, by their text (else parsed here)."""

    def __init__(self, store: Store, embedder: Embedder | None, acronyms: Mapping | None = None, *,
                 new_papers: int | None = None, parsed: Mapping[str, Query] | None = None):
        self._store, self._embedder, self._acronyms = store, embedder, acronyms
        self._budget = NEW_PAPERS_PER_RUN if new_papers is None else new_papers
        self._parsed = parsed or {}
        self._spans: dict[tuple[str, str], Span | None] = {}  # (paper id, topic query) -> span
        # paper id -> its sentences and their vectors; None: no highlight (no sentence, or past the bound)
        self._papers: dict[str, tuple[list[str], np.ndarray] | None] = {}

    def digest(self, digest: Digest) -> Digest:
        """``digest`` with each item found by meaning alone highlighting its closest sentence."""
        return self.digests([digest])[0]

    def digests(self, digests: Sequence[Digest]) -> list[Digest]:
        """:meth:`digest` of each, the vectors they need read together."""
        self._look_up({(item.paper.id, section.topic.query): item.paper for digest in digests
                       for section in digest.sections for item in section.items
                       if _wants_sentence(item)})
        if not self._spans:
            return list(digests)
        return [replace(digest, sections=tuple(self._section(section) for section in digest.sections))
                for digest in digests]

    def sentences(self, papers: Sequence[Paper], query: str) -> dict[str, str]:
        """Each paper's abstract sentence closest to the topic ``query``, by paper id: for
        ``paperwire match``, which shows it under a paper found by meaning alone (a tester saw
        only "related to your topic, similarity 0.43" and could not tell why). Papers without
        one (no abstract, past the bound, a failure: logged) are left out."""
        self._look_up({(paper.id, query): paper for paper in papers})
        found = {}
        for paper in papers:
            span = self._spans.get((paper.id, query))
            if span is not None:
                found[paper.id] = paper.abstract[span[0]:span[1]]
        return found

    def _section(self, section: DigestSection) -> DigestSection:
        return replace(section, items=tuple(self._item(item, section.topic.query) for item in section.items))

    def _item(self, item: DigestItem, query: str) -> DigestItem:
        if not _wants_sentence(item):
            return item
        span = self._spans.get((item.paper.id, query))
        return item if span is None else replace(item, hits=item.hits + (Hit("", "abstract", (span,)),))

    def _look_up(self, wanted: Mapping[tuple[str, str], Paper]) -> None:
        """The spans of the (paper id, topic query) pairs not looked up yet, into ``_spans``: all
        together, or, should that fail, one at a time, so a failure costs its own highlight only."""
        wanted = {key: paper for key, paper in wanted.items() if key not in self._spans}
        if self._embedder is not None and wanted and not self._found(wanted):
            for key, paper in wanted.items():
                if self._embedder is None or not self._found({key: paper}):
                    self._spans[key] = None

    def _found(self, wanted: Mapping[tuple[str, str], Paper]) -> bool:
        """:meth:`_find_spans`; False if that raised (logged). A model that fails ends the run's highlights."""
        try:
            self._find_spans(wanted)
            return True
        except EmbedderError as exc:
            log.error("no closest-sentence highlights in this run: %s", exc,
                      extra={"fields": {"event": "embed-error", "error": str(exc)}})
            self._embedder = None
        except Exception as exc:  # noqa: BLE001  -- no highlight for these; the digests are made
            error = f"{type(exc).__name__}: {exc}"
            if len(wanted) == 1:
                (paper,) = wanted.values()
                log.warning("no closest sentence for paper %s: %s", paper.id, error,
                            extra={"fields": {"event": "embed-error", "paper": paper.id, "error": error}})
            else:
                log.warning("closest sentences of %d papers and topics at once failed (%s); trying each alone",
                            len(wanted), error, extra={"fields": {"event": "embed-error", "error": error}})
        return False

    def _find_spans(self, wanted: Mapping[tuple[str, str], Paper]) -> None:
        """The span of each (paper id, topic query)'s closest sentence, into ``_spans``."""
        self._read_papers(list(wanted.values()))
        topics = self._topic_vectors({query for _, query in wanted})
        for (paper_id, query), paper in wanted.items():
            sentences, topic = self._papers.get(paper_id), topics.get(query)
            span = None
            if sentences is not None and topic is not None:
                best, _ = semantic.nearest_row(sentences[1], topic)
                start = paper.abstract.find(sentences[0][best])
                span = None if start < 0 else (start, start + len(sentences[0][best]))
            self._spans[(paper_id, query)] = span

    def _topic_vectors(self, queries: Iterable[str]) -> dict[str, np.ndarray]:
        """Each topic's meaning texts' vectors (one row per OR branch; stored when it was
        saved), read in one go; topics without such texts are left out."""
        texts = {query: semantic.topic_texts(self._parsed.get(query, query), self._acronyms) for query in queries}
        rows = semantic.vectors_for(self._store, self._embedder, [text for found in texts.values() for text in found])
        topics, at = {}, 0
        for query, found in texts.items():
            if found:
                topics[query] = rows[at:at + len(found)]
            at += len(found)
        return topics

    def _read_papers(self, papers: Iterable[Paper]) -> None:
        """The sentences of papers not seen yet in this run, with their vectors: stored ones
        read in one go; a paper with sentences not stored is embedded while the bound allows."""
        new = {paper.id: paper for paper in papers if paper.id not in self._papers}
        sentences = {paper_id: semantic.sentences(paper.abstract) for paper_id, paper in new.items()}
        keys = {paper_id: [text_key(part) for part in parts] for paper_id, parts in sentences.items()}
        stored = self._store.vectors(self._embedder.model_id, [key for found in keys.values() for key in found])
        for paper_id, parts in sentences.items():
            rows = [stored.get(key) for key in keys[paper_id]]
            if not parts:
                self._papers[paper_id] = None
            elif all(row is not None for row in rows):
                self._papers[paper_id] = (parts, np.stack(rows))
            elif self._budget > 0:
                self._budget -= 1
                self._papers[paper_id] = self._embedded(paper_id, parts)
            else:
                self._papers[paper_id] = None

    def _embedded(self, paper_id: str, parts: list[str]) -> tuple[list[str], np.ndarray] | None:
        """A paper's sentences embedded (and stored); None if that fails for this paper alone."""
        try:
            return parts, semantic.vectors_for(self._store, self._embedder, parts)
        except EmbedderError:
            raise  # the model: no highlights for the rest of the run
        except Exception as exc:  # noqa: BLE001  -- this paper shows no highlight; the digest is made
            log.warning("no closest sentence for paper %s: %s: %s", paper_id, type(exc).__name__, exc,
                        extra={"fields": {"event": "embed-error", "paper": paper_id,
                                          "error": f"{type(exc).__name__}: {exc}"}})
            return None
