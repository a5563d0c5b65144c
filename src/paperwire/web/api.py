"""The JSON API for integrators (OpenAPI at /api/openapi.json, a reference page at /api/docs).

``GET /api/preview`` is public (the subscribe form's live preview uses it). Readers,
their liked papers and public topics are behind ``Authorization: Bearer <admin_token>`` (PAPERWIRE_ADMIN_TOKEN);
without a configured token those routes answer 403. Domain checks are the same as
the command line's (``build_subscriber``, ``make_topic``); their errors come back
as 422 in FastAPI's own validation-error shape, naming the field.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .. import urls
from ..errors import ValidationError
from ..models import SUBSCRIBER_STATUSES, BounceEvent, Subscriber, Topic
from ..normalize import shown_title
from ..subscriber_io import bounce_record, subscriber_record
from ..subscribers import MAX_PAPERS_LIMIT, build_subscriber, followed_topics, make_topic, normalize_email
from . import likes
from .context import WebContext, web_context, without_trailing_slash
from .data import Preview


class ApiError(Exception):
    """An error answered as ``{"detail": message}``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class InvalidValue(Exception):
    """A value the domain rules refuse: 422 like FastAPI's own validation errors."""

    def __init__(self, location: str, exc: ValidationError):
        super().__init__(exc.reason)
        self.body = {"detail": [{"loc": [location, exc.field], "msg": exc.reason, "type": "value_error"}]}


# -- shapes -------------------------------------------------------------------------------


class Message(BaseModel):
    detail: str


class TopicIn(BaseModel):
    name: str = Field("", max_length=100, description="Defaults to the query.")
    query: str = Field(max_length=1000, description="A topic query (see the README's query language).")


class TopicOut(BaseModel):
    name: str
    query: str


class PublicTopic(BaseModel):
    name: str
    slug: str
    query: str
    feeds: dict[str, str] = Field(description="kind (atom, rss, json) -> URL")


class SubscriberIn(BaseModel):
    """Options left out keep the stored values (or the defaults for a new reader); topics given replace all."""

    name: str | None = Field(None, max_length=200)
    status: Literal["pending", "active", "paused", "unsubscribed", "bouncing"] | None = None
    cadence: str | None = Field(None, pattern=r"^(daily|weekly(:(mon|tue|wed|thu|fri|sat|sun))?)$")
    hour: int | None = Field(None, ge=0, le=23)
    timezone: str | None = Field(None, max_length=64, description="IANA name such as Europe/Berlin")
    max: int | None = Field(None, ge=1, le=MAX_PAPERS_LIMIT)
    topics: list[TopicIn] = Field(default_factory=list, max_length=20)
    follow: list[str] = Field(default_factory=list, max_length=20, description="Names of public topics to follow.")


class BounceOut(BaseModel):
    kind: str = Field(description="hard, soft, complaint, auto-reply or unknown")
    status: str = Field(description="The enhanced status code (5.1.1), when one was given.")
    diagnostic: str = Field(description="The reporting server's or provider's words.")
    source: str = Field(description="imap, mbox, maildir, ses, postmark, sendgrid or mailgun")
    recipient: str
    at: dt.datetime


class SubscriberOut(BaseModel):
    email: str
    name: str
    status: str
    cadence: str
    hour: int
    timezone: str
    max: int
    topics: list[TopicOut]
    last_bounce: BounceOut | None = Field(None, description="The newest bounce or complaint about this reader.")


class LikedPaperOut(BaseModel):
    id: str = Field(description="The stored paper id (its arXiv id when it has one).")
    title: str | None = Field(description="Null once the paper is no longer stored.")
    url: str = Field(description="The paper's page.")


class PreviewPaper(BaseModel):
    id: str
    title: str
    score: float


class PreviewOut(BaseModel):
    query: str
    listing_date: dt.date | None = Field(description="The latest listing, which the query was tried on.")
    count: int = Field(description="How many papers of that listing the query matches.")
    papers: list[PreviewPaper] = Field(description="The best matches, best first.")
    hints: list[str] = Field(default_factory=list, description="What the query's grammar reads otherwise than a "
                             "reader may mean, each saying what to write instead (a lower-case 'or', author:Xu Han); "
                             "when its words found nothing, the words no paper of the listing has "
                             "('retreival': did you mean 'retrieval'?).")


# -- auth ---------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="The admin token (PAPERWIRE_ADMIN_TOKEN).")


def require_admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                  web: WebContext = Depends(web_context)) -> None:
    expected = web.settings.admin_token
    if not expected:
        raise ApiError(403, "the admin API is off: set PAPERWIRE_ADMIN_TOKEN to use it")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "missing or wrong admin token", {"WWW-Authenticate": "Bearer"})


