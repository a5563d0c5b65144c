"""Engines, migrations and the small helpers every part of the store uses."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.dml import Insert

from .. import __version__, redact
from ..errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_LOCKED_RETRIES = 5  # times a new database's schema is tried again when SQLite says "locked" at once
_CHUNK = 500  # ids per IN (...) clause, well under every database's parameter limit
# The databases whose INSERT takes ON CONFLICT DO NOTHING, and SQLAlchemy's insert() that writes it.
ON_CONFLICT_DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# pg_advisory_xact_lock key taken while the schema changes (any 64-bit number other apps are unlikely to use).
_SCHEMA_LOCK_KEY = 0x70617065727769  # "paperwi"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL needs a lock another process may hold
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed, hide_parameters=True)  # errors quote no values: no address or link secret in logs
    except ImportError as exc:  # SQLAlchemy imports the URL's driver here
        raise StoreError(f"cannot use database {redact.url(parsed)}: {_missing_driver(parsed, exc)}") from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise StoreError(f"cannot use database {redact.url(parsed)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _missing_driver(url: sa.URL, exc: ImportError) -> str:
    """What to install when the driver of ``url`` is missing: for PostgreSQL, paperwire's extra."""
    driver = url.get_driver_name()
    if url.get_backend_name() == "postgresql":
        return (f"its driver {driver} is not installed ({exc}); paperwire's PostgreSQL support (psycopg 3) "
                f"installs with: pip install 'paperwire[postgres]', for a URL postgresql+psycopg://user@host/db")
    return f"its driver {driver} is not installed ({exc})"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the packaged Alembic migrations.

    Safe when several processes open a new database at once: the upgrade runs under
    ``schema_lock``, so one process migrates and the others, waiting on the lock,
    find the schema already there. A database already at ``revision`` takes no lock.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for attempt in range(_LOCKED_RETRIES + 1):
        try:
            if revision == "head" and _at_head(engine, config):
                return
            with schema_lock(engine) as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)  # reads the version again, under the lock
            return
        except sa.exc.OperationalError as exc:
            # SQLite answers "locked" without waiting in a few moments of a new file's life
            # (another process switching it to WAL, or recovering its WAL index): try again.
            if "locked" in str(exc.orig) and attempt < _LOCKED_RETRIES:
                time.sleep(0.1 * (attempt + 1))
                continue
            raise StoreError(f"cannot open database {redact.url(engine.url)}: {exc.orig}") from None


def _at_head(engine: Engine, config: Config) -> bool:
    """Whether the schema is this code's newest; a StoreError if it is one this code does not know."""
    script = ScriptDirectory.from_config(config)
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    unknown = current - {revision.revision for revision in script.walk_revisions()}
    if unknown:  # a newer paperwire migrated it: say so, rather than Alembic's "Can't locate revision"
        raise StoreError(f"database {redact.url(engine.url)} has schema revision {', '.join(sorted(unknown))}, "
                         f"newer than this paperwire ({__version__}) knows (up to {', '.join(script.get_heads())}): "
                         f"a newer paperwire upgraded it; install that version here too "
                         f"(pip install --upgrade paperwire)")
    return current == set(script.get_heads())


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that no other process holds at the same time, for creating or changing tables.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at once (Python's sqlite3
    would otherwise run CREATE TABLE outside any transaction); the others wait for it
    (busy_timeout). PostgreSQL: a transaction-scoped advisory lock; its DDL is
    transactional, so the others see all of the schema or none. Other databases: a plain
    transaction.
    """
    with engine.connect() as connection:
        dialect = engine.dialect.name
        if dialect == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def insert_unless_taken(conn: Connection, table: sa.Table) -> Insert:
    """An INSERT into ``table`` that adds nothing when a unique key of the row is taken
    (``ON CONFLICT DO NOTHING``, on SQLite and PostgreSQL): a key already there is an expected
    answer (a reader already sent this slot), not an error in the server's log and a rolled-back
    transaction. Whether the row went in: add ``.returning(key column)`` and see if a row comes
    back (the rowcount is -1 with psycopg). On other databases a plain INSERT: the caller still
    catches IntegrityError.
    """
    dialect_insert = ON_CONFLICT_DIALECTS.get(conn.dialect.name)
    return dialect_insert(table).on_conflict_do_nothing() if dialect_insert else table.insert()


def _chunks(values: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]

