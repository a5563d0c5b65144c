"""Text clean-up and paper identity, shared by every source.

Sources hand raw strings here so that the same paper reads the same whatever format
it came in: whitespace collapsed, XML-invalid characters gone (feeds must be valid),
LaTeX residue of copy-pasted abstracts undone, links pulled out and classified, and
one id per paper.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

from .models import Link, Paper

# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF);
# C1 controls are legal but never meant in a title, so they go too.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
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

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"}]>"

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(v\d+)?(?![\d])")
_ARXIV_OLD = re.compile(r"\b([a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(v\d+)?\b")


def strip_invalid_chars(text: str) -> str:
    return _XML_INVALID.sub("", text)


def clean_text(text: str | None) -> str:
    """One line of readable text: no control characters, no LaTeX residue, single spaces."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())  # str.split is several times faster than a regex here
    if not text.isprintable():  # cheap test; only then look for the invalid characters
        text = strip_invalid_chars(text)
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
        url = _trim_url(match.group(0))
        if len(url) <= len("https://") or "." not in urlsplit(url).netloc or url in seen:
            continue
        seen.add(url)
        links.append(Link(url=url, kind=classify_url(url)))
    return links


def parse_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """``(id, version)`` from an id, URL or ``oai:arXiv.org:...`` string, else None."""
    if not text:
        return None
    match = _ARXIV_NEW.search(text) or _ARXIV_OLD.search(text)
    if not match:
        return None
    version = int(match.group(2)[1:]) if match.group(2) else None
    return match.group(1), version


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
