"""Fresh databases for the tests: an SQLite file, or in the PostgreSQL half a new PostgreSQL database.

The suite runs once per backend (``make test`` runs both halves):

- ``pytest`` (the SQLite half): every test that needs a database gets an SQLite file in its
  temporary folder, as a user's default.
- ``pytest --db-backend=postgresql`` (the PostgreSQL half): the tests that use a database
  (those whose fixtures include one of ``DATABASE_FIXTURES``) run again, each on a new
  database with a random name, made through the server named by ``PAPERWIRE_TEST_DB`` (an
  SQLAlchemy URL of a database there the role may connect to and CREATE DATABASE from) and
  dropped ``WITH (FORCE)`` after the test. The other tests are deselected: they touch no
  database, and the SQLite half ran them already.

A test about PostgreSQL itself asks for the ``postgres`` fixture instead: a PostgreSQL server
in either half when ``PAPERWIRE_TEST_DB`` is set (skipped otherwise), run once, in the SQLite half.

An empty database, as on SQLite: the migrations run on first open, as they do for a user.
Measured here: CREATE DATABASE ~20 ms, the migrations ~75 ms, so a template database with
the schema in it would save little.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from paperwire import redact

TEST_DB_ENV = "PAPERWIRE_TEST_DB"
SQLITE, POSTGRESQL = "sqlite", "postgresql"
# A test that asks for one of these (itself or through another fixture) uses a database.
DATABASE_FIXTURES = {"db_url", "new_db", "databases"}
_PREFIX = "pwtest_"  # the names of the databases the tests make, so a leftover is easy to spot


def sqlite_url(file: Path) -> str:
    """The URL of an SQLite file: for a test about SQLite itself, or a database made outside any test."""
    return f"sqlite:///{file}"


class Databases:
    """Makes and drops the tests' databases for one backend."""

    def __init__(self, backend: str, server_url: str | None = None):
        self.backend = backend
        self._server = make_url(server_url) if server_url else None
        self._admin: sa.Engine | None = None
        if backend == POSTGRESQL:
            if self._server is None or self._server.get_backend_name() != POSTGRESQL:
                raise ValueError(f"--db-backend=postgresql needs {TEST_DB_ENV}, an SQLAlchemy URL of a PostgreSQL "
                                 "server database, e.g. postgresql+psycopg://paperwire:SECRET@127.0.0.1:5432/postgres")
            self._admin = sa.create_engine(self._server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    @classmethod
    def from_environment(cls, backend: str) -> Databases:
        return cls(backend, os.environ.get(TEST_DB_ENV) or None)

    def describe(self) -> str:
        if self.backend == SQLITE:
            return "database backend: sqlite (a file per test)"
        return f"database backend: postgresql (a database per test on {redact.url(self._server)})"

    def new(self, sqlite_file: Path) -> str:
        """A URL of an empty database: ``sqlite_file`` on SQLite, a new database on PostgreSQL."""
        if self.backend == SQLITE:
            return sqlite_url(sqlite_file)
        name = f"{_PREFIX}{uuid.uuid4().hex[:20]}"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self._server.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop a database ``new`` made (connections still open to it are ended); SQLite files stay with tmp_path."""
        if self.backend == SQLITE:
            return
        name = make_url(url).database
        assert name and name.startswith(_PREFIX), name
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> None:
        """One statement on the server, outside any transaction (CREATE ROLE, ALTER DATABASE)."""
        assert self._admin is not None, "only on PostgreSQL"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
