"""redact.url: the one way a URL from the settings is shown."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from paperwire import redact


@pytest.mark.parametrize("url, shown", [
    ("sqlite:///out/paperwire.sqlite3", "sqlite:///out/paperwire.sqlite3"),
    ("postgresql+psycopg://root:pw@db.example:5432/pw", "postgresql+psycopg://root:***@db.example:5432/pw"),
    ("postgresql+psycopg:///pw?host=/var/run/postgresql&password=pw",
     "postgresql+psycopg:///pw?host=/var/run/postgresql&password=***"),
    ("mysql://u:p%40ss@h/d?ssl_key=/k.pem&Token=t&a=1&a=2", "mysql://u:***@h/d?ssl_key=/k.pem&Token=***&a=1&a=2"),
    ("postgresql://root:pw@h:notaport/db?password=pw&a=b", "postgresql://root:***@h:notaport/db?password=***&a=b"),
    ("seeds/daily", "seeds/daily"),
])
def test_url_masks_passwords_and_secret_query_values(url, shown):
    assert redact.url(url) == shown


@given(secret=st.text(min_size=1), port=st.one_of(st.just(""), st.just(":5432"), st.just(":port")))
def test_no_password_survives_whatever_it_holds(secret, port):
    """Any password, %-encoded as a URL needs it, in the user part and the query: never shown."""
    password = quote("Pa55" + secret, safe="")
    url = f"postgresql+psycopg://root:{password}@db.example{port}/pw?sslpassword={password}&application_name=x"
    shown = redact.url(url)
    assert "Pa55" not in shown and "root:***@db.example" in shown and "application_name=x" in shown
