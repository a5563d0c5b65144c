"""The web app tells nothing and trusts nothing it should not (issue 12, items 7, 9, 10).

Answer time does not depend on the address; redirects never take their host from the
Host header; the subscribe rate limit counts the real client (X-Forwarded-For only from
configured proxies, also under `paperwire serve`) in the database, shared by processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, strategies as st
from hypothesis import settings as hypothesis_settings

import paperwire
from paperwire.config import _as_networks, load_settings
from paperwire.errors import ConfigError
from paperwire.store import rate_hits
from paperwire.transport import OutboxTransport
from paperwire.web import create_app

from .test_web import BASE, SECRET, Site, make_site
from .ports import free_port

HOSTILE = "evil.example"


@pytest.fixture
def site(new_db, tmp_path: Path):
    made = make_site(new_db, tmp_path)
    yield made
    made.client.close()
    made.store.close()


def _form(site: Site, address: str, client: TestClient | None = None) -> dict:
    client = client or site.client
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
    return {"csrf_token": token, "email": address, "topics": "LLM", "cadence": "daily", "hour": "7",
            "timezone": "UTC", "action": "subscribe"}


# -- item 10: whose address the rate limit counts ---------------------------------------------


def _site_from(new_db, tmp_path: Path, client_host: str, **extra) -> Site:
    made = make_site(new_db, tmp_path, **extra)
    made.client = TestClient(made.client.app, base_url=BASE, client=(client_host, 40000))
    return made


def test_a_spoofed_forwarded_for_does_not_bypass_the_limit(new_db, tmp_path: Path) -> None:
    site = _site_from(new_db, tmp_path, "127.0.0.1", subscribe_rate_per_hour=2)
    answers = [site.client.post("/subscribe", data=_form(site, f"a{i}@example.org"),
                                headers={"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]


def test_forwarded_for_counts_only_from_a_trusted_proxy(new_db, tmp_path: Path) -> None:
    site = _site_from(new_db, tmp_path, "10.1.2.3", subscribe_rate_per_hour=2, trusted_proxies=("10.0.0.0/8",))
    # Behind the proxy, each client has its own count ...
    for i in range(4):
        answer = site.client.post("/subscribe", data=_form(site, f"a{i}@example.org"),
                                  headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert answer.status_code == 200
    # ... and one client is limited whatever it prepends (the proxy appends the real address).
    answers = [site.client.post("/subscribe", data=_form(site, f"b{i}@example.org"),
                                headers={"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.77"}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    # A connection that is not from the proxy is counted by its own address.
    direct = _site_from(new_db, tmp_path / "direct", "192.0.2.9", subscribe_rate_per_hour=1, trusted_proxies=("10.0.0.0/8",))
    statuses = [direct.client.post("/subscribe", data=_form(direct, f"c{i}@example.org"),
                                   headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(2)]
    assert statuses == [200, 429]


def test_the_limit_is_shared_by_every_process_on_the_database(new_db, tmp_path: Path) -> None:
    first = make_site(new_db, tmp_path, subscribe_rate_per_hour=2)
    second_app = create_app(first.settings, transport=OutboxTransport(first.settings.outbox_dir, fsync=False),
                            clock=first.clock)  # its own Store, as another `serve` process has
    second = TestClient(second_app, base_url=BASE)
    assert first.client.post("/subscribe", data=_form(first, "a@example.org")).status_code == 200
    assert second.post("/subscribe", data=_form(first, "b@example.org", second)).status_code == 200
    refused = first.client.post("/subscribe", data=_form(first, "c@example.org"))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 3000
    assert second.post("/subscribe", data=_form(first, "d@example.org", second)).status_code == 429
    second.close()


def test_old_hits_are_pruned_and_addresses_are_not_stored(site: Site) -> None:
    for i in range(3):
        site.client.post("/subscribe", data=_form(site, f"a{i}@example.org"))
    with site.store.engine.connect() as conn:
        rows = conn.execute(sa.select(rate_hits)).all()
    assert {r.bucket for r in rows} == {"subscribe", "email"} and len(rows) == 6
    assert not any("example.org" in r.key or "testclient" in r.key for r in rows)
    site.clock.now += 3601
    site.client.post("/subscribe", data=_form(site, "late@example.org"))
    with site.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rate_hits)).scalar_one() == 2


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    assert load_settings(environ={}, cwd=tmp_path).trusted_proxies == ()
    env = {"PAPERWIRE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"}
    assert load_settings(environ=env, cwd=tmp_path).trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    (tmp_path / "paperwire.toml").write_text('trusted_proxies = ["192.168.0.0/16"]\n')
    assert load_settings(environ={}, cwd=tmp_path).trusted_proxies == ("192.168.0.0/16",)
    with pytest.raises(ConfigError, match="trusted_proxies.*'proxy.local' is not an IP address"):
        load_settings(environ={"PAPERWIRE_TRUSTED_PROXIES": "proxy.local"}, cwd=tmp_path)


def _serve(db: str, tmp_path: Path, stdout: int = subprocess.DEVNULL, **env: str):
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    environ.update(PYTHONPATH=str(Path(paperwire.__file__).resolve().parents[1]), PAPERWIRE_SECRET_KEY=SECRET,
                   PAPERWIRE_BASE_URL=f"http://127.0.0.1:{port}", **env)
    server = subprocess.Popen([sys.executable, "-m", "paperwire", "--db", db,
                               "serve", "--port", str(port)], cwd=tmp_path, env=environ,
                              stdout=stdout, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/static/web.css", timeout=1)
            return server, base
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(server.stderr.read().decode()) from None
            time.sleep(0.1)


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_serve_trusts_forwarded_for_only_from_trusted_proxies(new_db, tmp_path: Path, trusted: str) -> None:
    """Under `paperwire serve` (uvicorn), a client on 127.0.0.1 cannot spoof its address unless
    127.0.0.1 is a configured proxy: uvicorn's own proxy handling must not trust it first."""
    server, base = _serve(new_db(tmp_path / "serve.sqlite3"), tmp_path, PAPERWIRE_SUBSCRIBE_RATE_PER_HOUR="2", PAPERWIRE_TRUSTED_PROXIES=trusted)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
            statuses = [client.post("/subscribe", headers={"X-Forwarded-For": f"198.51.100.{i}"}, data={
                "csrf_token": token, "email": f"a{i}@example.org", "topics": "LLM", "timezone": "UTC"}).status_code
                for i in range(3)]
    finally:
        server.terminate()
        server.wait(10)
    assert statuses == ([200, 200, 429] if not trusted else [200, 200, 200])


