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


@pytest.mark.parametrize("url, shown", [
    ("https://huggingface.co/api/daily_papers", "https://huggingface.co/api/daily_papers"),
    ("https://u:pw@h.example/a%20b?api_key=K&sig=S#frag", "https://h.example/a%20b?…"),
    ("HTTP://h.example/x?X-Amz-Signature=S", "http://h.example/x?…"),
])
def test_source_urls_lose_credentials_and_the_whole_query(url, shown):
    """A listing source's query can hold a key under any name (api_key, sig, X-Amz-Signature)."""
    assert redact.url(url) == shown


def test_scrub_takes_a_source_url_and_its_secrets_out_of_an_error_text():
    url = "https://u:pw@h.example/feed?api_key=K3Y"
    text = f"connect failed for {url} (query api_key=K3Y, user u:pw)"
    assert redact.scrub(text, url) == "connect failed for https://h.example/feed?… (query …, user …)"


@given(secret=st.text(min_size=1), port=st.one_of(st.just(""), st.just(":5432"), st.just(":port")))
def test_no_password_survives_whatever_it_holds(secret, port):
    """Any password, %-encoded as a URL needs it, in the user part and the query: never shown."""
    password = quote("Pa55" + secret, safe="")
    url = f"postgresql+psycopg://root:{password}@db.example{port}/pw?sslpassword={password}&application_name=x"
    shown = redact.url(url)
    assert "Pa55" not in shown and "root:***@db.example" in shown and "application_name=x" in shown
