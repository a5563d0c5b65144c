"""Signed, expiring tokens: confirmation links and CSRF form tokens (itsdangerous HMAC signatures).

Each kind of token has its own salt, so a token made for one purpose is worthless for
another. The secret comes from ``settings.secret_key`` (PAPERWIRE_SECRET_KEY).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

CONFIRM_MAX_AGE = 3 * 24 * 3600  # a confirmation link works for three days
CSRF_MAX_AGE = 24 * 3600  # a form older than a day asks to be reloaded


class TokenInvalid(Exception):
    """Not ours, tampered with, or for another purpose."""


class TokenExpired(TokenInvalid):
    """Ours, but older than it may be."""


@dataclass(frozen=True)
class Confirmation:
    email: str
    reader_key: str  # a hash of the reader's link secret when the link was sent
    change: int | None = None  # the pending change of preferences this link applies, if any


def reader_key(reader_token: str) -> str:
    """A short digest of a reader's link secret: binds a confirmation link to that reader record.

    When a reader deletes their data and signs up again they get a new secret, so an
    old confirmation link from before can no longer confirm the new record.
    """
    return hashlib.sha256(reader_token.encode()).hexdigest()[:16]


class Tokens:
    def __init__(self, secret: str):
        self._confirm = URLSafeTimedSerializer(secret, salt="paperwire.confirm")
        self._csrf = URLSafeTimedSerializer(secret, salt="paperwire.csrf")

    # -- confirmation links --------------------------------------------------------

    def confirmation(self, email: str, reader_token: str, change: int | None = None) -> str:
        data = {"e": email, "r": reader_key(reader_token)}
        if change is not None:
            data["c"] = change
        return self._confirm.dumps(data)

    def read_confirmation(self, token: str, max_age: int = CONFIRM_MAX_AGE) -> Confirmation:
        data = _loads(self._confirm, token, max_age)
        if not isinstance(data, dict) or not isinstance(data.get("e"), str) or not isinstance(data.get("r"), str):
            raise TokenInvalid("not a confirmation token")
        change = data.get("c")
        if change is not None and (not isinstance(change, int) or isinstance(change, bool)):
            raise TokenInvalid("not a confirmation token")
        return Confirmation(data["e"], data["r"], change)

    # -- CSRF (signed double submit) -------------------------------------------------

    @staticmethod
    def new_csrf_secret() -> str:
        """The random value kept in the browser's cookie."""
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie_value: str) -> str:
        """The form field for a browser holding ``cookie_value``."""
        return self._csrf.dumps(cookie_value)

    def check_csrf(self, token: str, cookie_value: str | None, max_age: int = CSRF_MAX_AGE) -> None:
        """A forged form has no cookie, or cannot produce a signature over the victim's cookie."""
        if not cookie_value or not token:
            raise TokenInvalid("missing form token or cookie")
        value = _loads(self._csrf, token, max_age)
        if not isinstance(value, str) or not hmac.compare_digest(value, cookie_value):
            raise TokenInvalid("form token does not belong to this browser")


def _loads(serializer: URLSafeTimedSerializer, token: str, max_age: int):
    try:
        return serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired("expired") from None
    except BadSignature:
        raise TokenInvalid("bad signature") from None
