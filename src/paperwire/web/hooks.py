"""Provider webhooks: ``POST /webhooks/ses``, ``/postmark``, ``/sendgrid``, ``/mailgun``.

Each is off (404, like any unknown address) until its settings are there (``[webhooks]``;
README "Bounces and complaints"). A request is proven first (``bounces.sns``,
``bounces.webhooks``): one that is not is answered 401 and changes nothing. A signed
SendGrid or Mailgun request is taken once (``webhook_tokens``): the same one again is a
replay, also 401. The events then go to ``bounces.record.record_webhook``, each recorded
once by its reference, so a provider's retry of a request we took records nothing
(SNS signs a message once and retries it as it was: a repeat is answered 200 and records
nothing). The answer is ``{"events": N, "new": M}``.

The network is used for SNS alone (its signing certificate and the SubscribeURL of a
subscription confirmation), through one fetcher that tests replace.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..bounces import sns, webhooks
from ..bounces.record import record_webhook
from ..config import Settings
from ..errors import SourceError
from ..fetch import fetch
from ..store import Recorded
from .api import ApiError
from .context import WebContext, web_context

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_BODY_BYTES = 5 * 1024 * 1024  # SendGrid posts batches of well under a megabyte
FETCH_TIMEOUT = 10.0  # seconds, for the certificate and the SubscribeURL
MAX_FETCH_BYTES = 64 * 1024  # a certificate is a few kilobytes
KEEP_TOKENS_SECONDS = 2 * webhooks.MAX_AGE_SECONDS + 60  # after that their timestamps are stale anyway
_CACHED_CERTIFICATES = 16

Fetcher = Callable[[str], bytes]


def fetch_url(url: str) -> bytes:
    """GET ``url`` with timeouts and a size cap, following no redirect (its host was checked)."""
    return fetch(url, timeout=FETCH_TIMEOUT, max_bytes=MAX_FETCH_BYTES, follow_redirects=False).body or b""


class Hooks:
    """What the webhook routes keep per app: the fetcher and the SNS certificates it fetched
    (SNS signs with one certificate for months: fetched once, not per message)."""

    def __init__(self, fetcher: Fetcher):
        self.fetcher = fetcher
        self._certificates: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def certificate(self, url: str) -> bytes:
        with self._lock:
            known = self._certificates.get(url)
        if known is not None:
            return known
        pem = self.fetcher(url)
        with self._lock:
            if len(self._certificates) >= _CACHED_CERTIFICATES:
                self._certificates.clear()
            self._certificates[url] = pem
        return pem


# -- routes ---------------------------------------------------------------------------------


@router.post("/webhooks/ses")
async def ses(request: Request) -> JSONResponse:
    web = _enabled(request, "ses")
    body = await _body(request)
    return await run_in_threadpool(_answer, "ses", lambda: _ses(web, request.app.state.hooks, body))


@router.post("/webhooks/postmark")
async def postmark(request: Request) -> JSONResponse:
    web = _enabled(request, "postmark")
    body = await _body(request)
    return await run_in_threadpool(_answer, "postmark", lambda: _postmark(web, request.headers.get("authorization"),
                                                                          body))


@router.post("/webhooks/sendgrid")
async def sendgrid(request: Request) -> JSONResponse:
    web = _enabled(request, "sendgrid")
    body = await _body(request)
    signature = request.headers.get("x-twilio-email-event-webhook-signature")
    timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp")
    return await run_in_threadpool(_answer, "sendgrid", lambda: _sendgrid(web, signature, timestamp, body))


@router.post("/webhooks/mailgun")
async def mailgun(request: Request) -> JSONResponse:
    web = _enabled(request, "mailgun")
    body = await _body(request)
    return await run_in_threadpool(_answer, "mailgun", lambda: _mailgun(web, body))


def configured(settings: Settings, provider: str) -> bool:
    """Whether a provider's webhook is on: its settings are there (Postmark needs both halves)."""
    return {"ses": bool(settings.webhooks_ses_topics),
            "postmark": bool(settings.webhooks_postmark_user and settings.webhooks_postmark_password),
            "sendgrid": bool(settings.webhooks_sendgrid_public_key),
            "mailgun": bool(settings.webhooks_mailgun_signing_key)}[provider]


