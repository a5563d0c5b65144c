"""Sentences and nearness: what a run of bare words may be found in.

A run of bare words (``code generation``) names one idea, so its words must occur
*near* each other: in one sentence, with at most :data:`NEAR_SLACK` other word
positions between the first and the last of them (a comma or other punctuation inside
the sentence takes a position too). The index starts each sentence at a multiple of
``2**SENTENCE_SHIFT`` word positions, at least :data:`SENTENCE_STEP` after the last
word of the sentence before: "near" never runs from one sentence into the next, and
``position >> SENTENCE_SHIFT`` names a word's sentence (so the sentences two words
share are a set intersection).

A sentence ends at ``.``, ``!`` or ``?`` (closing quotes or brackets may follow) and
then white space, unless the word before the full stop is a common abbreviation
("e.g.", "i.e.", "et al.", "Fig.", "vs.").

Which sentences are boilerplate (where the code or data are, links) is
:mod:`paperwire.match.boilerplate`'s to say.
"""

from __future__ import annotations

import re

NEAR_SLACK = 4  # other word positions allowed between the words of a run, in one sentence
SENTENCE_STEP = 64  # at least this many word positions between sentences: more than any run's window
SENTENCE_SHIFT = 10  # a sentence starts at a multiple of 2**SENTENCE_SHIFT, so position >> SHIFT names it

ABBREVIATIONS = frozenset("e g i al vs fig figs eq eqs cf etc approx resp sec no ref refs tab".split())
_SENTENCE_GAP = re.compile(r"[.!?][\"')\]\u201d\u2019]*\s")


def ends_sentence(gap: str, previous_folded: str) -> bool:
    """Whether the text between two words, after ``previous_folded``, ends a sentence."""
    return _SENTENCE_GAP.search(gap) is not None and previous_folded not in ABBREVIATIONS


def next_sentence(position: int) -> int:
    """Where the sentence after the one holding ``position`` starts: the next multiple of
    ``2**SENTENCE_SHIFT`` at least :data:`SENTENCE_STEP` positions on."""
    return (((position + SENTENCE_STEP) >> SENTENCE_SHIFT) + 1) << SENTENCE_SHIFT


def window(words: int) -> int:
    """How many word positions a run of ``words`` words may span (never a sentence break)."""
    return min(words + NEAR_SLACK, SENTENCE_STEP - 1)


_SENTENCE_END = re.compile(r"[.!?][\"')\]\u201d\u2019]*(?=\s)")
_LAST_WORD = re.compile(r"[^\W_]+$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of the sentences of ``text`` (by the rule of :func:`ends_sentence`)."""
    spans = []
    start = 0
    for end in _SENTENCE_END.finditer(text):
        stop = end.start()
        before = _LAST_WORD.search(text[max(start, stop - 12) : stop])
        if before is not None and before.group().lower() in ABBREVIATIONS:
            continue
        spans.append((start, end.end()))
        start = end.end()
    spans.append((start, len(text)))
    found = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            found.append((start, end))
    return found

