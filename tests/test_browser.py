"""The digest email in a real browser (Debian's chromium through Playwright).

At phone (375 px), small-tablet (640 px) and desktop (1024 px) widths nothing may scroll
sideways and every paper title must be on screen; in dark mode the background must be
dark. Screenshots land in out/screenshots/ for people to look at.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from paperwire.config import Settings
from paperwire.models import Digest, DigestItem, DigestSection, Hit, Link, Paper, Subscriber, Topic
from paperwire.render import EmailRenderer

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "out" / "screenshots"
CHROMIUM = shutil.which("chromium")
WIDTHS = (375, 640, 1024)
DAY = dt.date(2024, 3, 11)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def hits(paper: Paper, *terms: str) -> tuple[Hit, ...]:
    found = []
    for term in terms:
        spans = tuple((m.start(), m.end()) for m in re.finditer(re.escape(term), paper.abstract, re.I))
        if spans:
            found.append(Hit(term, "abstract", spans))
    return tuple(found)


def browser_digest(seed_papers: list[Paper]) -> Digest:
    """Ten seed papers in two topics, plus one built to overflow: a 120-character word in
    its title, a long URL in its abstract and links, right-to-left text and emoji."""
    topics = [Topic("language models", "LLM"), Topic("depth & vision", "depth")]
    reader = Subscriber(email="ana@example.org", name="Ana", token="tok123", timezone="Europe/Berlin", topics=topics)
    wide = Paper(
        id="t-wide", title="Supercalifragilistic" * 6 + " 🚀 שלום עולם: a title that will not fit",
        abstract=("We release everything at https://example.org/" + "very-long-path-segment/" * 8
                  + " and compare language models on مرحبا data. ") * 3,
        authors=["Ana Author"],
        links=[Link("https://example.org/" + "x" * 200, "code"), Link("https://example.org/project", "project")],
    )
    papers = seed_papers[:10]
    first = tuple(DigestItem(p, 1.0, n + 1, DAY, (topics[0].name,), hits(p, "language model", "LLM"))
                  for n, p in enumerate(papers[:6]))
    second = tuple(DigestItem(p, 1.0, n + 7, DAY, (topics[1].name, topics[0].name), hits(p, "depth", "image"))
                   for n, p in enumerate(papers[6:] + [wide]))
    return Digest(reader, "2024-03-11", DAY, (DigestSection(topics[0], first), DigestSection(topics[1], second)), more=4)


@pytest.fixture(scope="module")
def email_file(seed_papers: list[Paper], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    digest = browser_digest(seed_papers)
    rendered = EmailRenderer(ROOT / "templates").render(digest, Settings(base_url="https://papers.example.org"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "digest.html"
    path.write_text(rendered.html, encoding="utf-8")
    return path, digest.papers


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def open_page(browser, email_file: tuple[Path, int], width: int, scheme: str = "light"):
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran in the email: {dialog.message}"))
    page.goto(email_file[0].as_uri())
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_scroll_and_titles_visible(browser, email_file, width: int) -> None:
    page = open_page(browser, email_file, width)
    try:
        scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, f"scrolls sideways at {width}px: {scroll_width} > {inner_width}"
        titles = page.locator("h3 a")
        assert titles.count() == email_file[1]
        for index in range(titles.count()):
            box = titles.nth(index).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, f"title {index} is not rendered"
            assert box["x"] >= 0 and box["x"] + box["width"] <= inner_width, f"title {index} leaves the screen"
        page.screenshot(path=str(SHOTS / f"digest-{width}.png"), full_page=True)
    finally:
        page.close()


def luminance(css_colour: str) -> float:
    red, green, blue = (int(part) for part in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


@pytest.mark.parametrize("width", (375, 640))
def test_dark_mode(browser, email_file, width: int) -> None:
    page = open_page(browser, email_file, width)
    try:
        page.emulate_media(color_scheme="dark")
        body = page.evaluate("getComputedStyle(document.body).backgroundColor")
        card = page.evaluate("getComputedStyle(document.querySelector('.pw-card')).backgroundColor")
        title = page.evaluate("getComputedStyle(document.querySelector('h3 a')).color")
        text = page.evaluate("getComputedStyle(document.querySelector('.pw-abs')).color")
        assert luminance(body) < 0.2 and luminance(card) < 0.2, (body, card)
        assert luminance(title) > 0.5 and luminance(text) > 0.6, (title, text)
        page.screenshot(path=str(SHOTS / f"digest-{width}-dark.png"), full_page=True)
    finally:
        page.close()


def test_light_mode_is_light(browser, email_file) -> None:
    page = open_page(browser, email_file, 640)
    try:
        card = page.evaluate("getComputedStyle(document.querySelector('.pw-card')).backgroundColor")
        text = page.evaluate("getComputedStyle(document.querySelector('.pw-abs')).color")
        assert luminance(card) > 0.9 and luminance(text) < 0.3
    finally:
        page.close()


def test_non_ascii_in_the_templates_css_shows_in_the_browser(browser, seed_papers: list[Paper], tmp_path: Path) -> None:
    """A template author's ``content: "→ 1 café"`` in the MJML's style block shows as written
    in the HTML part a client gets: CSS reads no character references, so the renderer writes
    CSS escapes there (email_templates.CssEscapes), and references elsewhere."""
    import email
    from email import policy

    from paperwire.mail import build_message

    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    frame = folder / "email.mjml.j2"
    source = frame.read_text(encoding="utf-8")
    source = source.replace("</mj-style>", '#pw-css-arrow::after { content: "→ 1 café"; }\n</mj-style>', 1)
    source = source.replace("</mj-body>", '<mj-raw><p id="pw-css-arrow">→</p></mj-raw>\n</mj-body>', 1)
    frame.write_text(source, encoding="utf-8")
    digest = browser_digest(seed_papers)
    settings = Settings(base_url="https://papers.example.org")
    wire = bytes(build_message(digest, EmailRenderer(folder).render(digest, settings), settings))
    html = email.message_from_bytes(wire, policy=policy.default).get_body(("html",)).get_content()
    path = tmp_path / "css.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page()
    try:
        page.goto(path.as_uri())
        shown = page.evaluate("""[getComputedStyle(document.getElementById('pw-css-arrow'), '::after').content,
                                   document.getElementById('pw-css-arrow').textContent]""")
    finally:
        page.close()
    assert shown == ['"→ 1 café"', "→"]
