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
from functools import cached_property
from typing import NamedTuple, TypeVar

import numpy as np

from paperwire.match.acronyms import AcronymTable
from paperwire.match.matcher import ExtraAcronyms, compile_queries
from paperwire.match.results import TermHit
from paperwire.normalize import referenced_id
from paperwire.query import And, Everything, Node, Not, Or, Query, Term, parse_query, render_query

WHY_WORDS, WHY_MEANING, WHY_EXAMPLE = "words", "meaning", "example"
# OR branches of one topic that match by meaning; the others match by their words only. Each
# is a vector to compute, and the public preview takes anyone's topic.
MAX_MEANING_PARTS = 8
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Alternative:
    """One OR-branch of a topic as meaning matching sees it."""

    meaning: str | None  # its bare words, in order: the text whose vector is compared
    like: str | None  # the paper reference of a ``like:`` item
    required: tuple[str, ...]  # literal conditions (query texts) a paper found by meaning must match
    excluded: tuple[str, ...]  # literal conditions (query texts) it must not match


def alternatives(query: Query, acronyms: AcronymTable) -> tuple[Alternative, ...]:
    """The alternatives of ``query`` that can match by meaning or example (none for ``*``
    and for a ``words:`` topic). In a ``meaning:`` topic quoted phrases and acronyms are
    meaning too."""
    root = query.root
    if isinstance(root, Everything) or query.mode == "words":
        return ()
    branches = root.children if isinstance(root, Or) else (root,)
    found = []
    for branch in branches:
        alternative = _alternative(branch, acronyms, literal=query.mode != "meaning")
        if alternative is not None:
            found.append(alternative)
    return tuple(found[:MAX_MEANING_PARTS])


def _alternative(branch: Node, acronyms: AcronymTable, literal: bool) -> Alternative | None:
    items = branch.children if isinstance(branch, And) else (branch,)
    words: list[str] = []
    like: str | None = None
    required: list[str] = []
    excluded: list[str] = []
    for item in items:
        if isinstance(item, Term) and item.field is None and (not item.phrase or not literal):
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
    if literal and words and all(acronyms.in_query(word) for word in words):
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


class _Ranked:
    """What digest.build_digest reads of a topic's matches: ``len``, ``ranked[i]`` (a slice
    gives a list), iteration, and ``paper_ids()`` / ``scores()`` from the subclass."""

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def match(self, position: int) -> Fused:
        raise NotImplementedError

    def __getitem__(self, position: int | slice) -> Fused | list[Fused]:
        if isinstance(position, slice):
            return [self.match(index) for index in range(*position.indices(len(self)))]
        return self.match(position)

    def __iter__(self):
        return (self.match(position) for position in range(len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} matches)"


class FusedRanking(_Ranked):
    """A topic's matches by words and by meaning, best first (what digest.build_digest reads).

    Kept as arrays (listing index, fused score, place in the word ranking or -1, similarity
    or NaN); like the word engine's ``Ranking``, a match and its explanation are built only
    when it is read."""

    __slots__ = ("_papers", "_word", "_order", "_scores", "_word_positions", "_similarities", "_by_meaning", "_ids")

    def __init__(self, papers: Sequence, word: Sequence | None, order: np.ndarray, scores: np.ndarray,
                 word_positions: np.ndarray, similarities: np.ndarray,
                 by_meaning: dict[int, tuple[float, str, str | None]]):
        self._papers = papers
        self._word = word
        self._order = order
        self._scores = scores
        self._word_positions = word_positions
        self._similarities = similarities
        self._by_meaning = by_meaning
        self._ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self._order)

    def match(self, position: int) -> Fused:
        paper = int(self._order[position])
        word_position = int(self._word_positions[position])
        similarity = float(self._similarities[position])
        _, kind, like = self._by_meaning.get(paper, (None, None, None))
        terms = tuple(self._word[word_position].terms) if word_position >= 0 else ()
        why = ((WHY_WORDS,) if word_position >= 0 else ()) + ((kind,) if kind else ())
        return Fused(self._papers[paper].id, paper + 1, float(self._scores[position]), terms,
                     None if similarity != similarity else similarity, why, like)

    def paper_ids(self) -> list[str]:
        """The ids of the matched papers, best first (made once: every reader of the topic reads them)."""
        if self._ids is None:
            papers = self._papers
            self._ids = [papers[paper].id for paper in self._order.tolist()]
        return self._ids

    def scores(self) -> list[float]:
        return self._scores.tolist()


@dataclass(frozen=True)
class Calibration:
    """When meaning counts and how it weighs against words: chosen on the tuning queries of
    tests/data/relevance_judgments.toml (bench/relevance.py prints the figures)."""

    threshold: float = 0.28  # centred similarity from which a paper matches a topic by meaning ...
    floor: float = 0.35  # ... when its plain similarity is at least this too
    like_threshold: float = 0.28  # centred similarity from which a paper is like an example
    word_half: float = 4.0  # a word score of this much counts half of the strongest word evidence


