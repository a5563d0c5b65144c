"""The one rate-limit rule (ratelimit.RateLimit), kept in memory (SMTP pacing) and in the
database (the web's limits, where several processes share the count)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperwire.ratelimit import RateLimit
from paperwire.store import Store
from paperwire.web.ratelimit import StoredRateLimit

rules = st.lists(st.tuples(st.integers(1, 5), st.sampled_from([0.5, 1.0, 7.0, 60.0])), min_size=1, max_size=3)
asks = st.lists(st.floats(0, 200, allow_nan=False), max_size=40)


@given(rules, asks)
def test_reserved_slots_never_break_a_rule(rules: list[tuple[int, float]], asks: list[float]) -> None:
    limit = RateLimit(*rules)
    slots = [limit.reserve(at) for at in sorted(asks)]
    assert all(slot >= at for slot, at in zip(slots, sorted(asks)))
    for most, window in rules:
        for i, start in enumerate(slots):
            assert sum(1 for s in slots[i:] if s < start + window) <= most


def test_earliest_from_events_kept_elsewhere() -> None:
    hourly = RateLimit((3, 3600.0))
    assert hourly.earliest(100.0, [10.0, 20.0]) == 100.0  # a slot is free
    assert hourly.earliest(100.0, [10.0, 20.0, 30.0]) == 3610.0  # when the oldest of the last 3 turns an hour old
    assert hourly.earliest(3610.0, [10.0, 20.0, 30.0]) == 3610.0  # exactly an hour old no longer counts


def test_noted_events_count_like_reserved_ones() -> None:
    hourly = RateLimit((2, 3600.0))
    hourly.note([500.0, 100.0])  # another process sent these; any order
    assert hourly.reserve(1000.0) == 3700.0


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        RateLimit((0, 60.0))


def test_the_stored_limit_is_shared_by_processes_on_one_database(db_url: str) -> None:
    """Two stores on one file stand for two `serve` processes: their hits add up."""
    now = [1000.0]
    first, second = Store(db_url), Store(db_url)
    try:
        limits = [StoredRateLimit(store, "subscribe", 3, secret="s", window=60.0, clock=lambda: now[0])
                  for store in (first, second)]
        assert [limits[0].hit("1.2.3.4"), limits[1].hit("1.2.3.4"), limits[0].hit("1.2.3.4")] == [None] * 3
        assert limits[1].hit("1.2.3.4") == 60.0  # refused, and not counted
        assert limits[1].hit("5.6.7.8") is None  # another key has its own count
        now[0] = 1060.0
        assert limits[1].hit("1.2.3.4") is None  # the first hit is a window old
    finally:
        first.close()
        second.close()
