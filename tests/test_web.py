"""The web app over HTTP with the ASGI test client: every page, every form, every error.

A real SQLite store with the seed listing, the outbox transport for mail (so each
test reads the confirmation email it caused), and a fake clock for the rate limit.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import time
from dataclasses import dataclass
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from fastapi.testclient import TestClient

from paperwire import sources
from paperwire.config import DEV_SECRET_KEY, Settings
from paperwire.errors import ConfigError
from paperwire.store import Store
from paperwire.subscribers import build_subscriber, make_topic, parse_topic_spec
from paperwire.transport import OutboxTransport
from paperwire.web import check_secret, create_app
from paperwire.web.headers import ARCHIVE_CSP
from paperwire.web.tokens import TokenExpired, TokenInvalid, Tokens

from .conftest import SEED, TODAY

BASE = "http://testserver"
SECRET = "test-secret-" + "x" * 40
ADMIN = "admin-token-for-tests"
EDITION = "2024-03-11"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    client: TestClient
    store: Store
    settings: Settings
    outbox: Path
    clock: Clock

    def csrf(self, path: str = "/") -> str:
        page = self.client.get(path)
        return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def mails(self) -> list[email.message.EmailMessage]:
        files = sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if self.outbox.exists() else []
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]

    def last_text(self) -> str:
        return self.mails()[-1].get_body(("plain",)).get_content()

    def subscribe(self, address: str = "ada@example.org", **fields):
        data = {"csrf_token": self.csrf(), "email": address, "topics": "Scaling = scaling laws\nLLM",
                "cadence": "daily", "hour": "7", "timezone": "Europe/Berlin", "action": "subscribe", **fields}
        return self.client.post("/subscribe", data=data)

    def confirm_link(self) -> str:
        return re.search(re.escape(BASE) + r"/confirm/\S+", self.last_text()).group(0)

    def reader(self, address: str = "ada@example.org", *queries: str, status: str = "active"):
        topics = [parse_topic_spec(q) for q in queries or ("LLM",)]
        return self.store.save_subscriber(build_subscriber(address, status=status, topics=topics))[0]


def make_site(new_db, tmp_path: Path, *, ingest: bool = True, **extra) -> Site:
    """The web app on a new database (``new_db``, the conftest fixture), an outbox in ``tmp_path``."""
    settings = Settings(**{"db": new_db(tmp_path / "web.sqlite3"), "out_dir": tmp_path / "out",
                           "outbox_dir": tmp_path / "outbox", "base_url": BASE, "secret_key": SECRET,
                           "admin_token": ADMIN, **extra})
    store = Store(settings.db)
    if ingest:
        store.save_listings(sources.read_path(SEED, today=TODAY))
    clock = Clock()
    app = create_app(settings, store=store, transport=OutboxTransport(settings.outbox_dir, fsync=False), clock=clock)
    return Site(TestClient(app, base_url=BASE), store, settings, settings.outbox_dir, clock)


@pytest.fixture
def site(new_db, tmp_path: Path) -> Site:
    made = make_site(new_db, tmp_path)
    yield made
    made.client.close()
    made.store.close()


# -- starting the server ----------------------------------------------------------------


def test_serve_refuses_the_development_secret_unless_dev() -> None:
    with pytest.raises(ConfigError, match="PAPERWIRE_SECRET_KEY"):
        check_secret(Settings(), dev=False)
    with pytest.raises(ConfigError, match="too short"):
        check_secret(Settings(secret_key="short"), dev=False)
    check_secret(Settings(), dev=True)
    check_secret(Settings(secret_key=SECRET), dev=False)
    assert Settings().secret_key == DEV_SECRET_KEY


def test_serve_command_refuses_without_secret(run_cli) -> None:
    result = run_cli("serve", "--port", "8999")
    assert result.exit_code == 1
    assert "PAPERWIRE_SECRET_KEY" in result.stderr and "--dev" in result.stderr


def test_serve_refuses_to_start_with_a_broken_email_template(run_cli, monkeypatch, tmp_path: Path) -> None:
    """The archive ("View in browser") renders with the email templates: a broken one stops
    the start with its file and line, where it was a 500 on a reader's first click."""
    import shutil

    from paperwire.config import DEFAULT_TEMPLATES

    folder = tmp_path / "mine"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    frame = folder / "email.mjml.j2"
    frame.write_text(frame.read_text(encoding="utf-8").replace("{{ greeting }}", "{{ greting }}", 1), encoding="utf-8")
    monkeypatch.setenv("PAPERWIRE_TEMPLATES_DIR", str(folder))
    monkeypatch.setattr("uvicorn.Server.run", lambda *args, **kwargs: pytest.fail("serve started with a broken template"))
    result = run_cli("serve", "--dev", "--port", "8999")
    assert result.exit_code == 1
    assert f"UndefinedError: 'greting' is undefined (at {frame}:" in result.stderr


