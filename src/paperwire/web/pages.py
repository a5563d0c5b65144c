"""The HTML pages: home and subscribe, confirm, manage, one-click unsubscribe, archive.

Every form posts with a CSRF token, except the RFC 8058 one-click unsubscribe, which
mail providers post without cookies. Reader pages are reached through the reader's
secret token (the same one emails have always carried in their links): 24 random
bytes, unguessable, so the link itself is the credential -- which is why pages that
show it are never cached and never send a Referer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from collections import defaultdict
from functools import lru_cache

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from .. import liked, urls
from ..errors import ValidationError
from ..models import Subscriber
from ..normalize import shown_title
from ..paperview import authors_line, paper_links
from ..subscribers import MAX_PAPERS_LIMIT, parse_topic_spec
from . import likes, subscriptions
from .context import CSRF_COOKIE, READ, WebContext, web_context
from .errors import PageError
from .forms import CADENCE_LABELS, CADENCES, FormError, ReaderForm, parse_reader
from .headers import ARCHIVE_CSP
from .tokens import TokenExpired, TokenInvalid

router = APIRouter(include_in_schema=False)
HOME_PAPERS = 30
DONE = {
    "saved": "Your settings are saved.",
    "paused": "Paused: no emails until you resume.",
    "resumed": "Resumed: your digests are on again.",
    "confirmed": "Thank you: your subscription is confirmed.",
    "unliked": "Removed from your liked papers.",
}


@lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def require_csrf(request: Request, csrf_token: str = Form(""), web: WebContext = Depends(web_context)) -> None:
    try:
        web.tokens.check_csrf(csrf_token, request.cookies.get(CSRF_COOKIE))
    except TokenInvalid:
        raise PageError(403, "This form has expired",
                        "Reload the page and send the form again. (Forms work only with cookies on, and for a day.)"
                        ) from None


def reader_or_404(web: WebContext, token: str) -> Subscriber:
    reader = web.store.subscriber_by_token(token)
    if reader is None:
        raise PageError(404, "Link not valid", "This link does not belong to any subscription (it may have been "
                        "deleted). You can subscribe again on the home page.")
    return reader


def form_values(**fields) -> ReaderForm:
    return ReaderForm(**{key: value for key, value in fields.items() if value is not None})


def reader_fields(email: str | None = Form(None), name: str | None = Form(None), topics: str | None = Form(None),
                  follow: list[str] = Form([]), cadence: str | None = Form(None), hour: str | None = Form(None),
                  timezone: str | None = Form(None), max_papers: str | None = Form(None)) -> ReaderForm:
    """The reader form as posted; missing fields keep their defaults."""
    return form_values(email=email, name=name, topics=topics, follow=follow, cadence=cadence, hour=hour,
                       timezone=timezone, max_papers=max_papers)


def _errors(error: FormError | None) -> defaultdict[str, str]:
    """Field -> message; templates ask for any field, and get "" when it is fine."""
    found: defaultdict[str, str] = defaultdict(str)
    if error is not None:
        found[error.field] = error.message
    return found


def _form_page_values(web: WebContext) -> dict:
    return {"cadences": [(c, CADENCE_LABELS[c]) for c in CADENCES], "hours": list(range(24)),
            "timezones": timezones(), "public_topics": web.store.public_topics(), "max_papers_limit": MAX_PAPERS_LIMIT}


# -- home and subscribe ------------------------------------------------------------------


def _paper_view(stored, base_url: str) -> dict:
    paper = stored.paper
    main, links = paper_links(paper.links, paper.id, base_url)
    return {"rank": stored.listings[0].rank, "title": shown_title(paper.title) or paper.id, "url": main.url,
            "authors": authors_line(paper.authors), "links": links}


def _previews(web: WebContext, form: ReaderForm) -> list[dict]:
    """One line per topic: how many papers of the latest listing it would have matched, and the
    hints its writer needs (``Preview.hints``), as the script's preview shows them."""
    shown = []
    for line in form.topic_lines()[:10]:
        try:
            topic = parse_topic_spec(line)
        except ValidationError as exc:
            shown.append({"line": line, "error": exc.reason})
            continue
        found = web.data.preview(topic.query, limit=5)
        shown.append({"line": line, "count": found.count, "titles": [shown_title(p.title) for p, _ in found.matches],
                      "hints": list(found.hints)})
    return shown


