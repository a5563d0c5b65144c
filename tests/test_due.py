"""When digests are owed: fixed clocks only, a simulated dispatcher instead of sleeping.

The dispatcher below is what the daemon does on each tick: ask ``is_due`` and, when a
slot comes back, record it as the reader's last slot. Running it over days of ticks
shows the properties a reader sees: one digest per slot, none skipped, none doubled.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperwire.due import UTC, cadence_weekday, current_slot, is_due, next_send_time, send_instant
from paperwire.errors import ValidationError
from paperwire.models import Subscriber

BERLIN = "Europe/Berlin"
ZONES = sorted(zoneinfo.available_timezones())


def reader(cadence: str = "daily", hour: int = 8, timezone: str = "UTC") -> Subscriber:
    return Subscriber(email="ada@example.org", cadence=cadence, hour=hour, timezone=timezone)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(timezone: str, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(timezone))


def dispatch(
    who: Subscriber, start: dt.datetime, end: dt.datetime, step: dt.timedelta, last_slot: dt.date | None = None
) -> list[tuple[dt.date, dt.datetime]]:
    """Every (slot, tick) a dispatcher ticking every ``step`` over [start, end) sends."""
    sent: list[tuple[dt.date, dt.datetime]] = []
    tick = start
    while tick < end:
        slot = is_due(who, tick, last_slot)
        if slot is not None:
            sent.append((slot, tick))
            last_slot = slot
        tick += step
    return sent


# --- daily, UTC -----------------------------------------------------------------


def test_daily_before_the_send_hour_the_open_slot_is_yesterdays() -> None:
    ada = reader(hour=8)
    assert current_slot(ada, utc(2024, 5, 10, 7, 59)) == dt.date(2024, 5, 9)
    assert is_due(ada, utc(2024, 5, 10, 7, 59), last_slot=dt.date(2024, 5, 9)) is None


def test_daily_at_and_after_the_send_hour_todays_slot_is_due() -> None:
    ada = reader(hour=8)
    assert is_due(ada, utc(2024, 5, 10, 8, 0), last_slot=dt.date(2024, 5, 9)) == dt.date(2024, 5, 10)
    assert is_due(ada, utc(2024, 5, 10, 23, 59), last_slot=dt.date(2024, 5, 9)) == dt.date(2024, 5, 10)


def test_daily_already_sent_today_then_due_again_next_day() -> None:
    ada = reader(hour=8)
    today = dt.date(2024, 5, 10)
    assert is_due(ada, utc(2024, 5, 10, 9), last_slot=today) is None
    assert is_due(ada, utc(2024, 5, 11, 7, 59), last_slot=today) is None
    assert is_due(ada, utc(2024, 5, 11, 8), last_slot=today) == dt.date(2024, 5, 11)


def test_send_hour_is_local_to_the_reader() -> None:
    tokyo = reader(hour=8, timezone="Asia/Tokyo")  # 08:00 JST = 23:00 UTC the day before
    assert is_due(tokyo, utc(2024, 5, 9, 22, 59), last_slot=dt.date(2024, 5, 9)) is None
    assert is_due(tokyo, utc(2024, 5, 9, 23, 0), last_slot=dt.date(2024, 5, 9)) == dt.date(2024, 5, 10)


def test_a_recorded_slot_newer_than_the_open_one_owes_nothing() -> None:
    """A clock that stepped backwards must not re-send; only a newer slot is owed."""
    assert is_due(reader(hour=8), utc(2024, 5, 10, 9), last_slot=dt.date(2024, 5, 11)) is None


# --- first digest -----------------------------------------------------------------


def test_first_time_reader_after_the_hour_gets_todays_slot_at_once() -> None:
    """Documented rule: the open slot is owed to a reader never served."""
    assert is_due(reader(hour=8), utc(2024, 5, 10, 10), last_slot=None) == dt.date(2024, 5, 10)


def test_first_time_reader_before_the_hour_gets_yesterdays_slot_then_todays() -> None:
    sent = dispatch(reader(hour=8), utc(2024, 5, 10, 7), utc(2024, 5, 11, 7), dt.timedelta(minutes=5))
    assert sent == [(dt.date(2024, 5, 9), utc(2024, 5, 10, 7)), (dt.date(2024, 5, 10), utc(2024, 5, 10, 8))]


# --- weekly -------------------------------------------------------------------------


def test_weekly_reader_slots_are_only_their_weekday() -> None:
    bob = reader("weekly:fri", hour=7, timezone="America/New_York")
    # Friday 2024-05-10, 07:00 EDT = 11:00 UTC.
    assert current_slot(bob, utc(2024, 5, 10, 10, 59)) == dt.date(2024, 5, 3)
    assert current_slot(bob, utc(2024, 5, 10, 11, 0)) == dt.date(2024, 5, 10)
    for day in range(11, 17):  # Saturday to Thursday: still last Friday's slot
        assert current_slot(bob, utc(2024, 5, day, 12)) == dt.date(2024, 5, 10)


def test_weekly_wednesday_after_a_sent_friday_is_not_due_and_next_friday_is() -> None:
    bob = reader("weekly:fri", hour=7, timezone="America/New_York")
    friday = dt.date(2024, 5, 10)
    assert is_due(bob, utc(2024, 5, 15, 15), last_slot=friday) is None  # Wednesday
    assert is_due(bob, utc(2024, 5, 17, 10, 59), last_slot=friday) is None
    assert is_due(bob, utc(2024, 5, 17, 11), last_slot=friday) == dt.date(2024, 5, 17)


def test_weekly_dispatcher_over_a_month_sends_once_each_friday_across_the_dst_change() -> None:
    """US DST ended 2024-11-03: 07:00 is 11:00 UTC before and 12:00 UTC after."""
    bob = reader("weekly:fri", hour=7, timezone="America/New_York")
    sent = dispatch(bob, utc(2024, 10, 19), utc(2024, 11, 16), dt.timedelta(minutes=10),
                    last_slot=dt.date(2024, 10, 18))
    assert sent == [
        (dt.date(2024, 10, 25), utc(2024, 10, 25, 11)),
        (dt.date(2024, 11, 1), utc(2024, 11, 1, 11)),
        (dt.date(2024, 11, 8), utc(2024, 11, 8, 12)),
        (dt.date(2024, 11, 15), utc(2024, 11, 15, 12)),
    ]


# --- daylight saving in Europe/Berlin -------------------------------------------------

# (local date, send hour) -> the UTC instant that slot opens.
BERLIN_INSTANTS = {
    # Spring forward 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    (dt.date(2024, 3, 30), 2): utc(2024, 3, 30, 1),
    (dt.date(2024, 3, 30), 3): utc(2024, 3, 30, 2),
    (dt.date(2024, 3, 30), 8): utc(2024, 3, 30, 7),
    (dt.date(2024, 3, 31), 2): utc(2024, 3, 31, 1),  # 02:00 does not exist: first instant after the gap
    (dt.date(2024, 3, 31), 3): utc(2024, 3, 31, 1),  # 03:00 CEST, the same instant
    (dt.date(2024, 3, 31), 8): utc(2024, 3, 31, 6),
    (dt.date(2024, 4, 1), 2): utc(2024, 4, 1, 0),
    (dt.date(2024, 4, 1), 3): utc(2024, 4, 1, 1),
    (dt.date(2024, 4, 1), 8): utc(2024, 4, 1, 6),
    # Fall back 2024-10-27: 03:00 CEST goes back to 02:00 CET (01:00 UTC).
    (dt.date(2024, 10, 26), 2): utc(2024, 10, 26, 0),
    (dt.date(2024, 10, 26), 3): utc(2024, 10, 26, 1),
    (dt.date(2024, 10, 26), 8): utc(2024, 10, 26, 6),
    (dt.date(2024, 10, 27), 2): utc(2024, 10, 27, 0),  # the FIRST 02:00 (CEST), not the repeat at 01:00 UTC
    (dt.date(2024, 10, 27), 3): utc(2024, 10, 27, 2),  # 03:00 CET
    (dt.date(2024, 10, 27), 8): utc(2024, 10, 27, 7),
    (dt.date(2024, 10, 28), 2): utc(2024, 10, 28, 1),
    (dt.date(2024, 10, 28), 3): utc(2024, 10, 28, 2),
    (dt.date(2024, 10, 28), 8): utc(2024, 10, 28, 7),
}


@pytest.mark.parametrize(("slot", "hour"), sorted(BERLIN_INSTANTS))
def test_berlin_send_instants(slot: dt.date, hour: int) -> None:
    assert send_instant(slot, hour, BERLIN) == BERLIN_INSTANTS[(slot, hour)]


@pytest.mark.parametrize("change", [dt.date(2024, 3, 31), dt.date(2024, 10, 27)], ids=["spring", "autumn"])
@pytest.mark.parametrize("hour", [2, 3, 8])
def test_berlin_dispatcher_every_5_minutes_sends_one_digest_per_local_day(change: dt.date, hour: int) -> None:
    days = [change - dt.timedelta(days=1), change, change + dt.timedelta(days=1)]
    start = local(BERLIN, *days[0].timetuple()[:3]).astimezone(UTC)
    end = local(BERLIN, *(days[-1] + dt.timedelta(days=1)).timetuple()[:3]).astimezone(UTC)
    ada = reader(hour=hour, timezone=BERLIN)

    sent = dispatch(ada, start, end, dt.timedelta(minutes=5), last_slot=days[0] - dt.timedelta(days=1))

    assert [slot for slot, _ in sent] == days  # exactly one per local day, none skipped or doubled
    assert [tick for _, tick in sent] == [BERLIN_INSTANTS[(day, hour)] for day in days]
    tz = zoneinfo.ZoneInfo(BERLIN)
    assert [tick.astimezone(tz).date() for _, tick in sent] == days  # each arrives on its own local day


def test_berlin_repeated_hour_does_not_send_twice() -> None:
    """At the second 02:00 (01:00 UTC) the 02:00 slot of Oct 27 is already recorded."""
    ada = reader(hour=2, timezone=BERLIN)
    first = is_due(ada, utc(2024, 10, 27, 0, 0), last_slot=dt.date(2024, 10, 26))
    assert first == dt.date(2024, 10, 27)
    assert is_due(ada, utc(2024, 10, 27, 1, 0), last_slot=first) is None
    assert is_due(ada, utc(2024, 10, 27, 1, 59), last_slot=first) is None


def test_gap_at_midnight_opens_at_the_first_instant_after_it() -> None:
    """Brazil began DST at 00:00 on 2018-11-04: the clock went from 23:59:59 to 01:00."""
    assert send_instant(dt.date(2018, 11, 4), 0, "America/Sao_Paulo") == utc(2018, 11, 4, 3)  # 01:00 -02


def test_a_skipped_calendar_day_is_still_one_slot() -> None:
    """Samoa skipped 2011-12-30; its slot opens when the clock lands on Dec 31 00:00."""
    apia = reader(hour=8, timezone="Pacific/Apia")
    assert send_instant(dt.date(2011, 12, 30), 8, "Pacific/Apia") == utc(2011, 12, 30, 10)
    sent = dispatch(apia, utc(2011, 12, 29), utc(2011, 12, 31, 12), dt.timedelta(minutes=10),
                    last_slot=dt.date(2011, 12, 28))
    assert [slot for slot, _ in sent] == [dt.date(2011, 12, 29), dt.date(2011, 12, 30), dt.date(2011, 12, 31)]


def test_a_skipped_calendar_day_with_hour_0_collapses_into_the_next() -> None:
    """Dec 30 and Dec 31 at 00:00 open at the same instant in Apia: one digest, the newer slot."""
    opens = send_instant(dt.date(2011, 12, 31), 0, "Pacific/Apia")
    assert send_instant(dt.date(2011, 12, 30), 0, "Pacific/Apia") == opens == utc(2011, 12, 30, 10)
    apia = reader(hour=0, timezone="Pacific/Apia")  # until Dec 31 23:00 local (+14)
    sent = dispatch(apia, utc(2011, 12, 29), utc(2011, 12, 31, 9), dt.timedelta(minutes=10),
                    last_slot=dt.date(2011, 12, 28))
    assert [slot for slot, _ in sent] == [dt.date(2011, 12, 29), dt.date(2011, 12, 31)]


# --- catch-up -------------------------------------------------------------------------


def test_catch_up_after_a_three_day_outage_sends_one_digest_not_three() -> None:
    ada = reader(hour=8, timezone=BERLIN)
    step = dt.timedelta(minutes=5)
    before = dispatch(ada, utc(2024, 5, 1), utc(2024, 5, 2), step, last_slot=dt.date(2024, 4, 30))
    assert [slot for slot, _ in before] == [dt.date(2024, 5, 1)]
    # Down from May 2 to May 4 12:00 UTC: the May 2, 3 and 4 slots all opened meanwhile.
    after = dispatch(ada, utc(2024, 5, 4, 12), utc(2024, 5, 6), step, last_slot=before[-1][0])
    assert after == [(dt.date(2024, 5, 4), utc(2024, 5, 4, 12)), (dt.date(2024, 5, 5), utc(2024, 5, 5, 6))]


# --- next_send_time ---------------------------------------------------------------------


def test_next_send_time_is_the_next_opening() -> None:
    ada = reader(hour=8)
    assert next_send_time(ada, utc(2024, 5, 10, 7, 59)) == utc(2024, 5, 10, 8)
    assert next_send_time(ada, utc(2024, 5, 10, 8, 0)) == utc(2024, 5, 11, 8)  # strictly after now
    bob = reader("weekly:fri", hour=7, timezone="America/New_York")
    assert next_send_time(bob, utc(2024, 5, 15, 15)) == utc(2024, 5, 17, 11)


def test_next_send_time_across_spring_forward() -> None:
    ada = reader(hour=2, timezone=BERLIN)
    assert next_send_time(ada, utc(2024, 3, 30, 22)) == utc(2024, 3, 31, 1)
    assert next_send_time(ada, utc(2024, 3, 31, 1)) == utc(2024, 4, 1, 0)


def test_next_send_time_accepts_any_aware_now_and_returns_utc() -> None:
    ada = reader(hour=8)
    when = next_send_time(ada, local(BERLIN, 2024, 5, 10, 9, 30))  # 07:30 UTC
    assert when == utc(2024, 5, 10, 8) and when.tzinfo is UTC


# --- bad input ---------------------------------------------------------------------------


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(reader(), dt.datetime(2024, 5, 10, 9), None)


@pytest.mark.parametrize(("field", "who"), [
    ("cadence", reader(cadence="fortnightly")),
    ("cadence", reader(cadence="weekly:someday")),
    ("timezone", reader(timezone="Mars/Olympus_Mons")),
    ("hour", reader(hour=24)),
])
def test_bad_reader_values_name_the_field(field: str, who: Subscriber) -> None:
    with pytest.raises(ValidationError) as caught:
        is_due(who, utc(2024, 5, 10), None)
    assert caught.value.field == field


def test_cadence_weekday() -> None:
    assert cadence_weekday("daily") is None
    assert cadence_weekday("weekly:mon") == 0
    assert cadence_weekday("weekly:sun") == 6


# --- properties over every zone -------------------------------------------------------------

def exists(zone: str, day: dt.date) -> bool:
    """Whether the zone's wall clock ever showed ``day`` (Pacific/Apia never showed 2011-12-30)."""
    return send_instant(day, 0, zone).astimezone(zoneinfo.ZoneInfo(zone)).date() == day


