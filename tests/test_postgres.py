"""PostgreSQL as a user meets it: the driver missing, a role with a password, the password
kept out of every line paperwire prints. (The rest of the suite runs on PostgreSQL too: tests/databases.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import paperwire

from .conftest import SEED

SECRET = "Pg-s3cret-" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://paperwire:{SECRET}@127.0.0.1:9/paperwire",
    f"postgresql://paperwire:{SECRET}@127.0.0.1:9/paperwire",  # SQLAlchemy's default PostgreSQL driver is psycopg
])
def test_a_postgresql_url_without_psycopg_says_what_to_install(run_cli, monkeypatch, url):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed: importing it fails
    result = run_cli("--db", url, "status", db=False)
    assert result.exit_code == 1 and "Traceback" not in result.stderr and SECRET not in result.stderr
    assert "pip install 'paperwire[postgres]'" in result.stderr
    assert result.stderr.startswith(f"Error: cannot use database {url.replace(SECRET, '***')}: its driver psycopg")


@pytest.fixture
def own_role(postgres, tmp_path: Path):
    """(URL with the password, URL without it) of a new database owned by a new login role with a password."""
    databases = postgres
    role = f"pwtest_role_{uuid.uuid4().hex[:12]}"
    url = databases.new(tmp_path / "unused.sqlite3")
    databases.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{SECRET}'")
    try:
        databases.execute(f'ALTER DATABASE "{make_url(url).database}" OWNER TO "{role}"')
        as_role = make_url(url).set(username=role, password=SECRET)
        yield as_role.render_as_string(hide_password=False), as_role._replace(password=None).render_as_string()
    finally:
        databases.drop(url)
        databases.execute(f'DROP ROLE IF EXISTS "{role}"')


def _paperwire(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paperwire", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_password_comes_from_the_environment_and_is_never_printed(own_role, tmp_path: Path):
    with_password, without = own_role
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERWIRE_", "PG"))}
    env.update(PYTHONPATH=str(Path(paperwire.__file__).resolve().parents[1]), PAPERWIRE_RELEVANCE_EMBEDDER="off")
    # The whole URL in PAPERWIRE_DB: the migrations run on first open, as on SQLite.
    ingest = _paperwire("ingest", str(SEED), env={**env, "PAPERWIRE_DB": with_password}, cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert f"Listings in {with_password.replace(SECRET, '***')}:" in ingest.stdout
    # Or the URL without it, and libpq's PGPASSWORD (or ~/.pgpass) for the password.
    status = _paperwire("status", "--json", env={**env, "PAPERWIRE_DB": without, "PGPASSWORD": SECRET}, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    # A wrong password: an error naming the database, without the password tried.
    wrong = with_password.replace(SECRET, "Wrong-" + SECRET)
    refused = _paperwire("status", env={**env, "PAPERWIRE_DB": wrong}, cwd=tmp_path)
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr
    assert refused.stderr.startswith(f"Error: cannot open database {with_password.replace(SECRET, '***')}: ")
    for done in (ingest, status, refused):
        assert SECRET not in done.stdout + done.stderr and "Traceback" not in done.stderr
