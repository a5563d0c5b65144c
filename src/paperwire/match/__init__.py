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
  ``multimodal`` (two neighbouring words glued; three-way splits are not tried);
* acronyms and expansions are one (``RAG`` and "retrieval-augmented generation",
  ``LLMs`` and "large language models"); see :mod:`paperwire.match.acronyms` for
  the table and the case rules;
* a phrase never runs across punctuation other than hyphens and slashes.

Unprefixed terms search the title and the abstract; ``author:`` searches the author
names, read as ``", ".join(paper.authors)``.
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
