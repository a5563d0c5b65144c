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
  part: acronyms are exact on purpose. So has ``*``. In a ``meaning:`` topic they are
  meaning, embedded with what they stand for (``_spelled_out``).

Pure: vectors come in as numpy arrays; the word engine's rankings come in as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import NamedTuple, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from paperwire.match.acronyms import AcronymTable, acronym_table
from paperwire.match import split
from paperwire.match.matcher import ConditionHits, ExtraAcronyms, Matched, Matcher, bulk_allocation
from paperwire.match.sections import SharedSwitch
from paperwire.match.results import TermHit
from paperwire.match.text import only_asks, request_words
from paperwire.normalize import referenced_id
from paperwire.query import And, Everything, Node, Not, Or, Query, Term, as_query, by_text, query_text, side_items

WHY_WORDS, WHY_MEANING, WHY_EXAMPLE = "words", "meaning", "example"
# OR branches of one topic whose words match by meaning; further ones match by their words only.
# Each is a text to embed (15-50 ms the first time), and the public preview takes anyone's topic.
# Examples (like:) are not counted here: each is a stored paper's vectors, and the parser refuses
# a topic with more than query.MAX_LIKES of them, so every one it accepts is compared.
MAX_MEANING_PARTS = 8
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Alternative:
    """One OR-branch of a topic as meaning matching sees it."""

    meaning: str | None  # its bare words, in order: the text whose vector is compared
    like: str | None  # the paper reference of a ``like:`` item
    required: tuple[Node, ...]  # literal conditions a paper found by meaning must match
    excluded: tuple[Node, ...]  # literal conditions it must not match


def alternatives(query: Query, acronyms: AcronymTable) -> tuple[Alternative, ...]:
    """The alternatives of ``query`` that can match by meaning or example (none for ``*``
    and for a ``words:`` topic): every example, and the first ``MAX_MEANING_PARTS`` whose
    words match by meaning. In a ``meaning:`` topic quoted phrases and acronyms are meaning too."""
    root = query.root
    if isinstance(root, Everything) or query.mode == "words":
        return ()
    branches = root.children if isinstance(root, Or) else (root,)
    found = []
    meanings = 0
    for branch in branches:
        alternative = _alternative(branch, acronyms, literal=query.mode != "meaning")
        if alternative is None:
            continue
        if alternative.meaning is not None:
            meanings += 1
            if meanings > MAX_MEANING_PARTS:
                continue
        found.append(alternative)
    return tuple(found)


def _meaning_word(item: Node, literal: bool) -> bool:
    """Whether ``item`` is among a side's words compared by meaning: a bare word (with no field),
    or in a ``meaning:`` topic (not ``literal``) a quoted phrase too."""
    return isinstance(item, Term) and item.field is None and (not item.phrase or not literal)


def _alternative(branch: Node, acronyms: AcronymTable, literal: bool) -> Alternative | None:
    items = side_items(branch)
    words: list[str] = []
    like: str | None = None
    required: list[Node] = []
    excluded: list[Node] = []
    for item in items:
        if _meaning_word(item, literal):
            words.append(item.text)
        elif _like_ref(item) is not None:
            if like is not None:  # two examples in one branch (the parser refuses them): nothing can say "like both"
                return None
            like = _like_ref(item)
        elif isinstance(item, Not):
            excluded.append(item.child)
        else:
            required.append(item)
    if like is not None and words:
        required.append(_words(words))  # "like:X diffusion": like X, and about diffusion by words
        words = []
    meant = _without_asking(words)
    if literal and meant and all(acronyms.in_query(word) for word in meant):  # "MoE", "LLM papers"
        required.append(_words(words))
        meant = []
    if literal and like is None and _negation(meant):
        return None  # "diffusion not video" is near video diffusion papers to the model: by its words only
    if not meant and like is None:
        return None
    text = _spelled_out(meant, acronyms)
    return Alternative(_INNER_HYPHENS.sub(" ", text) or None, like, tuple(required), tuple(excluded))


# "machine-translation" is compared as "machine translation", as the word engine reads it: the
# hyphen is a token of its own to the model, and moved similarities by 0.03-0.04 around the bar.
_INNER_HYPHENS = re.compile(r"(?<=[^\W_])[-\u2010\u2011](?=[^\W_])")


# Words that negate what follows. The model reads "diffusion not video" as about video diffusion
# (similarity 0.59 to a video paper), so a side of a topic that says one is matched by its
# words alone; ``-video`` excludes. (A ``meaning:`` topic asked for meaning: compared as written.)
# Not "without": in topics it names a kind of method ("pruning without retraining", "editing
# without training"), which the model reads well and the words alone missed.
NEGATIONS = frozenset(("not", "no", "never", "except", "excluding"))


