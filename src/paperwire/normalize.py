"""Text clean-up and paper identity, shared by every source and every output.

Sources hand raw strings here so that the same paper reads the same whatever format
it came in: whitespace collapsed, unsafe characters gone, LaTeX residue of copy-pasted
abstracts undone, links pulled out, checked and classified, fields cut to generous
limits, and one id per paper.

The cleaning rule is one rule for every output: ``strip_unsafe`` (and ``clean_line``
over it) for text and ``safe_url`` for links. Ingest applies it, so stored data is
already clean; emails, feeds and web pages apply it again to whatever they show, so
data stored before a rule changed is shown clean too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

from .models import LINK_KINDS, Link, Paper

# What no text paperwire stores or shows may carry: characters XML 1.0 forbids (C0
# controls but tab/newline/CR, lone surrogates, U+FFFE/U+FFFF), C1 controls (legal, never
# meant), and the explicit bidi embeddings, overrides and isolates (U+202A-U+202E,
# U+2066-U+2069): a stray U+202E flips the rest of a line in the reader's client.
# Lone surrogates only come from JSON escapes; SQLite and UTF-8 cannot store them.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
# What never belongs inside a link: any whitespace (a space lets `https://x/a Bcc: ...`
# smuggle words in), line separators, everything unsafe in text, and what RFC 3986 leaves
# out of URIs (`"` `<` `>` `\` `^` `` ` `` `{` `|` `}`): a plain-text part shows links as they
# are, and mail clients end a link at a quote (`https://x/a"onmouseover=...`).
_NOT_IN_URL = re.compile("[\\s\x00-\x20\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
                         '"<>\\\\^`{|}]')

# Generous limits on what one paper may carry (a real arXiv abstract is at most 1,920
# characters; the longest author lists have a few thousand names). A field over its
# limit is cut (text at a word, with an ellipsis) rather than refused.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
MAX_AUTHORS = 1_000
MAX_AUTHOR_CHARS = 200
MAX_LINKS = 50
MAX_URL_CHARS = 2_000
MAX_KEYWORDS = 100  # keywords and categories
MAX_KEYWORD_CHARS = 100
SHOWN_TITLE_CHARS = 300  # of a title, emails, feeds and web pages show at most this much
SHOWN_ABSTRACT_CHARS = 4_000  # of an abstract, feeds and web pages show at most this much
SHOWN_AUTHORS = 50  # names shown before "et al."
_NON_ALNUM = re.compile(r"[\W_]+")

# `\textcolor{teal}{Tool-use}` pasted as text leaves `teal{Tool-use}`; `\textit{O}` leaves
# `textit{O}`. Only these known macro and colour names are unwrapped, so ordinary braces stay.
_LATEX_WRAPPERS = (
    "textit|textbf|textsc|texttt|textrm|textsf|emph|underline|text|mathrm|mathbf|mathit|mathcal|mathsf|"
    "mathbb|boldsymbol|operatorname|textcolor|colorbox|"
    "teal|orange|red|blue|green|purple|violet|magenta|cyan|gray|grey|brown|olive|black|pink|lime|yellow"
)
_LATEX_WRAPPED = re.compile(r"\\?\b(?:" + _LATEX_WRAPPERS + r")\{([^{}]*)\}")
# `\sim 4.4` pasted as text leaves `sim4.4`, `\times` leaves `times10`.
_LATEX_SIM = re.compile(r"\\?\bsim(?=\s?\d)")
_LATEX_APPROX = re.compile(r"\\approx(?=\s?\d)")

_URL = re.compile(r"https?://[^\s<>\"'`|{}^]+", re.IGNORECASE)  # ends where a URI cannot go on (`code`, | tables |)
_URL_TRAILING = ".,;:!?'\"}]>"

# ASCII digits only: `\d` would take Arabic-Indic digits for an arXiv id.
_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(v\d+)?(?![\d])", re.ASCII)
_ARXIV_OLD = re.compile(r"\b([a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(v\d+)?\b", re.ASCII)
# The forms of the ids paperwire gives papers (``paper_id``), as written on their own: an arXiv
# id, new or old style, with an optional version; otherwise "t-" and the title hash.
ARXIV_REF = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?", re.ASCII)
PAPER_REF = re.compile(rf"{ARXIV_REF.pattern}|t-[0-9a-f]{{16}}", re.ASCII)


def strip_unsafe(text: str) -> str:
    """``text`` without unsafe characters (see ``_UNSAFE``); whitespace and line breaks kept,
    so offsets into an abstract still mean something piece by piece."""
    return _UNSAFE.sub("", text) if has_unsafe(text) else text


def has_unsafe(text: str) -> bool:
    """Whether ``strip_unsafe`` would take anything out of ``text``: if not, out of no piece
    of it either (it takes out single characters), so a clean text's pieces need no cleaning."""
    return _UNSAFE.search(text) is not None