# -- item 9: redirects never come from the Host header --------------------------------------------


def _concrete_paths(site: Site) -> list[str]:
    """One real address for every route of the app (the test fails when a route is missing here)."""
    from paperwire.subscribers import make_topic

    from .test_web import EDITION, ADMIN  # noqa: F401

    site.store.add_public_topic(make_topic("Trending", "*", public=True))
    reader = site.reader("ada@example.org", "LLM")
    signed = site.client.app.state.web.tokens.confirmation(reader.email, reader.token)
    paper = site.store.papers()[0].paper.id
    return ["/", "/subscribe", f"/confirm/{signed}", f"/manage/{reader.token}", f"/manage/{reader.token}/status",
            f"/manage/{reader.token}/export", f"/manage/{reader.token}/delete", f"/unsubscribe/{reader.token}",
            f"/archive/{reader.token}/{EDITION}", f"/archive/{reader.token}/{EDITION}/2",
            "/favicon.ico", "/static/web.css", "/feeds/feeds.opml",
            "/feeds/topics/trending.atom", f"/feeds/private/{reader.token}.atom", "/feeds/trending.atom",
            f"/papers/{paper}", "/api/preview", "/api/topics", "/api/topics/Trending", "/api/subscribers",
            f"/api/subscribers/{reader.email}", "/api/docs", "/api/openapi.json", f"/like/{reader.token}/{paper}",
            f"/manage/{reader.token}/liked", f"/api/subscribers/{reader.email}/liked",
            f"/api/subscribers/{reader.email}/liked/{paper}", "/webhooks/ses", "/webhooks/postmark",
            "/webhooks/sendgrid", "/webhooks/mailgun"]