ERRORS = {401: {"model": Message, "description": "Missing or wrong admin token"},
          403: {"model": Message, "description": "The admin API is off (no admin token configured)"}}
NOT_FOUND = {404: {"model": Message, "description": "No such record"}}
BAD_BODY = {400: {"model": Message, "description": "The body is not valid JSON"}}

router = APIRouter(prefix="/api")
admin = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], responses=ERRORS)


# -- preview ------------------------------------------------------------------------------


@router.get("/preview", response_model=PreviewOut, tags=["topics"])
def preview(q: Annotated[str, Query(min_length=1, max_length=1000, description="A topic query")],
            limit: Annotated[int, Query(ge=0, le=50)] = 10, web: WebContext = Depends(web_context)) -> PreviewOut:
    """How many papers of the latest listing a topic query would have matched, and the best of them."""
    try:
        topic = make_topic(None, q)
    except ValidationError as exc:
        raise InvalidValue("query", exc) from None
    found: Preview = web.data.preview(topic.query, limit=limit)
    return PreviewOut(query=topic.query, listing_date=found.date, count=found.count,
                      papers=[PreviewPaper(id=p.id, title=shown_title(p.title), score=round(s, 4))
                              for p, s in found.matches], hints=list(found.hints))


# -- topics -------------------------------------------------------------------------------


def _public_topic(topic: Topic, base_url: str) -> PublicTopic:
    return PublicTopic(name=topic.name, slug=topic.slug, query=topic.query,
                       feeds={kind: urls.topic_feed(base_url, topic.slug, kind) for kind in urls.FEED_KINDS})


@admin.get("/topics", response_model=list[PublicTopic], tags=["topics"])
def list_topics(web: WebContext = Depends(web_context)) -> list[PublicTopic]:
    """Every public topic with its feed URLs."""
    return [_public_topic(t, web.settings.base_url) for t in web.store.public_topics()]


@admin.put("/topics/{name}", response_model=PublicTopic, tags=["topics"],
           responses={201: {"model": PublicTopic, "description": "Created"}, **BAD_BODY})
def put_topic(name: Annotated[str, PathParam(max_length=100)], body: TopicIn, response: Response,
              background: BackgroundTasks, web: WebContext = Depends(web_context)) -> PublicTopic:
    """Create a public topic named ``name``, or change its query (``body.name`` is ignored)."""
    try:
        topic = make_topic(name, body.query, public=True)
        created = web.store.add_public_topic(topic)
    except ValidationError as exc:
        raise InvalidValue("body", exc) from None
    web.embed_topics_later(background, [topic.query])
    response.status_code = 201 if created else 200
    return _public_topic(topic, web.settings.base_url)


@admin.delete("/topics/{name}", status_code=204, tags=["topics"],
              responses={**NOT_FOUND, 409: {"model": Message, "description": "Readers follow it (use force)"}})
def delete_topic(name: str, force: bool = False, web: WebContext = Depends(web_context)) -> Response:
    """Delete a public topic; refused (409) while readers follow it, unless ``force``."""
    if not any(t.name.casefold() == name.casefold() for t in web.store.public_topics()):
        raise ApiError(404, f"no public topic named {name!r}")
    try:
        web.store.remove_public_topic(name, force=force)
    except ValidationError as exc:
        raise ApiError(409, exc.reason) from None
    return Response(status_code=204)


# -- subscribers --------------------------------------------------------------------------


def _out(reader: Subscriber, bounce: BounceEvent | None = None) -> SubscriberOut:
    return SubscriberOut(**subscriber_record(reader), last_bounce=bounce_record(bounce))


def _with_bounces(web: WebContext, readers: list[Subscriber]) -> list[SubscriberOut]:
    bounced = web.store.latest_bounces([reader.id for reader in readers])
    return [_out(reader, bounced.get(reader.id)) for reader in readers]


def _address(email: str) -> str:
    try:
        return normalize_email(email)
    except ValidationError as exc:
        raise InvalidValue("path", exc) from None


@admin.get("/subscribers", response_model=list[SubscriberOut], tags=["subscribers"])
def list_subscribers(status: Literal[SUBSCRIBER_STATUSES] | None = None,  # type: ignore[valid-type]
                     web: WebContext = Depends(web_context)) -> list[SubscriberOut]:
    """Every reader (optionally in one status), by email."""
    return _with_bounces(web, web.store.subscribers(status=status))


