"""The few exceptions paperwire raises on purpose.

Anything a user can cause (a bad file, a bad setting, a bad query) is a
``PaperwireError`` with a message that names where the problem is; the CLI turns
these into a one-line error and a non-zero exit, never a traceback.
"""

from __future__ import annotations


class PaperwireError(Exception):
    """Base of every error paperwire reports to a person."""


class ConfigError(PaperwireError):
    """A setting is unknown or has a bad value; the message names key and source."""


class SourceError(PaperwireError):
    """An input file or feed cannot be read as a listing."""

    def __init__(self, message: str, *, origin: str = "", line: int | None = None):
        self.origin = origin
        self.line = line
        self.reason = message
        where = origin + (f":{line}" if line is not None else "") if origin else ""
        super().__init__(f"{where}: {message}" if where else message)


class QueryError(PaperwireError):
    """A topic query cannot be parsed; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, *, query: str = "", position: int = 0):
        self.query = query
        self.position = position
        self.reason = message
        super().__init__(f"{message} (at position {position})")


class StoreError(PaperwireError):
    """The database cannot be opened or upgraded."""


class EmbedderError(PaperwireError):
    """The embedding model cannot be loaded or used (not installed, a file with the wrong digest, a bad setting)."""


class DeliveryError(PaperwireError):
    """A message could not be handed to the mail server."""


class ValidationError(PaperwireError):
    """A value a person typed (an email, a cadence, a CSV cell) is not acceptable.

    ``field`` names what was wrong; ``where`` (optional) says which file and line.
    """

    def __init__(self, field: str, message: str, *, where: str = ""):
        self.field = field
        self.where = where
        self.reason = message
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{field}: {message}")


def described(exc: BaseException) -> str:
    """An exception in one line, its notes after it: ``UndefinedError: 'greting' is undefined
    (at templates/email.mjml.j2:49)`` (render.py notes the template's file and line)."""
    notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
    return f"{type(exc).__name__}: {exc}{notes}"