def test_secrets_are_not_read_from_the_config_file(tmp_path: Path) -> None:
    from paperwire.config import load_settings

    (tmp_path / "paperwire.toml").write_text('secret_key = "from-a-file"\n')
    with pytest.raises(ConfigError, match="PAPERWIRE_SECRET_KEY"):
        load_settings(cwd=tmp_path, environ={})
    env = {"PAPERWIRE_SECRET_KEY": SECRET, "PAPERWIRE_ADMIN_TOKEN": ADMIN, "PAPERWIRE_SUBSCRIBE_RATE_PER_HOUR": "5"}
    settings = load_settings(cwd=tmp_path / "nowhere", environ=env)
    assert (settings.secret_key, settings.admin_token, settings.subscribe_rate_per_hour) == (SECRET, ADMIN, 5)
    assert SECRET not in repr(settings) and ADMIN not in repr(settings)


# -- home -------------------------------------------------------------------------------------


def test_home_shows_the_latest_listing_and_the_form(site: Site, seed_papers) -> None:
    page = site.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"Trending on {EDITION}" in page.text
    assert seed_papers[0].title.split(":")[0] in page.text
    assert 'name="csrf_token"' in page.text and 'name="email"' in page.text and 'name="timezone"' in page.text
    assert "pw_csrf" in page.cookies
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_home_without_listings(new_db, tmp_path: Path) -> None:
    empty = make_site(new_db, tmp_path, ingest=False)
    page = empty.client.get("/")
    assert page.status_code == 200 and "No listing yet" in page.text


