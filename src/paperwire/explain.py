"""The abstract sentence closest to the topic, highlighted for papers found by meaning alone.

A paper found by its words shows the words it matched. One found by meaning alone has no
word to show, so its digest item gets the sentence of its abstract nearest to its
section's topic as a highlight without a term (``Hit("", "abstract", span)``): paperview
puts it in <strong>, starts the excerpt near it when it lies beyond the cut, and lists no
term under "matched:".

Embedding a sentence costs ~15-50 ms on this machine the first time (an abstract has ~9,
so ~0.1-0.5 s a paper), then it is stored. So a run looks only at the papers in its
digests, once per (paper, topic), and embeds the sentences of at most
``NEW_PAPERS_PER_RUN`` papers; papers whose sentences are stored cost a look-up and are
not counted. Past the bound, a paper is shown without the sentence highlight (its reason
line still says it was found by meaning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from . import semantic
from .digest import by_meaning_alone
from .embeddings import Embedder, text_key
from .errors import EmbedderError
from .models import Digest, DigestItem, DigestSection, Hit, Paper
from .store import Store

log = logging.getLogger(__name__)
# Papers whose sentences one run may embed: ~3-15 s at most, once (see above). A daily run for
# a few hundred readers has about this many distinct papers found by meaning alone; a bigger
# run shows the rest without the highlight rather than wait on the model.
NEW_PAPERS_PER_RUN = 30

Span = tuple[int, int]


class ClosestSentences:
    """One run's closest-sentence highlights (a digest run, or one web page).

    ``new_papers``: how many papers' sentences may be embedded (0: only sentences already
    stored are read, as a web request does). ``embedder`` None (``relevance.embedder = "off"``) adds nothing.
    A model that cannot load is logged once and the run goes on without highlights."""

    def __init__(self, store: Store, embedder: Embedder | None, acronyms: Mapping | None = None, *,
                 new_papers: int | None = None):
        self._store, self._embedder, self._acronyms = store, embedder, acronyms
        self._budget = NEW_PAPERS_PER_RUN if new_papers is None else new_papers
        self._spans: dict[tuple[str, str], Span | None] = {}  # (paper id, topic query) -> span
        self._topics: dict[str, np.ndarray | None] = {}  # topic query -> its meaning texts' vectors

    def digest(self, digest: Digest) -> Digest:
        """``digest`` with each item found by meaning alone highlighting its closest sentence."""
        if self._embedder is None or not any(by_meaning_alone(i) for s in digest.sections for i in s.items):
            return digest
        return replace(digest, sections=tuple(self._section(section) for section in digest.sections))

    def _section(self, section: DigestSection) -> DigestSection:
        return replace(section, items=tuple(self._item(item, section.topic.query) for item in section.items))

    def _item(self, item: DigestItem, query: str) -> DigestItem:
        if item.hits or not by_meaning_alone(item):  # words to show, or highlighted already
            return item
        key = (item.paper.id, query)
        if key not in self._spans:
            self._spans[key] = self._closest(item.paper, query)
        span = self._spans[key]
        return item if span is None else replace(item, hits=(Hit("", "abstract", (span,)),))

    def _closest(self, paper: Paper, query: str) -> Span | None:
        """Where the abstract's sentence closest to the topic's texts is; None when there is
        none, when the bound is reached, or when the model fails."""
        parts = semantic.sentences(paper.abstract)
        if self._embedder is None or not parts:
            return None
        try:
            topic = self._topic(query)
            if topic is None:
                return None
            keys = {text_key(part) for part in parts}
            if len(self._store.stored_vector_keys(self._embedder.model_id, keys)) < len(keys):
                if self._budget <= 0:
                    return None
                self._budget -= 1
            found = semantic.closest_sentence(self._store, self._embedder, paper.abstract, topic)
        except EmbedderError as exc:
            log.error("no closest-sentence highlights in this run: %s", exc,
                      extra={"fields": {"event": "embed-error", "error": str(exc)}})
            self._embedder = None
            return None
        except Exception as exc:  # noqa: BLE001  -- this paper shows no highlight; the digest is made
            log.warning("no closest sentence for paper %s: %s: %s", paper.id, type(exc).__name__, exc,
                        extra={"fields": {"event": "embed-error", "paper": paper.id,
                                          "error": f"{type(exc).__name__}: {exc}"}})
            return None
        if found is None:
            return None
        start = paper.abstract.find(found[0])
        return None if start < 0 else (start, start + len(found[0]))

    def _topic(self, query: str) -> np.ndarray | None:
        """The vectors of the topic's meaning texts (one row per OR branch; stored when it was
        saved), read once a run; None when it has none."""
        if query not in self._topics:
            texts = semantic.topic_texts(query, self._acronyms)
            self._topics[query] = semantic.vectors_for(self._store, self._embedder, texts) if texts else None
        return self._topics[query]
