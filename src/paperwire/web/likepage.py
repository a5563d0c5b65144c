""""More like this": the page each paper of a digest links to, and the remove buttons of the
manage page's liked papers.

``GET /like/<token>/<paper id>`` only shows the paper and a button: mail scanners open
every link of an email, and must never like anything for the reader. The button POSTs
(with the CSRF token every form has) and adds the paper to the reader's "Liked" topic
(liked.py, likes.py). Like every reader link, the token is the credential, so these pages
are never cached; they work for every reader the manage page works for, whatever their
status.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from .. import liked, urls
from ..errors import ValidationError
from ..models import Subscriber
from .context import READ, WebContext, web_context, without_trailing_slash
from .errors import PageError
from .likes import add, remove, stored_id
from .pages import reader_or_404, require_csrf
from .paperpage import moved_or_404, paper_values

router = APIRouter(include_in_schema=False)


def _paper_or_redirect(web: WebContext, reader: Subscriber, paper_id: str):
    """The paper page's data, or a redirect to the paper's own address, or 404. Any name the
    API takes for a paper is followed (``likes.stored_id``: an arXiv id with its version, a
    re-keyed ``t-`` id), to the one address the button posts to."""
    found = web.data.paper(paper_id)
    if found is None:
        # No stored paper by that name: moved_or_404 gives the 404 page (stored_id followed re-keyed ids).
        named = stored_id(web, paper_id) or moved_or_404(web, paper_id)
        return RedirectResponse(urls.more_like(web.settings.base_url, reader, named), status_code=307)
    return found


def _page(request: Request, web: WebContext, reader: Subscriber, found, *, added: bool = False) -> Response:
    base = web.settings.base_url
    paper_id = found.stored.paper.id
    ids = liked.liked_ids(reader)
    full = paper_id not in ids and len(liked.with_like(ids, paper_id)) <= len(ids)
    return web.page(request, "like.html.j2", private=True, **paper_values(found, base), added=added,
                    already=paper_id in ids, full=full, liked_count=len(ids), liked_name=liked.NAME,
                    action=urls.more_like(base, reader, paper_id), manage_url=urls.manage(base, reader))


@router.api_route("/like/{token}/{paper_id:path}", methods=READ)
def like_page(token: str, paper_id: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    """The paper and a button; opening it changes nothing."""
    if paper_id.endswith("/"):
        return without_trailing_slash(request)
    reader = reader_or_404(web, token)
    found = _paper_or_redirect(web, reader, paper_id)
    if isinstance(found, Response):
        return found
    return _page(request, web, reader, found)


@router.post("/like/{token}/{paper_id:path}")
def like(token: str, paper_id: str, request: Request, background: BackgroundTasks, csrf_token: str = Form(""),
         web: WebContext = Depends(web_context)) -> Response:
    if paper_id.endswith("/"):  # before the form is checked: the redirect keeps the method and the form
        return without_trailing_slash(request)
    require_csrf(request, csrf_token, web)
    reader = reader_or_404(web, token)
    found = _paper_or_redirect(web, reader, paper_id)
    if isinstance(found, Response):
        return found
    try:
        added = add(web, reader, found.stored.paper.id)
    except ValidationError:
        raise PageError(409, f"Your topic “{liked.NAME}” is your own",
                        "It is not a list of liked papers, so it was left as it is: rename it on the manage page "
                        "to keep liked papers.") from None
    reader = reader_or_404(web, token)
    web.embed_topics_later(background, [topic.query for topic in reader.topics])
    return _page(request, web, reader, found, added=added)


@router.post("/manage/{token}/liked", dependencies=[Depends(require_csrf)])
def unlike(token: str, remove_id: str = Form("", alias="remove"), web: WebContext = Depends(web_context)) -> Response:
    """A remove button of the manage page's liked papers."""
    reader = reader_or_404(web, token)
    done = "?done=unliked" if remove(web, reader, remove_id) else ""
    return RedirectResponse(urls.manage(web.settings.base_url, reader) + done + "#liked", status_code=303)
