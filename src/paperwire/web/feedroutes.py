"""Feeds over HTTP at the addresses emails and the OPML hand out (see ``paperwire.urls``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from .. import urls
from ..feeds import TRENDING_SLUG
from .conditional import conditional
from .context import READ, WebContext, web_context
from .errors import PageError

MEDIA_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _no_feed() -> PageError:
    return PageError(404, "No such feed", "There is no feed at this address. The list of feeds is at /feeds/feeds.opml.")


def _split(name: str) -> tuple[str, str]:
    stem, dot, kind = name.rpartition(".")
    if not dot or kind not in urls.FEED_KINDS:
        raise _no_feed()
    return stem, kind


@router.api_route("/feeds/feeds.opml", methods=READ)
def opml(request: Request, web: WebContext = Depends(web_context)) -> Response:
    return conditional(request, web.data.public_feeds()["opml"]["opml"], MEDIA_TYPES["opml"])


@router.api_route("/feeds/topics/{name}", methods=READ)
def topic_feed(name: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    slug, kind = _split(name)
    documents = web.data.public_feeds()
    if slug in (TRENDING_SLUG, "opml") or slug not in documents:
        raise _no_feed()
    return conditional(request, documents[slug][kind], MEDIA_TYPES[kind])


@router.api_route("/feeds/private/{name}", methods=READ)
def private_feed(name: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    token, kind = _split(name)
    reader = web.store.subscriber_by_token(token)
    if reader is None or reader.status == "pending":
        raise _no_feed()
    if reader.status == "unsubscribed":
        # Gone, not missing: feed readers drop a 410 subscription. Paused readers keep their feed.
        raise PageError(410, "Feed gone", "This reader unsubscribed, so their private feed has ended. "
                        "Subscribing again on the home page brings it back.")
    # "private": shared caches must not keep a copy of one reader's feed.
    return conditional(request, web.data.private_feed(reader)[kind], MEDIA_TYPES[kind],
                       cache="private, max-age=300")


@router.api_route("/feeds/{name}", methods=READ)
def trending_feed(name: str, request: Request, web: WebContext = Depends(web_context)) -> Response:
    slug, kind = _split(name)
    if slug != TRENDING_SLUG:
        raise _no_feed()
    return conditional(request, web.data.public_feeds()[TRENDING_SLUG][kind], MEDIA_TYPES[kind])
