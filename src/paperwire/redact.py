"""How a URL from the settings is shown: the one place that hides what it may carry of a secret.

Every message, log line, report and repr that names the database (or a configured
source URL) goes through ``url``. SQLAlchemy's own masking hides the password between ``:`` and ``@``; a
password can also sit in the query (``?password=...``, ``&sslpassword=...``, which
psycopg and others accept), and SQLAlchemy shows those as they are, so they are hidden
here too.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
# Query parameters whose value is a secret, by the words their names contain.
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token")
# For text SQLAlchemy cannot parse: a ``user:password@`` and ``name=value`` pairs, as written.
_USERINFO = re.compile(r"(?<=://)([^/?#@:]*):[^/?#@]*@")
_QUERY_PAIR = re.compile(r"(?<=[?&;])([^=&;#]+)=([^&;#]*)")


def url(text: str | URL) -> str:
    """``text`` fit for output: its password and any secret query value replaced by ``***``.

    Text that is no URL (a path) comes back as it is.
    """
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