@pytest.mark.parametrize("path", ["/", "/feeds/trending.atom", "/nowhere", "/api/preview?q=LLM", "/api/docs"])
def test_security_headers_everywhere(site: Site, path: str) -> None:
    response = site.client.get(path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def _without_csrf_token(page: str) -> str:
    """A page with its form tokens taken out: a token is signed with the second it was made in."""
    page, found = re.subn(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', page)
    assert found, "no form token on the page"
    return page


@pytest.mark.parametrize("path", ["/papers", "/b%C3%BCcher"])
def test_a_base_url_with_a_path_serves_and_links_below_it(new_db, tmp_path: Path, path: str) -> None:
    """base_url https://example.org/papers: emails link below /papers, so pages must too (their
    styles, scripts, forms, live preview and home links), and the app answers there, the reverse
    proxy passing the whole path on. /papers/papers/<id> is a paper's page; an address outside
    the base path is a 404 that says where the site is."""
    site = make_site(new_db, tmp_path, base_url=BASE + path)
    home = site.client.get(path + "/")
    assert home.status_code == 200 and _without_csrf_token(site.client.get(path).text) == _without_csrf_token(home.text)
    for link in (f'href="{path}/static/web.css"', f'src="{path}/static/web.js"', f'action="{path}/subscribe"',
                 f'href="{path}/feeds/trending.atom"', f'href="{path}/"', f'data-preview-url="{path}/api/preview"'):
        assert link in home.text, link
    assert not re.search(rf'(?:href|src|action)="/(?!{re.escape(path[1:])}/)', home.text)
    assert site.client.get(path + "/static/web.css").status_code == 200
    assert site.client.get(path + "/api/preview", params={"q": "LLM"}).json()["count"] > 0
    reader = site.reader()
    manage = site.client.get(f"{path}/manage/{reader.token}")
    assert manage.status_code == 200 and f'action="{BASE}{path}/manage/{reader.token}"' in manage.text
    paper = site.store.papers()[0].paper
    assert site.client.get(f"{path}/papers/{paper.id}").status_code == 200
    moved = site.client.get(f"{path}/manage/{reader.token}/", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == f"{BASE}{path}/manage/{reader.token}"
    assert site.client.get(path + "/api/nothing").json() == {"detail": "Not Found"}
    assert "Not found" in site.client.get(path + "/no/such/page").text
    outside = site.client.get(f"/manage/{reader.token}")
    assert outside.status_code == 404 and outside.text == f"Not found: this site is at {path}/\n"
    assert outside.headers["x-content-type-options"] == "nosniff"
    site.client.close()
    site.store.close()


def test_a_stored_topic_the_parser_refuses_now_leaves_the_readers_pages_working(site: Site, caplog) -> None:
    """A topic saved under older rules that the parser refuses now costs that topic on the
    reader's pages too ("View in browser", their feed, the manage page), as in their digest."""
    import sqlalchemy as sa
    from paperwire import urls
    from paperwire.store.schema import topics

    reader = site.reader("ada@example.org", "Refused = RAG", "Models = LLM")
    with site.store.engine.begin() as conn:
        conn.execute(topics.update().where(topics.c.name == "Refused").values(query='(RAG OR "retrieval'))
    archive = site.client.get(f"/archive/{reader.token}/{EDITION}")
    assert archive.status_code == 200 and "Models" in archive.text and "new papers matched" in archive.text
    feed = site.client.get(urlsplit(urls.private_feed(BASE, reader)).path)
    assert feed.status_code == 200 and feed.text.count("<entry>") > 0
    assert site.client.get(f"/manage/{reader.token}").status_code == 200
    assert "topic 1 of ada@example.org left out of their digest" in caplog.text


def test_static_files(site: Site) -> None:
    css = site.client.get("/static/web.css")
    js = site.client.get("/static/web.js")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert site.client.get("/static/nothing.js").status_code == 404
    assert site.client.get("/static/..%2Fbase.html.j2").status_code == 404


def test_every_page_a_link_can_open_answers_head(site: Site) -> None:
    """Link checkers and mail scanners ask HEAD before (or instead of) GET: a 405 reads to
    them as a broken link. HEAD changes nothing, as GET does not."""
    from paperwire import urls
    reader = site.reader()
    paper = site.store.papers()[0].paper
    pages = ["/", f"/manage/{reader.token}", f"/manage/{reader.token}/export", f"/unsubscribe/{reader.token}",
             f"/archive/{reader.token}/{EDITION}", "/favicon.ico", urls.more_like("", reader, paper.id),
             urls.paper("", paper.id), "/feeds/trending.atom", "/feeds/feeds.opml", "/api/docs"]
    before = site.store.subscriber(reader.email)
    for path in pages:
        assert site.client.head(path).status_code == 200, path
    assert site.store.subscriber(reader.email) == before


def test_unknown_pages_are_html_404_and_unknown_api_is_json(site: Site) -> None:
    page = site.client.get("/no/such/page")
    assert page.status_code == 404 and "Not found" in page.text and page.headers["content-type"].startswith("text/html")
    api = site.client.get("/api/nothing")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
    assert site.client.delete("/").status_code == 405
    # 405 names every method the address takes (routes of included routers too).
    assert site.client.delete("/subscribe").headers["allow"] == "POST"
    assert site.client.put("/manage/some-token").headers["allow"] == "GET, HEAD, POST"


# -- subscribe ----------------------------------------------------------------------------------


def test_subscribe_keeps_the_reader_pending_and_mails_a_confirmation(site: Site) -> None:
    answer = site.subscribe("Ada@Example.org", name="Ada")
    assert answer.status_code == 200 and "Check your inbox" in answer.text and "ada@example.org" in answer.text
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "pending" and reader.confirmed_at is None
    assert [(t.name, t.query) for t in reader.topics] == [("Scaling", "scaling laws"), ("LLM", "LLM")]
    assert (reader.cadence, reader.hour, reader.timezone, reader.name) == ("daily", 7, "Europe/Berlin", "Ada")
    (mail,) = site.mails()
    assert mail["To"] == "ada@example.org" and "Confirm" in mail["Subject"]
    assert mail["Auto-Submitted"] == "auto-generated" and mail["Message-ID"]
    assert mail.get_body(("html",)) is not None
    assert reader.token not in mail.as_string()  # the confirm link is signed, not the reader's secret
    assert site.confirm_link().startswith(f"{BASE}/confirm/")


def test_subscribe_follow_public_topic(site: Site) -> None:
    site.store.add_public_topic(make_topic("Trending", "*", public=True))
    page = site.client.get("/")
    assert 'name="follow" value="Trending"' in page.text
    answer = site.subscribe("bob@example.org", topics="", follow="Trending")
    assert answer.status_code == 200
    assert [t.public for t in site.store.subscriber("bob@example.org").topics] == [True]
    answer = site.subscribe("cy@example.org", topics="", follow="Nope")
    assert answer.status_code == 400 and "no public topic named" in answer.text


@pytest.mark.parametrize(("fields", "message"), [
    ({"email": "not-an-address"}, "Email: "),
    ({"email": ""}, "Email: "),
    ({"topics": '(RAG OR "retrieval'}, "Topics: line 1: unbalanced quote"),
    ({"topics": ""}, "Topics: write at least one topic"),
    ({"topics": "\n".join(f"t{i}" for i in range(11))}, "Topics: at most 10 topics"),
    ({"timezone": "Mars/Olympus"}, "Timezone: "),
    ({"hour": "25"}, "Hour: "),
    ({"hour": "seven"}, "Hour: "),
    ({"cadence": "hourly"}, "How often: "),
    ({"max_papers": "0"}, "Papers per email: "),
    ({"name": "x" * 300}, "Name: "),
])
def test_bad_input_re_renders_the_form_naming_the_field(site: Site, fields: dict, message: str) -> None:
    answer = site.subscribe(**fields)
    assert answer.status_code == 400
    assert message in answer.text
    assert 'role="alert"' in answer.text
    assert site.mails() == [] and site.store.subscribers() == []


def test_form_keeps_what_was_typed_escaped(site: Site) -> None:
    nasty = '<script>alert("x")</script>'
    answer = site.subscribe(email=nasty, name=nasty, topics=f'{nasty} = "x')
    assert answer.status_code == 400
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in answer.text


def test_preview_without_javascript(site: Site) -> None:
    answer = site.subscribe(action="preview", topics='Scaling = "scaling laws"\nLLM\n(broken\nMoE or <b>experts\n'
                                                     'words: retreival <i>augmented')
    assert answer.status_code == 200
    assert re.search(r"would have matched \d+ papers? in the latest listing", answer.text)
    assert "unbalanced parenthesis" in answer.text or "never closed" in answer.text
    assert "Note: MoE or &lt;b&gt;experts: a lower-case &#34;or&#34; is a word" in answer.text  # escaped, as typed
    assert "Note: no paper of the latest listing has the word &#39;retreival&#39;; did you mean" in answer.text
    assert site.store.subscribers() == [] and site.mails() == []


def test_same_answer_for_known_and_unknown_addresses(site: Site) -> None:
    known = site.reader("known@example.org", "LLM")
    first = site.subscribe("known@example.org", topics="diffusion")
    second = site.subscribe("unknown@example.org", topics="diffusion")
    assert first.status_code == second.status_code == 200
    assert first.text.replace("known@example.org", "X") == second.text.replace("unknown@example.org", "X")
    # The reader who already reads is left alone and told where to manage instead.
    assert site.store.subscriber("known@example.org").topics == known.topics
    assert site.store.subscriber("known@example.org").status == "active"
    to_known, to_unknown = site.mails()
    assert "already" in to_known["Subject"] and f"{BASE}/manage/{known.token}" in to_known.get_body(("plain",)).get_content()
    assert "/confirm/" in to_unknown.get_body(("plain",)).get_content()


def _confirm(site: Site, link: str):
    return site.client.post(link, data={"csrf_token": site.csrf(link)}, follow_redirects=False)


def test_subscribing_again_while_pending_keeps_new_preferences_pending(site: Site) -> None:
    """Issue 12 item 11: a second form for a pending address changes nothing until its link is clicked."""
    site.subscribe(topics="LLM")
    first_link = site.confirm_link()
    token = site.store.subscriber("ada@example.org").token
    site.subscribe(topics="diffusion", cadence="weekly:fri")
    second_link = site.confirm_link()
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "pending" and reader.token == token
    assert [t.query for t in reader.topics] == ["LLM"] and reader.cadence == "daily"
    assert len(site.mails()) == 2 and "diffusion" in site.last_text()
    # The second link applies what the second form asked for.
    assert _confirm(site, second_link).status_code == 303
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "active" and [t.query for t in reader.topics] == ["diffusion"]
    assert reader.cadence == "weekly:fri" and site.store.pending_change_count(reader.id) == 0
    # The first link (sent for the new record itself) still confirms, and changes nothing more.
    assert _confirm(site, first_link).status_code == 303
    assert [t.query for t in site.store.subscriber("ada@example.org").topics] == ["diffusion"]


def test_a_form_for_an_unsubscribed_address_changes_nothing_until_confirmed(site: Site) -> None:
    """Issue 12 item 11: someone else's form must not rewrite an unsubscribed reader's preferences."""
    old = site.reader("ada@example.org", "depth")
    site.store.set_status(old.email, "unsubscribed")
    assert site.subscribe(topics="Mine = diffusion", cadence="weekly:mon", hour="3", name="Eve").status_code == 200
    (mail,) = site.mails()
    assert "Confirm" in mail["Subject"]
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "unsubscribed"
    assert (reader.topics, reader.cadence, reader.hour, reader.name) == (old.topics, old.cadence, old.hour, old.name)
    assert _confirm(site, site.confirm_link()).status_code == 303
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "active" and reader.token == old.token
    assert ([(t.name, t.query) for t in reader.topics], reader.cadence, reader.hour, reader.name) == (
        [("Mine", "diffusion")], "weekly:mon", 3, "Eve")


def test_each_confirmation_link_applies_its_own_preferences(site: Site) -> None:
    site.reader("ada@example.org", "depth", status="unsubscribed")
    site.subscribe(topics="diffusion")
    mine = site.confirm_link()
    site.clock.now += 10
    site.subscribe(topics="robots")
    assert _confirm(site, mine).status_code == 303
    assert [t.query for t in site.store.subscriber("ada@example.org").topics] == ["diffusion"]


def test_pending_changes_are_erased_with_the_reader(site: Site) -> None:
    reader = site.reader("ada@example.org", "depth", status="unsubscribed")
    site.subscribe(topics="diffusion")
    assert site.store.pending_change_count(reader.id) == 1
    assert site.store.delete_subscriber(reader.email)
    assert site.store.pending_change_count(reader.id) == 0


def test_csrf_is_required_on_forms(site: Site, new_db) -> None:
    data = {"email": "ada@example.org", "topics": "LLM", "cadence": "daily", "hour": "8", "timezone": "UTC"}
    assert site.client.post("/subscribe", data=data).status_code == 403
    assert site.client.post("/subscribe", data={**data, "csrf_token": "forged"}).status_code == 403
    # A token signed for another browser's cookie does not fit this browser's cookie.
    other = make_site(new_db, site.outbox.parent / "other")
    foreign = other.csrf()
    answer = site.client.post("/subscribe", data={**data, "csrf_token": foreign})
    assert answer.status_code == 403 and "expired" in answer.text
    # A valid token without its cookie fails too.
    token = site.csrf()
    site.client.cookies.clear()
    assert site.client.post("/subscribe", data={**data, "csrf_token": token}).status_code == 403
    assert site.store.subscribers() == []


def test_tokens_expire_and_do_not_cross_purposes() -> None:
    tokens = Tokens(SECRET)
    cookie = tokens.new_csrf_secret()
    csrf = tokens.csrf_token(cookie)
    tokens.check_csrf(csrf, cookie)
    with pytest.raises(TokenExpired):
        tokens.check_csrf(csrf, cookie, max_age=-1)
    with pytest.raises(TokenInvalid):
        tokens.read_confirmation(csrf)  # a CSRF token is not a confirmation
    with pytest.raises(TokenInvalid):
        Tokens("another-secret-" + "y" * 40).check_csrf(csrf, cookie)
    link = tokens.confirmation("ada@example.org", "reader-token")
    assert tokens.read_confirmation(link).email == "ada@example.org"
    with pytest.raises(TokenExpired):
        tokens.read_confirmation(link, max_age=-1)


def test_subscribe_rate_limit_per_client(new_db, tmp_path: Path) -> None:
    limited = make_site(new_db, tmp_path, subscribe_rate_per_hour=2)
    assert limited.subscribe("a1@example.org").status_code == 200
    assert limited.subscribe("a2@example.org").status_code == 200
    third = limited.subscribe("a3@example.org")
    assert third.status_code == 429 and int(third.headers["retry-after"]) > 0 and "Too many" in third.text
    assert limited.store.subscriber("a3@example.org") is None
    limited.clock.now += 3601
    assert limited.subscribe("a3@example.org").status_code == 200


def test_one_address_gets_at_most_three_mails_an_hour(site: Site) -> None:
    answers = [site.subscribe("victim@example.org") for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert len(site.mails()) == 3


# -- confirm ----------------------------------------------------------------------------------


def test_confirmation_link_shows_a_button_and_the_post_confirms(site: Site) -> None:
    site.subscribe()
    link = site.confirm_link()
    page = site.client.get(link)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert site.store.subscriber("ada@example.org").status == "pending"  # opening the link is not enough
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = site.client.post(link, data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    reader = site.store.subscriber("ada@example.org")
    assert reader.status == "active" and reader.confirmed_at is not None
    assert done.headers["location"] == f"{BASE}/manage/{reader.token}?done=confirmed"
    manage = site.client.get(done.headers["location"])
    assert "Thank you: your subscription is confirmed." in manage.text
    # Confirming twice is harmless.
    assert site.client.post(link, data={"csrf_token": token}, follow_redirects=False).status_code == 303


def test_bad_expired_and_stale_confirmation_links(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    assert site.client.get("/confirm/garbage").status_code == 400
    site.subscribe()
    link = site.confirm_link()
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    assert site.client.get(tampered).status_code == 400
    # Expired: a link signed four days ago.
    reader = site.store.subscriber("ada@example.org")
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: 1_700_000_000.0 - 4 * 86400)
        old = Tokens(SECRET).confirmation(reader.email, reader.token)
    expired = site.client.get(f"/confirm/{old}")
    assert expired.status_code == 400 and "expired" in expired.text
    # After "delete my data" and a new sign-up, the first link confirms nothing.
    site.store.delete_subscriber("ada@example.org")
    site.subscribe()
    answer = site.client.post(link, data={"csrf_token": site.csrf()})
    assert answer.status_code == 400
    assert site.store.subscriber("ada@example.org").status == "pending"


# -- manage ------------------------------------------------------------------------------------


def test_manage_page_edits_preferences(site: Site) -> None:
    reader = site.reader("ada@example.org", "LLM")
    url = f"/manage/{reader.token}"
    page = site.client.get(url)
    assert page.status_code == 200 and "ada@example.org" in page.text and page.headers["cache-control"] == "no-store"
    assert f"/feeds/private/{reader.token}.atom" in page.text
    assert f"/archive/{reader.token}/{EDITION}" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"csrf_token": token, "topics": 'Scaling = "scaling laws"\nRAG', "cadence": "weekly:mon", "hour": "18",
            "timezone": "America/New_York", "name": "Ada L", "max_papers": "20"}
    saved = site.client.post(url, data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?done=saved")
    stored = site.store.subscriber("ada@example.org")
    assert [(t.name, t.query) for t in stored.topics] == [("Scaling", '"scaling laws"'), ("RAG", "RAG")]
    assert (stored.cadence, stored.hour, stored.timezone, stored.name, stored.max_papers, stored.status) == \
        ("weekly:mon", 18, "America/New_York", "Ada L", 20, "active")
    assert stored.token == reader.token
    again = site.client.get(saved.headers["location"])
    assert "Your settings are saved." in again.text and "Scaling = &#34;scaling laws&#34;" in again.text


def test_manage_bad_input_changes_nothing(site: Site) -> None:
    reader = site.reader("ada@example.org", "LLM")
    url = f"/manage/{reader.token}"
    token = site.csrf(url)
    answer = site.client.post(url, data={"csrf_token": token, "topics": "LLM", "cadence": "daily", "hour": "8",
                                         "timezone": "Nowhere/Land", "max_papers": "15"})
    assert answer.status_code == 400 and "Timezone: " in answer.text and "Nowhere/Land" in answer.text
    assert site.store.subscriber("ada@example.org").timezone == "UTC"
    assert site.client.post(url, data={"topics": "LLM"}).status_code == 403  # no CSRF token


def test_pause_resume_unsubscribe(site: Site) -> None:
    reader = site.reader()
    url = f"/manage/{reader.token}/status"
    token = site.csrf(f"/manage/{reader.token}")

    def change(value: str):
        return site.client.post(url, data={"csrf_token": token, "change": value}, follow_redirects=False)

    assert change("pause").status_code == 303
    assert site.store.subscriber(reader.email).status == "paused"
    assert change("resume").status_code == 303
    assert site.store.subscriber(reader.email).status == "active"
    gone = change("unsubscribe")
    assert gone.status_code == 200 and "You are unsubscribed" in gone.text
    assert site.store.subscriber(reader.email).status == "unsubscribed"
    assert change("resume").status_code == 303  # the mailed link proves the mailbox: resubscribing is allowed
    assert change("explode").status_code == 400
    pending = site.reader("new@example.org", status="pending")
    answer = site.client.post(f"/manage/{pending.token}/status", data={"csrf_token": token, "change": "resume"})
    assert answer.status_code == 400 and "Confirm your address first" in answer.text


def test_export_my_data(site: Site) -> None:
    reader = site.reader("ada@example.org", "Scaling=scaling laws")
    answer = site.client.get(f"/manage/{reader.token}/export")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert "attachment" in answer.headers["content-disposition"] and answer.headers["cache-control"] == "no-store"
    data = answer.json()
    assert data["email"] == "ada@example.org" and data["topics"] == [
        {"name": "Scaling", "query": "scaling laws", "public": False}]
    assert data["deliveries"] == [] and data["status"] == "active"
    assert "token" not in data
    assert site.client.get("/manage/nope/export").status_code == 404


def test_delete_my_data(site: Site) -> None:
    reader = site.reader()
    url = f"/manage/{reader.token}"
    token = site.csrf(url)
    refused = site.client.post(f"{url}/delete", data={"csrf_token": token})
    assert refused.status_code == 400 and "Tick the box" in refused.text
    assert site.store.subscriber(reader.email) is not None
    done = site.client.post(f"{url}/delete", data={"csrf_token": token, "confirm": "delete"})
    assert done.status_code == 200 and "Your data is deleted" in done.text
    assert site.store.subscriber(reader.email) is None
    assert site.client.get(url).status_code == 404
    assert site.client.get(f"/feeds/private/{reader.token}.atom").status_code == 404


def test_unknown_manage_link(site: Site) -> None:
    page = site.client.get("/manage/not-a-token")
    assert page.status_code == 404 and "Link not valid" in page.text


# -- one-click unsubscribe -----------------------------------------------------------------------


def test_one_click_unsubscribe_by_post_without_cookies(site: Site) -> None:
    reader = site.reader()
    fresh = TestClient(site.client.app, base_url=BASE)  # no cookies, no CSRF token: a mail provider
    answer = fresh.post(f"/unsubscribe/{reader.token}", content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert site.store.subscriber(reader.email).status == "unsubscribed"
    # Again, and for a token nobody has: still 200, nothing to stop.
    assert fresh.post(f"/unsubscribe/{reader.token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert fresh.post("/unsubscribe/unknown", data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_one_click_unsubscribe_accepts_multipart(site: Site) -> None:
    reader = site.reader()
    answer = site.client.post(f"/unsubscribe/{reader.token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert site.store.subscriber(reader.email).status == "unsubscribed"


def test_get_on_the_unsubscribe_link_only_shows_a_button(site: Site) -> None:
    reader = site.reader()
    page = site.client.get(f"/unsubscribe/{reader.token}")
    assert page.status_code == 200
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text and 'method="post"' in page.text
    assert site.store.subscriber(reader.email).status == "active"
    assert site.client.head(f"/unsubscribe/{reader.token}").status_code == 200
    assert site.store.subscriber(reader.email).status == "active"
    assert site.client.get("/unsubscribe/unknown").status_code == 404


@pytest.mark.parametrize("body", [b"", b"List-Unsubscribe=Yes", b"something=else"])
def test_unsubscribe_post_needs_the_rfc8058_body(site: Site, body: bytes) -> None:
    reader = site.reader()
    answer = site.client.post(f"/unsubscribe/{reader.token}", content=body,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400
    assert site.store.subscriber(reader.email).status == "active"


# -- feeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "media_type"), [("atom", "application/atom+xml"), ("rss", "application/rss+xml"),
                                                  ("json", "application/feed+json")])
def test_trending_feed_content_types(site: Site, kind: str, media_type: str) -> None:
    answer = site.client.get(f"/feeds/trending.{kind}")
    assert answer.status_code == 200 and answer.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert answer.headers["etag"].startswith('"') and answer.headers["last-modified"].endswith("GMT")
    if kind == "json":
        assert len(answer.json()["items"]) == 50
    else:
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo and len(parsed.entries) == 50


def test_feeds_answer_304_when_unchanged(site: Site) -> None:
    first = site.client.get("/feeds/trending.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    same = site.client.get("/feeds/trending.atom", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert site.client.get("/feeds/trending.atom", headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert site.client.get("/feeds/trending.atom", headers={"If-None-Match": "*"}).status_code == 304
    assert site.client.get("/feeds/trending.atom", headers={"If-None-Match": '"other"'}).status_code == 200
    assert site.client.get("/feeds/trending.atom", headers={"If-Modified-Since": modified}).status_code == 304
    assert site.client.get("/feeds/trending.atom",
                           headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert site.client.get("/feeds/trending.atom", headers={"If-Modified-Since": "yesterday"}).status_code == 200
    # If-None-Match wins over If-Modified-Since.
    assert site.client.get("/feeds/trending.atom", headers={"If-None-Match": '"other"',
                                                            "If-Modified-Since": modified}).status_code == 200
    head = site.client.head("/feeds/trending.atom")
    assert head.status_code == 200 and head.headers["etag"] == etag


def test_feed_etag_changes_when_the_data_does(site: Site, seed_listing) -> None:
    before = site.client.get("/feeds/trending.atom").headers["etag"]
    changed = seed_listing.__class__(source="test", date=dt.date(2024, 3, 12), papers=seed_listing.papers[:3])
    site.store.save_listings([changed])
    after = site.client.get("/feeds/trending.atom", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


def test_topic_feeds_and_opml(site: Site) -> None:
    site.store.add_public_topic(make_topic("Language models", "LLM", public=True))
    atom = site.client.get("/feeds/topics/language-models.atom")
    assert atom.status_code == 200
    parsed = feedparser.parse(atom.content)
    assert parsed.feed.title == "Language models" and parsed.entries
    assert all("LLM" in (e.title + e.summary) or "language model" in (e.title + e.summary).lower()
               for e in parsed.entries)
    opml = site.client.get("/feeds/feeds.opml")
    assert opml.status_code == 200 and opml.headers["content-type"] == "text/x-opml; charset=utf-8"
    assert f"{BASE}/feeds/topics/language-models.atom" in opml.text and f"{BASE}/feeds/trending.atom" in opml.text
    assert site.client.get("/feeds/feeds.opml", headers={"If-None-Match": opml.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/feeds/topics/nothing.atom", "/feeds/topics/language-models.xml",
                                  "/feeds/topics/trending.atom", "/feeds/trending.xml", "/feeds/other.atom",
                                  "/feeds/trending", "/feeds/private/nope.atom", "/feeds/topics/opml.opml"])
def test_unknown_feeds_are_404(site: Site, path: str) -> None:
    site.store.add_public_topic(make_topic("Language models", "LLM", public=True))
    answer = site.client.get(path)
    assert answer.status_code == 404 and "No such feed" in answer.text


def test_private_feed(site: Site) -> None:
    reader = site.reader("ada@example.org", "depth")
    answer = site.client.get(f"/feeds/private/{reader.token}.atom")
    assert answer.status_code == 200 and answer.headers["cache-control"].startswith("private")
    parsed = feedparser.parse(answer.content)
    assert parsed.entries and all("depth" in (e.title + e.summary).lower() for e in parsed.entries)
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == [f"{BASE}/feeds/private/{reader.token}.atom"]
    assert reader.token not in parsed.feed.id
    data = site.client.get(f"/feeds/private/{reader.token}.json").json()
    assert data["feed_url"] == f"{BASE}/feeds/private/{reader.token}.json"
    assert site.client.get(f"/feeds/private/{reader.token}.atom",
                           headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
    pending = site.reader("p@example.org", status="pending")
    assert site.client.get(f"/feeds/private/{pending.token}.atom").status_code == 404


def test_private_feed_shows_the_stretch_of_a_long_abstract_where_a_topic_matched(new_db, tmp_path: Path) -> None:
    """As topic feeds and emails do: the excerpt starts near the first matched term beyond the cut."""
    site = make_site(new_db, tmp_path, ingest=False)
    filler = "Plain words about nothing in particular fill this sentence. " * 95
    listing = tmp_path / "long.txt"
    listing.write_text(f"{TODAY:%b} {TODAY.day}\n\nA Long Abstract\n\n{filler}Here the zyzzyva appears. {filler}\n",
                       encoding="utf-8")
    site.store.save_listings(sources.read_path(listing, today=TODAY))
    reader = site.reader("ada@example.org", "zyzzyva")
    (entry,) = site.client.get(f"/feeds/private/{reader.token}.json").json()["items"]
    assert entry["content_text"].startswith("…Here the zyzzyva appears.")
    site.client.close()
    site.store.close()


def test_private_feed_explains_only_the_matches_it_shows(new_db, tmp_path: Path, monkeypatch) -> None:
    """The private feed shows the newest 50 papers any topic matched: only their best matches
    are explained, not every match of every topic."""
    from paperwire import digest

    site = make_site(new_db, tmp_path, relevance_embedder="off")
    reader = site.reader("ada@example.org", "model OR models", "learning OR data OR language")
    explained = []
    hits_of = digest.hits_of
    monkeypatch.setattr(digest, "hits_of", lambda match: explained.append(match.paper_id) or hits_of(match))
    items = site.client.get(f"/feeds/private/{reader.token}.json").json()["items"]
    assert (len(items), len(explained)) == (50, 50)  # of 70 papers matched
    site.client.close()
    site.store.close()


def test_private_feed_shows_the_hits_of_the_topic_that_matched_a_paper_best(new_db, tmp_path: Path) -> None:
    """A paper two of the reader's topics match shows the hits of the better match, as a
    digest picks it (by score): here the second topic, whose word occurs twice, though the
    first topic's word comes earlier in the abstract."""
    site = make_site(new_db, tmp_path, ingest=False, relevance_embedder="off")
    filler = "Plain words about nothing in particular fill this sentence. " * 95
    listing = tmp_path / "long.txt"
    listing.write_text(f"{TODAY:%b} {TODAY.day}\n\nA Long Abstract\n\n{filler}Here the zyzzyva appears. {filler}"
                       f"A quokka here and a quokka there. {filler}\n", encoding="utf-8")
    site.store.save_listings(sources.read_path(listing, today=TODAY))
    reader = site.reader("ada@example.org", "zyzzyva", "quokka")
    (entry,) = site.client.get(f"/feeds/private/{reader.token}.json").json()["items"]
    assert entry["content_text"].startswith("…A quokka here and a quokka there.")
    site.client.close()
    site.store.close()


@pytest.mark.parametrize("kind", ["atom", "rss", "json"])
def test_private_feed_is_gone_after_unsubscribing_and_kept_while_paused(site: Site, kind: str) -> None:
    """Issue 12 item 11: 410 Gone for unsubscribed readers; paused and bouncing readers keep their feed."""
    reader = site.reader("ada@example.org", "depth")
    url = f"/feeds/private/{reader.token}.{kind}"
    for status in ("paused", "bouncing", "active"):
        site.store.set_status(reader.email, status)
        assert site.client.get(url).status_code == 200, status
    site.store.set_status(reader.email, "unsubscribed")
    gone = site.client.get(url)
    assert gone.status_code == 410 and "unsubscribed" in gone.text
    assert site.client.get(url, headers={"If-None-Match": "*"}).status_code == 410


# -- archive -------------------------------------------------------------------------------------


def test_archive_shows_the_edition_in_the_browser(site: Site) -> None:
    reader = site.reader("ada@example.org", "LLM")
    reader = site.store.save_subscriber(build_subscriber(reader.email, max_papers=3, base=reader))[0]
    page = site.client.get(f"/archive/{reader.token}/{EDITION}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == ARCHIVE_CSP
    assert page.headers["cache-control"] == "private, no-store"
    assert page.text.count('<h3') > 3  # every match, not just the three of the email
    assert "<script" not in page.text.lower()


@pytest.mark.parametrize("edition", ["2024-03-12", "2023-01-01", "yesterday", "2024-3-11", "20240311"])
def test_archive_unknown_editions(site: Site, edition: str) -> None:
    reader = site.reader()
    answer = site.client.get(f"/archive/{reader.token}/{edition}")
    assert answer.status_code == 404 and "No such edition" in answer.text


def test_archive_unknown_reader(site: Site) -> None:
    assert site.client.get(f"/archive/nobody/{EDITION}").status_code == 404


# -- API docs page ---------------------------------------------------------------------------------


def test_api_docs_page_and_spec(site: Site) -> None:
    page = site.client.get("/api/docs")
    assert page.status_code == 200 and "GET /api/preview" in page.text and "PUT /api/subscribers/{email}" in page.text
    spec = site.client.get("/api/openapi.json").json()
    assert set(spec["paths"]) == {"/api/preview", "/api/topics", "/api/topics/{name}", "/api/subscribers",
                                  "/api/subscribers/{email}", "/api/subscribers/{email}/liked",
                                  "/api/subscribers/{email}/liked/{paper_id}"}
    assert "PUT /api/subscribers/{email}/liked/{paper_id}" in page.text
    assert json.dumps(spec).count("HTTPBearer") >= 1


def test_an_unexpected_error_is_logged_with_its_traceback(site: Site, monkeypatch, caplog) -> None:
    """The 500 handler runs in a worker thread, where ``log.exception`` has no exception to
    show: the log said "NoneType: None" instead of what failed."""
    from paperwire.web import pages

    def broken(*args, **kwargs):
        raise RuntimeError("the archive broke")

    monkeypatch.setattr(pages, "archive_page", broken)
    client = TestClient(site.client.app, base_url=BASE, raise_server_exceptions=False)
    with caplog.at_level("ERROR", logger="paperwire"):
        answer = client.get("/archive/some-token/2024-03-11")
    assert answer.status_code == 500 and "Something went wrong" in answer.text
    (record,) = [r for r in caplog.records if r.getMessage().startswith("unexpected error on GET")]
    assert record.exc_info and record.exc_info[1].args == ("the archive broke",)
    assert record.getMessage() == "unexpected error on GET /archive/***/2024-03-11"  # no reader's link secret
