"""Matching by meaning, beside matching by words: which parts of a topic may match by
meaning, and how the two kinds of evidence are fused into one ranking.

A topic is read as alternatives (the parts joined by a top-level ``OR``), each a list of
items that must all hold. In an alternative:

* its bare words (unquoted, no field) together are what it *means*: a paper whose
  vector is close enough to theirs (cosine similarity at least the threshold) matches
  by meaning, whatever its words;
* ``like:ID`` means "papers like that one": close enough to that paper's vector;
* everything else stays literal and still applies to papers found by meaning: an
  exclusion (``-video``) must not match, a quoted phrase, a field (``title:RAG``), an
  acronym alone or a group must match by words;
* an alternative whose bare words are all acronyms (``MoE``, ``RAG``) has no meaning
  part: acronyms are exact on purpose. So has ``*``.

Pure: vectors come in as numpy arrays; the word engine's rankings come in as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np

from paperwire.match.acronyms import AcronymTable
from paperwire.match.matcher import ExtraAcronyms, compile_queries
from paperwire.match.results import TermHit
from paperwire.normalize import referenced_id
from paperwire.query import And, Everything, Node, Not, Or, Query, Term, parse_query, render_query

WHY_WORDS, WHY_MEANING, WHY_EXAMPLE = "words", "meaning", "example"
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Alternative:
    """One OR-branch of a topic as meaning matching sees it."""

    meaning: str | None  # its bare words, in order: the text whose vector is compared
    like: str | None  # the paper reference of a ``like:`` item
    required: tuple[str, ...]  # literal conditions (query texts) a paper found by meaning must match
    excluded: tuple[str, ...]  # literal conditions (query texts) it must not match


def alternatives(query: Query, acronyms: AcronymTable, *, literal_acronyms: bool = True) -> tuple[Alternative, ...]:
    """The alternatives of ``query`` that can match by meaning or example (none for ``*``).

    ``literal_acronyms``: an alternative of acronyms alone (``MoE``) has no meaning part.
    """
    root = query.root
    if isinstance(root, Everything):
        return ()
    branches = root.children if isinstance(root, Or) else (root,)
    found = []
    for branch in branches:
        alternative = _alternative(branch, acronyms, literal_acronyms)
        if alternative is not None:
            found.append(alternative)
    return tuple(found)


def _alternative(branch: Node, acronyms: AcronymTable, literal_acronyms: bool) -> Alternative | None:
    items = branch.children if isinstance(branch, And) else (branch,)
    words: list[str] = []
    like: str | None = None
    required: list[str] = []
    excluded: list[str] = []
    for item in items:
        if isinstance(item, Term) and not item.phrase and item.field is None:
            words.append(item.text)
        elif _like_ref(item) is not None:
            if like is not None:  # two examples in one branch: both must hold, which meaning cannot say
                return None
            like = _like_ref(item)
        elif isinstance(item, Not):
            excluded.append(render_query(item.child))
        else:
            required.append(render_query(item))
    if like is not None and words:
        required.append(" ".join(words))  # "like:X diffusion": like X, and about diffusion by words
        words = []
    if literal_acronyms and words and all(acronyms.in_query(word) for word in words):
        required.append(" ".join(words))
        words = []
    if not words and like is None:
        return None
    return Alternative(" ".join(words) or None, like, tuple(required), tuple(excluded))


def _like_ref(item: Node) -> str | None:
    """The paper reference of a ``like:`` item (the query module parses it), else None."""
    ref = getattr(item, "ref", None)
    return ref if isinstance(ref, str) and type(item).__name__ == "Like" else None


class Fused(NamedTuple):
    """One paper picked for one topic, by words, meaning, example or several."""

    paper_id: str
    rank: int  # the paper's 1-based place in the listing
    score: float  # the fused score the ranking is ordered by
    terms: tuple[TermHit, ...]  # the word matches, as the word engine explains them
    similarity: float | None  # the best similarity of the topic's meaning or example parts; None: not computed
    why: tuple[str, ...]  # "words", "meaning", "example": each kind of evidence that holds
    like: str | None  # the liked paper's id when "example" holds


class _Entry(NamedTuple):
    score: float
    paper: int  # index in the listing
    word_position: int | None  # where the paper is in the word ranking, if words matched
    similarity: float | None
    kind: str | None  # WHY_MEANING or WHY_EXAMPLE when that evidence holds
    like: str | None


class FusedRanking:
    """A topic's matches by words and by meaning, best first (what digest.build_digest reads).

    Like the word engine's ``Ranking``, explanations are read from the word ranking only for
    the matches that are looked at."""

    __slots__ = ("_entries", "_papers", "_word")

    def __init__(self, entries: list[_Entry], papers: Sequence, word: Sequence):
        self._entries = entries
        self._papers = papers
        self._word = word

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, position: int) -> Fused:
        entry = self._entries[position]
        terms = tuple(self._word[entry.word_position].terms) if entry.word_position is not None else ()
        why = ((WHY_WORDS,) if entry.word_position is not None else ()) + ((entry.kind,) if entry.kind else ())
        return Fused(self._papers[entry.paper].id, entry.paper + 1, entry.score, terms,
                     entry.similarity, why, entry.like)

    def __iter__(self):
        return (self[position] for position in range(len(self._entries)))

    def paper_ids(self) -> list[str]:
        return [self._papers[entry.paper].id for entry in self._entries]

    def scores(self) -> list[float]:
        return [entry.score for entry in self._entries]

    def __repr__(self) -> str:
        return f"FusedRanking({len(self)} matches)"


@dataclass(frozen=True)
class Calibration:
    """When meaning counts and how it weighs against words: chosen on the tuning queries of
    tests/data/relevance_judgments.toml (bench/relevance.py prints the figures)."""

    threshold: float = 0.28  # centred similarity from which a paper matches a topic by meaning ...
    floor: float = 0.35  # ... when its plain similarity is at least this too
    like_threshold: float = 0.28  # centred similarity from which a paper is like an example
    word_half: float = 4.0  # a word score of this much counts half of the strongest word evidence


def word_strength(score: float, calibration: Calibration) -> float:
    """A BM25 score squashed into [0, 1): what a word match weighs in the fused score."""
    return score / (score + calibration.word_half) if score > 0 else 0.0


def fuse(word: Sequence, papers: Sequence, similarity: np.ndarray | None,
         by_meaning: dict[int, tuple[float, str, str | None]], calibration: Calibration) -> FusedRanking:
    """One ranking from a topic's word ranking and its papers found by meaning.

    ``similarity``: the topic's best similarity to each paper (None when it has no meaning
    part); ``by_meaning``: paper index -> (similarity, "meaning" or "example", liked paper id)
    for the papers found by meaning. A paper's fused score is the strength of its word
    evidence plus its similarity, so evidence of both kinds ranks first, then the stronger
    of either.
    """
    entries: list[_Entry] = []
    index_of = {paper.id: number for number, paper in enumerate(papers)}
    for position, (paper_id, score) in enumerate(zip(word.paper_ids(), word.scores())):
        number = index_of[paper_id]
        found = by_meaning.pop(number, None)
        close = found[0] if found else (float(similarity[number]) if similarity is not None else None)
        total = word_strength(score, calibration) + max(0.0, close or 0.0)
        entries.append(_Entry(total, number, position, close, found[1] if found else None, found[2] if found else None))
    for number, (close, kind, like) in by_meaning.items():
        entries.append(_Entry(close, number, None, close, kind, like))
    entries.sort(key=lambda entry: (-entry.score, entry.paper))
    return FusedRanking(entries, papers, word)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


@dataclass(frozen=True)
class PaperSpace:
    """The listing's papers as meaning compares them: each paper by its title and by its title
    with abstract (unit vectors, one row per paper in listing order), and the centre of recent
    papers of each kind.

    Similarity is the mean of the two cosines, computed twice: plain, and centred (vectors
    minus the centre). Centring removes what every paper of the field shares ("a language
    model paper"), which otherwise swamps what a topic is about; it found more relevant papers
    at the same precision on the judged queries. A paper without vectors (``known`` False)
    never matches by meaning.
    """

    texts: np.ndarray
    titles: np.ndarray
    known: np.ndarray  # bool, one per paper
    centre_text: np.ndarray
    centre_title: np.ndarray

    def similarity(self, texts: np.ndarray, titles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plain, centred) similarities: one row per query (``texts[i]``, ``titles[i]`` are its
        two sides: the topic's vector twice, or an example paper's two vectors), one column per paper."""
        plain = (texts @ self.texts.T + titles @ self.titles.T) / 2
        centred = (unit(texts - self.centre_text) @ unit(self.texts - self.centre_text).T
                   + unit(titles - self.centre_title) @ unit(self.titles - self.centre_title).T) / 2
        missing = ~self.known
        plain[:, missing] = -1.0
        centred[:, missing] = -1.0
        return plain, centred



@dataclass(frozen=True)
class Vectors:
    """What meaning matching reads: the listing's papers, and look-ups for the topics' words
    (one unit vector a text) and their example papers (a paper reference -> its text and
    title vectors, when the paper is known and embedded)."""

    space: PaperSpace
    of_texts: Callable[[Sequence[str]], np.ndarray]
    of_papers: Callable[[Sequence[str]], dict[str, tuple[np.ndarray, np.ndarray]]]


def match_topics(pairs: Sequence[tuple[Key, str]], papers: Sequence, acronyms: ExtraAcronyms | None,
                 vectors: Vectors, calibration: Calibration = Calibration()) -> dict[Key, FusedRanking]:
    """Each key's matches by words and by meaning, fused; one pass for all topics.

    Distinct topics are read once; their literal conditions are matched by the word engine
    in the same pass as the topics themselves; similarities are two matrix products.
    """
    table = AcronymTable(acronyms)
    texts = list(dict.fromkeys(text for _, text in pairs))
    plans = {text: alternatives(parse_query(text), table) for text in texts}
    literal = list(dict.fromkeys(q for plan in plans.values() for alt in plan for q in (*alt.required, *alt.excluded)))
    rankings = compile_queries([*((("topic", text), text) for text in texts),
                                *((("literal", q), q) for q in literal)], acronyms).match(papers)
    holds = {q: set(rankings[("literal", q)].paper_ranks()) for q in literal}  # 1-based listing ranks
    meanings = list(dict.fromkeys(alt.meaning for plan in plans.values() for alt in plan if alt.meaning))
    liked = vectors.of_papers(list(dict.fromkeys(alt.like for plan in plans.values() for alt in plan if alt.like)))
    rows = {("meaning", text): row for row, text in enumerate(meanings)}
    rows.update({("like", ref): len(meanings) + row for row, ref in enumerate(liked)})
    dims = vectors.space.texts.shape[1]
    topic_vectors = vectors.of_texts(meanings) if meanings else np.zeros((0, dims), np.float32)
    like_texts = np.array([pair[0] for pair in liked.values()], np.float32).reshape(-1, dims)
    like_titles = np.array([pair[1] for pair in liked.values()], np.float32).reshape(-1, dims)
    plain, centred = vectors.space.similarity(np.concatenate([topic_vectors, like_texts]),
                                              np.concatenate([topic_vectors, like_titles]))
    ids = [paper.id for paper in papers]

    fused: dict[str, FusedRanking] = {}
    for text, plan in plans.items():
        best: np.ndarray | None = None
        by_meaning: dict[int, tuple[float, str, str | None]] = {}
        for alt in plan:
            if alt.meaning is not None:
                row = rows[("meaning", alt.meaning)]
                kind, like, chosen = WHY_MEANING, None, (centred[row] >= calibration.threshold) & (plain[row] >= calibration.floor)
            elif ("like", alt.like) in rows:
                row = rows[("like", alt.like)]
                kind, like, chosen = WHY_EXAMPLE, alt.like, centred[row] >= calibration.like_threshold
            else:
                continue  # an example paper we have no vector for: it finds nothing by meaning
            best = centred[row] if best is None else np.maximum(best, centred[row])
            for number in np.flatnonzero(chosen).tolist():
                rank = number + 1
                if like is not None and same_paper(ids[number], like):
                    continue  # the example itself is not news
                if any(rank not in holds[q] for q in alt.required) or any(rank in holds[q] for q in alt.excluded):
                    continue
                close = float(centred[row, number])
                if number not in by_meaning or by_meaning[number][0] < close:
                    by_meaning[number] = (close, kind, like)
        fused[text] = fuse(rankings[("topic", text)], papers, best, by_meaning, calibration)
    return {key: fused[text] for key, text in pairs}


def same_paper(paper_id: str, ref: str) -> bool:
    """Whether ``ref`` (a paper id, or an arXiv id with or without its version) names ``paper_id``."""
    return referenced_id(ref) == paper_id
