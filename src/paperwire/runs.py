"""Whether a run is alive: the heartbeat a live run beats, and the one rule that calls a run dead.

A run row records its host, pid and last heartbeat. A dispatch run settles the claims
of dead runs by this rule, and ``paperwire status`` shows such runs as dead by the
same rule, so the two never disagree.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 30.0  # seconds between run heartbeats, for as long as a run lives


def run_is_dead(run: Mapping[str, Any], lease: dt.timedelta, now: dt.datetime) -> bool:
    """Finished, or its process is gone (same host), or no heartbeat for longer than ``lease``.

    ``run`` has the runs table's ``finished_at``, ``host``, ``pid`` and ``heartbeat_at``.
    """
    if run["finished_at"] is not None:
        return True
    if run["host"] == socket.gethostname()[:255] and run["pid"] != os.getpid():
        try:
            os.kill(run["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return now - run["heartbeat_at"] > lease


class Heartbeat:
    """Beats the run's heartbeat from a thread for as long as the run lives, also while
    it waits on a rate limit, a retry or a slow source, so no one takes it for dead."""

    def __init__(self, store, run_id: str):
        self._store, self._run_id = store, run_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_EVERY):
            try:
                self._store.heartbeat(self._run_id)
            except Exception:  # a locked database now and then must not end the run
                log.debug("heartbeat of run %s failed", self._run_id, exc_info=True)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