def _negation(words: Iterable[str]) -> str | None:
    """The first of ``words`` (bare words, or phrases of them) that is one of ``NEGATIONS``."""
    return next((word for text in words for word in text.split() if word.casefold() in NEGATIONS), None)


def negated_sides(query: Query) -> list[tuple[Node, str]]:
    """The sides of ``query`` (its parts joined by OR) that ``alternatives`` passes over for a
    negation word among their bare words, each with that word: they match by their words only.
    For ``paperwire topics check``, which lists topics this rule reads otherwise than before."""
    root = query.root
    if isinstance(root, Everything) or query.mode is not None:  # words: and meaning: read every side as they say
        return []
    found = []
    for side in root.children if isinstance(root, Or) else (root,):
        items = side_items(side)
        if any(_like_ref(item) is not None for item in items):
            continue  # compared with its example, not its words' meaning
        word = _negation(item.text for item in items if _meaning_word(item, literal=True))
        if word is not None:
            found.append((side, word))
    return found


def _without_asking(words: list[str]) -> list[str]:
    """The words without those that only ask for papers (``text.request_words``: "papers about",
    "keep me posted on anything about", a trailing "please"), as the word engine reads them.
    To the model they are words of the topic: ``keep me posted on anything about small language
    models`` came to 0.22 of MiniCPM where ``small language models`` came to 0.41, and
    ``interests: scaling laws`` to no paper above the bar where ``scaling laws`` has three."""
    split = [word for text in words for word in text.split()]
    if not split or only_asks(split):  # "papers about" of 'papers about "model merging"'
        return []
    asking = request_words(split)
    return [word for word, asks in zip(split, asking, strict=True) if not asks] if asking else words


def _spelled_out(words: list[str], acronyms: AcronymTable) -> str:
    """The text a topic's words are embedded as: the words in order, each known acronym
    followed by its expansions ("MoE (mixture of experts)").

    The small model barely knows acronyms: "MoE" alone is near no mixture-of-experts paper,
    so ``meaning: MoE`` found nothing, and "why do LLMs hallucinate?" came to 0.28 of "On the
    Statistical Inevitability of Hallucination" where "language models" came to 0.66. (An
    acronym alone outside ``meaning:`` stays literal: the word engine matches its
    expansions.) Spelled out in mixed topics too, every judged set's figures rose or held
    once papers of meaning alone had to come near the words' best (``beside_best``;
    bench/README.md). The text is made only here, in ``alternatives``, so the embedding step,
    the vectors stored when a topic is saved (``semantic.topic_texts``) and matching read the
    vector of the same text."""
    spelled = []
    for word in (word for text in words for word in text.split()):
        acronym = acronyms.in_query(word)
        spelled.append(f"{word} ({' or '.join(acronyms.expansions[acronym])})" if acronym else word)
    return " ".join(spelled)


def _words(words: list[str]) -> Node:
    """The words (a phrase's too) as one literal condition, as the query ``w1 w2 ...`` reads:
    built from them, never parsed again, so no wording can make it a syntax error."""
    terms = [Term(word) for text in words for word in text.split()]
    return terms[0] if len(terms) == 1 else And(tuple(terms))


def _like_ref(item: Node) -> str | None:
    """The paper reference of a ``like:`` item (the query module parses it), else None."""
    ref = getattr(item, "ref", None)
    return ref if isinstance(ref, str) and type(item).__name__ == "Like" else None


