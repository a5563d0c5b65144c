"""Where the query vocabulary occurs in today's papers, built once per run.

Every paper is tokenized and folded once (each distinct spelling is folded, stemmed and
looked up in the acronym table once per run). Only symbols that some compiled query
uses are kept, so the index stays small however long the abstracts are.

Positions are global within a field: paper ``i``'s word ``p`` sits at
``i * stride + p``, with ``stride`` larger than any paper's last position plus one,
so no phrase can run from one paper into the next. A glued neighbour pair ("multi
modal" read as ``multimod``) is one occurrence spanning two positions; a pair written
with a space is glued only if both are content words ("may be" is not ``maybe``, see
:meth:`~paperwire.match.text.Stems.glued_apart`), a hyphenated pair always.

For each field and symbol the index keeps ``start -> (end, start char, end char)`` and
the set of papers the symbol occurs in, as a bitset (an ``int`` whose bit ``i`` is
paper ``i``): ANDing those is a cheap first answer to "which papers could contain this
phrase". The compiled queries also name the neighbour pairs their phrases are made
of (``followers``); while reading the papers the index records where each such pair
occurs, so a phrase is where its pairs' start lists meet. Other phrases are found by
intersecting the start sets of their symbols, each shifted back by the symbol's place
in the phrase, rarest first (see :meth:`_FieldPostings.find`). Neither scans paper
text. Occurrences are counted per paper right away (that is all scoring needs);
their character spans are worked out only when a match is explained.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import pairwise, product, repeat
from operator import floordiv, rshift, sub

from paperwire.match.acronyms import AcronymTable, acronym_symbol
from paperwire.match.patterns import GAP, Pattern
from paperwire.match.results import Span
from paperwire.match.boilerplate import mask_boilerplate
from paperwire.match.sentences import _SENTENCE_GAP, ABBREVIATIONS, SENTENCE_SHIFT, next_sentence
from paperwire.match.text import (
    AUTHOR_SEPARATOR,
    FIELDS,
    TOKEN_PATTERN,
    Stems,
    dot_joins,
    field_text,
    fold,
    read_gap,
)
from paperwire.models import Paper

Located = tuple[int, int, int]  # (the other end's global position, start char, end char)

ACRONYM_FIELDS = ("title", "abstract")  # author names are never read as acronyms
_SPLIT_TOKENS = re.compile(f"({TOKEN_PATTERN.pattern})")  # split() keeps the tokens, between the gaps


def bits_of(papers: Collection[int]) -> int:
    """The bitset (bit ``i`` for paper ``i``) of some paper numbers."""
    if len(papers) < 64:
        bits = 0
        for paper in papers:
            bits |= 1 << paper
        return bits
    flags = bytearray(max(papers) // 8 + 1)
    for paper in papers:
        flags[paper >> 3] |= 1 << (paper & 7)
    return int.from_bytes(flags, "little")


class Occurrences:
    """Where one pattern occurs in one field: how often per paper, and (when asked) where.

    ``groups`` holds ``(starts, width)`` pairs: global start positions of occurrences
    whose last symbol starts ``width`` positions later. ``first`` and ``last`` locate
    the pattern's first and last symbol by their start, giving the character span.
    """

    __slots__ = ("_by_paper", "_first", "_groups", "_last", "_longest", "_placed", "_places", "_stride", "counts")

    def __init__(
        self,
        stride: int,
        groups: list[tuple[Collection[int], int]],
        first: dict[int, Located],
        last: dict[int, Located],
    ):
        counts: Counter[int] = Counter()
        for starts, _ in groups:
            counts.update(map(floordiv, starts, repeat(stride)))
        self.counts: dict[int, int] = counts  # paper -> number of occurrences
        self._stride = stride
        self._groups = groups
        self._first = first
        self._last = last
        self._by_paper: dict[int, list[Span]] | None = None
        self._placed: dict[int, list[tuple[int, int, Span]]] | None = None
        self._places: dict[int, list[tuple[int, int]]] | None = None
        self._longest = 0

    def sentences(self) -> set[int]:
        """The sentences (``position >> SENTENCE_SHIFT``) the occurrences start in."""
        return set().union(*(map(rshift, starts, repeat(SENTENCE_SHIFT)) for starts, _ in self._groups))

    def places(self) -> dict[int, list[tuple[int, int]]]:
        """Per sentence, the (first, last) word positions of each occurrence, by start (worked out once)."""
        if self._places is None:
            last = self._last
            places: dict[int, list[tuple[int, int]]] = {}
            longest = 0
            for starts, width in self._groups:
                for start in starts:
                    place = (start, last[start + width][0])  # a glued last symbol ends a position later
                    if place[1] - start >= longest:
                        longest = place[1] - start + 1
                    found = places.get(start >> SENTENCE_SHIFT)
                    if found is None:
                        places[start >> SENTENCE_SHIFT] = [place]
                    else:
                        found.append(place)
            for found in places.values():
                found.sort()
            self._places = places
            self._longest = longest
        return self._places

    def longest(self) -> int:
        """The most word positions one occurrence spans (a hyphenated "pre-training" two)."""
        self.places()
        return self._longest

    def by_paper(self) -> dict[int, list[Span]]:
        """Per paper, the character spans of the occurrences (worked out once, when first asked)."""
        if self._by_paper is None:
            first, last, stride = self._first, self._last, self._stride
            every = sorted((start, width) for starts, width in self._groups for start in starts)
            by_paper: dict[int, list[Span]] = {}
            for start, width in every:
                by_paper.setdefault(start // stride, []).append((first[start][1], last[start + width][2]))
            self._by_paper = by_paper
        return self._by_paper

    def spans(self, paper: int) -> list[Span]:
        return self.by_paper().get(paper, []) if paper in self.counts else []

    def placed(self, paper: int) -> list[tuple[int, int, Span]]:
        """The paper's occurrences as (first, last) word positions, as :meth:`places` has them,
        with their character spans: what says which occurrences made a run near (worked out
        once, for every paper, when a run's word is first explained)."""
        if paper not in self.counts:
            return []
        if self._placed is None:
            last, stride, spans = self._last, self._stride, self.by_paper()
            places: dict[int, list[tuple[int, int]]] = {}
            for start, width in sorted((start, width) for starts, width in self._groups for start in starts):
                places.setdefault(start // stride, []).append((start, last[start + width][0]))
            self._placed = {  # in by_paper's order: its spans are shared, not made again
                number: [(first, end, span) for (first, end), span in zip(found, spans[number], strict=True)]
                for number, found in places.items()
            }
        return self._placed.get(paper, [])


class _FieldPostings:
    """Occurrences of the wanted symbols in one field of every paper."""

    def __init__(self, stride: int):
        self.stride = stride
        self.by_start: dict[str, dict[int, Located]] = {}  # filled paper by paper
        self.papers: dict[str, int] = {}  # symbol -> bitset of the papers it occurs in
        self.wide: set[str] = set()  # symbols that occur as a glued pair (two positions)
        self.solid: set[str] = set()  # symbols that occur as one written word
        self.followers: Mapping[str, AbstractSet[str]] = {}  # the neighbour pairs to record: a -> {b}
        self.bigrams: dict[str, dict[str, list[int]]] = {}  # a -> b -> starts of a (one word) right before b
        self._shifted: dict[tuple[str, int, int], AbstractSet[int]] = {}

    def find(self, pattern: Pattern) -> Occurrences | None:
        """Where ``pattern`` occurs, or None when nowhere.

        Occurrences of consecutive symbols must touch: the next symbol starts one position
        after the previous one ends, and a symbol ends where it starts, or one position
        later for a glued pair. So for each way of choosing the widths of the pattern's
        wide symbols (usually there are none, so one way) each symbol's place in the
        pattern is a fixed offset, and the pattern starts where the start sets of the
        symbols, each shifted back by its offset, meet. Rarest symbol first.
        """
        by_start = self.by_start
        if len(pattern) == 1:
            occurrences = by_start.get(pattern[0])
            return Occurrences(self.stride, [(occurrences, 0)], occurrences, occurrences) if occurrences else None
        papers = self.papers
        candidates = -1
        for symbol in pattern:
            candidates &= papers.get(symbol, 0)
            if not candidates:
                return None  # no paper has every symbol: no need to look at positions
        wide = self.wide
        neighbours = list(pairwise(pattern))
        followers = self.followers
        by_pairs = all(after in followers.get(before, ()) for before, after in neighbours)  # usually so
        if by_pairs and wide.isdisjoint(pattern):
            starts = self._pairs_meeting(neighbours)
            return (
                Occurrences(self.stride, [(starts, len(pattern) - 1)], by_start[pattern[0]], by_start[pattern[-1]])
                if starts
                else None
            )
        choices = [(0, 1) if symbol in wide else (0,) for symbol in pattern]
        groups: list[tuple[Collection[int], int]] = []
        for widths in product(*choices):
            offsets = [0]
            for width in widths[:-1]:
                offsets.append(offsets[-1] + width + 1)
            if by_pairs and not any(widths):
                starts = self._pairs_meeting(neighbours)
                if starts:  # keep the starts where each wide symbol is indeed one word there
                    starts = [
                        start
                        for start in starts
                        if all(
                            by_start[symbol][start + place][0] == start + place
                            for place, symbol in enumerate(pattern)
                            if symbol in wide
                        )
                    ]
            else:
                starts = self._meeting(pattern, widths, offsets)
            if starts:
                groups.append((starts, offsets[-1]))
        return Occurrences(self.stride, groups, by_start[pattern[0]], by_start[pattern[-1]]) if groups else None

    def _pairs_meeting(self, neighbours: list[tuple[str, str]]) -> Collection[int] | None:
        """Where each symbol is one word directly before the next: the recorded pairs' starts meet."""
        bigrams = self.bigrams
        lists = []
        for place, (before, after) in enumerate(neighbours):
            starts = bigrams.get(before, {}).get(after)
            if not starts:
                return None
            lists.append((len(starts), place, starts))
        if len(lists) == 1:
            return lists[0][2]
        lists.sort()
        _, place, starts = lists[0]
        meeting = set(map(sub, starts, repeat(place)))
        for _, place, starts in lists[1:]:
            meeting &= set(map(sub, starts, repeat(place)))
            if not meeting:
                return None
        return meeting

    def _meeting(self, pattern: Pattern, widths: tuple[int, ...], offsets: list[int]) -> AbstractSet[int] | None:
        """Where each symbol, ``widths[i]`` wide, starts at ``offsets[i]``: the start sets meet.

        From the smallest set (a glued pair is usually rare), the others are checked by
        lookup when it is small, or intersected in C when it is not.
        """
        by_start, wide = self.by_start, self.wide
        places = sorted(
            range(len(pattern)),
            key=lambda place: len(
                self._widths(pattern[place], widths[place]) if pattern[place] in wide else by_start[pattern[place]]
            ),
        )
        first = places[0]
        starts = self._starts_minus(pattern[first], widths[first], offsets[first])
        for place in places[1:]:
            if not starts:
                return None
            symbol, width, offset = pattern[place], widths[place], offsets[place]
            if len(starts) > 64:
                starts = starts & self._starts_minus(symbol, width, offset)
                continue
            occurrences = by_start[symbol]
            if symbol in wide:
                starts = {
                    start
                    for start in starts
                    if (found := occurrences.get(start + offset)) is not None and found[0] - start - offset == width
                }
            else:
                starts = {start for start in starts if start + offset in occurrences}
        return starts or None

    def _widths(self, symbol: str, width: int) -> AbstractSet[int]:
        """Starts of a wide symbol's occurrences ``width`` wide."""
        return self._starts_minus(symbol, width, 0)

    def _starts_minus(self, symbol: str, width: int, offset: int) -> AbstractSet[int]:
        """Starts of ``symbol``'s occurrences ``width`` wide, moved back by ``offset`` (cached)."""
        wide = symbol in self.wide
        if offset == 0 and not wide:
            return self.by_start[symbol].keys()
        key = (symbol, width, offset)
        found = self._shifted.get(key)
        if found is None:
            occurrences = self.by_start[symbol]
            if wide:
                found = {start - offset for start, (end, _, _) in occurrences.items() if end - start == width}
            else:
                found = {start - offset for start in occurrences}
            self._shifted[key] = found
        return found


class PaperIndex:
    """Positions of the wanted symbols in each field of each paper."""

    def __init__(
        self,
        papers: Sequence[Paper],
        wanted: Collection[str],
        acronyms: AcronymTable,
        stems: Stems,
        followers: Mapping[str, AbstractSet[str]] | None = None,
    ):
        """``followers``: neighbour symbol pairs worth recording, as ``a -> {b, ...}``."""
        self.paper_count = len(papers)
        self.lengths: dict[str, list[int]] = {}
        self._fields: dict[str, _FieldPostings] = {}
        words: dict[str, _Word] = {}  # shared by the fields
        glued: _GluedPairs = ({}, {})
        for field in FIELDS:
            texts = [field_text(paper, field) for paper in papers]
            if field == "abstract":  # same length: spans still index the original text
                texts = list(map(mask_boilerplate, texts))
            # Each token takes a character and so does each gap, and a sentence takes at most
            # 2**SENTENCE_SHIFT positions more than its words, so no position reaches
            # 2**SENTENCE_SHIFT times a text's length (and papers start on sentence boundaries).
            postings = self._fields[field] = _FieldPostings((2 + max(map(len, texts), default=0)) << SENTENCE_SHIFT)
            postings.followers = followers or {}
            reader = _FieldReader(postings, wanted, acronyms, stems, words, glued, field in ACRONYM_FIELDS)
            if field == "author":  # each name its own "sentence": author:(Xiang Li) is not "Xiang Wang, Wei Li"
                reader.gaps[AUTHOR_SEPARATOR] = _NAME_BREAK
            self.lengths[field] = [reader.read(number, text) for number, text in enumerate(texts)]
            reader.finish()
        self._found: dict[tuple[str, Pattern], Occurrences | None] = {}
        self._side_by_side: dict[tuple[str, str, str], int] = {}
        self.present: set[str] = set().union(*(postings.by_start for postings in self._fields.values()))
        self.solid: set[str] = set().union(*(postings.solid for postings in self._fields.values()))

    def stride(self, field: str) -> int:
        """Word positions per paper in ``field``: paper ``i``'s positions start at ``i * stride``."""
        return self._fields[field].stride

    def papers_with(self, field: str) -> dict[str, int]:
        """``symbol -> bitset of the papers`` whose ``field`` contains it."""
        return self._fields[field].papers

    def find(self, field: str, pattern: Pattern) -> Occurrences | None:
        """Where ``pattern`` occurs in ``field``, or None (memoized)."""
        key = (field, pattern)
        try:
            return self._found[key]
        except KeyError:
            found = self._found[key] = self._fields[field].find(pattern)
            return found

    def side_by_side(self, field: str, before: str, after: str) -> int | None:
        """The papers whose ``field`` has ``before`` (one word) right before ``after``, as a bitset.

        Only a pair recorded while reading the papers (see ``followers``) can tell, and
        only if neither symbol also occurs as a glued pair ("pre-training" is ``pretrain``
        over two words, and is never recorded as one word before the next); otherwise this
        gives None, as it cannot know. :meth:`_FieldPostings.find` relies on the same.
        """
        postings = self._fields[field]
        if after not in postings.followers.get(before, ()) or before in postings.wide or after in postings.wide:
            return None
        key = (field, before, after)
        found = self._side_by_side.get(key)
        if found is None:
            starts = postings.bigrams.get(before, {}).get(after, ())
            found = self._side_by_side[key] = bits_of(set(map(floordiv, starts, repeat(postings.stride))))
        return found

    def spans(self, field: str, pattern: Pattern) -> dict[int, list[Span]]:
        """Per paper index, the spans where ``pattern`` occurs in ``field``."""
        found = self.find(field, pattern)
        return found.by_paper() if found is not None else {}


# Glued stems already worked out, for pairs written with a hyphen and for pairs written
# with a space: folded word -> next folded word -> their glued stem if wanted, else "".
_GluedPairs = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]
_HYPHENATED, _SPACED = 0, 1  # how a joinable gap is written: the index into a _GluedPairs
_NAME_BREAK = (2, None, True)  # between two authors: a sentence break, whatever the name ends with ("Albert No")
_DOT_IN_NAME = (1, None, False)  # a gap's (step, how it joins, ends a sentence) for "v.2", "e.g" (text.dot_joins)

# How one spelling reads: (folded, wanted stem, wanted acronym symbol, the wanted symbols
# of a token so spelled where acronyms are read, and where they are not, then those of
# them that have followers to record, with their followers, in both cases).
_Word = tuple[
    str,
    "str | None",
    "str | None",
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[str, AbstractSet[str]], ...],
    tuple[tuple[str, AbstractSet[str]], ...],
]


