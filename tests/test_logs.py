"""Untrusted text in terminal output and text logs: one line each, nothing that drives the terminal."""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from hypothesis import given, strategies as st

from paperwire import logs
from paperwire.store.schema import subscribers, topics

from .test_isolation import POISONED, UNPARSEABLE, hundred_readers, write_unchecked

FORGED = "reader050@example.org\r\nBcc: eve@example.net \x1b[2J\u202egro.elpmaxe"


@given(st.text())
def test_printable_text_has_no_control_and_keeps_the_rest(text):
    shown = logs.printable(text)
    assert not logs._CONTROLS.search(shown) and "\n" not in shown
    if not logs._CONTROLS.search(text):
        assert shown == text  # only controls change


def test_printable_shows_each_control_as_its_escape():
    assert logs.printable("a\r\nb\x1b[2J\u202ec\x85") == "a\\r\\nb\\x1b[2J\\u202ec\\x85"
    assert logs.printable("Jörg Ωmega") == "Jörg Ωmega"


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("paperwire.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_text_log_line_stays_one_line_whatever_its_arguments_and_fields_hold():
    line = logs.TextFormatter().format(_record("delivery failed for %s", FORGED, fields={"email": FORGED}))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert line.startswith("WARNING: delivery failed for reader050@example.org\\r\\nBcc:")


def test_a_cleaned_traceback_goes_below_the_line_in_text_and_into_the_json_object():
    record = _record("digest not sent: %s", "boom", trace="Traceback (most recent call last):\n  ...\nValueError: boom")
    assert logs.TextFormatter().format(record).splitlines()[1:] == [
        "Traceback (most recent call last):", "  ...", "ValueError: boom"]
    assert json.loads(logs.JsonFormatter().format(record))["exception"].endswith("ValueError: boom")


def test_send_and_status_print_a_forged_address_on_one_line(db_url, run_cli):
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "LLM")
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == POISONED).scalar_subquery()
    write_unchecked(store, topics, topics.c.owner_id == owner, query=UNPARSEABLE)
    write_unchecked(store, subscribers, subscribers.c.email == POISONED, email=FORGED)
    for result in (run_cli("send", "--all"), run_cli("status"), run_cli("subscribers")):
        output = result.stdout + result.stderr
        assert "\nBcc:" not in output and "\x1b" not in output and "\u202e" not in output
    failed = [line for line in run_cli("status").stdout.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {logs.printable(FORGED)} (dispatch): matching raised QueryError: topic "
                      "'(RAG OR \"retrieval': unbalanced quote: this \" is never closed (at position 8)"]


def test_an_exception_argument_is_made_printable_too():
    line = logs.TextFormatter().format(_record("feed %s not written: %s", "x", ValueError("bad\r\nINFO: forged")))
    assert line == "WARNING: feed x not written: bad\\r\\nINFO: forged"


def test_pythons_own_warnings_come_out_in_the_log_format_too():
    """A library's DeprecationWarning in a --log-format json run is a JSON line, not free text."""
    import subprocess
    import sys

    code = ("import warnings; from paperwire import logs; logs.configure('json'); "
            "warnings.warn('an old call\\nwith a second line', DeprecationWarning)")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True)
    (line,) = done.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning" and "an old call" in entry["message"] and "DeprecationWarning" in entry["message"]