class Fused(NamedTuple):
    """One paper picked for one topic, by words, meaning, example or several."""

    paper_id: str
    rank: int  # the paper's 1-based place in the listing
    score: float  # the fused score the ranking is ordered by
    # The word matches, as the word engine explains them; for a paper found by meaning or example
    # alone, where the literal conditions of the parts that found it are in it (RequiredHits).
    terms: tuple[TermHit, ...]
    similarity: float | None  # the best similarity of the topic's meaning or example parts; None: not computed
    why: tuple[str, ...]  # "words", "meaning", "example": every kind of evidence that holds
    like: str | None  # the liked paper's id when "example" holds (of several, the closest)
    like_similarity: float | None = None  # the paper's similarity to that liked paper


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

    Rows ``start`` to ``stop`` of the run's :class:`FusedRows`; like the word engine's
    ``Ranking``, a match and its explanation are built only when it is read."""

    __slots__ = ("_rows", "_word", "_topic", "_start", "_stop", "_ids")

    def __init__(self, rows: FusedRows, word: Sequence | None, topic: int, start: int, stop: int):
        self._rows = rows
        self._word = word
        self._topic = topic  # its number in the run (FoundByMeaning.topic)
        self._start = start
        self._stop = stop
        self._ids: list[str] | None = None

    def __len__(self) -> int:
        return self._stop - self._start

    def match(self, position: int) -> Fused:
        rows, row = self._rows, self._start + range(len(self))[position]
        paper = int(rows.paper[row])
        word_position = int(rows.word_position[row])
        similarity = float(rows.similarity[row])
        like, like_similarity = rows.likes[rows.like[row]], float(rows.like_similarity[row])
        terms = (tuple(self._word[word_position].terms) if word_position >= 0
                 else rows.required.hits(self._topic, paper))
        why = ((WHY_WORDS,) if word_position >= 0 else ()) + _KINDS[rows.kind[row]]
        return Fused(rows.papers[paper].id, paper + 1, float(rows.score[row]), terms,
                     None if similarity != similarity else similarity, why, like,
                     None if like is None else like_similarity)

    def paper_ids(self) -> list[str]:
        """The ids of the matched papers, best first (made once: every reader of the topic reads them)."""
        if self._ids is None:
            papers = self._rows.papers
            self._ids = [papers[paper].id for paper in self._rows.paper[self._start:self._stop].tolist()]
        return self._ids

    def scores(self) -> list[float]:
        return self._rows.score[self._start:self._stop].tolist()


# FusedRows.kind, bits of the kinds of parts that found a paper: 0 none (words only), then
# _BY_MEANING, _BY_EXAMPLE or both; _KINDS[kind] is what ``Fused.why`` adds to "words".
_BY_MEANING, _BY_EXAMPLE = 1, 2
_KINDS = ((), (WHY_MEANING,), (WHY_EXAMPLE,), (WHY_MEANING, WHY_EXAMPLE))


class FusedRows(NamedTuple):
    """The matches of every fused topic of one run, one row each: topic after topic, each
    topic's best first. Fusing all topics with a few array operations costs far less than
    fusing each topic on its own (most topics have only a handful of matches)."""

    papers: Sequence  # the listing
    paper: np.ndarray  # the paper's index in the listing
    score: np.ndarray  # the fused score the ranking is ordered by
    word_position: np.ndarray  # the paper's place in the topic's word ranking, -1 when not found by words
    similarity: np.ndarray  # its similarity when found by meaning or example, else NaN
    kind: np.ndarray  # an index into _KINDS
    like: np.ndarray  # an index into ``likes``: the closest example that found it
    like_similarity: np.ndarray  # its similarity to that example, else NaN
    likes: list[str | None]  # the example references, None first (for rows without one)
    required: RequiredHits  # what explains the papers found without words


class FoundByMeaning(NamedTuple):
    """Papers found by meaning or example, one row per (topic, paper): the topic's number,
    the paper's index in the listing, the best similarity, the _KINDS index (every kind of
    part that found it), and the closest example that found it (like index, 0: none) with
    its similarity (NaN: none); ``required`` explains each row by its literal conditions."""

    topic: list[int]
    paper: list[int]
    similarity: list[float]
    kind: list[int]
    like: list[int]
    like_similarity: list[float]
    required: RequiredHits


class RequiredHits:
    """The words a paper found by meaning or example was required to have, shown as its
    matched terms: the literal conditions (``"a phrase"``, ``title:benchmark``, a group) of
    every part of the topic that found it, in the topic's order, each explained as a word
    ranking explains its terms (``ConditionHits.hits``). Without them such a paper said
    ``matched: []`` and highlighted nothing, though those words were checked.

    Kept as two arrays until a match is read, and only for the parts with conditions (a large
    run has many (part, paper) pairs, most of parts without any): pair ``i`` says part
    ``parts[i]`` found paper ``keys[i] % size`` for topic ``keys[i] // size`` (``keys``
    ascending). ``conditions[part]`` are that part's conditions (numbers for ``explain``;
    exclusions, which a paper must not match, are not among them)."""

    __slots__ = ("_explain", "_conditions", "_keys", "_size", "_parts")

    def __init__(self, explain: ConditionHits | None, conditions: dict[int, tuple[int, ...]], keys: np.ndarray,
                 size: int, parts: np.ndarray):
        self._explain = explain
        self._conditions = conditions
        self._keys = keys
        self._size = size
        self._parts = parts

    def hits(self, topic: int, paper: int) -> tuple[TermHit, ...]:
        """Where the conditions of the parts that found ``paper`` (listing index) for topic
        number ``topic`` are in it; () if none required any, or it was not found by meaning."""
        if not self._conditions:  # no part of any topic required words
            return ()
        key = topic * self._size + paper
        first, last = np.searchsorted(self._keys, [key, key + 1])
        parts = sorted(set(self._parts[first:last].tolist()))  # in the topic's order
        numbers = dict.fromkeys(number for part in parts for number in self._conditions.get(part, ()))
        if not numbers:
            return ()
        return tuple(chain.from_iterable(self._explain.hits(number, paper) for number in numbers))


_NO_ROWS = RequiredHits(None, {}, np.zeros(0, np.int64), 1, np.zeros(0, np.int64))


@dataclass(frozen=True)
class Calibration:
    """When meaning counts and how it weighs against words: chosen on the tuning queries of
    tests/data/relevance_judgments.toml (bench/relevance.py prints the figures)."""

    threshold: float = 0.28  # centred similarity from which a paper matches a topic by meaning ...
    floor: float = 0.35  # ... when its plain similarity is at least this too
    like_threshold: float = 0.28  # centred similarity from which a paper is like an example
    # A topic whose words found papers gets a paper by meaning alone from this similarity
    # only: beside the papers that say the topic's words, the weak near misses of meaning
    # were mostly wrong ("text-to-image" getting an art-captioning model at 0.31).
    beside_words: float = 0.32
    # ... and must come within this of the closest paper the words found (when meaning found that
    # one too): beside "Are Video Diffusion Models Zero-Shot Physics Simulators?" at 0.64, image
    # diffusion papers at 0.35-0.41 are not what "video diffusion physics" meant, while the issue's
    # CodeGen2 (0.36 beside 0.47) and "Extending Context Window" (0.33 beside 0.37) stay.
    beside_best: float = 0.2
    word_half: float = 4.0  # a word score of this much counts half of the strongest word evidence


def fuse_all(words: Sequence[Sequence | None], found: FoundByMeaning, papers: Sequence, likes: list[str | None],
             calibration: Calibration, one_meaning: Sequence[bool]) -> list[FusedRanking | WordsAlone]:
    """Each topic's ranking from its word ranking (None: a ``meaning:`` topic) and its papers
    found by meaning (``found``), in topic order. ``one_meaning``: per topic, whether one side
    of it only is compared by meaning (``Calibration.beside_best`` holds for those: a topic's
    word matches are not told apart by side, and one side's close paper is no measure of
    another side's, as in ``speculative decoding OR KV cache compression``).

    A paper's fused score is the strength of its word evidence (``WordsAlone.strength``)
    plus its similarity when it was found by meaning too, so evidence of both kinds ranks
    first, then the stronger of either; ties keep the listing's order. A topic that found
    nothing by meaning keeps its word ranking (:class:`WordsAlone`).
    """
    by_meaning = set(found.topic)
    fusing = [topic for topic, word in enumerate(words) if word is None or topic in by_meaning]
    rankings: list[FusedRanking | WordsAlone] = [WordsAlone(word, calibration) if word is not None else None
                                                  for word in words]  # type: ignore[misc]
    if not fusing:
        return rankings
    # The word rankings of the topics being fused, one row per match.
    counted = [(topic, words[topic]) for topic in fusing if words[topic] is not None]
    lengths = np.array([len(word) for _, word in counted], dtype=np.int64)
    word_topic = np.repeat(np.array([topic for topic, _ in counted], dtype=np.int64), lengths)
    word_paper = np.fromiter(chain.from_iterable(word.paper_ranks() for _, word in counted), np.int64, int(lengths.sum())) - 1
    word_score = np.fromiter(chain.from_iterable(word.scores() for _, word in counted), np.float64, len(word_paper))
    word_position = np.arange(len(word_paper)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    # Papers found by meaning, matched to the same topic's word rows by (topic, paper). Their
    # columns end with a blank row (no similarity, no kind), which word rows without one read.
    size = len(papers) + 1
    found_topic = np.array(found.topic, dtype=np.int64)
    meaning_key = found_topic * size + np.array(found.paper, dtype=np.int64)
    also = _positions(meaning_key, word_topic * size + word_paper)
    only = np.ones(len(meaning_key), bool)  # found by meaning only
    only[also[also >= 0]] = False
    similarity = np.array([*found.similarity, np.nan], dtype=np.float64)
    kind = np.array([*found.kind, 0], dtype=np.int8)
    # Beside a topic's word matches, a paper its meaning alone found needs Calibration.beside_words,
    # and to come within Calibration.beside_best of the closest paper the words found (by its
    # meaning: an example's similarity, paper to paper, runs higher and is no measure here).
    has_words = np.zeros(len(words), bool)
    has_words[[topic for topic, word in counted if len(word)]] = True
    closest_by_words = np.full(len(words), -np.inf)
    both = (also >= 0) & (kind[also] == _BY_MEANING)
    np.maximum.at(closest_by_words, word_topic[both], similarity[also[both]])
    closest_by_words[~np.asarray(one_meaning, bool)] = -np.inf
    bar = np.maximum(np.float32(calibration.beside_words), closest_by_words[found_topic] - calibration.beside_best)
    only &= ~(has_words[found_topic] & (kind[:-1] == _BY_MEANING) & (similarity[:-1] < bar))
    like = np.array([*found.like, 0], dtype=np.int64)
    like_similarity = np.array([*found.like_similarity, np.nan], dtype=np.float64)
    topic = np.concatenate([word_topic, found_topic[only]])
    paper = np.concatenate([word_paper, np.array(found.paper, dtype=np.int64)[only]])
    score = np.concatenate([WordsAlone.strength(word_score, calibration) + np.nan_to_num(similarity[also]),
                            similarity[:-1][only]])
    order = np.lexsort((paper, -score, topic))
    rows = FusedRows(papers, paper[order], score[order],
                     np.concatenate([word_position, np.full(int(only.sum()), -1)])[order],
                     np.concatenate([similarity[also], similarity[:-1][only]])[order],
                     np.concatenate([kind[also], kind[:-1][only]])[order],
                     np.concatenate([like[also], like[:-1][only]])[order],
                     np.concatenate([like_similarity[also], like_similarity[:-1][only]])[order],
                     likes, found.required)
    bounds = np.searchsorted(topic[order], np.array(fusing + [len(words)], dtype=np.int64)).tolist()
    for number, fused_topic in enumerate(fusing):
        rankings[fused_topic] = FusedRanking(rows, words[fused_topic], fused_topic, bounds[number], bounds[number + 1])
    return rankings


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of ``wanted`` is in ``keys`` (distinct values), or -1 where it is not."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    by_key = np.argsort(keys)
    at = by_key[np.minimum(np.searchsorted(keys[by_key], wanted), len(keys) - 1)]
    return np.where(keys[at] == wanted, at, -1)


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
        # In place: at 100,000 readers each pass over these matrices costs as much as a tenth
        # of the products themselves. (Halving is exact, so "* 0.5" is "/ 2".)
        centred = unit(texts - self.centre_text) @ centred_texts.T
        centred += unit(titles - self.centre_title) @ centred_titles.T
        centred *= 0.5
        if not self._all_known:
            centred[:, ~self.known] = -1.0
        return centred

    @cached_property
    def _all_known(self) -> bool:
        return bool(self.known.all())

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


# Rows (distinct meanings and examples) whose similarities are computed together: ~33 MB a
# matrix per 1,000 papers. Fewer, larger products hand the interpreter back and forth less.
TOPICS_AT_ONCE = 8192


# The products run beside the word pass, on one BLAS thread: more would only take the core the
# word pass needs. The limit is process-wide, and runs overlap in web worker threads, so it is
# a shared switch (match.sections): overlapping runs cannot leave the process on one thread.
one_blas_thread = SharedSwitch(lambda: threadpool_limits(1, user_api="blas"),
                               lambda limits: limits.restore_original_limits())


def match_topics(pairs: Sequence[tuple[Key, str | Query]], papers: Sequence, acronyms: ExtraAcronyms | None,
                 vectors: Vectors, calibration: Calibration = Calibration()) -> dict[Key, FusedRanking | WordsAlone]:
    """Each key's matches by words and by meaning, fused; one pass for all topics.

    Distinct topics (``query.by_text``) are parsed once unless given parsed, and each distinct
    meaning or example is compared once however many topics share it. The similarities are
    matrix products, during which numpy lets go of the interpreter, so they run in a second
    thread, batch by batch as the topics' vectors are read, while this one plans and matches
    the words (pure Python). A large run (``split.SPLIT_FROM`` distinct topics) plans and
    matches most topics' words in a second process (``match.split``). The word pass here also
    plans each part's literal conditions (``-video``, ``title:RAG``) over the topics' own
    terms; only those of parts that found papers are ever evaluated, as sets of papers. All
    of it builds millions of small objects, so the cycle collector is kept out of the way
    (``bulk_allocation``).
    """
    with bulk_allocation():
        return _match_topics(pairs, papers, acronyms, vectors, calibration)


def _match_topics(pairs: Sequence[tuple[Key, str | Query]], papers: Sequence, acronyms: ExtraAcronyms | None,
                  vectors: Vectors, calibration: Calibration) -> dict[Key, FusedRanking | WordsAlone]:
    table = acronym_table(acronyms)
    distinct = by_text(query for _, query in pairs)
    texts, queries = list(distinct), [as_query(query) for query in distinct.values()]
    # A large run matches the last distinct topics' words in a second process (match.split),
    # forked before this process starts a thread.
    mine = (len(texts) - round(len(texts) * split.CHILD_SHARE) if split.worth_splitting(len(texts), split.SPLIT_FROM)
            else len(texts))
    child = split.fork_word_pass(queries[mine:], texts[mine:], papers, acronyms) if mine < len(texts) else None
    if child is None:
        mine = len(texts)
    try:
        with one_blas_thread(), ThreadPoolExecutor(1) as background:
            plans, parts = _read_meanings(queries, table, vectors, background, calibration)
            matcher: Matcher[int] = Matcher(acronyms)
            for topic in range(mine):
                matcher.add(topic, queries[topic], texts[topic])
            conditions = {node: matcher.add_condition(node) for node in dict.fromkeys(
                node for plan in plans for alt in plan for node in (*alt.required, *alt.excluded))}
            matched = matcher.match_all(papers, also=child.wanted() if child is not None else None)
            # What meaning found needs no word ranking: done while the child finishes its share.
            found = _found_by_meaning(plans, parts, parts.close_hits(), conditions, matched, papers)
            rankings = [matched.rankings[topic] for topic in range(mine)]
            if child is not None:
                rankings += child.rankings(matched)
    finally:
        if child is not None:
            child.close()
    words = [rankings[topic] if query.mode != "meaning" else None  # "meaning:": no words
             for topic, query in enumerate(queries)]
    fused = fuse_all(words, found, papers, parts.like_refs, calibration,
                     [sum(alt.meaning is not None for alt in plan) == 1 for plan in plans])
    topic_of = {text: topic for topic, text in enumerate(texts)}
    return {key: fused[topic_of[query_text(query)]] for key, query in pairs}


# Topics whose new meanings' vectors are read between two batches of products handed to the
# background thread: it starts on the first batch while the rest is still being read.
TOPICS_READ_AT_ONCE = 16384


def _read_meanings(queries: Sequence[Query], table: AcronymTable, vectors: Vectors, background: ThreadPoolExecutor,
                   calibration: Calibration) -> tuple[list[tuple[Alternative, ...]], _Parts]:
    """Every topic's alternatives, and the rows of its meanings and examples, whose close papers
    are being found in ``background``. The vectors are read in this thread: the store belongs to it."""
    plans: list[tuple[Alternative, ...]] = []
    parts = _Parts(vectors.space, calibration)
    for start in range(0, len(queries), TOPICS_READ_AT_ONCE):
        found = [alternatives(query, table) for query in queries[start:start + TOPICS_READ_AT_ONCE]]
        meanings = parts.new_meanings(found)
        if meanings:
            parts.compare(background, vectors.of_texts(meanings))
        plans += found
    parts.add_examples(background, plans, vectors)
    return plans, parts


class _Parts:
    """The distinct meanings and examples of all topics: the rows of the similarity products,
    meanings in order of first use, then examples. Rows are compared with the papers in
    batches, in a background thread, as their vectors are read."""

    def __init__(self, space: PaperSpace, calibration: Calibration):
        self.row: dict[tuple[str, str], int] = {}
        self.topics = 0  # meaning rows so far; example rows come after all of them
        self.like_refs: list[str | None] = [None]  # FusedRows.like: 0 is "no example"
        self._space = space
        self._calibration = calibration
        self._batches: list[Future[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []

    def new_meanings(self, plans: Sequence[tuple[Alternative, ...]]) -> list[str]:
        """The meanings of ``plans`` without a row yet, each given the next row."""
        row, new = self.row, []
        for plan in plans:
            for alt in plan:
                if alt.meaning is not None and ("meaning", alt.meaning) not in row:
                    row["meaning", alt.meaning] = len(row)
                    new.append(alt.meaning)
        self.topics = len(row)
        return new

    def compare(self, background: ThreadPoolExecutor, topic_vectors: np.ndarray) -> None:
        """Compare the newest meanings (one vector each, in row order) with the papers."""
        first = self.topics - len(topic_vectors)
        for start in range(0, len(topic_vectors), TOPICS_AT_ONCE):
            block = topic_vectors[start:start + TOPICS_AT_ONCE]
            # a topic's words are compared with both sides of a paper
            self._batches.append(background.submit(_close_rows, self._space, block, block, first + start,
                                                   self._calibration.threshold, self._calibration.floor))

    def add_examples(self, background: ThreadPoolExecutor, plans: Sequence[tuple[Alternative, ...]],
                     vectors: Vectors) -> None:
        """The examples' rows (``like:``), after every meaning's: an example paper's text is
        compared with the papers' texts, its title with their titles."""
        asked = list(dict.fromkeys(alt.like for plan in plans for alt in plan if alt.like is not None))
        liked = vectors.of_papers(asked) if asked else {}
        likes = [ref for ref in asked if ref in liked]  # an unknown or unembedded example finds nothing
        self.row.update({("like", ref): self.topics + row for row, ref in enumerate(likes)})
        self.like_refs += likes
        if likes:
            texts = np.array([liked[ref][0] for ref in likes], np.float32)
            titles = np.array([liked[ref][1] for ref in likes], np.float32)
            self._batches.append(background.submit(_close_rows, self._space, texts, titles, self.topics,
                                                   self._calibration.like_threshold, None))

    def of(self, alt: Alternative) -> int | None:
        """The row of an alternative's meaning or example (None: an example without vectors)."""
        return self.row.get(("meaning", alt.meaning) if alt.meaning is not None else ("like", alt.like))

    def close_hits(self) -> CloseHits:
        """Every row's close papers, once the background thread has found them all."""
        found = [batch.result() for batch in self._batches]
        if not found:
            return CloseHits(np.zeros(len(self.row) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        rows = np.concatenate([rows for rows, _, _ in found])
        return CloseHits(np.searchsorted(rows, np.arange(len(self.row) + 1)),
                         np.concatenate([papers for _, papers, _ in found]),
                         np.concatenate([similar for _, _, similar in found]).astype(np.float64))


def _close_rows(space: PaperSpace, texts: np.ndarray, titles: np.ndarray, first: int, threshold: float,
                floor: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The papers close enough to rows ``first``, ``first + 1``, ...: (rows, papers, centred
    similarities), row after row. Close: a centred similarity of at least ``threshold`` and,
    for a topic's words, a plain one of at least ``floor``.

    Runs beside the word pass on one BLAS thread (the caller's ``one_blas_thread``): the
    word pass keeps the other core busy, and a second BLAS thread would only take turns with
    it, and spin while waiting."""
    centred = space.centred(texts, titles)
    rows, papers = np.nonzero(centred >= _float32_from(threshold))
    if floor is not None:
        keep = space.plain(texts[rows], titles[rows], papers) >= floor
        rows, papers = rows[keep], papers[keep]
    return rows + first, papers, centred[rows, papers]


def _float32_from(threshold: float) -> np.float32:
    """The least float32 that is at least ``threshold``: a float32 similarity reaches it exactly
    when its float64 value reaches ``threshold``, and the comparison needs no float64 copy."""
    bound = np.float32(threshold)
    return bound if float(bound) >= threshold else np.nextafter(bound, np.float32(np.inf))


class CloseHits(NamedTuple):
    """Row ``r``'s close papers are ``paper[starts[r]:starts[r + 1]]`` (listing indexes,
    ascending), with their centred similarities in ``similarity``."""

    starts: np.ndarray
    paper: np.ndarray
    similarity: np.ndarray


def _found_by_meaning(plans: Sequence[tuple[Alternative, ...]], parts: _Parts, close: CloseHits,
                      conditions: dict[Node, int], matched: Matched, papers: Sequence) -> FoundByMeaning:
    """The papers each topic finds by meaning or example, each part's literal conditions
    applied; a paper found by several parts keeps its best similarity (the first part of
    the best), every kind of part that found it and its closest example (a reader told only
    "related to your topic" would not learn that a paper they liked found it too). No
    example finds a paper the topic names with ``like:``, itself or another (the reader knows
    them: in a "Liked" topic each liked paper would otherwise find the others).

    The parts that found papers are listed first (a short loop over the topics); their
    close papers are then spread, filtered and reduced to one per topic and paper with
    array operations. Only the papers of parts with literal conditions or an example are
    checked one by one (a bit test each). Which of those parts found each paper is kept, so
    that a match read later shows the words their conditions required (:class:`RequiredHits`)."""
    starts = close.starts.tolist()
    part_topic: list[int] = []
    part_row: list[int] = []
    limits: list[tuple[int, int]] = []  # (part, the papers its conditions allow as a bitset)
    required: dict[int, tuple[int, ...]] = {}  # part -> its literal conditions (if any), to explain what it found
    named: list[tuple[int, frozenset[str]]] = []  # (example part, the ids of the papers its topic names with like:)
    for topic, plan in enumerate(plans):
        for alt in plan:
            row = parts.of(alt)
            if row is None or starts[row] == starts[row + 1]:
                continue
            if alt.required or alt.excluded:
                allowed = -1
                for node in alt.required:
                    allowed &= matched.papers(conditions[node])
                for node in alt.excluded:
                    allowed &= ~matched.papers(conditions[node])
                limits.append((len(part_row), allowed))
                if alt.required:
                    required[len(part_row)] = tuple([conditions[node] for node in alt.required])
            if alt.like is not None:
                # Worked out only for topics with examples: most have none, and this loop is per topic.
                named.append((len(part_row), frozenset(referenced_id(other.like) for other in plan
                                                       if other.like is not None)))
            part_topic.append(topic)
            part_row.append(row)
    rows = np.array(part_row, dtype=np.int64)
    first, counts = close.starts[rows], close.starts[rows + 1] - close.starts[rows]
    ends = np.cumsum(counts)
    part = np.repeat(np.arange(len(rows)), counts)  # one entry per (part, close paper) from here on
    at = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(first - (ends - counts), counts)
    paper, similarity = close.paper[at], close.similarity[at]
    keep = np.ones(len(paper), bool)
    if limits or named:
        listed, stops = paper.tolist(), ends.tolist()
        for number, allowed in limits:
            for entry in range(stops[number - 1] if number else 0, stops[number]):
                if not allowed >> listed[entry] & 1:
                    keep[entry] = False
        for number, ids in named:
            for entry in range(stops[number - 1] if number else 0, stops[number]):
                if papers[listed[entry]].id in ids:
                    keep[entry] = False
    part, paper, similarity = part[keep], paper[keep], similarity[keep]
    if not len(part):
        return FoundByMeaning([], [], [], [], [], [], _NO_ROWS)
    topic = np.array(part_topic, dtype=np.int64)[part]
    example_row = rows[part] - parts.topics + 1  # FusedRows.like: 1 for the first example, < 1 for a meaning
    # Each (topic, paper)'s entries together, best first; among equals, the first part.
    order = np.lexsort((part, -similarity, paper, topic))
    topic, paper, similarity, example_row = topic[order], paper[order], similarity[order], example_row[order]
    first = np.concatenate([[True], (topic[1:] != topic[:-1]) | (paper[1:] != paper[:-1])])
    starts, group = np.flatnonzero(first), np.cumsum(first) - 1
    size = len(papers) + 1
    with_conditions = np.zeros(len(rows), bool)
    with_conditions[list(required)] = True
    pairs = np.flatnonzero(with_conditions[part][order])  # in (topic, paper) order
    found_by = RequiredHits(matched.condition_hits(), required, topic[pairs] * size + paper[pairs], size,
                            part[order[pairs]])
    by_example = example_row > 0
    # Every kind of part that found the paper, and the closest example that did: the reason
    # line names that example even when a meaning came closer.
    kind = np.bitwise_or.reduceat(np.where(by_example, _BY_EXAMPLE, _BY_MEANING), starts)
    examples = np.flatnonzero(by_example)
    liked, at = np.unique(group[examples], return_index=True)  # each group's first example entry: its closest
    like = np.zeros(len(starts), np.int64)
    like_similarity = np.full(len(starts), np.nan)
    like[liked] = example_row[examples[at]]
    like_similarity[liked] = similarity[examples[at]]
    return FoundByMeaning(topic[starts].tolist(), paper[starts].tolist(), similarity[starts].tolist(),
                          kind.tolist(), like.tolist(), like_similarity.tolist(), found_by)


def similarities(query: Query, acronyms: AcronymTable, papers: Sequence, vectors: Vectors) -> np.ndarray | None:
    """Each paper's similarity to the topic, found by meaning or not: the best centred
    similarity of its meaning and example parts, as ``Fused.similarity`` reports it (an
    paper the topic names with ``like:`` is compared with no example: none finds it). NaN for
    a paper without vectors; None when there is nothing to compare (no such part, or only
    examples without vectors).

    For the few results of one topic, so a reader sees how near a paper found by its words
    came. Never for a run's topics: ``_close_rows`` keeps only the close papers of each."""
    plan = alternatives(query, acronyms)
    meanings = list(dict.fromkeys(alt.meaning for alt in plan if alt.meaning is not None))
    refs = list(dict.fromkeys(alt.like for alt in plan if alt.like is not None))
    examples = vectors.of_papers(refs) if refs else {}
    likes = [ref for ref in refs if ref in examples]
    if not meanings and not likes:
        return None
    # One row per part, as _close_rows compares them: a topic's words with both sides of a
    # paper, an example's text with the papers' texts and its title with their titles.
    rows = [(vector, vector) for vector in vectors.of_texts(meanings)] if meanings else []
    rows += [examples[ref] for ref in likes]
    found = vectors.space.centred(np.array([text for text, _ in rows], np.float32),
                                  np.array([title for _, title in rows], np.float32)).astype(np.float64)
    if likes:  # the example rows, last
        named = np.array([any(same_paper(paper.id, ref) for ref in refs) for paper in papers], bool)
        found[len(meanings):, named] = -np.inf
    best = found.max(axis=0)
    best[~vectors.space.known | np.isinf(best)] = np.nan
    return best


def same_paper(paper_id: str, ref: str) -> bool:
    """Whether ``ref`` (a paper id, or an arXiv id with or without its version) names ``paper_id``."""
    return referenced_id(ref) == paper_id
