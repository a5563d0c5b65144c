"""Process-wide switches that sections in several threads share safely.

Some settings exist once per process (the cycle collector's switch, the number of BLAS
threads), yet matching runs in several threads at once (the web app's workers, the
daemon's jobs). Setting and restoring them per section is wrong when sections overlap:
thread A saves "on" and turns off, thread B saves "off", A restores "on", B restores "off",
and the process keeps B's "off" for good. So sections are counted under a lock: the first
to begin changes the setting (and keeps what ``begin`` returns), the last to end restores
it with that; sections that overlap, in any order, share the change.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_every: weakref.WeakSet[SharedSwitch] = weakref.WeakSet()


class SharedSwitch:
    """``with switch():`` a section during which ``begin()``'s change holds (see the module)."""

    def __init__(self, begin: Callable[[], Any], end: Callable[[Any], None]):
        self._begin = begin
        self._end = end
        self._lock = threading.Lock()
        self._depth = 0  # sections running now, in any thread
        self._kept: Any = None  # what the first section's begin() returned
        _every.add(self)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._kept = self._begin()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    kept, self._kept = self._kept, None
                    self._end(kept)

    def _after_fork_in_child(self) -> None:
        # Only the forking thread lives on in a child (match.split): a lock another thread
        # held at the fork would never be released, so the child starts with its own.
        self._lock = threading.Lock()


def _after_fork_in_child() -> None:
    for switch in list(_every):
        switch._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
