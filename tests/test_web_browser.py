"""End to end in a real browser: subscribe, confirm from the email, manage, "More like this"
from a digest, one-click unsubscribe.

`paperwire serve`'s app runs under uvicorn on 127.0.0.1; mail goes over SMTP to an
aiosmtpd server on 127.0.0.1; Debian's chromium is driven by Playwright. Screenshots
of every step land in out/web/ for people to look at.
"""

from __future__ import annotations

import email
import re
import shutil
import socket
import threading
import time
from email import policy
from pathlib import Path

import httpx
import pytest

from paperwire import dispatch, sources
from paperwire.config import Settings
from paperwire.store import Store
from paperwire.web import create_app

from .conftest import SEED, TODAY

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
uvicorn = pytest.importorskip("uvicorn")
Controller = pytest.importorskip("aiosmtpd.controller").Controller

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "out" / "web"
CHROMIUM = shutil.which("chromium")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                          policy=policy.default))
        return "250 Message accepted"

    def wait(self, count: int, timeout: float = 15.0) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")


@pytest.fixture
def running(new_db, tmp_path: Path):
    """(base URL, settings, store, inbox) with the web app and an SMTP server on 127.0.0.1."""
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    settings = Settings(db=new_db(tmp_path / "e2e.sqlite3"), out_dir=tmp_path / "out", base_url=base,
                        secret_key="e2e-secret-" + "z" * 40, smtp_host="127.0.0.1", smtp_port=smtp_port,
                        smtp_timeout=5.0, smtp_max_attempts=2)
    store = Store(settings.db)
    store.save_listings(sources.read_path(SEED, today=TODAY))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store=store), host="127.0.0.1", port=web_port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield base, settings, store, inbox
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        smtp.stop()
        store.close()


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def plain(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def test_subscribe_confirm_manage_unsubscribe(running, browser) -> None:
    base, settings, store, inbox = running
    context = browser.new_context(viewport={"width": 1024, "height": 900}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Home: the browser's timezone is the default; the topic preview updates as one types.
    page.goto(base + "/")
    assert page.input_value("#timezone") == "Asia/Tokyo"
    page.fill("#email", "reader@example.org")
    page.fill("#topics", 'Language models = LLM\n"depth estimation"\nMoE or mixture of experts')
    page.wait_for_selector("#preview li:nth-child(3)")
    preview = page.inner_text("#preview")
    assert re.search(r"Language models = LLM would have matched \d+ papers in the latest listing", preview)
    assert 'Note: MoE or mixture: a lower-case "or" is a word' in preview  # the reading hint reaches the reader
    page.select_option("#cadence", "weekly:fri")
    page.select_option("#hour", "7")
    shot(page, "1-home")
    page.click("button[value=subscribe]")
    page.wait_for_selector("text=Check your inbox")
    shot(page, "2-check-inbox")
    # The confirmation email arrives over SMTP; its link shows a button, the button confirms.
    (confirmation,) = inbox.wait(1)  # the address is stored after the answer, before this mail
    reader = store.subscriber("reader@example.org")
    assert reader.status == "pending" and reader.timezone == "Asia/Tokyo" and reader.cadence == "weekly:fri"
    assert confirmation["To"] == "reader@example.org"
    link = re.search(re.escape(base) + r"/confirm/\S+", plain(confirmation)).group(0)
    page.goto(link)
    assert store.subscriber("reader@example.org").status == "pending"
    shot(page, "3-confirm")
    page.click("text=Confirm my subscription")
    page.wait_for_selector("text=your subscription is confirmed")
    assert store.subscriber("reader@example.org").status == "active"
    shot(page, "4-manage")

    # Manage: change the topics and the cadence.
    page.fill("#topics", "Scaling = scaling laws\nRAG")
    page.select_option("#cadence", "daily")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Your settings are saved.")
    reader = store.subscriber("reader@example.org")
    assert [t.name for t in reader.topics] == ["Scaling", "RAG"] and reader.cadence == "daily"
    shot(page, "5-manage-saved")

    # A digest goes out; its "view in browser" link opens the edition.
    reports = []  # in a thread: Playwright's sync API keeps an event loop running in this one
    sender = threading.Thread(target=lambda: reports.append(
        dispatch.dispatch(store, settings, only="reader@example.org", everyone=True)))
    sender.start()
    sender.join(timeout=60)
    assert reports and reports[0].sent == 1
    digest = inbox.wait(2)[1]
    archive_url = re.search(re.escape(base) + r"/archive/\S+", plain(digest)).group(0)
    page.goto(archive_url)
    assert page.locator("h3 a").count() >= 1
    shot(page, "6-archive")

    # "More like this" from the digest: the page only shows the paper and a button; the
    # button likes it; the manage page lists it with a remove button.
    like_url = re.search(re.escape(base) + r"/like/\S+", plain(digest)).group(0)
    page.goto(like_url)
    shot(page, "6a-more-like-this")
    assert "Liked" not in [t.name for t in store.subscriber("reader@example.org").topics]
    page.click("text=Add to my liked papers")
    page.wait_for_selector("text=Added to your liked papers")
    shot(page, "6b-liked")
    (liked_topic,) = [t for t in store.subscriber("reader@example.org").topics if t.name == "Liked"]
    assert liked_topic.query == "like:" + like_url.rsplit("/", 1)[1]
    page.click("text=Your liked papers and settings")
    page.wait_for_selector("#liked li")
    assert page.locator("#liked li").count() == 1
    shot(page, "6c-manage-liked")
    page.click("#liked button:has-text('Remove')")
    page.wait_for_selector("text=Removed from your liked papers.")
    assert [t.name for t in store.subscriber("reader@example.org").topics] == ["Scaling", "RAG"]

    # The unsubscribe address: GET is only a button, POST with the RFC 8058 body unsubscribes.
    unsubscribe_url = re.search(r"<(https?://[^>]+)>", digest["List-Unsubscribe"]).group(1)
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    page.goto(unsubscribe_url)
    shot(page, "7-unsubscribe-page")
    assert store.subscriber("reader@example.org").status == "active"
    answer = httpx.post(unsubscribe_url, content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert store.subscriber("reader@example.org").status == "unsubscribed"
    page.reload()
    assert "already unsubscribed" in page.inner_text("main")
    assert errors == []
    context.close()


def test_subscribe_works_without_javascript(running, browser) -> None:
    base, _settings, store, inbox = running
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(base + "/")
    assert page.input_value("#timezone") == "UTC"
    page.fill("#email", "nojs@example.org")
    page.fill("#topics", "LLM")
    page.click("button[value=preview]")
    assert "would have matched" in page.inner_text("#preview")
    shot(page, "nojs-preview")
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the phone layout scrolls sideways: {width}"
    page.click("button[value=subscribe]")
    page.wait_for_selector("text=Check your inbox")
    inbox.wait(1)  # the address is stored after the answer, then the mail sent (pages.subscribe)
    assert store.subscriber("nojs@example.org").status == "pending"
    context.close()