def fuse(word: Sequence | None, listing: _Listing, by_meaning: dict[int, tuple[float, str, str | None]],
         calibration: Calibration) -> FusedRanking:
    """One ranking from a topic's word ranking and its papers found by meaning.

    ``by_meaning``: paper index -> (similarity, "meaning" or "example", liked paper id).
    A paper's fused score is the strength of its word evidence (``WordsAlone.strength``)
    plus its similarity when it was found by meaning too, so evidence of both kinds ranks
    first, then the stronger of either.
    """
    if word is not None and len(word):
        by_words = np.asarray(word.paper_ranks(), dtype=np.int64) - 1
        strength = WordsAlone.strength(np.asarray(word.scores(), dtype=np.float64), calibration)
    else:
        by_words, strength = np.zeros(0, np.int64), np.zeros(0)
    close = np.array([by_meaning[paper][0] if paper in by_meaning else np.nan for paper in by_words.tolist()])
    only_meaning = np.array(sorted(set(by_meaning).difference(by_words.tolist())), dtype=np.int64)
    meaning_close = np.array([by_meaning[paper][0] for paper in only_meaning.tolist()], dtype=np.float64)
    order = np.concatenate([by_words, only_meaning])
    scores = np.concatenate([strength + np.nan_to_num(close), meaning_close])
    positions = np.concatenate([np.arange(len(by_words)), np.full(len(only_meaning), -1)])
    similarities = np.concatenate([close.reshape(-1), meaning_close])
    best_first = np.lexsort((order, -scores))
    return FusedRanking(listing.papers, word, order[best_first], scores[best_first], positions[best_first],
                        similarities[best_first], by_meaning)


class WordsAlone(_Ranked):
    """A topic that found nothing by meaning: its word ranking with fused scores (the usual
    case, so it is light: nothing is computed until read)."""

    __slots__ = ("_word", "_calibration")

    def __init__(self, word: Sequence, calibration: Calibration):
        self._word = word
        self._calibration = calibration

    @staticmethod
    def strength(scores: np.ndarray, calibration: Calibration) -> np.ndarray:
        """BM25 scores squashed into [0, 1): half at ``word_half``; 0 for the ``*`` topic."""
        return np.divide(scores, scores + calibration.word_half, out=np.zeros_like(scores), where=scores > 0)

    def __len__(self) -> int:
        return len(self._word)

    def match(self, position: int) -> Fused:
        match = self._word[position]
        score = match.score / (match.score + self._calibration.word_half) if match.score > 0 else 0.0
        return Fused(match.paper_id, match.rank, score, tuple(match.terms), None, (WHY_WORDS,), None)

    def paper_ids(self) -> list[str]:
        return self._word.paper_ids()

    def scores(self) -> list[float]:
        return self.strength(np.asarray(self._word.scores(), dtype=np.float64), self._calibration).tolist()


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

    @cached_property
    def _centred(self) -> tuple[np.ndarray, np.ndarray]:
        return unit(self.texts - self.centre_text), unit(self.titles - self.centre_title)

    def centred(self, texts: np.ndarray, titles: np.ndarray) -> np.ndarray:
        """Centred similarities: one row per query (``texts[i]``, ``titles[i]`` are its two
        sides: the topic's vector twice, or an example paper's two vectors), one column per paper."""
        centred_texts, centred_titles = self._centred
        centred = (unit(texts - self.centre_text) @ centred_texts.T
                   + unit(titles - self.centre_title) @ centred_titles.T) / 2
        centred[:, ~self.known] = -1.0
        return centred

    def plain(self, texts: np.ndarray, titles: np.ndarray, papers: np.ndarray) -> np.ndarray:
        """Plain similarities of query ``i`` (``texts[i]``, ``titles[i]``) to paper ``papers[i]``,
        pair by pair: only for the few pairs the centred similarity let through."""
        return (np.einsum("ij,ij->i", texts, self.texts[papers])
                + np.einsum("ij,ij->i", titles, self.titles[papers])) / 2


@dataclass(frozen=True)
class Vectors:
    """What meaning matching reads: the listing's papers, and look-ups for the topics' words
    (one unit vector a text) and their example papers (a paper reference -> its text and
    title vectors, when the paper is known and embedded)."""

    space: PaperSpace
    of_texts: Callable[[Sequence[str]], np.ndarray]
    of_papers: Callable[[Sequence[str]], dict[str, tuple[np.ndarray, np.ndarray]]]


TOPICS_AT_ONCE = 2048  # distinct topics whose similarities are computed together (memory: ~16 MB per 1,000 papers)
Candidates = dict[int, list[tuple[int, float]]]  # similarity row -> (paper index, similarity) at or above the threshold


