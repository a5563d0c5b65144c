"""How a paper is shown in emails, the archive and web pages: its title, authors line,
links by label, and the excerpt of its abstract with the matched terms highlighted.

Pure and light (no templates, no MJML), so web pages use it without loading the renderer.
What depends only on a paper, or on a paper and its hits, is cached by all it reads, so
readers who get the same paper share the work and a changed paper is never served stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup, escape

from . import urls
from .config import Settings
from .match.text import AUTHOR_SEPARATOR  # the author field's text, as hits' spans index into it
from .models import LINK_LABELS, DigestItem, Hit, Link
from .normalize import SHOWN_TITLE_CHARS, clean_line, has_unsafe, safe_url, shorten, strip_unsafe

ABSTRACT_CHARS = 600  # cut here, at a word boundary ...
ABSTRACT_SLACK = 80  # ... unless only this much more would show the whole abstract
SNIPPET_LEAD = 160  # at most this much of the abstract shown before a first match beyond the cut
TITLE_CHARS = SHOWN_TITLE_CHARS
MAX_AUTHORS = 4  # more than this shows the first three and "et al."
VIEWS_KEPT = 8192  # distinct (paper, hits) views kept (paper_view): a run has a few hundred papers ...
PAPERS_KEPT = 4096  # ... and their parts that hits do not change (paper_parts), for readers whose hits are their own
# Kinds a link's address says for sure (arxiv.org, github.com, huggingface.co, ...: normalize's
# classify_url); "project" is its guess for any other host (a blog post is one too).
KINDS_FROM_ADDRESS = ("abs", "pdf", "code", "model", "dataset")
# Kinds of link shown beside the title's own link, in this order ("other" is not shown).
SHOWN_LINK_KINDS = tuple(kind for kind in LINK_LABELS if kind != "other")
_SENTENCE_END = re.compile(r"[.!?][)\"'”’]?\s+")  # where an excerpt may start: after a sentence's end

class LinkView(NamedTuple):
    label: str
    url: str


class PaperView(NamedTuple):
    """One paper as both paper templates show it, cleaned, escaped where it is markup.

    Views are named tuples, like ``Link`` and ``Hit``: frozen, and made, hashed and compared
    in C for every paper of every reader (``include_shared`` keeps blocks by them)."""

    title: str
    url: str  # where the title links to ...
    url_label: str  # ... and what that is: "arXiv", "Model", "Project page", "Paper" (our page)
    authors: str
    abstract: str  # plain, cut (around the first matched terms when they lie beyond the cut)
    abstract_html: Markup  # the same excerpt, escaped, matched terms in <strong>
    links: tuple[LinkView, ...]
    matched: str  # the matched words as the paper writes them, comma-separated (matched_words)
    reason: str  # why it matched beyond its words (digest.reason), cleaned; "" for words alone
    anchor: str  # the paper's HTML id (urls.paper_anchor)


def cut_point(text: str, limit: int = ABSTRACT_CHARS, slack: int = ABSTRACT_SLACK) -> int:
    """Where to cut an abstract: the end, or the last word boundary at or before ``limit``."""
    if len(text) <= limit + slack:
        return len(text)
    cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
    if cut < limit // 2:  # one enormous "word": cut hard
        cut = limit
    while cut > 0 and text[cut - 1] in " \n,;:-(":
        cut -= 1
    return cut


def merged_spans(hits: Iterable[Hit], field: str, end: int) -> list[tuple[int, int]]:
    """The hit spans in ``field``, clipped to [0, end), sorted and merged where they overlap."""
    spans = sorted([
        (max(0, start), min(stop, end))
        for hit in hits if hit.field == field
        for start, stop in hit.spans
        if start < end and stop > start and start >= 0
    ])
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def highlighted(text: str, spans: list[tuple[int, int]], clean: Callable[[str], str] = strip_unsafe) -> Markup:
    """``text`` escaped piece by piece, with each span wrapped in <strong>.

    Offsets refer to the raw text, so pieces are cut first and cleaned (``clean``: ``str``
    for a text known to be clean) and escaped after; nothing from the input ever reaches the
    output unescaped.
    """
    parts: list[str] = []
    position = 0
    for start, stop in spans:
        parts.append(escape(clean(text[position:start])))
        parts.append(f"<strong>{escape(clean(text[start:stop]))}</strong>")
        position = stop
    parts.append(escape(clean(text[position:])))
    return Markup("".join(parts))


def authors_line(authors: list[str]) -> str:
    names = [clean_line(name) for name in authors if name.strip()]
    if len(names) > MAX_AUTHORS:
        return ", ".join(names[:3]) + " et al."
    return ", ".join(names)


def paper_links(links: Iterable[Link], paper_id: str, base_url: str) -> tuple[LinkView, tuple[LinkView, ...]]:
    """The title's target (arXiv abstract, else the first link, else our paper page), labelled
    with what it surely is ("arXiv", "Model", "Code"; "Link" when only guessed, "Paper" for our
    page), and the other links worth a label, one per kind, http(s) only, and none with
    spaces, line breaks or other controls in it (a broken link, or an attempt to add lines)."""
    web = [link._replace(url=url) for link in links if (url := safe_url(link.url))]
    first = next((link for link in web if link.kind == "abs"), None) or (web[0] if web else None)
    main = (LinkView(LINK_LABELS[first.kind if first.kind in KINDS_FROM_ADDRESS else "other"], first.url) if first
            else LinkView("Paper", urls.paper(base_url, paper_id)))
    shown: list[LinkView] = []
    seen = {main.url}
    for kind in SHOWN_LINK_KINDS:
        link = next((link for link in web if link.kind == kind and link.url not in seen), None)
        if link is not None:
            shown.append(LinkView(LINK_LABELS[kind], link.url))
            seen.add(link.url)
    return main, tuple(shown)


def also_in(topics: tuple[str, ...], section_topic: str) -> str:
    """The "also in" rule: the reader's other topics this paper matched (``topics``, best
    first), as shown under the section of ``section_topic``. Per reader, so the frame shows
    it beside the paper's shared block, never inside it."""
    return ", ".join([clean_line(topic) for topic in topics if topic != section_topic])  # a list joins faster


