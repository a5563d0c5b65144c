"""One `paperwire schedule` per database: the lock the running daemon holds, and the wait of the others.

APScheduler supports one scheduler per job store, and two daemons would repeat each other's
work. The daemon that holds the lock runs the jobs; any other waits as a hot standby, trying
the lock every ``STANDBY_POLL`` seconds, and takes over as soon as the holder is gone.

PostgreSQL: a session advisory lock on a connection the daemon keeps open; the server frees it
when that session ends, whichever way the process died. The session is named after the daemon
(``application_name``), so a standby can say who holds it. SQLite: an exclusive ``flock`` on a
file beside the database (``<db file>.schedule.lock``), which the kernel frees when the holder's
process ends; the file says who holds it. Other databases (and SQLite in memory): no lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from .errors import PaperwireError

STANDBY_POLL = 1.0  # seconds between a standby's tries
_KEY = 0x7061706572777363  # pg advisory lock key: "paperwsc"


def _whoami() -> str:
    return f"paperwire schedule pid {os.getpid()} on {socket.gethostname()}"


class AdvisoryLock:
    """PostgreSQL: ``pg_try_advisory_lock`` held by one open session."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is None:
            self._conn = self._engine.connect()
            self._conn.execute(sa.text("SELECT set_config('application_name', :name, false)"),
                               {"name": _whoami()[:63]})
        got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _KEY}).scalar()
        self._conn.commit()  # never left idle in a transaction while holding or waiting
        return bool(got)

    def holder(self) -> str:
        """Who holds the lock, as the holder's session names itself (and from where)."""
        query = sa.text("SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                        "AND l.classid = :high AND l.objid = :low AND l.objsubid = 1")
        with self._engine.connect() as conn:
            row = conn.execute(query, {"high": _KEY >> 32, "low": _KEY & 0xFFFFFFFF}).first()
        if row is None:
            return "nobody (it was just released)"
        where = f" from {row.client_addr}" if row.client_addr else ""
        return f"{row.application_name or 'an unnamed session'}{where}, since {row.backend_start:%Y-%m-%d %H:%M:%S %Z}"

    def still_held(self) -> bool:
        """False when the session holding the lock is gone (the server restarted, say)."""
        try:
            assert self._conn is not None
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            self._conn.commit()
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None


class FileLock:
    """SQLite: an exclusive ``flock`` on a file beside the database."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        import fcntl

        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise PaperwireError(f"cannot open the scheduler lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{_whoami()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S UTC}\n"
                  .encode(), 0)
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"

    def still_held(self) -> bool:
        return True  # the kernel keeps it until this process closes the file

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing frees the flock; the file stays for the next holder
            self._fd = None


class NoLock:
    """Databases with nothing to lock on: every daemon runs (as before this lock existed)."""

    path = None

    def try_acquire(self) -> bool:
        return True

    def holder(self) -> str:
        return "nobody"

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def scheduler_lock(engine: Engine) -> AdvisoryLock | FileLock | NoLock:
    """The lock for the database behind ``engine``."""
    url = make_url(engine.url)
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    if engine.dialect.name == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        return FileLock(database.with_name(database.name + ".schedule.lock"))
    return NoLock()