@admin.get("/subscribers/{email}", response_model=SubscriberOut, tags=["subscribers"], responses=NOT_FOUND)
def get_subscriber(email: str, web: WebContext = Depends(web_context)) -> SubscriberOut:
    reader = web.store.subscriber(_address(email))
    if reader is None:
        raise ApiError(404, "no such reader")
    return _with_bounces(web, [reader])[0]


@admin.put("/subscribers/{email}", response_model=SubscriberOut, tags=["subscribers"],
           responses={201: {"model": SubscriberOut, "description": "Created"}, **BAD_BODY})
def put_subscriber(email: str, body: SubscriberIn, response: Response, background: BackgroundTasks,
                   web: WebContext = Depends(web_context)) -> SubscriberOut:
    """Add a reader (active unless ``status`` says otherwise) or update one; never a second reader per email."""
    address = _address(email)
    store = web.store
    base = store.subscriber(address)
    try:
        topics = [make_topic(t.name or None, t.query) for t in body.topics]
        topics += followed_topics(body.follow, store.public_topics())
        reader = build_subscriber(address, name=body.name, status=body.status or (None if base else "active"),
                                  cadence=body.cadence, hour=body.hour, timezone=body.timezone, max_papers=body.max,
                                  topics=topics, base=base)
    except ValidationError as exc:
        raise InvalidValue("body", exc) from None
    stored, created = store.save_subscriber(reader)
    web.embed_topics_later(background, [topic.query for topic in stored.topics])
    response.status_code = 201 if created else 200
    return _out(stored)


# -- liked papers -------------------------------------------------------------------------


def _reader(web: WebContext, email: str) -> Subscriber:
    reader = web.store.subscriber(_address(email))
    if reader is None:
        raise ApiError(404, "no such reader")
    return reader


def _liked(web: WebContext, reader: Subscriber) -> list[LikedPaperOut]:
    return [LikedPaperOut(id=p.id, title=p.title, url=p.url) for p in likes.liked_papers(web, reader)]


LIKED_ID = PathParam(max_length=200, description="A stored paper id, or an arXiv id (with or without version).")


@admin.get("/subscribers/{email}/liked", response_model=list[LikedPaperOut], tags=["liked"], responses=NOT_FOUND)
def list_liked(email: str, web: WebContext = Depends(web_context)) -> list[LikedPaperOut]:
    """The reader's liked papers (their topic "Liked"), newest first."""
    return _liked(web, _reader(web, email))


@admin.put("/subscribers/{email}/liked/{paper_id:path}", response_model=list[LikedPaperOut], tags=["liked"],
           responses={201: {"model": list[LikedPaperOut], "description": "Added"}, **NOT_FOUND,
                      409: {"model": Message, "description": "The reader's own topic named Liked is something else"}})
def put_liked(email: str, paper_id: Annotated[str, LIKED_ID], request: Request, response: Response,
              background: BackgroundTasks, web: WebContext = Depends(web_context)) -> list[LikedPaperOut]:
    """Like a paper for the reader, as its "More like this" button does: 201 when added, 200 when it
    was liked already (still one entry). The list keeps the newest 50; the oldest go first."""
    if paper_id.endswith("/"):
        return without_trailing_slash(request)
    reader = _reader(web, email)
    stored = likes.stored_id(web, paper_id)
    if stored is None:
        raise ApiError(404, "no such paper")
    try:
        added = likes.add(web, reader, stored)
    except ValidationError as exc:
        raise ApiError(409, exc.reason) from None
    response.status_code = 201 if added else 200
    reader = _reader(web, email)
    web.embed_topics_later(background, [topic.query for topic in reader.topics])
    return _liked(web, reader)


@admin.delete("/subscribers/{email}/liked/{paper_id:path}", status_code=204, tags=["liked"], responses=NOT_FOUND)
def delete_liked(email: str, paper_id: Annotated[str, LIKED_ID], request: Request,
                 web: WebContext = Depends(web_context)) -> Response:
    """Forget a liked paper (404 when the reader does not like it)."""
    if paper_id.endswith("/"):
        return without_trailing_slash(request)
    reader = _reader(web, email)
    if not likes.remove(web, reader, likes.stored_id(web, paper_id) or paper_id):
        raise ApiError(404, "the reader does not like this paper")
    return Response(status_code=204)


@admin.delete("/subscribers/{email}", status_code=204, tags=["subscribers"], responses=NOT_FOUND)
def delete_subscriber(email: str, web: WebContext = Depends(web_context)) -> Response:
    """Erase a reader and everything recorded about them."""
    if not web.store.delete_subscriber(_address(email)):
        raise ApiError(404, "no such reader")
    return Response(status_code=204)