def excerpt(abstract: str, hits: tuple[Hit, ...], clean: Callable[[str], str] = strip_unsafe) -> tuple[str, Markup]:
    """The abstract as shown: plain, and escaped with matched terms in <strong>.

    Its start, cut at a word (``cut_point``), unless the first matched term lies beyond that
    cut: then the stretch from the sentence (or, failing that, the word) shortly before the
    term, so every matched paper shows why it matched. Ellipses mark what was left out.
    ``clean``: ``str`` for an abstract known to hold no unsafe character (``PaperParts``).
    """
    spans = merged_spans(hits, "abstract", len(abstract))
    start = snippet_start(abstract, spans)
    shown = abstract[start:]
    cut = cut_point(shown)
    end = start + cut
    before, after = ("…" if start else ""), ("…" if cut < len(shown) else "")
    # The spans within the excerpt (merging and clipping to its end commute).
    spans = [(begin - start, min(stop, end) - start) for begin, stop in spans if start <= begin < end]
    # before and after are our own ellipses: markup as they are (joined as a str, not by Markup's +, which escapes)
    return (before + clean(shown[:cut]) + after,
            Markup(f"{before}{highlighted(shown[:cut], spans, clean)}{after}"))


def written_word(hit: Hit, text: str) -> str:
    """The paper's own form at the hit's first place ("Evaluation" for a topic's "evaluating",
    "retrieval-augmented generation" for its "RAG", "LoRA" for its "lora"): what the reader
    will find in the paper. The topic's term where the paper only capitalises its words'
    first letters ("scaling laws" in a title's "Scaling Laws", "mixture of experts" in
    "Mixture of Experts"). ``text``: the hit's field, which its spans index into. "" for a hit
    that is not a word."""
    term = clean_line(hit.term)
    if not term:
        return ""
    start, end = hit.spans[0] if hit.spans else (0, 0)
    written = clean_line(text[start:end]) if 0 <= start < end <= len(text) else ""
    if not written or term.islower() and written.casefold() == term.casefold() and all(
            not word[1:] or word[1:].islower() for word in _WORDS.findall(written)):
        return term
    return written


_WORDS = re.compile(r"[^\W_]+")