def clean_line(text: str | None) -> str:
    """One line of text fit for any output: unsafe characters gone, whitespace runs one space."""
    return " ".join(strip_unsafe(text).split()) if text else ""


def not_utf8(exc: UnicodeDecodeError) -> tuple[int, str]:
    """Where a file that should be UTF-8 is not, and why, for an error naming its line:
    ``(2, "not UTF-8 text (byte 0xeb at offset 74)")``. ``exc`` must come from decoding the
    whole file (``bytes.decode``, ``read_text``), so its offsets are the file's."""
    line = exc.object.count(b"\n", 0, exc.start) + 1
    return line, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit - 1].rstrip(" ,;:-") + "…"


def shown_title(title: str | None) -> str:
    """A title as every output shows it: one clean line of at most SHOWN_TITLE_CHARS."""
    return shorten(clean_line(title), SHOWN_TITLE_CHARS)


def shown_abstract(abstract: str | None) -> str:
    """An abstract as feeds and web pages show it whole: clean, at most SHOWN_ABSTRACT_CHARS."""
    # Cleaning only removes characters: twice the limit of raw text is always enough.
    return shorten(clean_line((abstract or "")[: 2 * SHOWN_ABSTRACT_CHARS]), SHOWN_ABSTRACT_CHARS)


def shown_authors(authors: Iterable[str | None]) -> tuple[tuple[str, ...], str]:
    """The authors every output names (clean, at most SHOWN_AUTHORS) and their byline
    (``A, B et al.`` when some were left out)."""
    names = [name for name in map(clean_line, authors) if name]
    shown = tuple(names[:SHOWN_AUTHORS])
    return shown, ", ".join(shown) + (" et al." if len(names) > SHOWN_AUTHORS else "")


def safe_url(url: str | None) -> str | None:
    """``url`` (trimmed) when it is a link fit to show anyone, else None.

    Fit: http or https with a host, at most MAX_URL_CHARS, and nothing inside it that is
    whitespace, a control, a bidi control, a lone surrogate or a character URIs leave out
    (a broken link, an attempt to add words, attributes or header lines, or a spoof). Such a
    link is dropped whole, never mended.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if len(url) > MAX_URL_CHARS or _NOT_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:  # e.g. "https://[broken"
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def clean_text(text: str | None) -> str:
    """One line of readable text: no unsafe characters, no LaTeX residue, single spaces."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())  # str.split is several times faster than a regex here
    if not text.isprintable():  # cheap test; only then look for the unsafe characters
        text = strip_unsafe(text)
    # The residue patterns are costly to search for; most abstracts have no brace at all.
    if "{" in text:
        # Unwrap innermost macros first; repeat for nesting like textbf{teal{x}}.
        for _ in range(3):
            unwrapped = _LATEX_WRAPPED.sub(r"\1", text)
            if unwrapped == text:
                break
            text = unwrapped
    if "sim" in text:
        text = _LATEX_SIM.sub("~", text)
    if "\\approx" in text:
        text = _LATEX_APPROX.sub("~", text)
    return " ".join(text.split())


def _trim_url(url: str) -> str:
    """Drop what a sentence glued onto a URL: a `{...}` wrapper, trailing dots, unbalanced `)`."""
    url = url.split("{", 1)[0]
    while url:
        last = url[-1]
        if last in _URL_TRAILING:
            url = url[:-1]
        elif last == ")" and url.count("(") < url.count(")"):
            url = url[:-1]
        else:
            break
    return url


def classify_url(url: str) -> str:
    """Say what a link points at, from its host and path: code, model, dataset, abs, pdf or project."""
    parts = urlsplit(url)
    host = parts.netloc.lower().removeprefix("www.")
    segments = [s for s in parts.path.split("/") if s]
    if host in ("arxiv.org", "export.arxiv.org"):
        if segments and segments[0] == "pdf":
            return "pdf"
        return "abs"
    if host in ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "anonymous.4open.science", "gitee.com"):
        return "code"
    if host == "huggingface.co":
        if segments and segments[0] == "datasets":
            return "dataset"
        if segments and segments[0] == "spaces":
            return "project"
        if segments and segments[0] in ("papers", "blog", "docs"):
            return "other"
        return "model" if len(segments) >= 2 else "other"
    if host in ("kaggle.com",) and segments and segments[0] == "datasets":
        return "dataset"
    return "project"