def home_page(request: Request, web: WebContext, *, form: ReaderForm | None = None, error: FormError | None = None,
              previews: list[dict] | None = None, status: int = 200) -> Response:
    latest = web.data.latest()
    return web.page(request, "home.html.j2", status=status, form=form or ReaderForm(),
                    errors=_errors(error), previews=previews,
                    listing_date=latest.date.isoformat() if latest.date else None,
                    papers=[_paper_view(p, web.settings.base_url) for p in latest.papers[:HOME_PAPERS]],
                    more_papers=max(0, len(latest.papers) - HOME_PAPERS), **_form_page_values(web))


@router.api_route("/", methods=READ)
def home(request: Request, web: WebContext = Depends(web_context)) -> Response:
    return home_page(request, web)


@router.post("/subscribe", dependencies=[Depends(require_csrf)])
def subscribe(request: Request, background: BackgroundTasks, form: ReaderForm = Depends(reader_fields),
              action: str = Form("subscribe"), web: WebContext = Depends(web_context)) -> Response:
    if action == "preview":
        return home_page(request, web, form=form, previews=_previews(web, form))
    client = request.client.host if request.client else "unknown"
    retry = web.subscribe_limit.hit(client)
    if retry is not None:
        raise PageError(429, "Too many attempts", f"Please wait {int(retry // 60) + 1} minutes and try again.",
                        headers={"Retry-After": str(int(retry) + 1)})
    try:
        wanted = parse_reader(form, web.store.public_topics(), status="pending")
    except FormError as exc:
        return home_page(request, web, form=form, error=exc, status=400)
    # The same page for every address, answered before anything about the address is looked
    # up or stored: the work and the mail happen after the answer, so its time tells nothing.
    background.add_task(subscriptions.handle_request, web, wanted)
    return web.page(request, "check_inbox.html.j2", email=wanted.email)


# -- confirm -----------------------------------------------------------------------------


def _check_link(web: WebContext, signed: str) -> None:
    try:
        web.tokens.read_confirmation(signed)
    except TokenExpired:
        raise PageError(400, "This link has expired", "Confirmation links work for three days. "
                        "Subscribe again on the home page to get a new one.") from None
    except TokenInvalid:
        raise PageError(400, "Link not valid", "This confirmation link is not valid. "
                        "Copy the whole link from the email, or subscribe again.") from None


