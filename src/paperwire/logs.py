"""Log output for people (one readable line) or for collectors (one JSON object per line).

Code logs a short message plus structured fields passed as ``extra={"fields": {...}}``;
the text form appends them as ``key=value``, the JSON form as keys of the object. A
traceback that was cleaned of secrets first goes as ``extra={"trace": text}``. In the text
form, untrusted values are shown ``printable``, one line each. No
secret ever reaches a log call: settings hold the SMTP password apart (``repr=False``)
and nothing logs a whole Settings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

FORMATS = ("text", "json")
# What must not reach a terminal or a text log line as it is: C0/C1 controls (line breaks
# that start a fake line, ESC sequences that drive the terminal), line separators and the
# bidi embeddings, overrides and isolates that reorder what follows.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
QUIET_LIBRARIES = ("alembic", "apscheduler", "httpx", "httpcore", "aiosmtplib", "mail.log")


def printable(text: str) -> str:
    """Untrusted ``text`` (an address, a server's answer, an error) fit for one line of a
    terminal or a text log: each control shown as its escape (``\\n``, ``\\x1b``, ``\\u202e``).
    Every line paperwire prints or logs as text puts such values through this."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def _message(record: logging.LogRecord) -> str:
    """The record's message made ``printable``: our format strings hold no controls, so any
    there came with an argument (an address, an exception's text), whatever its type."""
    return printable(record.getMessage())


class TextFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool = False):
        super().__init__()
        self.timestamps = timestamps  # the daemon's lines need them; one-shot commands do not

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname}: {_message(record)}"
        if self.timestamps:
            line = dt.datetime.fromtimestamp(record.created, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S ") + line
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={_compact(value)}" for key, value in fields.items())
        trace = getattr(record, "trace", None) or (self.formatException(record.exc_info) if record.exc_info else "")
        return line + "\n" + trace if trace else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        trace = getattr(record, "trace", None) or (self.formatException(record.exc_info) if record.exc_info else "")
        if trace:
            entry["exception"] = trace
        return json.dumps(entry, ensure_ascii=False, default=str)


def _compact(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if not text or any(ch.isspace() for ch in text):
        text = json.dumps(text, ensure_ascii=False)  # quoted, C0 controls escaped
    return printable(text)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and click swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(fmt: str = "text", *, level: int = logging.WARNING) -> None:
    """Send paperwire's logs to stderr in ``fmt``; called again when settings are known."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(timestamps=level <= logging.INFO))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # Python's warnings too, as lines of this format (logger py.warnings)
    for chatty in QUIET_LIBRARIES:  # their INFO lines are not our runs; warnings still show
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