class _FieldReader:
    """Records the wanted symbols of one field, paper by paper: stems, acronyms, glued pairs.

    ``words`` (spelling -> how it reads) and ``glued`` (see :data:`_GluedPairs`) are shared
    by the fields of one run, so each distinct spelling and pair is worked out once.
    Neighbouring symbols that form one of the postings' ``pairs`` are recorded in its
    ``bigrams``.
    """

    def __init__(
        self,
        postings: _FieldPostings,
        wanted: Collection[str],
        acronyms: AcronymTable,
        stems: Stems,
        words: dict[str, _Word],
        glued: _GluedPairs,
        reads_acronyms: bool,
    ):
        self.postings = postings
        self.wanted = wanted
        self.acronyms = acronyms
        self.stems = stems
        self.words = words
        self.glued = glued
        self.reads_acronyms = reads_acronyms
        self.in_papers: dict[str, list[int]] = {}  # symbol -> the papers it occurs in, ascending
        # gap -> (step, _HYPHENATED or _SPACED if it may glue its words else None, may end a sentence)
        self.gaps: dict[str, tuple[int, int | None, bool]] = {" ": (1, _SPACED, False)}

    def _word(self, surface: str) -> _Word:
        folded = fold(surface)
        stem = self.stems.of(folded)
        if stem not in self.wanted:
            stem = None
        acronym = self.acronyms.in_text(surface)
        symbol = acronym_symbol(acronym) if acronym else None
        if symbol not in self.wanted:
            symbol = None
        plain = (stem,) if stem else ()
        read = plain + (symbol,) if symbol else plain
        followers = self.postings.followers
        info = self.words[surface] = (
            folded,
            stem,
            symbol,
            read,
            plain,
            tuple((before, followers[before]) for before in read if before in followers),
            tuple((before, followers[before]) for before in plain if before in followers),
        )
        return info

    def _glued(self, first: str, second: str, written: int) -> str:
        """The glued stem of a neighbour pair if some query wants it, else "".

        ``written`` is how the gap between them is written: only a hyphenated pair may
        glue a function word ("on-line"; "on line" is two words).
        """
        glue = self.stems.glued if written == _HYPHENATED else self.stems.glued_apart
        stem = glue(first, second)
        return stem if stem is not None and stem in self.wanted else ""

    def read(self, paper: int, text: str) -> int:
        """Index one paper's field text; returns its number of tokens.

        Positions of titles and abstracts follow :func:`paperwire.match.text.tokenize`
        exactly (it is inlined here, reading the text as gap, token, gap, token... from one
        regex split: this loop runs for every word of every paper). Author fields differ on
        purpose: the ", " between two authors is a sentence break here (``_NAME_BREAK``), so
        ``author:`` words are near only within one name; ``tokenize`` reads queries, which
        have no such field text.
        """
        postings = self.postings
        by_start = postings.by_start
        bigrams = postings.bigrams
        words, glued_pairs, gaps, reads_acronyms = self.words, self.glued, self.gaps, self.reads_acronyms
        records_gaps = GAP in self.wanted
        where = paper * postings.stride - 1  # the global position of the previous token
        seen: set[str] = set()  # symbols of one written word
        seen_glued: set[str] = set()  # symbols of glued pairs
        pieces = _SPLIT_TOKENS.split(text)
        end = len(pieces[0])  # the character where the previous token ended
        previous_where = previous_start = 0
        previous_folded = ""
        previous_follows: tuple[tuple[str, AbstractSet[str]], ...] = ()
        for number in range(1, len(pieces), 2):
            surface = pieces[number]
            start = end if number == 1 else end + len(pieces[number - 1])
            end = start + len(surface)
            info = words.get(surface)
            if info is None:
                info = self._word(surface)
            folded, stem, acronym = info[0], info[1], info[2]
            symbols, follows = (info[3], info[5]) if reads_acronyms else (info[4], info[6])
            if number == 1:
                where += 1
                joins = None
            else:
                gap = pieces[number - 1]
                step = _DOT_IN_NAME if dot_joins(gap, surface) else gaps.get(gap)
                if step is None:
                    adjacent, joinable, hyphenated = read_gap(gap)
                    step = gaps[gap] = (
                        1 if adjacent else 2,
                        (_HYPHENATED if hyphenated else _SPACED) if joinable else None,
                        _SENTENCE_GAP.search(gap) is not None,
                    )
                if step[2] and (step is _NAME_BREAK or previous_folded not in ABBREVIATIONS):  # a sentence ends
                    where = next_sentence(where)
                else:
                    where += step[0]
                    if step[0] == 2 and records_gaps:  # punctuation inside the sentence (patterns.GAP)
                        occurrences = by_start.get(GAP)
                        if occurrences is None:
                            occurrences = by_start[GAP] = {}
                        occurrences[where - 1] = (where - 1, start - len(gap), start)
                        seen.add(GAP)
                joins = step[1]
                if previous_follows and step[0] == 1:  # neighbours: record the pairs asked for
                    for before, followers in previous_follows:
                        for after in symbols:
                            if after in followers:
                                row = bigrams.get(before)
                                if row is None:
                                    row = bigrams[before] = {}
                                starts = row.get(after)
                                if starts is None:
                                    row[after] = [previous_where]
                                else:
                                    starts.append(previous_where)
            if stem is not None:
                occurrences = by_start.get(stem)
                if occurrences is None:
                    occurrences = by_start[stem] = {}
                occurrences[where] = (where, start, end)
                seen.add(stem)
            if acronym is not None and reads_acronyms:
                occurrences = by_start.get(acronym)
                if occurrences is None:
                    occurrences = by_start[acronym] = {}
                occurrences[where] = (where, start, end)
                seen.add(acronym)
            if joins is not None:
                pairs = glued_pairs[joins]
                row = pairs.get(previous_folded)
                if row is None:
                    row = pairs[previous_folded] = {}
                glued = row.get(folded)
                if glued is None:
                    glued = row[folded] = self._glued(previous_folded, folded, joins)
                if glued:
                    occurrences = by_start.get(glued)
                    if occurrences is None:
                        occurrences = by_start[glued] = {}
                    occurrences[previous_where] = (where, previous_start, end)
                    seen_glued.add(glued)
            previous_folded, previous_where, previous_start, previous_follows = folded, where, start, follows
        solid, wide = postings.solid, postings.wide
        count = len(pieces) // 2
        solid.update(seen)
        wide.update(seen_glued)
        in_papers = self.in_papers
        for symbol in seen | seen_glued if seen_glued else seen:
            found = in_papers.get(symbol)
            if found is None:
                in_papers[symbol] = [paper]
            else:
                found.append(paper)
        return count

    def finish(self) -> None:
        """Turn the lists of papers each symbol occurs in into the postings' bitsets."""
        self.postings.papers = {symbol: bits_of(papers) for symbol, papers in self.in_papers.items()}
