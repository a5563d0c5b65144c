"""How a URL from the settings is shown: the one place that hides what it may carry of a secret.

Every message, log line, report and repr that names the database or a source URL goes
through ``url``, and an error text that may quote a source URL through ``scrub``; an error
text or traceback about one reader through ``without`` (their link secret); a web request's
path, which may carry any reader's link secret, through ``web_path`` (the server's logs).

- A database URL: SQLAlchemy's own masking hides the password between ``:`` and ``@``; a
  password can also sit in the query (``?password=...``, ``&sslpassword=...``, which
  psycopg and others accept), and SQLAlchemy shows those as they are, so they are hidden
  here too; the rest of the query stays (it tells which socket or options).
- An http(s) URL (a listing source): no ``user:password@``, and the whole query elided,
  because an API key or a signature there can have any name.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
# Query parameters whose value is a secret, by the words their names contain.
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token")
# For text SQLAlchemy cannot parse: a ``user:password@`` and ``name=value`` pairs, as written.
_USERINFO = re.compile(r"(?<=://)([^/?#@:]*):[^/?#@]*@")
_QUERY_PAIR = re.compile(r"(?<=[?&;])([^=&;#]+)=([^&;#]*)")


def url(text: str | URL) -> str:
    """``text`` fit for output: its password and any secret query value replaced by ``***``
    (an http(s) URL: credentials dropped, query elided). Text that is no URL (a path) comes
    back as it is.
    """
    if isinstance(text, str) and text[:8].lower().startswith(("http://", "https://")):
        return _web_url(text)
    try:
        parsed = make_url(text) if isinstance(text, str) else text
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return _scrub_text(str(text))
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = [f"{name}={MASK if _is_secret(name) else value}"  # as typed: render_as_string would %-escape them
             for name, values in parsed.query.items()
             for value in (values if isinstance(values, tuple) else (values,))]
    return shown + ("?" + "&".join(pairs) if pairs else "")


def _is_secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def _scrub_text(text: str) -> str:
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    return _QUERY_PAIR.sub(lambda m: f"{m[1]}={MASK}" if _is_secret(m[1]) else m[0], text)


def _web_url(text: str) -> str:
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="…" if parts.query else "", fragment="").geturl()


def scrub(text: str, source: str) -> str:
    """``text`` (an error message, httpx's or any other) without what of the http(s) URL
    ``source`` is secret: the URL itself shown as ``url`` shows it, its credentials and query elided."""
    parts = urlsplit(source)
    secrets = [source, parts.query, parts.netloc.rpartition("@")[0]]
    if parts.password:
        secrets.append(parts.password)
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, url(source) if secret == source else "…")
    return text


def without(secret: str, text: str) -> str:
    """``text`` with a reader's link secret blanked: error texts and tracebacks go to logs."""
    return text.replace(secret, "<token>") if secret else text


# The web app's paths that carry a reader's link secret (web/pages.py, likepage.py, feedroutes.py;
# /confirm/ a signed one), anywhere in a log line and under any base path.
_SECRET_PATH = re.compile(r"(/(?:manage|archive|unsubscribe|like|confirm|feeds/private)/)[^/?#\s\"]+")


def web_path(text: str) -> str:
    """A request's path, or a log line holding one, with the link secret in it as ``***``:
    whoever reads the server's logs must not be able to manage or unsubscribe its readers.
    Read percent-decoded, as the app routes it (``/%6Danage/...``, ``/manage%2F...``)."""
    return _SECRET_PATH.sub(rf"\1{MASK}", unquote(text))
