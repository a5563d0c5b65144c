"""When is a reader's next digest owed? Pure timing: no database, no clock reads.

A *slot* is one digest a reader is owed, named by the reader's LOCAL calendar date
(a ``datetime.date``): every date for a ``daily`` reader, only the chosen weekday for
a ``weekly:<day>`` reader. A slot *opens* at its send instant: the first UTC instant
at which the reader's wall clock reads ``date hour:00`` or later (see ``send_instant``).

The dispatcher keeps one fact per reader, the last slot it delivered, and asks
``is_due(reader, now, last_slot)``. The answer is the most recent open slot when it
is newer than ``last_slot``, else ``None``. Consequences that follow from this one rule:

* Catch-up happens once. After an outage that spans three slots only the newest is
  owed; once it is recorded nothing is due until the next slot opens.
* Daylight-saving changes give exactly one digest per slot. On a spring-forward day
  a send hour that does not exist opens at the first instant after the gap
  (Europe/Berlin, hour 2, 2024-03-31 -> 03:00 CEST = 01:00 UTC); on a fall-back day
  a repeated hour opens at its FIRST occurrence only (2024-10-27 02:00 CEST = 00:00 UTC).
  The slot is a date, so the second 02:00 finds it already sent.
* First digest rule: a reader never served (``last_slot is None``) is owed the slot
  that is open now, so they get a first digest on the very next dispatch instead of
  waiting up to a day (or a week). Subscribed at 10:00 with hour 8: today's slot,
  at once. Subscribed at 07:00 with hour 8: yesterday's slot at once, then today's at
  08:00 (which only carries listings newer than the first digest).
* A local date a zone skipped entirely (Pacific/Apia skipped 2011-12-30) is still a
  slot; it opens at the first instant after the gap (Dec 31 00:00 local). With send
  hour 0 that is the very instant the next day's slot opens too, and like any missed
  slot it collapses into the newer one: one digest for a day that never happened.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from .errors import ValidationError
from .models import WEEKDAYS, Subscriber

UTC = dt.UTC
_ONE_DAY = dt.timedelta(days=1)
_ONE_WEEK = dt.timedelta(days=7)
_ONE_SECOND = dt.timedelta(seconds=1)
# How far past the reader's local date a slot may already be open. Non-zero because a
# fall-back at midnight can put the wall clock back onto yesterday after today's hour-0
# slot opened; two days is more than any real transition moves the clock back.
_LOOKAHEAD_DAYS = 2


@functools.cache  # zoneinfo keeps only a few zones strongly; readers span hundreds
def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The reader's zone; a bad name is the reader's data problem, so a ValidationError."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"{name!r} is not an IANA timezone such as Europe/Berlin") from None


def cadence_weekday(cadence: str) -> int | None:
    """``None`` for ``daily``, else the slot weekday (Monday = 0) of ``weekly:<day>``."""
    if cadence == "daily":
        return None
    kind, _, day = cadence.partition(":")
    if kind == "weekly" and day in WEEKDAYS:
        return WEEKDAYS.index(day)
    raise ValidationError("cadence", f"{cadence!r} is not 'daily' or 'weekly:<day>' (mon ... sun)")


def _check_hour(hour: int) -> int:
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValidationError("hour", f"{hour!r} is not a whole hour 0-23")
    return hour


def _as_utc(now: dt.datetime) -> dt.datetime:
    """Callers pass real instants; a naive time would silently mean 'server local'."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now.astimezone(UTC)


def _wall(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The naive local wall-clock time at a UTC instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _to_utc(wall: dt.datetime, zone: zoneinfo.ZoneInfo, fold: int) -> dt.datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _first_instant_at_or_after(wall: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first UTC instant whose local wall time is >= ``wall``.

    Existing times (fold=0 is the FIRST of two in a repeated hour) map directly.
    A time inside a gap maps, with fold=0 and fold=1, to two instants that bracket
    the transition; bisecting to the second finds the instant the clock jumps past it.
    """
    early = _to_utc(wall, zone, fold=0)
    if _wall(early, zone) == wall:
        return early
    late = _to_utc(wall, zone, fold=1)
    if _wall(late, zone) == wall:  # pragma: no cover - zoneinfo never does this; cheap safety
        return late
    low, high = sorted((early, late))  # wall(low) < wall <= wall(high); transition between
    while high - low > _ONE_SECOND:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _wall(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return high


@functools.lru_cache(maxsize=1 << 16)
def send_instant(slot: dt.date, hour: int, timezone: str) -> dt.datetime:
    """When the slot dated ``slot`` opens, as an aware UTC datetime.

    Cached: a dispatch asks the same (date, hour, zone) triples for many readers; all
    zones x 24 hours x the ~4 dates one dispatch looks at is ~60k entries.
    """
    wall = dt.datetime.combine(slot, dt.time(_check_hour(hour)))
    return _first_instant_at_or_after(wall, zone_of(timezone))


def _previous_slot_date(day: dt.date, weekday: int | None) -> dt.date:
    """The latest slot date on or before ``day``."""
    if weekday is None:
        return day
    return day - dt.timedelta(days=(day.weekday() - weekday) % 7)


def _step(weekday: int | None) -> dt.timedelta:
    return _ONE_DAY if weekday is None else _ONE_WEEK


def current_slot(reader: Subscriber, now: dt.datetime) -> dt.date:
    """The most recent slot whose send instant is at or before ``now``.

    It is "open": owed until delivered. For a daily reader that is today's local date
    once the send hour has passed, else yesterday's. Never ``None``: some slot always
    lies in the past.
    """
    now = _as_utc(now)
    weekday = cadence_weekday(reader.cadence)
    local_day = now.astimezone(zone_of(reader.timezone)).date()
    slot = _previous_slot_date(local_day + dt.timedelta(days=_LOOKAHEAD_DAYS), weekday)
    while send_instant(slot, reader.hour, reader.timezone) > now:
        slot -= _step(weekday)
    return slot


def is_due(reader: Subscriber, now: dt.datetime, last_slot: dt.date | None) -> dt.date | None:
    """The slot to deliver now, or ``None`` when the reader has had everything owed.

    Only the newest open slot is ever returned, so missed slots collapse into one
    catch-up digest. ``last_slot`` is the newest slot delivered (``None``: never).
    """
    slot = current_slot(reader, now)
    if last_slot is None or slot > last_slot:
        return slot
    return None


def next_slot(reader: Subscriber, now: dt.datetime) -> dt.date:
    """The first slot that is not yet open at ``now``."""
    return current_slot(reader, now) + _step(cadence_weekday(reader.cadence))


def next_send_time(reader: Subscriber, now: dt.datetime) -> dt.datetime:
    """When the next slot opens (UTC), strictly after ``now``: for status output and sleeping.

    This ignores whether the current slot was delivered; a caller that wants "due now"
    asks ``is_due`` first.
    """
    return send_instant(next_slot(reader, now), reader.hour, reader.timezone)
