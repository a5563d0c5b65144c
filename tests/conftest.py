"""Shared fixtures: the real seed listing, fresh databases (SQLite, or PostgreSQL: tests/databases.py), the CLI runner."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from paperwire import sources
from paperwire.models import Listing, Paper
from paperwire.store import Store

from .databases import DATABASE_FIXTURES, POSTGRESQL, SQLITE, TEST_DB_ENV, Databases

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_f1d956a196093e66.txt"
DATA = ROOT / "tests" / "data"
# The day the tests pretend it is, so year inference never depends on the real clock.
TODAY = dt.date(2024, 11, 26)


@pytest.fixture(scope="session", autouse=True)
def _started_processes_match_by_words_only():
    """paperwire processes the tests start (``python -m paperwire ...`` with this environment) run
    with ``relevance.embedder = "off"``: each would load the model and embed the seed listing
    anew (5-15 s each on this machine; about +45 s for the five slowest such tests). In-process runs
    (``run_cli``, ``Settings()``, the web app) keep the default, the real model, loaded once per
    session and remembering texts it embedded, so they cost little. tests/test_embeddings.py
    covers the embedding step; tests/test_package.py runs the installed wheel with the model on."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")
    yield
    patch.undo()


@pytest.fixture(scope="session")
def seed_listing() -> Listing:
    (listing,) = sources.read_path(SEED, today=TODAY)
    return listing


@pytest.fixture(scope="session")
def seed_papers(seed_listing: Listing) -> list[Paper]:
    """The 70 seed papers in listing order (index = rank - 1)."""
    return seed_listing.papers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db-backend", choices=[SQLITE, POSTGRESQL], default=SQLITE,
                     help=f"the database the tests use: an SQLite file each (default), or with postgresql a new "
                          f"database each on the server {TEST_DB_ENV} names; then only the tests that use a "
                          f"database run (tests/databases.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): about SQLite itself (its file, WAL); "
                                       "skipped in the PostgreSQL half")
    try:
        config.databases = Databases.from_environment(config.getoption("--db-backend"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.postgres = None  # tests about PostgreSQL itself: the `postgres` fixture
    if config.databases.backend == POSTGRESQL:
        config.postgres = config.databases
    elif os.environ.get(TEST_DB_ENV):
        config.postgres = Databases.from_environment(POSTGRESQL)


def pytest_unconfigure(config: pytest.Config) -> None:
    for databases in {getattr(config, "databases", None), getattr(config, "postgres", None)} - {None}:
        databases.close()


def pytest_report_header(config: pytest.Config) -> str:
    return config.databases.describe()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL half runs the tests that use a database (the SQLite half ran the others),
    and skips those about SQLite itself."""
    if config.databases.backend == SQLITE:
        return
    kept, dropped = [], []
    for item in items:
        (kept if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())) else dropped).append(item)
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {marker.args[0] if marker.args else ''}"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def databases(request: pytest.FixtureRequest) -> Databases:
    """Makes and drops databases; for fixtures wider than one test (``new_db`` is per test)."""
    return request.config.databases


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Databases:
    """For tests about PostgreSQL itself, whichever half runs: makes and drops PostgreSQL databases
    on the server of PAPERWIRE_TEST_DB (the test is skipped without it). Such a test runs once:
    in the SQLite half, since the PostgreSQL half keeps only the tests of DATABASE_FIXTURES."""
    if request.config.postgres is None:
        pytest.skip(f"needs a PostgreSQL server: set {TEST_DB_ENV} (README, Development)")
    return request.config.postgres


@pytest.fixture
def new_db(databases: Databases):
    """``new_db(tmp_path / "name.sqlite3")``: the URL of a new empty database (that SQLite file, or
    a new PostgreSQL database in the PostgreSQL half), dropped after the test."""
    made: list[str] = []

    def new(sqlite_file: Path) -> str:
        made.append(databases.new(sqlite_file))
        return made[-1]

    yield new
    for url in made:
        databases.drop(url)


@pytest.fixture
def db_url(new_db, tmp_path: Path) -> str:
    return new_db(tmp_path / "paperwire.sqlite3")


@pytest.fixture
def store(db_url: str) -> Store:
    opened = Store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Invoke ``paperwire --db <fresh db> ARGS``; returns click's Result (stdout and stderr apart)."""
    from paperwire.cli import cli

    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("PAPERWIRE_")]:
        monkeypatch.delenv(name)

    def run(*args: str, db: bool = True):
        runner = CliRunner()
        return runner.invoke(cli, (["--db", db_url] if db else []) + [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory):
    """A fresh 2048-bit RSA key (openssl): its private PEM path and its public key in base64,
    as a DKIM DNS record carries it."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    return private, base64.b64encode(public)