def warn_if_half_configured(settings: Settings) -> None:
    """Half a Postmark configuration leaves the webhook off: say so when the app starts."""
    if bool(settings.webhooks_postmark_user) != bool(settings.webhooks_postmark_password):
        log.warning("/webhooks/postmark is off: it needs both webhooks.postmark_user and "
                    "PAPERWIRE_WEBHOOKS_POSTMARK_PASSWORD")


def _enabled(request: Request, provider: str) -> WebContext:
    web = web_context(request)
    if not configured(web.settings, provider):  # off: the same 404 as any address that is not there
        raise HTTPException(404)
    return web


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(provider: str, work: Callable[[], list[Recorded] | JSONResponse]) -> JSONResponse:
    try:
        done = work()
    except webhooks.Refused as exc:
        log.warning("%s webhook refused: %s", provider, exc,
                    extra={"fields": {"event": "webhook", "provider": provider}})
        headers = {"WWW-Authenticate": 'Basic realm="paperwire webhooks"'} if provider == "postmark" else None
        raise ApiError(401, f"refused: {exc}", headers) from None
    except webhooks.Malformed as exc:
        raise ApiError(400, str(exc)) from None
    if isinstance(done, JSONResponse):
        return done
    return JSONResponse({"events": len(done), "new": sum(1 for recorded in done if recorded.new)})


def _now(web: WebContext) -> float:
    return web.clock() if web.clock is not None else time.time()


def _record(web: WebContext, provider: str, events: list[webhooks.Event]) -> list[Recorded]:
    at = dt.datetime.fromtimestamp(int(_now(web)), dt.timezone.utc)
    return record_webhook(web.store, web.settings, provider, events, received_at=at)


def _once(web: WebContext, provider: str, digest: str, work: Callable[[], list[Recorded]]) -> list[Recorded]:
    """Take a signed request once: the same one again is a replay. A request whose events
    could not be recorded is forgotten again, so the provider's retry is taken."""
    if not web.store.take_webhook_token(provider, digest, _now(web), KEEP_TOKENS_SECONDS):
        raise webhooks.Refused("replayed: this signed request was taken before")
    try:
        return work()
    except Exception:
        web.store.release_webhook_token(provider, digest)
        raise


# -- per provider ---------------------------------------------------------------------------


def _ses(web: WebContext, hooks: Hooks, body: bytes) -> list[Recorded] | JSONResponse:
    message = sns.envelope(body, web.settings.webhooks_ses_topics)  # before anything is fetched
    try:
        certificate = hooks.certificate(message["SigningCertURL"])
    except SourceError as exc:  # a 5xx: SNS tries again later
        log.warning("SNS signing certificate not fetched: %s", exc)
        raise ApiError(502, "the SNS signing certificate could not be fetched") from None
    sns.verify(message, certificate, dt.datetime.fromtimestamp(_now(web), dt.timezone.utc))
    topic = message["TopicArn"]
    if message["Type"] == sns.SUBSCRIBE:
        try:
            hooks.fetcher(message["SubscribeURL"])
        except SourceError as exc:
            log.warning("SNS subscription to %s not confirmed: %s", topic, exc)
            raise ApiError(502, "the subscription could not be confirmed") from None
        log.info("confirmed the SNS subscription to %s", topic)
        return JSONResponse({"confirmed": topic})
    if message["Type"] == sns.UNSUBSCRIBE:
        log.info("SNS says the subscription to %s ended", topic)
        return JSONResponse({"events": 0, "new": 0})
    return _record(web, "ses", sns.ses_events(message))


def _postmark(web: WebContext, authorization: str | None, body: bytes) -> list[Recorded]:
    settings = web.settings
    webhooks.check_basic_auth(authorization, settings.webhooks_postmark_user, settings.webhooks_postmark_password)
    return _record(web, "postmark", webhooks.postmark_events(body))


def _sendgrid(web: WebContext, signature: str | None, timestamp: str | None, body: bytes) -> list[Recorded]:
    digest = webhooks.check_sendgrid(web.settings.webhooks_sendgrid_public_key, signature, timestamp, body, _now(web))
    return _once(web, "sendgrid", digest, lambda: _record(web, "sendgrid", webhooks.sendgrid_events(body)))


def _mailgun(web: WebContext, body: bytes) -> list[Recorded]:
    digest, event_data = webhooks.check_mailgun(web.settings.webhooks_mailgun_signing_key, body, _now(web))
    return _once(web, "mailgun", digest, lambda: _record(web, "mailgun", webhooks.mailgun_events(event_data)))
