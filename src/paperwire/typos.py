"""Words of a topic that no paper has: what to tell whoever typed a topic whose words found nothing.

A word no paper has is a typo ("retreival") or a word the papers do not use ("chemistry").
``paperwire match`` looks in the stored papers, the web preview in the latest listing (what
it matched). A word is read as the matcher reads it: its tokens (``Llama-2`` is "llama" and
"2"; ``RAG:`` is "RAG"), folded and stemmed, so a word the papers write another way
(``optimisation``, "optimization") is not flagged. When the papers have a spelling close to
it, the note names it: a reader sees "did you mean 'retrieval'?", not only "a typo?".
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .match.acronyms import AcronymTable, acronym_table
from .match.matcher import ExtraAcronyms
from .match.text import CONNECTIVES, FUNCTION_WORDS, REQUEST_WORDS, TOKEN_PATTERN, Stems, fold
from .models import Paper
from .query import Query, Term, parse_query, positive_term_nodes, side_items

# How close a spelling must be to be suggested (difflib's ratio): "retreival" and "retrieval"
# are 0.89, "pruing" and "pruning" 0.92; "indices" and "indicate" (another word) are 0.8.
SUGGESTION_CUTOFF = 0.85
# Words a close spelling is looked for, at most: each look is a pass over the vocabulary, and the
# public preview takes anyone's topic (110 made-up words took 4.8 s over 25,000 spellings).
SUGGESTED_WORDS = 3
_NUMBER = re.compile(r"[\d.,]+")
_HYPHENATED = re.compile(r"[^\W_]+(?:-[^\W_]+)+")


@dataclass(frozen=True)
class Vocabulary:
    """The words some papers have: their folded spellings, and the stems the matcher reads them as."""

    spellings: frozenset[str]
    stems: frozenset[str]


def vocabulary(texts: Iterable[str], stems: Stems) -> Vocabulary:
    """The words of ``texts`` (titles and abstracts), and their hyphenated words glued, as the
    matcher reads them too ("pre-training" is a ``pretraining``). Distinct tokens first, found
    in C: a store has far fewer distinct spellings than tokens."""
    written: set[str] = set()
    for text in texts:
        written.update(TOKEN_PATTERN.findall(text))
        written.update(word.replace("-", "") for word in _HYPHENATED.findall(text))
    spellings = frozenset(fold(token) for token in written)
    return Vocabulary(spellings, frozenset(stems.of(spelling) for spelling in spellings))


def vocabulary_of(papers: Iterable[Paper], stems: Stems) -> Vocabulary:
    """``vocabulary`` of the papers' titles and abstracts."""
    return vocabulary((text for paper in papers for text in (paper.title, paper.abstract or "")), stems)


def topic_notes(query: str, known: Vocabulary, stems: Stems, acronyms: ExtraAcronyms | None, where: str) -> list[str]:
    """``notes`` on the words of the topic ``query`` (parsed already fine) that ``known`` lacks,
    with the built-in acronyms and ``acronyms``: what ``match`` and the web preview say. When
    it lacks none, the note on words that are all there but apart (``apart_note``).

    A ``meaning:`` topic is not matched by its words, so a word no paper has is no reason it
    found little: only a close spelling is worth saying there (the model reads the typo as
    typed), looked for among its first ``SUGGESTED_WORDS`` such words as for any topic. A
    tester's ``meaning: running language models on phones`` listed a paper under "no stored
    paper has the word 'phones'"."""
    parsed = parse_query(query)
    unknown = unknown_words(parsed, known, acronym_table(acronyms), stems)
    if parsed.mode == "meaning":
        typos = ((word, close_spelling(word, known)) for word in unknown[:SUGGESTED_WORDS])
        return [_note(word, close, where) for word, close in typos if close]
    return notes(unknown, known, where) if unknown else apart_note(parsed, where)


