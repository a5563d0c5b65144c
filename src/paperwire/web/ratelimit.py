"""The web's request limits: ``ratelimit.RateLimit``'s rule, its events kept in the database.

Every `paperwire serve` process on one database shares the count, so running several
behind a balancer does not multiply the limit. Keys (client addresses, emails) are
stored only as a keyed hash: the table says nothing about who tried.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from ..ratelimit import RateLimit
from ..store import Store


class StoredRateLimit:
    """At most ``limit`` hits per key in any ``window`` seconds, counted in ``store``."""

    def __init__(self, store: Store, bucket: str, limit: int, *, secret: str, window: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.bucket = bucket
        self.rule = RateLimit((limit, window))
        self.clock = clock  # wall-clock seconds: processes (and restarts) must agree on it
        self._secret = hashlib.sha256(b"paperwire.ratelimit:" + secret.encode()).digest()

    def hit(self, key: str) -> float | None:
        """Count one hit; None when allowed, else the seconds until the next one would be."""
        hashed = hmac.new(self._secret, f"{self.bucket}:{key}".encode(), hashlib.sha256).hexdigest()[:64]
        return self.store.count_hit(self.bucket, hashed, rule=self.rule, now=self.clock())
