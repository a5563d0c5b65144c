"""Everything a request handler needs, made once per app: settings, store, templates, signers.

Handlers reach it as ``request.app.state.web`` (see ``web_context``), so tests can
build an app around their own store, clock and mail transport.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .. import __version__
from ..config import Settings
from ..store import Store
from .data import DataCache
from .mailer import Mailer
from .ratelimit import StoredRateLimit
from .tokens import Tokens

CSRF_COOKIE = "pw_csrf"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def template_env(templates_dir: Path) -> Environment:
    """HTML templates escape every value; the plain-text mail templates do not (they are not HTML)."""
    return Environment(loader=FileSystemLoader(templates_dir / "web"), undefined=StrictUndefined,
                       autoescape=lambda name: not (name or "").endswith(".txt.j2"),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@dataclass
class WebContext:
    settings: Settings
    store: Store
    mailer: Mailer
    tokens: Tokens = field(init=False)
    templates: Environment = field(init=False)
    data: DataCache = field(init=False)
    subscribe_limit: StoredRateLimit = field(init=False)
    email_limit: StoredRateLimit = field(init=False)
    static: dict[str, tuple[bytes, str]] = field(init=False)
    secure: bool = field(init=False)
    base_path: str = field(init=False)  # base_url's own path ("" at a host's root): where pages link to
    clock: Callable[[], float] | None = None
    _renderer: Any = field(init=False, default=None)
    _renderer_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tokens = Tokens(self.settings.secret_key)
        self.templates = template_env(self.settings.templates_dir)
        self.data = DataCache(self.store, self.settings)
        extra = {"clock": self.clock} if self.clock else {}
        secret = self.settings.secret_key
        self.subscribe_limit = StoredRateLimit(self.store, "subscribe", self.settings.subscribe_rate_per_hour,
                                                secret=secret, **extra)
        # Nobody needs more than a few confirmation mails an hour: this stops mail-bombing one address.
        self.email_limit = StoredRateLimit(self.store, "email", 3, secret=secret, **extra)
        folder = self.settings.templates_dir / "web" / "static"
        self.static = {p.name: (p.read_bytes(), STATIC_TYPES[p.suffix]) for p in sorted(folder.iterdir())
                       if p.suffix in STATIC_TYPES} if folder.is_dir() else {}
        self.secure = urlsplit(self.settings.base_url).scheme == "https"
        self.base_path = base_path(self.settings)

    def page(self, request: Request, name: str, *, status: int = 200, private: bool = False,
             **values: Any) -> HTMLResponse:
        """Render an HTML page; every page carries a CSRF token for its forms.

        ``private`` pages (reached through a reader's secret link) are never cached.
        """
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = not cookie or len(cookie) > 100
        if fresh:
            cookie = self.tokens.new_csrf_secret()
        html = self.html(name, csrf_token=self.tokens.csrf_token(cookie), **values)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store" if private else "no-cache"
        if fresh:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=self.secure, path="/")
        return response

    def html(self, name: str, **values: Any) -> str:
        """An HTML page's markup alone: pages without forms (cacheable ones) set no cookie."""
        return self.templates.get_template(name).render(base_url=self.settings.base_url, base_path=self.base_path,
                                                        version=__version__, sender_name=self.settings.sender_name,
                                                        **values)

    def email_renderer(self):
        """The digest renderer, made on first use (it compiles the MJML template once)."""
        with self._renderer_lock:
            if self._renderer is None:
                from ..render import EmailRenderer

                self._renderer = EmailRenderer(self.settings.templates_dir)
            return self._renderer

    def embed_topics_later(self, background: BackgroundTasks, queries: Iterable[str]) -> None:
        """After the answer: store the vectors of topics just saved (``semantic.embed_saved_topics``),
        so no request waits on the model, and none fails with it."""
        from .. import semantic  # numpy and the model: loaded when first needed

        background.add_task(semantic.embed_saved_topics, self.store, self.settings, list(queries))

    def text(self, name: str, **values: Any) -> str:
        return self.templates.get_template(name).render(base_url=self.settings.base_url,
                                                        sender_name=self.settings.sender_name, **values)


# Every page a link leads to answers HEAD as GET does: link checkers and mail scanners ask
# it before (or instead of) opening a link, and a 405 reads to them as a broken link.
READ = ["GET", "HEAD"]


def web_context(request: Request) -> WebContext:
    return request.app.state.web


def base_path(settings: Settings) -> str:
    """The path of ``base_url`` as links write it (``/papers`` of ``https://example.org/papers``;
    "" for a host's root): pages link below it, and the app answers there (app.BelowBasePath)."""
    return urlsplit(settings.base_url).path.rstrip("/")


def route_path(request: Request) -> str:
    """The request's path below the base path, as routes are written (``/manage/<token>``)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def redirect_from_base(request: Request, path: str) -> Response:
    """A redirect whose Location starts at base_url, never at what the Host header claims."""
    web: WebContext = request.app.state.web
    location = web.settings.base_url.rstrip("/") + quote(path)
    if request.url.query:
        location += "?" + request.url.query
    return Response(status_code=307, headers={"Location": location})  # 307 keeps the method, as Starlette's did


def without_trailing_slash(request: Request) -> Response:
    """The redirect for a route whose last part is a path (``{paper_id:path}``): it takes the
    trailing slash the app's own redirect (on 404) would drop."""
    return redirect_from_base(request, route_path(request).rstrip("/"))