def extract_links(text: str) -> list[Link]:
    """Every URL in a piece of text, cleaned and classified, first occurrence first."""
    links: list[Link] = []
    seen: set[str] = set()
    for match in _URL.finditer(text or ""):
        url = safe_url(_trim_url(match.group(0)))
        if url is None or "." not in urlsplit(url).netloc or url in seen:
            continue
        seen.add(url)
        links.append(Link(url=url, kind=classify_url(url)))
    return links


def make_paper(*, title: str | None, abstract: str | None = "", arxiv_id: str | None = None,
               authors: Iterable[str | None] = (), links: Iterable[Link] = (), categories: Iterable[str | None] = (),
               keywords: Iterable[str | None] = (), published: dt.date | None = None) -> Paper:
    """A paper from a source's raw values: the one place every source's fields go through.

    Every text is cleaned (``clean_text``), every link checked (``safe_url``: an unfit one
    is dropped), each field cut to its limit (MAX_*), and the id made from what is kept,
    so what the store gets is already clean and bounded whatever the source held.
    """
    title = shorten(clean_text(title), MAX_TITLE_CHARS)
    # Cleaning only removes characters: twice the limit of raw text is always enough.
    abstract = shorten(clean_text((abstract or "")[: 2 * MAX_ABSTRACT_CHARS]), MAX_ABSTRACT_CHARS)
    kept: dict[str, Link] = {}
    for link in links:
        url = safe_url(link.url)
        if url is not None and url not in kept and len(kept) < MAX_LINKS:
            kept[url] = Link(url, link.kind if link.kind in LINK_KINDS else "other")
    return Paper(
        id=paper_id(arxiv_id, title), arxiv_id=arxiv_id, title=title, abstract=abstract,
        authors=_bounded(authors, MAX_AUTHORS, MAX_AUTHOR_CHARS), links=list(kept.values()),
        categories=_bounded(categories, MAX_KEYWORDS, MAX_KEYWORD_CHARS, unique=True),
        keywords=_bounded(keywords, MAX_KEYWORDS, MAX_KEYWORD_CHARS), published=published,
    )


def _bounded(values: Iterable[str | None], count: int, chars: int, *, unique: bool = False) -> list[str]:
    """At most ``count`` non-empty cleaned texts, each at most ``chars`` long."""
    found: list[str] = []
    for value in values:
        text = shorten(clean_text(value[: 2 * chars] if isinstance(value, str) else ""), chars)
        if text and not (unique and text in found):
            found.append(text)
            if len(found) == count:
                break
    return found


def parse_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """``(id, version)`` from an id, URL or ``oai:arXiv.org:...`` string, else None."""
    if not text:
        return None
    match = _ARXIV_NEW.search(text) or _ARXIV_OLD.search(text)
    if not match:
        return None
    version = int(match.group(2)[1:]) if match.group(2) else None
    return match.group(1), version


def referenced_id(ref: str) -> str:
    """The paper id a reference names (``like:2403.12345v2``): an arXiv id without its
    version, as paper ids are stored; any other id as written."""
    found = parse_arxiv_id(ref)
    return found[0] if found else ref


def title_key(title: str) -> str:
    """Titles that differ only in case, accents, punctuation or spacing get the same key."""
    folded = title.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_ALNUM.sub(" ", folded).split())


def title_hash(title: str) -> str:
    """A short, stable fingerprint of a title key: how the store finds a paper by title."""
    return hashlib.blake2b(title_key(title).encode(), digest_size=8).hexdigest()


def paper_id(arxiv_id: str | None, title: str) -> str:
    """The arXiv id when known; otherwise ``t-`` and the title hash.

    The hash keeps ids short and URL-safe; the prefix keeps them apart from arXiv ids.
    """
    return arxiv_id if arxiv_id else f"t-{title_hash(title)}"


def merge_papers(known: Paper, incoming: Paper) -> Paper:
    """The same paper seen again: the richer record fills what the stored one lacks.

    Nothing already known is overwritten (the first source's title and abstract stay),
    links are united, and an arXiv id, once learned, becomes the paper's id.
    """
    arxiv_id = known.arxiv_id or incoming.arxiv_id
    known_urls = {link.url for link in known.links}
    return Paper(
        id=paper_id(arxiv_id, known.title),
        arxiv_id=arxiv_id,
        title=known.title or incoming.title,
        abstract=known.abstract or incoming.abstract,
        authors=known.authors or incoming.authors,
        links=known.links + [link for link in incoming.links if link.url not in known_urls],
        categories=known.categories or incoming.categories,
        keywords=known.keywords or incoming.keywords,
        published=known.published or incoming.published,
        first_seen=known.first_seen,
    )
