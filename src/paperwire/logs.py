"""Log output for people (one readable line) or for collectors (one JSON object per line).

Code logs a short message plus structured fields passed as ``extra={"fields": {...}}``;
the text form appends them as ``key=value``, the JSON form as keys of the object. No
secret ever reaches a log call: settings hold the SMTP password apart (``repr=False``)
and nothing logs a whole Settings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

FORMATS = ("text", "json")
QUIET_LIBRARIES = ("alembic", "apscheduler", "httpx", "httpcore", "aiosmtplib", "mail.log")


class TextFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool = False):
        super().__init__()
        self.timestamps = timestamps  # the daemon's lines need them; one-shot commands do not

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname}: {record.getMessage()}"
        if self.timestamps:
            line = dt.datetime.fromtimestamp(record.created, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S ") + line
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={_compact(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _compact(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text) if not text or any(ch.isspace() for ch in text) else text


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
    for chatty in QUIET_LIBRARIES:  # their INFO lines are not our runs; warnings still show
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