def listed_hits(hits: Iterable[Hit]) -> list[Hit]:
    """The hits worth naming under "matched:" (emails, ``paperwire match``): not a word found
    only inside a longer matched term ("machine" of "machine translation"). Highlights keep
    every hit's spans; this is only what is said."""
    hits = list(hits)

    def inside_longer(hit: Hit) -> bool:
        longer = [span for other in hits if other.field == hit.field and len(other.term) > len(hit.term)
                  for span in other.spans]
        return bool(longer and hit.spans) and all(any(start <= begin and end <= stop for start, stop in longer)
                                                  for begin, end in hit.spans)

    return [hit for hit in hits if not inside_longer(hit)]


def matched_words(hits: tuple[Hit, ...], texts: Mapping[str, str]) -> str:
    """The matched words, each once, comma-separated, as ``written_word`` gives them. Emails
    do not highlight titles, so the words a reader looks for must be there as shown.
    ``texts``: each field's text, which the hits' spans index into."""
    shown: dict[str, str] = {}
    for hit in listed_hits(hits):
        word = written_word(hit, texts.get(hit.field, ""))
        if word:  # not the sentence closest to a topic found by meaning (explain.py): no word
            shown.setdefault(word.casefold(), word)
    return ", ".join(shown.values())


def snippet_start(abstract: str, spans: list[tuple[int, int]], shown_to: int | None = None) -> int:
    """Where the shown abstract starts: 0, or shortly before the first matched term when that
    term would not end before the cut (at the start of its sentence when that is near).

    ``shown_to``: where the abstract would be cut when shown from its start (by default the
    email's ``cut_point``; feeds show far more)."""
    if not spans or spans[0][1] <= (cut_point(abstract) if shown_to is None else shown_to):
        return 0
    first = spans[0][0]
    earliest = max(0, first - SNIPPET_LEAD)
    sentence_ends = list(_SENTENCE_END.finditer(abstract, earliest, first))
    if sentence_ends:
        return sentence_ends[-1].end()
    word = abstract.find(" ", earliest, first)
    return word + 1 if word >= 0 else first


class PaperParts(NamedTuple):
    """What a paper shows whatever its hits: the same for every reader who gets it."""

    title: str
    main: LinkView  # the title's link
    links: tuple[LinkView, ...]
    authors: str
    anchor: str
    abstract_is_clean: bool  # holds no unsafe character, so its pieces need no cleaning (``excerpt``)


@lru_cache(maxsize=PAPERS_KEPT)  # keyed by all it reads: a changed paper is a new key
def paper_parts(paper_id: str, title: str, authors: tuple[str, ...], links: tuple[Link, ...], abstract: str,
                base_url: str) -> PaperParts:
    """The parts of a paper's view its hits do not change (``paper_view`` adds theirs)."""
    main, shown = paper_links(links, paper_id, base_url)
    return PaperParts(shorten(clean_line(title), TITLE_CHARS) or clean_line(paper_id), main, shown,
                      authors_line(list(authors)), urls.paper_anchor(paper_id),
                      not has_unsafe(abstract))


@lru_cache(maxsize=VIEWS_KEPT)  # keyed by all it reads: a changed paper or other hits is a new key
def paper_view(paper_id: str, title: str, authors: tuple[str, ...], links: tuple[Link, ...], abstract: str,
               hits: tuple[Hit, ...], base_url: str, reason: str = "") -> PaperView:
    """A paper as the paper templates show it: the same for every reader who gets it with these hits."""
    parts = paper_parts(paper_id, title, authors, links, abstract, base_url)
    matched = matched_words(hits, {"title": title, "abstract": abstract, "author": AUTHOR_SEPARATOR.join(authors)})
    abstract, abstract_html = excerpt(abstract, hits, str if parts.abstract_is_clean else strip_unsafe)
    return PaperView(parts.title, parts.main.url, parts.main.label, parts.authors, abstract, abstract_html,
                     parts.links, matched, clean_line(reason), parts.anchor)


def item_view(item: DigestItem, settings: Settings) -> PaperView:
    """A paper as the paper templates show it: from the paper and its hits only, so every
    reader who gets the paper with the same hits gets the same view (and shares its block).
    The reader's other topics it matched are the reader's own: see ``also_in``."""
    paper = item.paper
    return paper_view(paper.id, paper.title, tuple(paper.authors), tuple(paper.links), paper.abstract,
                      item.hits, settings.base_url, item.reason)
