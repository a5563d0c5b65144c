"""A reader's liked papers as the web app reads and changes them: listed with their titles
(manage page, API), added and removed through the store's one-transaction rewrite of the
Liked topic (liked.py says what the list is).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import liked, urls
from ..models import Subscriber
from ..normalize import parse_arxiv_id, shown_title
from .context import WebContext


@dataclass(frozen=True)
class LikedPaper:
    id: str
    title: str | None  # None once the paper is no longer stored
    url: str  # its paper page


def liked_papers(web: WebContext, reader: Subscriber) -> list[LikedPaper]:
    """The reader's liked papers, newest first, with their titles."""
    ids = liked.liked_ids(reader)
    titles = web.store.paper_titles(list(ids)) if ids else {}
    return [LikedPaper(i, shown_title(titles[i]) if i in titles else None, urls.paper(web.settings.base_url, i))
            for i in ids]


def stored_id(web: WebContext, given: str) -> str | None:
    """The stored id of a paper named by its id, its arXiv id (a version or URL too) or the
    ``t-`` id it had before it was re-keyed; None when no such paper is stored."""
    candidates = [given]
    if (arxiv := parse_arxiv_id(given)) is not None:
        candidates.append(arxiv[0])
    if given.startswith("t-") and (moved := web.store.moved_paper_id(given)):
        candidates.append(moved)
    found = web.store.paper_titles([c for c in candidates if liked.valid_id(c)])
    return next((c for c in candidates if c in found), None)


def add(web: WebContext, reader: Subscriber, paper_id: str) -> bool:
    """Like a stored paper; False when it was liked already. A ValidationError when the
    reader's own topic named "Liked" is something else."""
    web.store.rewrite_own_topic(reader.id, liked.NAME, liked.SLUG,
                                liked.rewrite(lambda ids: liked.with_like(ids, paper_id)))
    return paper_id not in liked.liked_ids(reader)


def remove(web: WebContext, reader: Subscriber, paper_id: str) -> bool:
    """Forget a liked paper; False when it was not liked."""
    if paper_id not in liked.liked_ids(reader):
        return False
    web.store.rewrite_own_topic(reader.id, liked.NAME, liked.SLUG,
                                liked.rewrite(lambda ids: liked.without_like(ids, paper_id)))
    return True