def apart_note(query: Query, where: str) -> list[str]:
    """``no stored paper has the words 'faster inference' near each other ...``: a topic of bare
    words only (no OR, field, phrase or exclusion, any of which may be why instead) whose words
    are each in some paper found nothing by them, and said nothing: a tester's ``faster
    inference``. Only where every word must be near the others but connectives ("for", "of"):
    not for a topic that may ask ("does X work?", "show me X"), whose words the note would miss."""
    items = side_items(query.root)
    if query.mode == "meaning" or not all(isinstance(item, Term) and not item.phrase and item.field is None
                                          for item in items):
        return []
    written = [item.text.casefold() for item in items]  # type: ignore[union-attr]
    if any(word in REQUEST_WORDS or word in FUNCTION_WORDS and word not in CONNECTIVES for word in written):
        return []  # the run may ask, or need a small word: which words it must find is not sure
    words = [item.text for item in items if item.text.casefold() not in CONNECTIVES]  # type: ignore[union-attr]
    if len(words) < 2:
        return []
    return [f"{where} has the words {' '.join(words)!r} near each other (in one sentence, a few words apart "
            "at most), as a topic's words must be; each of them is in some paper"]


def words_found_nothing(ranking: Iterable) -> bool:
    """Whether no match of ``ranking`` was found by its words (a word-only ranking's matches
    have no ``why``: they all were)."""
    return not any("words" in getattr(match, "why", ("words",)) for match in ranking)


def unknown_words(query: Query, known: Vocabulary, acronyms: AcronymTable, stems: Stems) -> list[str]:
    """The words of ``query``'s positive terms of a title or abstract that no paper has, as the
    reader wrote them, each once; acronyms (exact on purpose), numbers (a bare arXiv id has a
    reading hint of its own), small words, words that ask for papers ("anything", "please":
    text.REQUEST_WORDS) and words of two letters or fewer are never flagged."""
    words = [token for term in positive_term_nodes(query) if term.field in (None, "title", "abstract")
             for token in TOKEN_PATTERN.findall(term.text)
             if len(token) > 2 and token.casefold() not in FUNCTION_WORDS and token.casefold() not in REQUEST_WORDS
             and not acronyms.in_query(token)
             and not _NUMBER.fullmatch(token)]
    return [word for word in dict.fromkeys(words) if stems.of(fold(word)) not in known.stems]


def notes(words: Sequence[str], known: Vocabulary, where: str) -> list[str]:
    """One note a word: ``no stored paper has the word 'retreival'; did you mean 'retrieval'?``
    (``where``: "no stored paper", "no paper of the latest listing"). A close spelling is
    looked for the first ``SUGGESTED_WORDS`` words only, among spellings that start with the
    same letter and are at most two letters longer or shorter (a typo's usual reach)."""
    return [_note(word, close_spelling(word, known) if number < SUGGESTED_WORDS else None, where)
            for number, word in enumerate(words)]


def _note(word: str, close: str | None, where: str) -> str:
    return f"{where} has the word {word!r}" + (f"; did you mean {close!r}?" if close else "")


def close_spelling(word: str, known: Vocabulary) -> str | None:
    """The papers' spelling that ``word`` is likely a typo of, or None."""
    folded = fold(word)
    close = difflib.get_close_matches(folded, [spelling for spelling in known.spellings if spelling[:1] == folded[:1]
                                               and abs(len(spelling) - len(folded)) <= 2],
                                      n=1, cutoff=SUGGESTION_CUTOFF)
    return close[0] if close and not _another_form(folded, close[0]) else None


def _another_form(word: str, close: str) -> bool:
    """Whether the papers' ``close`` is another form of the everyday word typed, not what a
    typo of it meant: a tester's "necessary" got "did you mean 'necessarily'?", and "see" got
    "seen". Such a pair differs only at the word's end, and the word is English
    (embeddings.english_words); "retreival" -> "retrieval" differs early, and "retrievl" ->
    "retrieval" and "transformr" -> "transformer" are no English words, so they keep theirs."""
    if len(os.path.commonprefix([word, close])) < len(word) - 1:
        return False
    from .embeddings import english_words  # the model's vocabulary: read only when a pair may need it

    return word in english_words()
