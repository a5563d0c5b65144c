"""Matching topic queries against papers: the rules people expect, at newsletter scale.

Pure: papers and queries in, ranked matches with explanations out. No database,
files or settings; the acronym table's extra entries come in as an argument.

How text is compared (both in queries and in papers):

* case-insensitively, accents dropped, whole words only (``RAG`` is not in
  "leverage"; ``scale`` is not "ScaLearn" nor "ScaleDepth");
* after Snowball English stemming, so ``scaling laws`` finds "scaling law" and
  ``quantization`` finds "quantized" (Snowball unifies these itself; no extra
  derivational folding was needed -- see :class:`~paperwire.match.text.Stems`);
* hyphen, space and joined forms are one: ``multi-modal``, ``multi modal``,
  ``multimodal`` (two neighbouring words glued, in a longer run too: ``multi modal models``
  finds "multimodal large language models"; three-way splits are not tried), but
  only where the glued stem keeps the first word whole: "model is" is never ``mode``;
  and in a paper two words a space apart only when neither is a function word ("may
  be" is not ``maybe``; hyphenated, "on-line" is ``online``);
* acronyms and expansions are one (``RAG`` and "retrieval-augmented generation",
  ``LLMs`` and "large language models"); see :mod:`paperwire.match.acronyms` for
  the table and the case rules;
* a phrase never runs across punctuation other than hyphens and slashes, or a ``.`` or
  ``@`` inside a name ("v.2", "pass@1"); a decimal number ("1.5B") is one word.

Unprefixed terms search the title and the abstract; ``author:`` searches the author
names, read as ``", ".join(paper.authors)``. Adjacent bare words (``scaling laws``)
match when they occur near each other -- in one sentence of one field, within the
run's length plus :data:`~paperwire.match.sentences.NEAR_SLACK` word positions --
*or* as a phrase in any of the forms above; the phrase also raises the score. A run's
connectives (``for`` of ``scaling laws for LLMs``: :data:`~paperwire.match.text.CONNECTIVES`)
need not be near the other words; a word it repeats (``end to end``) needs an occurrence
for each time.
Boilerplate sentences of an abstract (where the code or data are, links) are not
matched text (:mod:`paperwire.match.sentences`). ``like:`` references match nothing
here: papers are compared by meaning elsewhere.

Scoring is BM25F (a title mention weighs four abstract mentions, see
:mod:`paperwire.match.score`); ties keep the listing's trending order. Each match
says which positive terms were found, in which field, at which character spans of
the original text (``field_text(paper, hit.field)[start:end]``).

Modules, in the order the data flows: :mod:`paperwire.query` (syntax),
``text`` (tokens), ``sentences`` (nearness, boilerplate), ``acronyms`` (table), ``patterns`` (what a term may look like),
``plan`` (queries to boolean trees over shared terms), ``index`` (where symbols
occur in today's papers), ``score`` (BM25F), ``evaluate`` (terms and trees against
the index), ``results`` (what callers get), ``matcher`` (the public entry points).
"""

from paperwire.match.acronyms import ACRONYMS, AcronymTable
from paperwire.match.matcher import Matcher, compile_queries, match_one
from paperwire.match.results import Match, Ranking, TermHit
from paperwire.match.text import field_text
from paperwire.query import Query, is_everything, parse_query, positive_terms, render_query

__all__ = [
    "ACRONYMS",
    "AcronymTable",
    "Match",
    "Matcher",
    "Query",
    "Ranking",
    "TermHit",
    "compile_queries",
    "field_text",
    "is_everything",
    "match_one",
    "parse_query",
    "positive_terms",
    "render_query",
]
