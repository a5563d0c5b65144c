"""The web app: ``create_app(settings)`` wires routes, error pages and security headers.

Handlers are plain (synchronous) functions over the store; FastAPI runs them in its
thread pool, so a slow database call never blocks the event loop.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .. import __version__, redact
from ..config import DEV_SECRET_KEY, Settings
from ..errors import ConfigError
from ..store import Store
from ..transport import Transport
from . import api, apidocs, feedroutes, hooks, likepage, pages, paperpage
from .context import WebContext, base_path, redirect_from_base, route_path
from .errors import PageError
from .headers import SecurityHeaders
from .mailer import Mailer

log = logging.getLogger(__name__)
MIN_SECRET = 32  # characters; a shorter secret can be guessed offline from one signed link


def check_secret(settings: Settings, *, dev: bool) -> None:
    """``serve`` refuses the built-in development secret (and short ones) unless ``--dev``."""
    if dev:
        return
    if settings.secret_key == DEV_SECRET_KEY:
        raise ConfigError("no secret key: set PAPERWIRE_SECRET_KEY to a long random string "
                          "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), or pass --dev to try it out")
    if len(settings.secret_key) < MIN_SECRET:
        raise ConfigError(f"PAPERWIRE_SECRET_KEY is too short: use at least {MIN_SECRET} random characters")


def create_app(settings: Settings, *, store: Store | None = None, transport: Transport | None = None,
               clock=None, fetcher: hooks.Fetcher | None = None) -> FastAPI:
    """The ASGI app. ``transport`` defaults to ``dispatch.make_transport(settings)`` (SMTP or the outbox);
    ``fetcher`` (GET a URL, its body) to ``hooks.fetch_url``: the SNS webhook's only way out."""
    if transport is None:
        from ..dispatch import make_transport

        transport = make_transport(settings)
    store = store or Store(settings.db)
    # Starlette's own trailing-slash redirect builds its Location from the Host header: off.
    # ``_error_handlers`` redirects from base_url instead.
    app = FastAPI(title="paperwire", version=__version__, openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None, description=api.__doc__, redirect_slashes=False)
    app.state.web = WebContext(settings, store, Mailer(settings, transport, store=store), clock=clock)
    app.state.hooks = hooks.Hooks(fetcher or hooks.fetch_url)
    hooks.warn_if_half_configured(settings)
    for router in (pages.router, paperpage.router, likepage.router, feedroutes.router, api.router, api.admin,
                   apidocs.router, hooks.router):
        app.include_router(router)
    _error_handlers(app)
    if root := base_path(settings):  # inside SecurityHeaders: its own 404 carries them too
        app.add_middleware(BelowBasePath, root=unquote(root))
    app.add_middleware(SecurityHeaders, hsts=app.state.web.secure)
    if settings.trusted_proxies:
        # The client address (for the rate limit) comes from X-Forwarded-For only when the
        # connection itself comes from a configured proxy; `serve` leaves uvicorn's own
        # proxy handling off, so this is the one place that decides.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


class BelowBasePath:
    """Serves the app below base_url's path (``/papers``): the reverse proxy passes the whole
    path on (README, "Below a path"), and that path becomes the requests' ASGI
    ``root_path``, which routing takes off. ``/papers`` itself is the home page; an address
    outside it is a plain 404 naming where the site is. (A proxy that strips the path
    cannot be told apart from one that passes it when the base path is also a route's,
    ``/papers/<id>``: so one way, not both.) ``root`` is decoded, as ASGI paths are."""

    def __init__(self, app: ASGIApp, root: str) -> None:
        self.app, self.root = app, root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = self.root + "/" if scope["path"] == self.root else scope["path"]
        if not path.startswith(self.root + "/"):
            outside = PlainTextResponse(f"Not found: this site is at {quote(self.root)}/\n", status_code=404)
            await outside(scope, receive, send)
            return
        await self.app({**scope, "path": path, "root_path": self.root}, receive, send)


def _wants_json(request: Request) -> bool:
    return route_path(request).startswith("/api/")


def _error_page(request: Request, status: int, title: str, message: str, headers: dict | None = None) -> Response:
    web: WebContext = request.app.state.web
    response = web.page(request, "message.html.j2", status=status, title=title, message=message)
    response.headers.update(headers or {})
    return response


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PageError)
    def page_error(request: Request, exc: PageError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)
        return _error_page(request, exc.status, exc.title, exc.message, exc.headers)

    @app.exception_handler(api.ApiError)
    def api_error(request: Request, exc: api.ApiError) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(api.InvalidValue)
    def invalid_value(request: Request, exc: api.InvalidValue) -> Response:
        return JSONResponse(exc.body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # 405 too, for a slash to drop: a route that takes a path (``{paper_id:path}``) may
        # match the address with the slash for other methods only.
        if exc.status_code in (404, 405) and (other := _other_slash(app, request, exc.status_code == 405)):
            return redirect_from_base(request, other)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(app, request)
        if _wants_json(request):
            return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)
        titles = {404: "Not found", 405: "Method not allowed"}
        return _error_page(request, exc.status_code, titles.get(exc.status_code, "Error"),
                           "There is nothing to see at this address." if exc.status_code == 404
                           else str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": _jsonable(exc.errors())}, status_code=422)
        fields = ", ".join(str(err["loc"][-1]) for err in exc.errors())
        return _error_page(request, 400, "Bad request", f"Some fields of this request were not understood: {fields}.")

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        # exc_info given: Starlette calls this in a worker thread, outside the except block
        log.error("unexpected error on %s %s", request.method, redact.web_path(request.url.path), exc_info=exc)
        if _wants_json(request):
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return HTMLResponse("<!doctype html><title>Error</title><p>Something went wrong on our side. "
                            "Please try again later.</p>", status_code=500)


def _other_slash(app: FastAPI, request: Request, same_method: bool = False) -> str | None:
    """The path with its trailing slash removed (or added) when a route takes it that way
    (``same_method``: only removed, and for this request's method)."""
    path = route_path(request)
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if not other or other == path or (same_method and not path.endswith("/")):
        return None
    scope = {**request.scope, "path": other, "root_path": ""}
    wanted = {Match.FULL} if same_method else {Match.FULL, Match.PARTIAL}
    return other if any(route.matches(scope)[0] in wanted for route in app.router.routes) else None


def _leaf_routes(routes):
    """Every route, also those of included routers (FastAPI keeps them nested, without methods)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        yield from _leaf_routes(nested.routes) if nested is not None else (route,)


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in _leaf_routes(app.router.routes):
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _jsonable(errors) -> list:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors)