def match_topics(pairs: Sequence[tuple[Key, str]], papers: Sequence, acronyms: ExtraAcronyms | None,
                 vectors: Vectors, calibration: Calibration = Calibration()) -> dict[Key, FusedRanking | WordsAlone]:
    """Each key's matches by words and by meaning, fused; one pass for all topics.

    Distinct topics are parsed once. Similarities are matrix products, a few thousand topics
    at a time so memory stays flat in the number of topics, and only the papers at or above
    the threshold are kept. Then one word pass matches the topics and the literal conditions
    of the parts that found papers by meaning.
    """
    table = AcronymTable(acronyms)
    texts = list(dict.fromkeys(text for _, text in pairs))
    parsed = {text: parse_query(text) for text in texts}
    plans = {text: alternatives(query, table) for text, query in parsed.items()}
    liked = vectors.of_papers(list(dict.fromkeys(alt.like for plan in plans.values() for alt in plan if alt.like)))
    close: dict[tuple[str, str], list[tuple[int, float]]] = {}  # ("meaning", text) or ("like", ref) -> papers
    for start in range(0, len(texts), TOPICS_AT_ONCE):
        close.update(_close_papers(vectors, [alt for text in texts[start:start + TOPICS_AT_ONCE] for alt in plans[text]],
                                   liked, calibration))
    found = {text: [(alt, hits) for alt in plan if (hits := close.get(_part(alt)))] for text, plan in plans.items()}
    literal = list(dict.fromkeys(q for parts in found.values() for alt, _ in parts for q in (*alt.required, *alt.excluded)))
    rankings = compile_queries([*((("topic", text), parsed[text]) for text in texts),
                                *((("literal", q), q) for q in literal)], acronyms).match(papers)
    holds = {q: set(rankings[("literal", q)].paper_ranks()) for q in literal}  # 1-based listing ranks
    listing = _Listing(papers)

    fused: dict[str, FusedRanking | WordsAlone] = {}
    for text in texts:
        word = rankings[("topic", text)] if parsed[text].mode != "meaning" else None  # "meaning:": no words
        by_meaning = _found_by_meaning(found[text], holds, listing)
        fused[text] = fuse(word, listing, by_meaning, calibration) if by_meaning or word is None \
            else WordsAlone(word, calibration)
    return {key: fused[text] for key, text in pairs}


def _part(alt: Alternative) -> tuple[str, str]:
    return ("meaning", alt.meaning) if alt.meaning is not None else ("like", alt.like or "")


class _Listing:
    """The papers being matched, with each id's place (shared by every topic's fusion)."""

    def __init__(self, papers: Sequence):
        self.papers = papers
        self.ids = [paper.id for paper in papers]
        self.index_of = {paper_id: number for number, paper_id in enumerate(self.ids)}


def _close_papers(vectors: Vectors, parts: Sequence[Alternative], liked: dict[str, tuple[np.ndarray, np.ndarray]],
                  calibration: Calibration) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """For each meaning or example part: the papers close enough to it, with their centred similarity."""
    meanings = list(dict.fromkeys(alt.meaning for alt in parts if alt.meaning))
    likes = [ref for ref in dict.fromkeys(alt.like for alt in parts if alt.like) if ref in liked]
    if not meanings and not likes:
        return {}
    dims = vectors.space.texts.shape[1]
    topic_vectors = vectors.of_texts(meanings) if meanings else np.zeros((0, dims), np.float32)
    like_texts = np.array([liked[ref][0] for ref in likes], np.float32).reshape(-1, dims)
    like_titles = np.array([liked[ref][1] for ref in likes], np.float32).reshape(-1, dims)
    query_texts = np.concatenate([topic_vectors, like_texts])
    query_titles = np.concatenate([topic_vectors, like_titles])
    centred = vectors.space.centred(query_texts, query_titles)
    rows, papers = np.nonzero(centred >= np.where(np.arange(len(centred)) < len(meanings), calibration.threshold,
                                                  calibration.like_threshold)[:, None])
    is_topic = rows < len(meanings)  # a topic must be close in plain similarity too
    keep = ~is_topic | (vectors.space.plain(query_texts[rows], query_titles[rows], papers) >= calibration.floor)
    rows, papers = rows[keep], papers[keep]
    names = [("meaning", text) for text in meanings] + [("like", ref) for ref in likes]
    close: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row, paper, similarity in zip(rows.tolist(), papers.tolist(), centred[rows, papers].tolist()):
        close.setdefault(names[row], []).append((paper, similarity))
    return close


def _found_by_meaning(parts: Sequence[tuple[Alternative, list[tuple[int, float]]]], holds: dict[str, set[int]],
                      listing: _Listing) -> dict[int, tuple[float, str, str | None]]:
    """The papers a topic finds by meaning or example (paper index -> similarity, kind,
    example), each part's literal conditions applied."""
    by_meaning: dict[int, tuple[float, str, str | None]] = {}
    for alt, hits in parts:
        kind, like = (WHY_MEANING, None) if alt.meaning is not None else (WHY_EXAMPLE, alt.like)
        for number, similarity in hits:
            rank = number + 1
            if like is not None and same_paper(listing.ids[number], like):
                continue  # the example itself is not news
            if any(rank not in holds[q] for q in alt.required) or any(rank in holds[q] for q in alt.excluded):
                continue
            if number not in by_meaning or by_meaning[number][0] < similarity:
                by_meaning[number] = (similarity, kind, like)
    return by_meaning


def same_paper(paper_id: str, ref: str) -> bool:
    """Whether ``ref`` (a paper id, or an arXiv id with or without its version) names ``paper_id``."""
    return referenced_id(ref) == paper_id
