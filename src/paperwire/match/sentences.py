"""Sentences, nearness and boilerplate: what a run of bare words may be found in.

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

Boilerplate sentences -- where to get the code or data, links -- are not what a paper
is about, so they are not matched text (:func:`mask_boilerplate`). A sentence is
boilerplate when

* it holds a link (``http://``, ``https://``, ``www.``, or a ``github.com/``-style
  host and path) and has at most :data:`LINK_SENTENCE_WORDS` words, or any length
  and an availability word (available, release, open-source, project page, ...); or
* it has at most :data:`STATEMENT_WORDS` words and starts with what is made available -- "Code", "Our code and data", "The source
  code", "Models and datasets", "Project page", "Demo" ... -- and says it is available,
  released, open-sourced, public or at some place; or
* it has at most :data:`STATEMENT_WORDS` words and says "we (will) release / open-source / make available our code/data/models".
"""

from __future__ import annotations

import re

NEAR_SLACK = 4  # other word positions allowed between the words of a run, in one sentence
SENTENCE_STEP = 64  # at least this many word positions between sentences: more than any run's window
SENTENCE_SHIFT = 10  # a sentence starts at a multiple of 2**SENTENCE_SHIFT, so position >> SHIFT names it
LINK_SENTENCE_WORDS = 25
STATEMENT_WORDS = 14  # a longer sentence without a link says more than where things are

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


# --- boilerplate ------------------------------------------------------------------------

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


# Every boilerplate sentence has one of these (lower-cased); most abstracts have none, and
# are not split into sentences at all. Plain substring tests: this runs on every abstract.
_CUES = ("://", "www.", "availab", "releas", "open", "public", "hosted", "found", "accessib", "provided", "shared",
         "github", "hugging", ":", ".com/", ".org/", ".io/")
_LINK = re.compile(r"https?://|www\.|\.(?:com|org|io|net|ai|dev)/\S", re.IGNORECASE)
_AVAILABLE = re.compile(
    r"\b(?:available|availability|releas\w*|open[- ]?sourc\w*|publicly|public|hosted|can be found|"
    r"accessible|project page|project website|homepage|github|hugging ?face)\b",
    re.IGNORECASE,
)
_ARTIFACT = r"(?:source code|code(?:s|base)?|data(?:sets?)?|models?|weights|checkpoints?|implementations?|demos?|" \
    r"project (?:page|website)|website|benchmarks?|resources|materials|scripts|artifacts|videos?|pretrained models?)"
_AND = r"(?:\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*)"
_ARTIFACT_FIRST = re.compile(
    rf"^(?:(?:all|our|the|full|both)\s+)*{_ARTIFACT}(?:{_AND}(?:(?:all|our|the)\s+)*{_ARTIFACT})*"
    r"(?:\s+(?:for|of|to)\s+[^.:]{0,60}?)?"
    r"(?:\s*:|\s+(?:is|are|will|can|has|have|would|should|may|shall)\b.*\b(?:available|releas\w*|open[- ]?sourc\w*|"
    r"public\w*|found|hosted|accessible|provided|shared)\b)",
    re.IGNORECASE | re.DOTALL,
)
_WE_RELEASE = re.compile(
    rf"^we\s+(?:will\s+|also\s+|further\s+|publicly\s+|plan to\s+)*(?:release|open[- ]?source|make|publish|share)\w*"
    rf"\s+(?:publicly\s+available\s+)?(?:all\s+|our\s+|the\s+)*{_ARTIFACT}\b"
    rf"(?:{_AND}(?:all\s+|our\s+|the\s+)*{_ARTIFACT}\b)*[^.]{{0,40}}[.!]?$",
    re.IGNORECASE | re.DOTALL,
)


def boilerplate_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of the boilerplate sentences of ``text`` (see the module's rule)."""
    lowered = text.lower()
    if not any(cue in lowered for cue in _CUES):
        return []
    spans = []
    for start, end in sentence_spans(text):
        if _is_boilerplate(text[start:end]):
            spans.append((start, end))
    return spans


def _is_boilerplate(sentence: str) -> bool:
    if ("/" in sentence or "www." in sentence) and _LINK.search(sentence):
        return len(sentence.split()) <= LINK_SENTENCE_WORDS or _AVAILABLE.search(sentence) is not None
    if len(sentence.split()) > STATEMENT_WORDS:
        return False
    return _ARTIFACT_FIRST.match(sentence) is not None or _WE_RELEASE.match(sentence) is not None


def mask_boilerplate(text: str) -> str:
    """``text`` with each boilerplate sentence blanked to spaces: the same length, so every
    character offset still points into the original text, and the words around it stay
    sentences apart (the sentence before it ended with its full stop)."""
    spans = boilerplate_spans(text)
    if not spans:
        return text
    pieces = []
    at = 0
    for start, end in spans:
        pieces.append(text[at:start])
        pieces.append(" " * (end - start))
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
