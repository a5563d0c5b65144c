"""The one rate-limit rule: at most ``limit`` events in any ``window`` seconds.

SMTP pacing and the web's request limits are the same job with different answers to
"too soon": the mail pool waits for the next free slot (``reserve``), the web refuses
and says when to come back (``StoredRateLimit`` in web/ratelimit.py, whose events live
in the database so every `serve` process shares them). Both ask ``RateLimit.earliest``.

A sliding log, not a token bucket: a bucket of size N lets 2N through across the edge of
its refill, the log never more than N in any window. Even spacing is the same rule with
a limit of 1: "2 per second, no burst" is ``(1, 0.5)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence


class RateLimit:
    """Every ``(limit, window)`` rule holds at once over the same events.

    The events can be kept here (``reserve``, ``note``: the newest few, as many as the
    largest limit) or elsewhere (``earliest(at, events)``: a database's rows).
    """

    def __init__(self, *rules: tuple[int, float]):
        for limit, window in rules:
            if limit < 1 or window <= 0:
                raise ValueError(f"a rate limit needs limit >= 1 and window > 0, not {limit} in {window} s")
        self.rules = rules
        self._events: deque[float] = deque(maxlen=max((limit for limit, _ in rules), default=0))

    def earliest(self, at: float, events: Sequence[float] | None = None) -> float:
        """The first moment from ``at`` on when one more event keeps every rule.

        ``events``: the times of the events so far, oldest first (default: those kept here).
        An event exactly ``window`` seconds old no longer counts.
        """
        events = self._events if events is None else events
        slot = at
        for limit, window in self.rules:
            if len(events) >= limit:
                slot = max(slot, events[-limit] + window)
        return slot

    def reserve(self, at: float) -> float:
        """Claim the next free moment from ``at`` on and count it; returns that moment.
        Slots only move forward, so callers on one event loop need no lock."""
        slot = self.earliest(at)
        self._events.append(slot)
        return slot

    def note(self, times: Iterable[float]) -> None:
        """Count events this limiter did not hand out (earlier runs, other processes)."""
        self._events = deque(sorted([*self._events, *times]), maxlen=self._events.maxlen)