def _assert_not_hostile(answer, where: str) -> None:
    if 300 <= answer.status_code < 400:
        location = answer.headers["location"]
        assert location.startswith(BASE + "/") and HOSTILE not in location, (where, location)


def _leaf_routes(routes):
    """Every route, also those of included routers (FastAPI keeps those nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        yield from _leaf_routes(nested.routes) if nested is not None else (route,)


def test_no_redirect_takes_its_host_from_the_host_header(site: Site) -> None:
    from starlette.routing import Match

    from .test_web import ADMIN

    app = site.client.app
    paths = _concrete_paths(site)
    covered = {"/"}
    for route in _leaf_routes(app.router.routes):
        methods = sorted(getattr(route, "methods", None) or {"GET"})
        matched = [p for p in paths if any(
            route.matches({"type": "http", "path": p, "method": m, "root_path": ""})[0] == Match.FULL for m in methods)]
        assert matched, f"no address in this test for route {route.path}"
        covered.update(matched)
        for path in matched:
            if path == "/":
                continue  # the root has no slash to lose
            for method in methods:
                answer = site.client.request(method, path + "/?x=1", follow_redirects=False,
                                             headers={"Host": HOSTILE, "Authorization": f"Bearer {ADMIN}"})
                _assert_not_hostile(answer, f"{method} {path}/")
                assert answer.status_code == 307, (method, path, answer.status_code)
                assert unquote(answer.headers["location"]) == f"{BASE}{path}?x=1"
    assert covered == set(paths)  # every address above belongs to a route


def test_form_redirects_ignore_a_hostile_host(site: Site) -> None:
    reader = site.reader("ada@example.org", "LLM", status="pending")
    evil = {"Host": HOSTILE}
    signed = site.client.app.state.web.tokens.confirmation(reader.email, reader.token)
    token = site.csrf()
    answers = {
        "confirm": site.client.post(f"/confirm/{signed}", data={"csrf_token": token}, headers=evil,
                                    follow_redirects=False),
        "save": site.client.post(f"/manage/{reader.token}", headers=evil, follow_redirects=False, data={
            "csrf_token": token, "topics": "LLM", "cadence": "daily", "hour": "8", "timezone": "UTC"}),
        "pause": site.client.post(f"/manage/{reader.token}/status", data={"csrf_token": token, "change": "pause"},
                                  headers=evil, follow_redirects=False),
        "resume": site.client.post(f"/manage/{reader.token}/status", data={"csrf_token": token, "change": "resume"},
                                   headers=evil, follow_redirects=False),
    }
    for name, answer in answers.items():
        assert answer.status_code == 303, name
        assert answer.headers["location"].startswith(f"{BASE}/manage/{reader.token}?done="), name


# -- item 7: the answer to a subscribe request costs the same for every address --------------------


def _record_store_calls(store, events: list[str]) -> None:
    """Log every public Store method call (by name) into ``events``, in order."""
    for name in dir(store):
        method = getattr(store, name)
        if name.startswith("_") or not callable(method):
            continue

        def logged(*args, _name=name, _method=method, **kwargs):
            events.append(_name)
            return _method(*args, **kwargs)
        setattr(store, name, logged)


async def _post_subscribe(app, address: str, events: list[str]) -> int:
    """POST /subscribe straight through ASGI; "ANSWERED" goes into ``events`` when the last byte of
    the answer is handed to the server (background work runs after that, in the same call)."""
    from urllib.parse import urlencode

    tokens = app.state.web.tokens
    cookie = tokens.new_csrf_secret()
    body = urlencode({"csrf_token": tokens.csrf_token(cookie), "email": address, "topics": "LLM",
                      "cadence": "daily", "hour": "7", "timezone": "UTC", "action": "subscribe"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/subscribe", "raw_path": b"/subscribe", "root_path": "", "query_string": b"",
             "client": ("192.0.2.1", 50000), "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(len(body)).encode()), (b"cookie", f"pw_csrf={cookie}".encode())]}
    status = []
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("ANSWERED")

    await app(scope, receive, send)
    return status[0]


def test_subscribe_answers_before_any_work_that_depends_on_the_address(site: Site) -> None:
    """Issue 12 item 7: what happens before the answer is the same for a reading, an unsubscribed
    and an unknown address; looking the address up, storing and mailing all come after it."""
    import asyncio

    site.reader("known@example.org", "LLM")
    site.reader("gone@example.org", "LLM", status="unsubscribed")
    app = site.client.app
    events: list[str] = []
    _record_store_calls(site.store, events)
    before: dict[str, list[str]] = {}
    for address in ("known@example.org", "gone@example.org", "new@example.org"):
        events.clear()
        assert asyncio.run(_post_subscribe(app, address, events)) == 200
        answered = events.index("ANSWERED")
        before[address] = events[:answered]
        assert "subscriber" in events[answered:], events  # the work did happen, after the answer
    assert before["known@example.org"] == before["gone@example.org"] == before["new@example.org"]
    assert not {"subscriber", "save_subscriber", "add_pending_change"} & set(before["new@example.org"])
    assert len(site.mails()) == 3


# -- property tests: outside input to the proxy handling never breaks a request --------------------

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


@given(st.one_of(HEADER_TEXT, st.lists(HEADER_TEXT, max_size=4)))
def test_trusted_proxies_parser_gives_networks_or_a_clear_error(value) -> None:
    import ipaddress

    try:
        parsed = _as_networks(value)
    except ValueError as exc:
        assert "not an IP address or CIDR range" in str(exc)
        return
    assert all(isinstance(ipaddress.ip_network(item), (ipaddress.IPv4Network, ipaddress.IPv6Network))
               for item in parsed)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forwarded=HEADER_TEXT)
def test_any_forwarded_for_from_a_proxy_is_a_normal_answer(new_db, tmp_path_factory, forwarded: str) -> None:
    site = _site_from(new_db, tmp_path_factory.mktemp("xff"), "127.0.0.1", trusted_proxies=("127.0.0.1",),
                      subscribe_rate_per_hour=10**6)
    answer = site.client.post("/subscribe", data=_form(site, "a@example.org"),
                              headers={"X-Forwarded-For": forwarded.encode("latin-1")})
    assert answer.status_code == 200
    site.client.close()
    site.store.close()


def test_the_server_log_shows_no_readers_link_secret(new_db, tmp_path: Path) -> None:
    """uvicorn's access log wrote every request line as it came: /manage/<token> there let whoever
    reads the log manage or unsubscribe that reader. The secret is written as *** (redact.web_path)."""
    server, base = _serve(new_db(tmp_path / "serve.sqlite3"), tmp_path, stdout=subprocess.PIPE)  # the access log
    secret = "s3cretLinkToken"
    paths = [f"/manage/{secret}", f"/unsubscribe/{secret}?x=1", f"/archive/{secret}/2024-03-11",
             f"/feeds/private/{secret}.atom", f"/like/{secret}/2403.00001", f"/confirm/{secret}",
             f"/%6Danage/{secret}", f"/manage%2F{secret}"]  # routed as /manage/...: logged decoded
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            statuses = [client.get(path).status_code for path in paths]
    finally:
        server.terminate()
        server.wait(10)
    log = server.stdout.read().decode() + server.stderr.read().decode()
    assert secret not in log and statuses == [404, 404, 404, 404, 404, 400, 404, 404], (statuses, log)
    for shown in ("/manage/***", "/unsubscribe/***?x=1", "/archive/***/2024-03-11", "/feeds/private/***",
                  "/like/***/2403.00001", "/confirm/***"):
        assert f'"GET {shown} HTTP/1.1"' in log, log


def test_serve_stops_on_ctrl_c_with_exit_0(new_db, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) shuts the server down and exits 0, as uvicorn.run did; not "Aborted!"."""
    import signal

    server, base = _serve(new_db(tmp_path / "serve.sqlite3"), tmp_path)
    server.send_signal(signal.SIGINT)
    assert server.wait(20) == 0
    assert "Aborted" not in server.stderr.read().decode()