starts = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2037, 1, 1), timezones=st.just(UTC))


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), start=starts)
def test_property_daily_dispatcher_sends_each_local_day_exactly_once(zone: str, hour: int, start: dt.datetime) -> None:
    step = dt.timedelta(minutes=10)
    end = start + dt.timedelta(days=10)
    who = reader(hour=hour, timezone=zone)

    sent = dispatch(who, start, end, step)

    slots = [slot for slot, _ in sent]
    assert slots[0] == current_slot(who, start) and sent[0][1] == start  # first digest at once
    assert all(a < b for a, b in itertools.pairwise(slots))  # strictly increasing
    for a, b in itertools.pairwise(slots):  # none skipped, except a day the zone itself skipped
        assert all(not exists(zone, a + dt.timedelta(days=k)) for k in range(1, (b - a).days))
    assert slots[-1] == current_slot(who, end - step)  # nothing left owed at the end
    assert 9 <= len(slots) <= 12  # 10 days: 10 or 11, one fewer if the zone skipped a day
    for slot, tick in sent[1:]:  # every later one goes on the first tick after its slot opens
        assert tick - step < send_instant(slot, hour, zone) <= tick


@settings(max_examples=30, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), day=st.sampled_from(("mon", "wed", "sun")), start=starts)
def test_property_weekly_dispatcher_sends_once_a_week_on_the_weekday(zone: str, hour: int, day: str,
                                                                      start: dt.datetime) -> None:
    who = reader(f"weekly:{day}", hour=hour, timezone=zone)
    sent = dispatch(who, start, start + dt.timedelta(days=35), dt.timedelta(hours=1))
    slots = [slot for slot, _ in sent]
    assert {slot.weekday() for slot in slots} == {cadence_weekday(who.cadence)}
    assert all(b - a == dt.timedelta(days=7) for a, b in itertools.pairwise(slots))
    assert 5 <= len(slots) <= 6


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23),
       day=st.dates(min_value=dt.date(1970, 1, 2), max_value=dt.date(2037, 12, 31)))
def test_property_send_instant_is_the_first_instant_at_or_past_the_hour(zone: str, hour: int, day: dt.date) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    target = dt.datetime.combine(day, dt.time(hour))
    opens = send_instant(day, hour, zone)

    def wall(instant: dt.datetime) -> dt.datetime:
        return instant.astimezone(tz).replace(tzinfo=None)

    assert wall(opens) >= target
    assert wall(opens - dt.timedelta(seconds=1)) < target
    # No earlier instant in the previous day reached the target either (coarse scan).
    assert all(wall(opens - dt.timedelta(minutes=15 * k)) < target for k in range(1, 4 * 26))
    assert send_instant(day + dt.timedelta(days=1), hour, zone) > opens
