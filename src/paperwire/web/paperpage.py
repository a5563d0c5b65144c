"""``/papers/<id>``: our own page for a paper, where emails, feeds and the home page link
papers that have no arXiv id or other link of their own.

Public and the same for everyone (no form, no cookie), so shared caches may keep it a
few minutes; a strong ETag over the bytes lets browsers and feed readers revalidate.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from .. import urls
from ..normalize import shown_abstract, shown_authors, shown_title
from ..paperview import paper_links
from .conditional import conditional
from .context import READ, WebContext, web_context
from .data import PaperPage, document
from .errors import PageError
from .likes import stored_id

router = APIRouter(include_in_schema=False)
CACHE = "public, max-age=300"


@router.api_route("/papers/{paper_id:path}", methods=READ)
def paper_page(paper_id: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    base = web.settings.base_url
    if paper_id.endswith("/"):  # the ``path`` converter takes the slash the app's own redirect would drop
        query = "?" + request.url.query if request.url.query else ""
        return RedirectResponse(urls.paper(base, paper_id.rstrip("/")) + query, status_code=307)
    found = web.data.paper(paper_id)
    if found is None:
        return RedirectResponse(urls.paper(base, moved_or_404(web, paper_id)), status_code=301,
                                headers={"Cache-Control": CACHE})
    html = web.html("paper.html.j2", **paper_values(found, base))
    return conditional(request, document(html.encode("utf-8"), None), "text/html; charset=utf-8", cache=CACHE)


def moved_or_404(web: WebContext, paper_id: str) -> str:
    """The id an unknown ``paper_id`` names: a title-only paper is re-keyed once its arXiv
    id is learned, and old links follow it; an arXiv id with its version (``2404.06395v1``)
    is the paper's. Any other unknown id is the 404 page."""
    moved = stored_id(web, paper_id)
    if moved and moved != paper_id:
        return moved
    raise PageError(404, "No such paper", "We know no paper at this address. The latest trending papers "
                    "are on the home page.")


def paper_values(found: PaperPage, base_url: str) -> dict:
    """What ``_paper.html.j2`` shows of a paper (the paper page, the "More like this" page)."""
    paper = found.stored.paper
    main, shown = paper_links(paper.links, paper.id, base_url)
    own = urls.paper(base_url, paper.id)  # the title's target when the paper has no link: this page itself
    links = [(link.label, link.url) for link in (main, *shown) if link.url != own]
    return {
        "title": shown_title(paper.title) or paper.id,
        "authors": shown_authors(paper.authors)[1],
        "abstract": shown_abstract(paper.abstract),
        "arxiv_id": paper.arxiv_id, "links": links,
        "listings": [(a.date.isoformat(), a.rank, a.source) for a in found.stored.listings],
        "topics": [(name, urls.topic_feed(base_url, slug)) for name, slug in found.topics],
        "subscribe_url": urls.home(base_url) + "#subscribe",
    }