@router.api_route("/confirm/{signed}", methods=READ)
def confirm_page(signed: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    """A button, not an action: mail scanners open links, and must not confirm for anyone."""
    _check_link(web, signed)
    return web.page(request, "confirm.html.j2", private=True, action=urls.confirm(web.settings.base_url, signed))


@router.post("/confirm/{signed}", dependencies=[Depends(require_csrf)])
def confirm(signed: str, background: BackgroundTasks, web: WebContext = Depends(web_context)) -> Response:
    _check_link(web, signed)
    try:
        reader = subscriptions.confirm(web, signed)
    except TokenInvalid:
        raise PageError(400, "Link not valid", "This link belongs to a subscription that no longer exists. "
                        "Subscribe again on the home page.") from None
    # A pending reader's topics are embedded here, once confirmed, not when the form is sent:
    # anyone can send the form, and nobody's digest matches a pending reader's topics.
    web.embed_topics_later(background, [topic.query for topic in reader.topics])
    return RedirectResponse(urls.manage(web.settings.base_url, reader) + "?done=confirmed", status_code=303)


# -- manage ------------------------------------------------------------------------------


def manage_page(request: Request, web: WebContext, reader: Subscriber, *, form: ReaderForm | None = None,
                error: FormError | None = None, status: int = 200, notice: str = "") -> Response:
    base = web.settings.base_url
    editions = sorted({d["edition"] for d in web.store.deliveries_of(reader.email) if d["status"] == "sent"},
                      reverse=True)
    return web.page(
        request, "manage.html.j2", status=status, private=True, reader=reader, form=form or ReaderForm.of(reader),
        errors=_errors(error), notice=notice, previews=None, liked=likes.liked_papers(web, reader),
        max_liked=liked.MAX_LIKED,
        action=urls.manage(base, reader), unsubscribe_url=urls.unsubscribe(base, reader),
        feeds=[(kind, urls.private_feed(base, reader, kind)) for kind in urls.FEED_KINDS],
        editions=[(e, urls.archive(base, reader, e)) for e in editions[:20]],
        latest_url=urls.archive(base, reader, web.data.latest().date.isoformat()) if web.data.latest().date else None,
        **_form_page_values(web))


@router.api_route("/manage/{token}", methods=READ)
def manage(token: str, request: Request, done: str = "", web: WebContext = Depends(web_context)) -> Response:
    reader = reader_or_404(web, token)
    return manage_page(request, web, reader, notice=DONE.get(done, ""))


@router.post("/manage/{token}", dependencies=[Depends(require_csrf)])
def manage_save(token: str, request: Request, background: BackgroundTasks, form: ReaderForm = Depends(reader_fields),
                web: WebContext = Depends(web_context)) -> Response:
    reader = reader_or_404(web, token)
    try:
        wanted = parse_reader(form, web.store.public_topics(), base=reader)
    except FormError as exc:
        return manage_page(request, web, reader, form=form, error=exc, status=400)
    stored, _ = web.store.save_subscriber(wanted)
    web.embed_topics_later(background, [topic.query for topic in stored.topics])
    return RedirectResponse(urls.manage(web.settings.base_url, reader) + "?done=saved", status_code=303)


@router.post("/manage/{token}/status", dependencies=[Depends(require_csrf)])
def manage_status(token: str, request: Request, change: str = Form(""),
                  web: WebContext = Depends(web_context)) -> Response:
    reader = reader_or_404(web, token)
    base = web.settings.base_url
    if change == "unsubscribe":
        web.store.set_status(reader.email, "unsubscribed")
        return web.page(request, "unsubscribed.html.j2", private=True, manage_url=urls.manage(base, reader))
    if change == "pause":
        web.store.set_status(reader.email, "paused")
        return RedirectResponse(urls.manage(base, reader) + "?done=paused", status_code=303)
    if change == "resume":
        if reader.status == "pending":
            return manage_page(request, web, reader, status=400, error=FormError(
                "status", "Confirm your address first: open the link in the confirmation email."))
        web.store.set_status(reader.email, "active")
        return RedirectResponse(urls.manage(base, reader) + "?done=resumed", status_code=303)
    return manage_page(request, web, reader, status=400,
                       error=FormError("status", "Choose pause, resume or unsubscribe."))


@router.api_route("/manage/{token}/export", methods=READ)
def manage_export(token: str, web: WebContext = Depends(web_context)) -> Response:
    """Everything stored about the reader, as JSON (the right of access, in one click)."""
    reader = reader_or_404(web, token)
    data = {
        "email": reader.email, "name": reader.name, "status": reader.status, "cadence": reader.cadence,
        "hour": reader.hour, "timezone": reader.timezone, "max_papers": reader.max_papers,
        "created_at": _iso(reader.created_at), "confirmed_at": _iso(reader.confirmed_at),
        "topics": [{"name": t.name, "query": t.query, "public": t.public} for t in reader.topics],
        "deliveries": [{"slot": _iso(d["slot"]), "edition": d["edition"], "status": d["status"],
                        "papers": d["papers"], "sent_at": _iso(d["finished_at"])}
                       for d in web.store.deliveries_of(reader.email)],
    }
    body = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="paperwire-my-data.json"', "Cache-Control": "no-store"})


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


@router.post("/manage/{token}/delete", dependencies=[Depends(require_csrf)])
def manage_delete(token: str, request: Request, confirm: str = Form(""),
                  web: WebContext = Depends(web_context)) -> Response:
    reader = reader_or_404(web, token)
    if confirm != "delete":
        return manage_page(request, web, reader, status=400, error=FormError(
            "delete", "Tick the box to confirm that everything about you should be deleted."))
    web.store.delete_subscriber(reader.email)
    return web.page(request, "deleted.html.j2", private=True)


# -- one-click unsubscribe (RFC 8058) -------------------------------------------------------


@router.api_route("/unsubscribe/{token}", methods=READ)
def unsubscribe_page(token: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    """Only a button: link scanners and previews open this address and must never unsubscribe."""
    reader = reader_or_404(web, token)
    return web.page(request, "unsubscribe.html.j2", private=True, reader=reader,
                    action=urls.unsubscribe(web.settings.base_url, reader),
                    manage_url=urls.manage(web.settings.base_url, reader))


@router.post("/unsubscribe/{token}")
def unsubscribe(token: str, request: Request, one_click: str | None = Form(None, alias="List-Unsubscribe"),
                web: WebContext = Depends(web_context)) -> Response:
    """The mail provider's POST: no cookie, no CSRF token, the body ``List-Unsubscribe=One-Click``.

    The unguessable token in the address is the credential. An unknown token answers
    200 too: there is no subscription left to stop, which is what was asked.
    """
    if one_click != "One-Click":
        raise PageError(400, "Not a one-click unsubscribe",
                        "The request must carry List-Unsubscribe=One-Click (RFC 8058). Use the button on this page.")
    reader = web.store.subscriber_by_token(token)
    if reader is not None and reader.status != "unsubscribed":
        web.store.set_status(reader.email, "unsubscribed")
    manage_url = urls.manage(web.settings.base_url, reader) if reader else None
    return web.page(request, "unsubscribed.html.j2", private=True, manage_url=manage_url)


# -- archive -------------------------------------------------------------------------------


@router.api_route("/archive/{token}/{edition}", methods=READ)
def archive(token: str, edition: str, web: WebContext = Depends(web_context)) -> Response:
    """The email of an edition in the browser ("view in browser"), with every matching paper."""
    return archive_page(web, token, edition, 1)


@router.api_route("/archive/{token}/{edition}/{part}", methods=READ)
def later_archive(token: str, edition: str, part: str, web: WebContext = Depends(web_context)) -> Response:
    """A later email of the edition (its listing grew after the first went out): 2, 3, ..."""
    return archive_page(web, token, edition, int(part) if re.fullmatch(r"[2-9]|[1-9][0-9]{1,3}", part) else 0)


def archive_page(web: WebContext, token: str, edition: str, part: int) -> Response:
    reader = reader_or_404(web, token)
    try:
        day = dt.date.fromisoformat(edition)
    except ValueError:
        day = None
    found = web.data.archive(reader, day, part) if day and len(edition) == 10 and part else None
    if found is None:
        raise PageError(404, "No such edition", f"There is no digest for {edition!r}. Editions are named by "
                        "listing date, like 2024-03-11.")
    html = web.email_renderer().render(found, web.settings).html
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": ARCHIVE_CSP, "Cache-Control": "private, no-store"})


# -- static files ------------------------------------------------------------------------------


@router.api_route("/favicon.ico", methods=READ)
def favicon(web: WebContext = Depends(web_context)) -> Response:
    """Browsers ask for it on every page, the archive's email HTML included."""
    return static("favicon.svg", web)


@router.api_route("/static/{name}", methods=READ)
def static(name: str, web: WebContext = Depends(web_context)) -> Response:
    if name not in web.static:
        raise PageError(404, "Not found", "There is nothing at this address.")
    body, media_type = web.static[name]
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})

