"""Real processes doing the same thing at the same moment, for the races threads cannot show.

Each worker is a fresh interpreter (spawn) that imports paperwire once, then for each
round waits at a barrier with the others and calls ``target(arg)``: the rounds start
as close together as the OS allows, without paying an interpreter start per round.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Callable, Sequence


def _worker(target: Callable[[str], None], args: Sequence[str], barrier, results) -> None:
    for arg in args:
        barrier.wait(timeout=120)
        try:
            target(arg)
            results.put("ok")
        except BaseException as exc:  # anything at all is the answer we report
            results.put(f"{type(exc).__name__}: {exc}")


def at_once(target: Callable[[str], None], args: Sequence[str], *, processes: int = 4) -> list[str]:
    """``target(arg)`` in ``processes`` processes at once, for each arg in turn; "ok" or the error of each call."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_worker, args=(target, list(args), barrier, results), daemon=True)
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        return [results.get(timeout=300) for _ in range(processes * len(args))]
    finally:
        for worker in workers:
            worker.join(timeout=60)


# -- targets (module level, so a spawned process can import them) ---------------------


def open_store(url: str) -> None:
    from paperwire.store import Store

    Store(url).close()


def start_scheduler(url: str) -> None:
    """What ``paperwire schedule`` does at start: open the store, make the job store, add the jobs."""
    from paperwire import schedule
    from paperwire.config import Settings
    from paperwire.store import Store

    store = Store(url)
    try:
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)  # no job runs in this test
        scheduler = schedule.build_scheduler(store, Settings(db=url), start_at=later)
        scheduler.start(paused=True)
        scheduler.shutdown()
    finally:
        store.close()
