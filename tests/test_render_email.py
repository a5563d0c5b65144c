"""The digest email: golden HTML and text, escaping of hostile input, highlights, size, compile-once.

Golden files live in tests/golden/email/. After an intended change of the templates or
of render.py, rewrite them and review the diff (open the .html in a browser) before
committing:

    PAPERWIRE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render_email.py
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import re
import shutil
import unicodedata
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperwire import email_templates, normalize, paperview, render, urls
from paperwire.config import Settings
from paperwire.mail import from_references
from paperwire.errors import ConfigError, ValidationError
from paperwire.models import Digest, DigestItem, DigestSection, Hit, Link, Paper, Subscriber, Topic
from paperwire.render import EmailRenderer, RenderedEmail
from paperwire.subscribers import new_token

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
GOLDEN = Path(__file__).parent / "golden" / "email"
UPDATE_GOLDEN = os.environ.get("PAPERWIRE_UPDATE_GOLDEN") == "1"
BASE = "https://papers.example.org"
SETTINGS = Settings(base_url=BASE)
DAY = dt.date(2024, 3, 11)
CONTROL = "".join(map(chr, range(0x00, 0x09))) + "\x0b\x0c\x1b\x7f\u202e"
HOSTILE = f"<script>alert(1)</script> \"quotes' & ampersands 🚀🧪 שלום עולם مرحبا{CONTROL}end"

TOPICS = [Topic("scaling laws", '"scaling laws"'), Topic("MoE", "MoE OR \"mixture of experts\"")]
READER = Subscriber(email="ana@example.org", name="Ana", token="tok123", timezone="Europe/Berlin", topics=TOPICS)

SCALING = Paper(
    id="2403.00001",
    title="Scaling Laws for Sparse Mixture-of-Experts Language Models",
    abstract=("We study scaling laws for sparse MoE models across four orders of magnitude of compute. "
              "Our scaling laws predict the loss of models with up to 64 experts. "
              "Unlike dense models, sparse models keep improving as experts are added."),
    arxiv_id="2403.00001",
    authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"],
    links=[Link("https://arxiv.org/abs/2403.00001", "abs"), Link("https://arxiv.org/pdf/2403.00001", "pdf"),
           Link("https://github.com/example/moe-scaling", "code")],
)
LONG = Paper(
    id="t-0123456789abcdef",
    title="Routing Tokens to Experts: A Long Study",
    abstract=" ".join(["Mixture of experts layers route each token to a few experts."] * 20),
    authors=["Jane Doe"],
    links=[Link("https://example.org/routing", "project"), Link("javascript:alert(1)", "code")],
)
BARE = Paper(id="t-fedcba9876543210", title="A Paper With No Links", abstract="")


def hit(term: str, text: str, field: str = "abstract") -> Hit:
    """Every case-insensitive occurrence of ``term`` in ``text``, as the matcher reports it."""
    return Hit(term, field, tuple((m.start(), m.end()) for m in re.finditer(re.escape(term), text, re.I)))


def item(paper: Paper, topics: tuple[str, ...], *hits: Hit, rank: int = 1) -> DigestItem:
    return DigestItem(paper=paper, score=1.0, rank=rank, listing_date=DAY, topics=topics, hits=hits)


def golden_digest() -> Digest:
    return Digest(
        subscriber=READER, edition="2024-03-11", listing_date=DAY, more=3, more_from="2403.00004v2",
        sections=(
            DigestSection(TOPICS[0], (item(SCALING, ("scaling laws", "MoE"), hit("scaling laws", SCALING.abstract),
                                           hit("scaling laws", SCALING.title, "title")),)),
            DigestSection(TOPICS[1], (item(LONG, ("MoE",), hit("mixture of experts", LONG.abstract)),
                                      item(BARE, ("MoE",), rank=2))),
        ),
    )


def empty_digest() -> Digest:
    return Digest(subscriber=READER, edition="2024-03-11", listing_date=DAY, sections=())


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(TEMPLATES)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with PAPERWIRE_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def hrefs(self) -> list[str]:
        return [attrs["href"] for tag, attrs in self.tags if tag == "a"]


@pytest.mark.parametrize("name, make", [("digest", golden_digest), ("empty", empty_digest)])
def test_golden_html_and_text(renderer: EmailRenderer, name: str, make) -> None:
    rendered = renderer.render(make(), SETTINGS)
    check_golden(f"{name}.html", rendered.html)
    check_golden(f"{name}.txt", rendered.text)


def test_subject_and_preheader(renderer: EmailRenderer) -> None:
    rendered = renderer.render(golden_digest(), SETTINGS)
    # The two counts the intro says: 6 matched, the best 3 shown (the rest under "And 3 more").
    assert rendered.subject == "3 of 6 new papers on scaling laws, MoE (Mar 11)"
    assert "6 new papers matched your topics in the Mar 11 listing; here are the best 3." in rendered.text
    assert rendered.preheader.startswith("Scaling Laws for Sparse Mixture-of-Experts Language Models · Routing")
    assert renderer.render(empty_digest(), SETTINGS).subject == "No new papers on scaling laws, MoE (Mar 11)"


def test_subject_rules() -> None:
    one = Digest(READER, "2024-03-11", DAY, (DigestSection(TOPICS[1], (item(BARE, ("MoE",)),)),))
    assert render.subject_line(one) == "1 new paper on MoE (Mar 11)"
    many_topics = [Topic(f"topic number {n}", "x") for n in range(8)]
    reader = Subscriber(email="a@example.org", topics=many_topics)
    sections = tuple(DigestSection(topic, (item(BARE, (topic.name,)),)) for topic in many_topics)
    subject = render.subject_line(Digest(reader, "2024-01-05", dt.date(2024, 1, 5), sections))
    assert subject == "8 new papers on topic number 0, topic number 1 +6 more (Jan 5)"
    capped = render.subject_line(Digest(reader, "2024-01-05", dt.date(2024, 1, 5), sections, more=45))
    assert capped == "8 of 53 new papers on topic number 0, topic number 1 +6 more (Jan 5)"
    assert render.subject_line(dataclasses.replace(one, more=1)) == "1 of 2 new papers on MoE (Mar 11)"
    huge = Topic("a very long topic name " * 10, "x")
    subject = render.subject_line(Digest(Subscriber(email="a@example.org", topics=[huge]), "e", DAY, ()))
    assert subject.startswith("No new papers on a very long topic name") and len(subject) < 80
    assert "…" in subject
    # " of 1234" takes its room from the topics: a capped subject is no longer than the plain one.
    alone = Digest(Subscriber(email="a@example.org", topics=[huge]), "e", DAY,
                   (DigestSection(huge, (item(BARE, (huge.name,)),)),))
    capped = render.subject_line(dataclasses.replace(alone, more=1233))
    assert capped.startswith("1 of 1234 new papers on a very long topic name") and capped.endswith(" (Mar 11)")
    assert len(capped.removeprefix("1 of 1234 new papers on ")) - len(" (Mar 11)") <= render.SUBJECT_TOPIC_CHARS - 8
    assert len(capped) < 80
    nameless = render.subject_line(Digest(Subscriber(email="a@example.org"), "e", DAY, ()))
    assert nameless == "No new papers (Mar 11)"


@given(st.text(max_size=60), st.text(max_size=30), st.text(min_size=1, max_size=30))
def test_the_html_is_ascii_and_reads_back_as_written(renderer: EmailRenderer, title: str, name: str, topic: str) -> None:
    """The HTML writes each non-ASCII character as a reference (email_templates.CharacterReferences),
    in template text and values alike: whatever a title, a reader's name or a topic holds, the
    HTML is ASCII and a mail client, reading the references back, shows the values as written."""
    followed = Topic(topic, "x")
    paper = Paper(id="t-any", title=title, abstract=f"{title} {topic} abstract")
    reader = Subscriber(email="ana@example.org", name=name, token="tok123", topics=[followed])
    digest = Digest(reader, "2024-03-11", DAY, (DigestSection(followed, (item(paper, (topic,)),)),))
    html = renderer.render(digest, SETTINGS).html
    assert html.isascii()
    values = render.context(digest, SETTINGS)
    shown = unescape(html)
    assert values["greeting"] in shown and values["preheader"] in shown and values["reason"] in shown
    (section,) = values["sections"]
    assert section.name in shown and section.items[0].paper.title in shown


@given(st.text(max_size=80))
def test_references_read_back_as_the_characters_they_stand_for(text: str) -> None:
    """mail.from_references undoes what the renderer writes (escaped text, non-ASCII as
    references), and leaves a reader's own "&#183;" as typed: escaping made it &amp;#183;."""
    from markupsafe import escape

    from paperwire.mail import as_references

    assert from_references(as_references(escape(text))) == escape(text)


def css_read(css: str) -> str:
    """CSS escapes read back as CSS Syntax 4.3.7 reads them: up to six hex digits, then one
    whitespace character, if any, taken as part of the escape."""
    return re.sub(r"\\([0-9a-fA-F]{1,6})[ \t\n]?", lambda escape: chr(int(escape[1], 16)), css)


@given(st.text(st.characters(blacklist_characters="\\"), max_size=40))  # an author's backslash is CSS's own
def test_css_escapes_read_back_as_the_characters_they_stand_for(css: str) -> None:
    """Whatever follows an escape (a digit, a space, another escape) stays what it was."""
    escaped = email_templates.css_escaped(css)
    assert escaped.isascii() and css_read(escaped) == css


def test_the_templates_css_gets_css_escapes_and_its_text_references() -> None:
    """Inside a <style> element, across the template's tags, a non-ASCII character is a CSS
    escape; outside it, in text and attributes, a character reference."""
    env = email_templates.environments(TEMPLATES, "", {})[0]
    template = env.from_string(
        '<p title="→">→</p><style type="text/css">{% if dark %}a::after { content: "→ 1"; }{% endif %}'
        'b { content: "é" }</STYLE><p>{{ "→" }}é</p><style>c { content: "·" }</style>·')
    assert template.render(dark=True) == (
        '<p title="&#8594;">&#8594;</p><style type="text/css">a::after { content: "\\2192  1"; }'
        'b { content: "\\e9 " }</STYLE><p>&#8594;&#233;</p><style>c { content: "\\b7 " }</style>&#183;')


def test_filters_on_captured_text_see_the_characters() -> None:
    """Text a template captures (a {% set %} block, a macro, a {% filter %} block) keeps its
    characters, values inside it too, so filters see text as written; references are
    written when it is shown (email_templates.CharacterReferences). A tester's "Über-digest"
    came out as "&amp;#220;ber-Digest" under |title, and |truncate cut "&#183;" in two."""
    env = email_templates.environments(TEMPLATES, "", {})[0]
    template = env.from_string(
        "{% set t %}Über-digest · naïve {{ name }}{% endset %}"
        "{% macro m(x) %}→ {{ x }}{% endmacro %}"
        "{{ t|title }}|{{ t|upper }}|{{ t|truncate(13, true, '') }}|{{ t|replace('·', '/') }}|{{ t|length }}|"
        "{{ m(name)|upper }}|{% filter upper %}café {{ name }}{% endfilter %}|é{{ tag }}")
    page = template.render(name="José", tag="<b>")
    assert unescape(page) == ("Über-Digest · Naïve José|ÜBER-DIGEST · NAÏVE JOSÉ|Über-digest ·|"
                              "Über-digest / naïve José|24|→ JOSÉ|CAFÉ JOSÉ|é<b>")
    shown = page.split("|")
    assert all(part.isascii() for part in shown[:-2]) and shown[-1] == "&#233;&lt;b&gt;"
    assert shown[-2] == "CAFÉ JOSÉ"  # no {{ }} shows a filter block: mail.py writes its references


def test_a_page_that_cannot_go_7bit_goes_quoted_printable_as_utf8(renderer: EmailRenderer) -> None:
    """A Chinese preheader of 140 characters is one line of ~1,100 bytes as references, over
    what 7-bit allows: the part goes quoted-printable with the characters themselves (3 bytes
    each, not 8), and decodes to the rendered page with its references read back."""
    import email
    from email import policy

    from paperwire.mail import build_message

    title = "中文摘要" * 40
    paper = Paper(id="t-zh", title=title, abstract="中文摘要。" * 100)
    digest = Digest(READER, "2024-03-11", DAY, (DigestSection(TOPICS[0], (item(paper, (TOPICS[0].name,)),)),))
    rendered = renderer.render(digest, SETTINGS)
    assert rendered.html.isascii() and "&#20013;" in rendered.html
    data = bytes(build_message(digest, rendered, SETTINGS))
    head, body = data.split(b'Content-Type: text/html; charset="utf-8"\r\n', 1)[1].split(b"\r\n\r\n", 1)
    assert head == b"Content-Transfer-Encoding: quoted-printable" and b"&#20013;" not in body
    html = email.message_from_bytes(data, policy=policy.default).get_body(("html",)).get_content()
    assert html.replace("\r\n", "\n").rstrip("\n") == from_references(rendered.html).rstrip("\n")


def test_values_outside_autoescape_and_str_subclasses_are_referenced_too(tmp_path: Path) -> None:
    """``{% autoescape false %}`` shows a value as it is, references and all (escaping it
    there would turn a template's own markup into text); a str subclass is text like str."""
    import enum

    from markupsafe import Markup

    html_env, _ = email_templates.environments(tmp_path, "", {})

    class Kind(str, enum.Enum):
        CAFE = "café <b>"

    assert html_env.from_string("{% autoescape false %}{{ v }}{% endautoescape %}").render(v="<i>·</i>") == "<i>&#183;</i>"
    assert html_env.from_string("{{ v }}").render(v="<i>·</i>") == "&lt;i&gt;&#183;&lt;/i&gt;"
    assert html_env.from_string("{{ v }}").render(v=Kind.CAFE).isascii()
    assert html_env.from_string("{{ 3 }} {{ 2.5 }} {{ v }}").render(v=Markup("<b>·</b>")) == "3 2.5 <b>&#183;</b>"


def test_hostile_input_is_escaped(renderer: EmailRenderer) -> None:
    paper = Paper(id="t-hostile", title=HOSTILE, abstract=HOSTILE + " scaling laws " + HOSTILE,
                  authors=[HOSTILE], links=[Link("https://example.org/?a=1&b='2'", "code"),
                                                 Link("https://example.org/?a=<2>", "project")])
    topic = Topic(HOSTILE, "x")
    reader = Subscriber(email="ana@example.org", name=HOSTILE, token="tok123", topics=[topic])
    digest = Digest(reader, "2024-03-11", DAY,
                    (DigestSection(topic, (item(paper, (HOSTILE, "other <b>topic</b>"),
                                                hit("scaling laws", paper.abstract), hit("<script>", paper.abstract)),)),))
    rendered = renderer.render(digest, SETTINGS)
    html, text = rendered.html, rendered.text

    assert "<script" not in html.lower() and "<b>topic" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;quotes&#39; &amp; ampersands" in html
    assert "<strong>scaling laws</strong>" in html and "<strong>&lt;script&gt;</strong>" in html
    parsed = Tags(html)
    assert all(not name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    assert all(href.startswith(("https://", "http://")) for href in parsed.hrefs)
    assert "https://example.org/?a=1&b='2'" in parsed.hrefs  # escaped in the attribute, intact when parsed
    assert "https://example.org/?a=1&amp;b=&#39;2&#39;" in html
    assert "a=<2>" not in text and not any("a=<2>" in href for href in parsed.hrefs)  # not a URI: dropped
    shown = unescape(html)  # the HTML writes non-ASCII characters as references: as a client reads it
    for part in (shown, text, rendered.subject, rendered.preheader):
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202e]", part)
    for part in (shown, text, rendered.preheader):
        assert "🚀🧪 שלום עולם مرحبا" in part
    # Plain text needs no escaping: it shows what was written, as the HTML part does once escaped.
    assert "<script>alert(1)</script>" in text and "\"quotes' & ampersands" in text
    assert "other <b>topic</b>" in text
    assert "\n" not in rendered.subject


def test_text_part_says_what_the_html_part_shows(renderer: EmailRenderer) -> None:
    """Text that looks like a tag (maths, special tokens, a reader's name) reaches both parts whole."""
    sentence = "We prove the bound for all k<n and n>2 with <SEG> tokens."
    paper = Paper(id="t-maths", title="Bounds for <think> tokens", abstract=sentence)
    topic = Topic("<b>maths</b>", "bound")
    reader = Subscriber(email="zoe@example.org", name='Zoë "Q" <x>', token="tok123", topics=[topic])
    digest = Digest(reader, "2024-03-11", DAY, (DigestSection(topic, (item(paper, (topic.name,), hit("bound", sentence)),)),))
    rendered = renderer.render(digest, SETTINGS)
    shown = unescape(re.sub(r"<[^>]+>", "", rendered.html))
    for part in (" ".join(shown.split()), " ".join(rendered.text.split())):
        for text in (sentence, "Bounds for <think> tokens", 'Hi Zoë "Q" <x>,', "<b>maths</b>"):
            assert text in part


def test_highlights_wrap_exactly_the_matched_words(renderer: EmailRenderer) -> None:
    html = renderer.render(golden_digest(), SETTINGS).html
    assert html.count("<strong>scaling laws</strong>") == 2
    assert "<strong>Mixture of experts</strong>" in html
    # Title hits are not abstract hits: the title is not highlighted.
    assert "<strong>Scaling Laws</strong>" not in html


def test_highlight_spans_are_merged_and_clipped_to_the_cut() -> None:
    text = "alpha beta gamma " * 60  # 1,020 characters, cut near 600
    hits = (hit("beta", text), hit("beta gamma", text), hit("alpha", text))
    view = paperview.item_view(item(Paper("p", "T", text), ("t",), *hits), SETTINGS)
    cut = len(view.abstract) - 1
    assert view.abstract.endswith("…") and cut <= paperview.ABSTRACT_CHARS
    assert text.startswith(view.abstract[:-1]) and text[cut] == " "  # cut at a word boundary
    shown = str(view.abstract_html)
    assert shown.count("<strong>") == view.abstract.count("alpha") + view.abstract.count("beta")
    assert "<strong>beta gamma</strong>" in shown and "<strong>beta</strong>" not in shown
    assert paperview.merged_spans([Hit("x", "abstract", ((5, 9), (0, 3), (2, 4), (8, 12)))], "abstract", 10) == [(0, 4), (5, 10)]
    assert paperview.merged_spans([Hit("x", "abstract", ((9, 3), (-1, 2), (20, 30)))], "abstract", 10) == []


def test_a_match_beyond_the_cut_is_shown_in_its_sentence() -> None:
    filler = "Nothing of interest is said in this sentence at all. " * 20  # 1,060 characters
    text = filler + "Here sparse routing helps a lot. The end."
    view = paperview.item_view(item(Paper("p", "T", text), ("t",), hit("sparse routing", text)), SETTINGS)
    assert view.abstract == "…Here sparse routing helps a lot. The end."
    assert str(view.abstract_html) == "…Here <strong>sparse routing</strong> helps a lot. The end."
    longer = filler + "Here sparse routing helps. " + "More words follow here. " * 40
    view = paperview.item_view(item(Paper("p", "T", longer), ("t",), hit("sparse", longer), hit("words", longer)), SETTINGS)
    assert view.abstract.startswith("…Here sparse routing helps. More") and view.abstract.endswith("…")
    assert len(view.abstract) <= paperview.ABSTRACT_CHARS + 2 and "<strong>sparse</strong>" in view.abstract_html
    no_sentence = "word " * 300 + "target here"
    view = paperview.item_view(item(Paper("p", "T", no_sentence), ("t",), hit("target", no_sentence)), SETTINGS)
    assert view.abstract.startswith("…word ") and "<strong>target</strong> here" in view.abstract_html
    assert len(view.abstract) < 200  # from a word shortly before the match
    early = paperview.item_view(item(Paper("p", "T", text), ("t",), hit("nothing", text), hit("sparse routing", text)),
                             SETTINGS)
    assert early.abstract.startswith("Nothing of interest") and early.abstract.endswith("…")  # the first match shows
    for end in ("? ", "! ", ".\n", '." ', ".) "):  # any sentence end, not only ". "
        asked = filler + f"Can it scale{end}Here sparse routing helps."
        view = paperview.item_view(item(Paper("p", "T", asked), ("t",), hit("sparse routing", asked)), SETTINGS)
        assert view.abstract == "…Here sparse routing helps.", end


def test_short_abstract_is_kept_whole_and_authors_are_truncated(renderer: EmailRenderer) -> None:
    first = golden_digest().sections[0].items[0]
    view = paperview.item_view(first, SETTINGS)
    assert view.abstract == SCALING.abstract
    assert view.authors == "Ada Lovelace, Alan Turing, Grace Hopper et al."
    assert view.url == "https://arxiv.org/abs/2403.00001"
    assert [(link.label, link.url) for link in view.links] == [
        ("PDF", "https://arxiv.org/pdf/2403.00001"), ("Code", "https://github.com/example/moe-scaling")]
    assert view.matched == "scaling laws" and paperview.also_in(first.topics, "scaling laws") == "MoE"
    assert paperview.authors_line(["A", "B", "C", "D"]) == "A, B, C, D"


def test_links_fall_back_and_drop_unsafe_schemes() -> None:
    long_view = paperview.item_view(item(LONG, ("MoE",)), SETTINGS)
    assert long_view.url == "https://example.org/routing" and long_view.links == ()
    bare_view = paperview.item_view(item(BARE, ("MoE",)), SETTINGS)
    assert bare_view.url == f"{BASE}/papers/t-fedcba9876543210"


def test_more_link_only_when_there_are_more(renderer: EmailRenderer) -> None:
    more_url = f"{BASE}/archive/tok123/2024-03-11#p-2403-00004v2"
    with_more = renderer.render(golden_digest(), SETTINGS)
    assert more_url in Tags(with_more.html).hrefs and more_url in with_more.text
    assert "And 3 more matching papers" in with_more.html and "And 3 more matching papers" in with_more.text
    digest = golden_digest()
    without = renderer.render(Digest(digest.subscriber, digest.edition, digest.listing_date, digest.sections), SETTINGS)
    assert "#p" not in without.text and "/archive/tok123/2024-03-11#" not in without.html and "more matching" not in without.text


def test_every_reader_link_uses_base_url(renderer: EmailRenderer) -> None:
    base = "https://news.example.net/pw"
    rendered = renderer.render(golden_digest(), Settings(base_url=base))
    paper_urls = {link.url for paper in (SCALING, LONG, BARE) for link in paper.links}
    hrefs = Tags(rendered.html).hrefs
    assert hrefs and all(href.startswith(base + "/") or href in paper_urls for href in hrefs)
    for path in ("/manage/tok123", "/unsubscribe/tok123", "/feeds/private/tok123.atom", "/archive/tok123/2024-03-11",
                 "/papers/t-fedcba9876543210"):
        assert base + path in hrefs and base + path in rendered.text
    text_urls = re.findall(r"https?://\S+", rendered.text)
    assert all(url.startswith(base + "/") or url in paper_urls for url in text_urls)
    assert "papers.example.org" not in rendered.html + rendered.text


def test_footer_says_why_and_greets_by_name(renderer: EmailRenderer) -> None:
    rendered = renderer.render(golden_digest(), SETTINGS)
    why = "You get this because you subscribed to scaling laws, MoE with ana@example.org — daily at 08:00 Europe/Berlin."
    assert why in unescape(rendered.html) and " ".join(rendered.text.split()).count(why) == 1
    assert SETTINGS.sender_line in unescape(rendered.html) and SETTINGS.sender_line in rendered.text
    assert "Hi Ana," in rendered.html and "Hi Ana," in rendered.text
    weekly = Subscriber(email="b@example.org", cadence="weekly:mon", hour=7, timezone="UTC")
    assert render.schedule_phrase(weekly) == "weekly on Mondays at 07:00 UTC"
    nameless = Digest(Subscriber(email="b@example.org", token="t"), "2024-03-11", DAY, ())
    assert "Hello," in renderer.render(nameless, SETTINGS).text


def test_html_head_dark_mode_and_hidden_preheader(renderer: EmailRenderer) -> None:
    rendered = renderer.render(golden_digest(), SETTINGS)
    html = rendered.html
    assert '<meta name="color-scheme" content="light dark"' in html
    assert '<meta name="supported-color-schemes" content="light dark"' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert f"<title>{rendered.subject}</title>" in html
    hidden = re.search(r'<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">([^<]*)</div>', html)
    assert hidden and unescape(hidden.group(1)) == rendered.preheader
    # No "hidden" text in low-contrast colours (SpamAssassin HTML_FONT_LOW_CONTRAST), no web fonts.
    styles = [attrs.get("style") or "" for _, attrs in Tags(html).tags]
    assert not any(re.search(r"(?<![-\w])color:\s*#fff", style, re.I) for style in styles)
    assert "fonts.googleapis" not in html
    assert "overflow-wrap: anywhere" in html


def test_text_part_is_real_and_wrapped(renderer: EmailRenderer) -> None:
    text = renderer.render(golden_digest(), SETTINGS).text
    assert "Scaling Laws for Sparse Mixture-of-Experts Language Models" in " ".join(text.split())
    assert "We study scaling laws for sparse MoE models" in text
    assert "matched: scaling laws" in text and "also in: MoE" in text
    assert "Code: https://github.com/example/moe-scaling" in text
    for line in text.splitlines():
        assert len(line) <= render.TEXT_WIDTH or " " not in line.strip() or "://" in line, line


def test_wrap() -> None:
    assert render.wrap("aaa bbb ccc", 8, "  ") == "  aaa\n  bbb\n  ccc"
    assert render.wrap("a\n b   c", 76) == "a b c"
    assert render.wrap("x" * 90 + " y", 20) == "x" * 90 + "\ny"
    assert render.wrap("one two three", 9, "    ", first="1.  ") == "1.  one\n    two\n    three"
    assert render.wrap("", 10) == ""


def worst_case_digest(papers: int) -> Digest:
    """``papers`` papers with 300-character titles, 2,000-character abstracts full of hits,
    five authors and every kind of link: the largest email a reader can get per paper."""
    words = "scaling laws for mixture-of-experts models with routing and sparse attention layers".split()
    abstract = " ".join(words[i % len(words)] for i in range(400))[:2000]
    items = []
    for n in range(papers):
        paper = Paper(
            id=f"t-{n:016x}", title=("Towards Very Long Titles " * 13)[:300], abstract=abstract,
            arxiv_id=f"2403.{n:05d}", authors=[f"Author Number{k} Lastname" for k in range(12)],
            links=[Link(f"https://arxiv.org/abs/2403.{n:05d}", "abs"), Link(f"https://arxiv.org/pdf/2403.{n:05d}", "pdf"),
                   Link(f"https://github.com/some-organisation/some-repository-{n}", "code"),
                   Link(f"https://some-organisation.github.io/project-page-{n}/", "project"),
                   Link(f"https://huggingface.co/some-organisation/model-{n}", "model"),
                   Link(f"https://huggingface.co/datasets/some-organisation/data-{n}", "dataset")],
        )
        items.append(item(paper, ("scaling laws", "MoE"), hit("scaling laws", abstract), hit("sparse", abstract),
                          hit("mixture-of-experts", abstract), rank=n + 1))
    sections = (DigestSection(TOPICS[0], tuple(items[: papers // 2])), DigestSection(TOPICS[1], tuple(items[papers // 2:])))
    # A real link secret (subscribers.new_token: 32 characters): each paper's "More like this" link carries it.
    reader = dataclasses.replace(READER, token="T" * len(new_token()))
    return Digest(reader, "2024-03-11", DAY, sections, more=85)


def clip_size(html: str) -> int:
    """The size Gmail's clip is measured on: the page as UTF-8, its character references read
    back (what quoted-printable sends when the references would not fit; render._over_clip)."""
    return len(from_references(html).encode())


def test_size_under_gmail_clip_at_the_usual_cap(renderer: EmailRenderer) -> None:
    size = clip_size(renderer.render(worst_case_digest(15), SETTINGS).html)
    assert size < 102_000
    assert size < 50_000, f"15 worst-case papers take {size} bytes: markup grew, check the template"


def test_cap_where_size_limit_holds(renderer: EmailRenderer, caplog: pytest.LogCaptureFixture) -> None:
    """MAX_PAPERS_UNDER_CLIP is measured, not guessed: it fits, and one more would not (and says so)."""
    assert clip_size(renderer.render(worst_case_digest(render.MAX_PAPERS_UNDER_CLIP), SETTINGS).html) < 102_000
    assert "Gmail will clip it" not in caplog.text
    assert clip_size(renderer.render(worst_case_digest(render.MAX_PAPERS_UNDER_CLIP + 1), SETTINGS).html) > 102_000
    assert "Gmail will clip it" in caplog.text


def test_an_email_over_gmails_clip_shows_fewer_papers_and_keeps_its_footer(
        renderer: EmailRenderer, caplog: pytest.LogCaptureFixture) -> None:
    """A digest whose HTML Gmail would clip (hiding the rest, the unsubscribe link too) is
    sent with the papers it picked last moved into "And N more"; one that fits is untouched."""
    digest = worst_case_digest(render.MAX_PAPERS_UNDER_CLIP + 8)
    shown, rendered = renderer.render_under_clip(digest, SETTINGS)
    assert clip_size(rendered.html) <= 102_000 and "Gmail will clip it" not in caplog.text
    assert render.MAX_PAPERS_UNDER_CLIP - 4 <= shown.papers < digest.papers
    assert shown.more == digest.more + digest.papers - shown.papers
    ranks = sorted(item.rank for section in shown.sections for item in section.items)
    assert ranks == list(range(1, shown.papers + 1))  # the first picked stay (equal scores: by trending rank)
    assert shown.more_from == f"t-{shown.papers:016x}"  # the best of those left out, where "And N more" opens
    assert f"#p-t-{shown.papers:016x}" in rendered.html and "Unsubscribe</a>" in rendered.html
    assert rendered == renderer.render(shown, SETTINGS)
    fits = worst_case_digest(15)
    assert renderer.render_under_clip(fits, SETTINGS) == (fits, renderer.render(fits, SETTINGS))


def test_no_reader_can_ask_for_more_papers_than_fit_under_the_clip():
    from paperwire.subscribers import MAX_PAPERS_LIMIT, parse_max_papers
    assert MAX_PAPERS_LIMIT <= render.MAX_PAPERS_UNDER_CLIP
    with pytest.raises(ValidationError, match="max"):
        parse_max_papers(MAX_PAPERS_LIMIT + 1)


def test_mjml_is_compiled_once_per_template_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = email_templates.mjml2html

    def counting(source: str, **options) -> str:
        calls.append(1)
        return real(source, **options)

    monkeypatch.setattr(email_templates, "mjml2html", counting)
    email_templates.compiled_html.cache_clear()
    first = EmailRenderer(TEMPLATES)
    outputs = {first.render(golden_digest(), SETTINGS).html for _ in range(50)}
    assert len(calls) == 1 and len(outputs) == 1
    second = EmailRenderer(TEMPLATES)  # another renderer of the same templates: no second compile
    assert len(calls) == 1
    assert second.render(golden_digest(), SETTINGS) == first.render(golden_digest(), SETTINGS)

    changed = tmp_path / "templates"  # a changed frame is a new source: compiled anew
    shutil.copytree(TEMPLATES, changed)
    frame = changed / "email.mjml.j2"
    frame.write_text(frame.read_text(encoding="utf-8").replace("</mj-body>", "<mj-raw><p>frame v2</p></mj-raw></mj-body>"),
                     encoding="utf-8")
    assert "<p>frame v2</p>" in EmailRenderer(changed).render(golden_digest(), SETTINGS).html
    assert len(calls) == 2


def test_seed_papers_render(renderer: EmailRenderer, seed_papers: list[Paper]) -> None:
    """The real seed listing, all 70 papers, renders; every title is there, escaped."""
    items = tuple(item(paper, ("scaling laws",), hit("language model", paper.abstract), rank=n + 1)
                  for n, paper in enumerate(seed_papers))
    digest = Digest(READER, "2024-03-11", DAY, (DigestSection(TOPICS[0], items),))
    rendered = renderer.render(digest, SETTINGS)
    assert isinstance(rendered, RenderedEmail)
    visible = " ".join("".join(Tags(rendered.html).text).split())
    for paper in seed_papers:
        assert " ".join(paper.title.split()) in visible
    assert rendered.subject == "70 new papers on scaling laws (Mar 11)"


# -- the templates own the email; what is reused is keyed by all it is made of ------------

def edited_templates(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """A copy of the email templates with ``old`` replaced by ``new`` in the named files."""
    for source in TEMPLATES.glob("email*.j2"):
        text = source.read_text(encoding="utf-8")
        if source.name in edits:
            old, new = edits[source.name]
            assert old in text, f"{source.name} no longer has {old!r}"
            text = text.replace(old, new)
        (tmp_path / source.name).write_text(text, encoding="utf-8")
    return tmp_path


PAPER_CALL = '"email_paper.html.j2" | include_shared(paper=item.paper)'
PAPER_HEADING = '<h3 dir="auto"'  # the paper block's first line


def test_the_templates_number_papers_and_can_put_anything_between_them(tmp_path: Path) -> None:
    """A template author numbers papers, shows their topic and position, and puts something
    between paper 2 and 3, all in templates/: no Python changes."""
    folder = edited_templates(tmp_path, {
        "email.mjml.j2": (PAPER_CALL + " }}", '"email_paper.html.j2" | include_shared(paper=item.paper, number=item.number, '
                          'position=item.position, topic=item.topic) }}{% if item.number == 2 %}<p>BETWEEN 2 AND 3</p>{% endif %}'),
        "email_paper.html.j2": (PAPER_HEADING, '<p class="n">#{{ number }} ({{ position }} in {{ topic }})</p>\n' + PAPER_HEADING),
        "email.txt.j2": ("{% for item in section.items %}\n", "{% for item in section.items %}\n{{ item.position }}/{{ section.items | length }} in {{ item.topic }}\n"),
    })
    rendered = EmailRenderer(folder).render(golden_digest(), SETTINGS)
    html = rendered.html
    assert re.findall(r'<p class="n">#(\d) \((\d) in ([^)]+)\)</p>', html) == [
        ("1", "1", "scaling laws"), ("2", "1", "MoE"), ("3", "2", "MoE")]
    second, third = html.index('id="p-t-0123456789abcdef"'), html.index('id="p-t-fedcba9876543210"')
    assert second < html.index("BETWEEN 2 AND 3") < third
    assert html.count("BETWEEN") == 1
    assert "1/1 in scaling laws" in rendered.text and "2/2 in MoE" in rendered.text
    assert EmailRenderer(TEMPLATES).render(golden_digest(), SETTINGS).html.count("BETWEEN") == 0



def test_the_templates_have_jinjas_globals(tmp_path: Path) -> None:
    """Jinja's globals (range, namespace, ...) work in both frames: EmailRenderer keeps them as a dict."""
    loop = "{% set seen = namespace(n=0) %}{% for n in range(3) %}{% set seen.n = seen.n + n %}{% endfor %}[{{ seen.n }}]"
    folder = edited_templates(tmp_path, {"email.mjml.j2": ("<p>{{ intro }}</p>", "<p>{{ intro }}" + loop + "</p>"),
                                         "email.txt.j2": ("{{ intro | wrap }}", "{{ intro | wrap }}" + loop)})
    renderer = EmailRenderer(folder)
    for _ in range(2):
        rendered = renderer.render(golden_digest(), SETTINGS)
        assert "best 3.[3]</p>" in rendered.html and "best 3.[3]\n" in rendered.text

def reader_pair() -> tuple[Digest, Digest]:
    """Two readers with their own token, name, address and topic names, given the same papers
    with the same matches (so everything that can be shared is)."""
    digests = []
    for token, name, topics in (("tokAAAA1111", "Annika", ("quantum sparrows", "marmalade")),
                                ("tokBBBB2222", "Bertrand", ("velvet lanterns", "porcupine"))):
        mine = [Topic(topic, "x") for topic in topics]
        reader = Subscriber(email=f"{name.lower()}@example.org", name=name, token=token, topics=mine)
        sections = (DigestSection(mine[0], (item(SCALING, topics, hit("scaling laws", SCALING.abstract)),
                                            item(BARE, (topics[0],), rank=2))),
                    DigestSection(mine[1], (item(LONG, (topics[1],), hit("mixture of experts", LONG.abstract)),)))
        digests.append(Digest(reader, "2024-03-11", DAY, sections, more=2, more_from=BARE.id))
    return digests[0], digests[1]


def own_data(digest: Digest) -> list[str]:
    reader = digest.subscriber
    return [reader.token, reader.name, reader.email, *(topic.name for topic in reader.topics)]


def test_two_readers_never_share_a_byte_of_their_own_data() -> None:
    renderer = EmailRenderer(TEMPLATES)
    annika, bertrand = reader_pair()
    first = renderer.render(annika, SETTINGS)
    theirs = renderer.render(bertrand, SETTINGS)
    again = renderer.render(annika, SETTINGS)  # after the other reader, from warm caches
    for mine, other, rendered in ((annika, bertrand, first), (bertrand, annika, theirs), (annika, bertrand, again)):
        everything = "\n".join((rendered.subject, rendered.preheader, rendered.html, rendered.text))
        assert all(value in everything for value in own_data(mine))
        assert not [value for value in own_data(other) if value in everything]
        # Each paper's "More like this" link carries this reader's token, in both parts.
        likes = [f"{BASE}/like/{mine.subscriber.token}/{paper.id}" for paper in (SCALING, BARE, LONG)]
        assert re.findall(r'<a href="([^"]+)">More like this</a>', rendered.html) == likes
        assert re.findall(r"    More like this: (\S+)\n", rendered.text) == likes
    assert again == first == EmailRenderer(TEMPLATES).render(annika, SETTINGS)


def test_a_per_reader_value_inside_a_paper_block_is_per_reader(tmp_path: Path) -> None:
    """A "more like this" link with the reader's token in every paper's block: passed to the
    block, it is part of what the block is kept by, so each reader gets their own."""
    folder = edited_templates(tmp_path, {
        "email.mjml.j2": (PAPER_CALL, '"email_paper.html.j2" | include_shared(paper=item.paper, manage=manage_url)'),
        "email_paper.html.j2": (PAPER_HEADING, '<a class="like" href="{{ manage }}?like={{ paper.anchor }}">More like this</a>\n'
                                + PAPER_HEADING)})
    renderer = EmailRenderer(folder)
    annika, bertrand = reader_pair()
    for digest, other in ((annika, bertrand), (bertrand, annika), (annika, bertrand)):
        html = renderer.render(digest, SETTINGS).html
        likes = re.findall(r'<a class="like" href="([^"]+)">', html)
        assert likes == [f"{BASE}/manage/{digest.subscriber.token}?like={urls_anchor}"
                         for urls_anchor in ("p-2403-00001", "p-t-fedcba9876543210", "p-t-0123456789abcdef")]
        assert other.subscriber.token not in html


def test_a_paper_block_sees_only_the_values_it_is_given(tmp_path: Path) -> None:
    """A block that reads a reader's value without being given it fails loudly instead of
    being kept and shown to the next reader: when rendering starts (a sample digest), naming
    the file and line."""
    folder = edited_templates(tmp_path, {"email_paper.html.j2": (PAPER_HEADING, "{{ manage_url }}\n" + PAPER_HEADING)})
    line = (folder / "email_paper.html.j2").read_text(encoding="utf-8").split("\n").index("{{ manage_url }}") + 1
    with pytest.raises(ConfigError, match=re.escape(f"UndefinedError: 'manage_url' is undefined "
                                                    f"(at {folder / 'email_paper.html.j2'}:{line})")):
        EmailRenderer(folder)
    unfrozen = edited_templates(tmp_path, {"email.mjml.j2": (PAPER_CALL, PAPER_CALL.replace(")", ", links={'a': 1})"))})
    with pytest.raises(ConfigError, match=r"TemplateError: include_shared\('email_paper.html.j2'\): links must be frozen"
                                          rf".* \(at {re.escape(str(unfrozen / 'email.mjml.j2'))}:\d+\)"):
        EmailRenderer(unfrozen)


def test_a_list_passed_to_a_paper_block_is_kept_as_a_tuple(tmp_path: Path) -> None:
    """Jinja makes lists (``| list``, ``x.split()``, ``[a, b]``), which cannot key a kept block:
    they are passed as tuples, which a template loops over and joins alike. A tester's ``also=item.also.split(", ")``
    failed for every reader."""
    listed = edited_templates(tmp_path, {"email.mjml.j2": (PAPER_CALL, PAPER_CALL.replace(")", ", tags=[item.topic, [1, 2]])")),
                                         "email_paper.html.j2": (PAPER_HEADING, "<i>{{ tags|join(' / ') }}</i>\n" + PAPER_HEADING)})
    html = EmailRenderer(listed).render(golden_digest(), SETTINGS).html
    assert html.count("<i>") == golden_digest().papers and f"<i>{TOPICS[0].name} / (1, 2)</i>" in unescape(html)



def test_a_kept_block_is_kept_by_each_values_type_too() -> None:
    """``1 == True`` and ``Markup("x") == "x"``, but they render differently: each is its own block."""
    from jinja2 import DictLoader, Environment
    from markupsafe import Markup

    env = Environment(loader=DictLoader({"t.j2": "{{ value }}"}), autoescape=True)
    shared = email_templates.SharedIncludes(env)
    assert [shared("t.j2", value=value) for value in (1, True, 1, "<b>", Markup("<b>"))] == [
        "1", "True", "1", "&lt;b&gt;", "<b>"]

def test_a_papers_block_is_rendered_once_for_every_reader_who_gets_it_alike() -> None:
    renderer = EmailRenderer(TEMPLATES)
    shared = renderer.html_template.environment.filters["include_shared"].rendered_by_values
    ana = golden_digest()
    bo = Digest(Subscriber(email="bo@example.org", name="Bo", token="tok456", topics=TOPICS), "2024-03-11", DAY,
                ana.sections[:1])
    renderer.render(ana, SETTINGS)
    misses = shared.cache_info().misses
    renderer.render(bo, SETTINGS)
    assert shared.cache_info().misses == misses  # Bo's paper is Ana's first, with the same matches and tags


def test_readers_with_other_topics_of_their_own_still_share_the_papers_blocks() -> None:
    """The "also in" line names the reader's own topics, so the frame shows it beside the
    block: readers who get a paper with the same hits share its block whatever else they
    follow, and each sees their own topics. (bench/render.py --unshared gives each reader
    hits of their own too: then blocks are seldom shared.)"""
    renderer = EmailRenderer(TEMPLATES)
    shared = [renderer.html_template.environment.filters["include_shared"].rendered_by_values,
              renderer.text_template.environment.filters["include_shared"].rendered_by_values]
    annika, bertrand = reader_pair()
    renderer.render(annika, SETTINGS)
    misses = [cache.cache_info().misses for cache in shared]
    theirs = renderer.render(bertrand, SETTINGS)
    assert [cache.cache_info().misses for cache in shared] == misses
    assert "also in: porcupine</div>" in theirs.html and "    also in: porcupine\n" in theirs.text
    # The "More like this" links are per reader too, and drawn beside the shared blocks.
    token = bertrand.subscriber.token
    assert theirs.html.count(f"/like/{token}/") == theirs.text.count(f"/like/{token}/") == 3


def test_a_changed_paper_is_never_served_from_the_cache() -> None:
    renderer = EmailRenderer(TEMPLATES)
    digest = golden_digest()
    assert SCALING.title in renderer.render(digest, SETTINGS).html
    renamed = dataclasses.replace(SCALING, title="A Renamed Paper", links=SCALING.links[:1])
    first = digest.sections[0].items[0]
    again = dataclasses.replace(digest, sections=(
        DigestSection(TOPICS[0], (dataclasses.replace(first, paper=renamed),)), *digest.sections[1:]))
    html = renderer.render(again, SETTINGS).html
    assert "A Renamed Paper" in html and SCALING.title not in html and "arxiv.org/pdf" not in html


def test_other_matches_or_tags_make_another_block() -> None:
    renderer = EmailRenderer(TEMPLATES)
    digest = golden_digest()
    first = digest.sections[0].items[0]
    variants = {
        "tags": dataclasses.replace(first, topics=("scaling laws",)),
        "hits": dataclasses.replace(first, hits=(hit("orders of magnitude", SCALING.abstract),)),
    }
    base_html = renderer.render(digest, SETTINGS).html
    assert "also in: MoE" in base_html and "<strong>scaling laws</strong>" in base_html
    for name, variant in variants.items():
        html = renderer.render(dataclasses.replace(
            digest, sections=(DigestSection(TOPICS[0], (variant,)),)), SETTINGS).html
        if name == "tags":
            assert "also in" not in html
        else:
            assert "<strong>orders of magnitude</strong>" in html and "<strong>scaling laws</strong>" not in html


def test_messages_keep_lines_short_whatever_the_values(renderer: EmailRenderer) -> None:
    from paperwire.mail import build_message

    now = dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.timezone.utc)
    cjk = Paper(id="t-cjk", title="大規模言語モデルの混合専門家" * 10, abstract="専門家の混合 " * 200)
    many = [Topic(f"混合専門家モデル {n} mixture of experts routing", "MoE") for n in range(12)]
    wordy = Digest(Subscriber(email="mei@example.org", name="美", token="tok789", topics=many), "2024-03-11", DAY,
                   (DigestSection(many[0], (item(cjk, (many[0].name, many[1].name)),)),))
    for digest in (golden_digest(), empty_digest(), wordy):
        data = build_message(digest, renderer.render(digest, SETTINGS), SETTINGS, now=now).data
        assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 998


def test_url_parts_are_quoted_only_when_they_need_it() -> None:
    from paperwire import urls

    assert urls.paper(BASE, "hep-th/9901001") == f"{BASE}/papers/hep-th%2F9901001"  # an old-style arXiv id
    assert urls.archive(BASE, READER, "2024-03-11") == f"{BASE}/archive/tok123/2024-03-11"
    assert urls.paper(BASE, "a b?c") == f"{BASE}/papers/a%20b%3Fc"


@given(st.text(max_size=40))
def test_more_like_this_links_quote_a_paper_id_as_every_other_link_does(paper_id: str) -> None:
    """Each paper's link is built from the reader's part once plus the paper's (urls.more_like_links):
    the same address as the general rule gives, whatever the id holds."""
    from paperwire import urls

    assert urls.more_like_links(BASE, READER)(paper_id) == urls._join(BASE, "like", READER.token, paper_id)


def test_links_with_controls_or_spaces_are_dropped_and_never_break_the_run(renderer: EmailRenderer) -> None:
    evil = Paper(id="t-\x00evil", title="", abstract="An abstract.", links=[
        Link("https://github.com/a\x00b", "code"), Link("https://example.org/p\n\nUnsubscribe: https://evil", "project"),
        Link("https://example.org/fine", "model")])
    digest = Digest(READER, "2024-03-11", DAY, (DigestSection(TOPICS[0], (item(evil, ("scaling laws",)),)),))
    for _ in range(3):  # first reader, second (kept), third (from the cache)
        rendered = renderer.render(digest, SETTINGS)
        for part in (rendered.html, rendered.text, rendered.subject, rendered.preheader):
            assert "\x00" not in part and "github.com/a" not in part and "https://evil" not in part
        assert "https://example.org/fine" in rendered.html and "t-evil" in rendered.text  # the id stands in for the title


def test_the_other_topics_in_a_block_are_the_ones_it_shows() -> None:
    renderer = EmailRenderer(TEMPLATES)
    s_topic, t_topic = Topic("S", "x"), Topic("T", "x")

    def digest_for(section: Topic, topics: tuple[str, ...]) -> Digest:
        return Digest(READER, "2024-03-11", DAY, (DigestSection(section, (item(SCALING, topics),)),))

    for _ in range(2):
        assert "also in: X</div>" in renderer.render(digest_for(s_topic, ("S", "X", "S")), SETTINGS).html
        assert "also in: X, S</div>" in renderer.render(digest_for(t_topic, ("T", "X", "S")), SETTINGS).html


@pytest.mark.parametrize(("file", "old", "new", "said"), [
    ("email.mjml.j2", "{% for section in sections %}", "{% for section in sections %}{% bogus %}",
     "email.mjml.j2:{line}: Encountered unknown tag 'bogus'"),
    ("email_paper.html.j2", "{% if paper.authors %}", "{% if paper.authors %}{{ ) }}", "email_paper.html.j2:{line}: "),
    ("email_paper.txt.j2", "{% if paper.authors %}", "{% if paper.authors %}{% endfor %}", "email_paper.txt.j2:{line}: "),
    ("email.mjml.j2", "</mj-body>", "", "email.mjml.j2: not valid MJML"),
    ("email.mjml.j2", '<mj-text css-class="pw-t">', '<mj-txt css-class="pw-t">',
     "email.mjml.j2: not valid MJML: line {line}: <mj-txt> is no MJML element"),
])
def test_a_broken_template_is_one_error_naming_its_file_and_line(tmp_path: Path, file: str, old: str, new: str,
                                                                  said: str) -> None:
    """Before any reader: a template author learns where, not 30 tracebacks later."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    source = (folder / file).read_text(encoding="utf-8")
    line = source[:source.index(old)].count("\n") + 1
    (folder / file).write_text(source.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        EmailRenderer(folder)
    assert str(folder / file) + said.removeprefix(file).format(line=line) in str(raised.value)


@pytest.mark.parametrize(("file", "old", "new", "said"), [
    ("email.mjml.j2", "{{ greeting }}", "{{ greting }}", "UndefinedError: 'greting' is undefined"),
    ("email.mjml.j2", "{{ item.more_like_url }}", "{{ item.more_like }}", "has no attribute 'more_like'"),
    ("email_paper.html.j2", "{% if paper.authors %}", "{% if paper.authors|nope_filter %}", "No filter named 'nope_filter'"),
    ("email.txt.j2", "{{ sender_name }}", "{{ sender_name.upper(1) }}", "TypeError"),
    ("email_paper.txt.j2", "{{ link.label }}", "{{ link.lable }}", "has no attribute 'lable'"),
    ("email.mjml.j2", "{{ item.first_anchor }}", "{{ item.first_anchr }}", "has no attribute 'first_anchr'"),
])
def test_a_template_that_fails_for_every_reader_fails_at_start_naming_its_file_and_line(
        tmp_path: Path, file: str, old: str, new: str, said: str) -> None:
    """A misspelt name fails for every reader: it is found when rendering starts, on a sample
    digest, and named by the line of the file as written (email.mjml.j2's own, not the
    compiled MJML's), not once per reader."""
    folder = edited_templates(tmp_path, {file: (old, new)})
    source = (folder / file).read_text(encoding="utf-8")
    line = source[:source.index(new)].count("\n") + 1
    with pytest.raises(ConfigError) as raised:
        EmailRenderer(folder)
    assert str(raised.value).startswith(f"templates in {folder} fail on a sample digest: ")
    assert said in str(raised.value) and (f"{folder / file}:{line}" in str(raised.value))


def test_a_byte_order_mark_an_editor_wrote_is_not_shown(tmp_path: Path) -> None:
    """Some editors start a UTF-8 file with a byte order mark: it was written before every
    paper (&#65279;, a zero-width character) when email_paper.html.j2 had one."""
    folder = edited_templates(tmp_path, {})
    for name in ("email.mjml.j2", "email_paper.html.j2", "email_paper.txt.j2", "email.txt.j2"):
        (folder / name).write_bytes(b"\xef\xbb\xbf" + (folder / name).read_bytes())
    rendered = EmailRenderer(folder).render(golden_digest(), SETTINGS)
    assert "&#65279;" not in rendered.html and "\ufeff" not in rendered.html + rendered.text
    assert rendered == EmailRenderer(TEMPLATES).render(golden_digest(), SETTINGS)


@pytest.mark.parametrize(("source", "said"), [
    ("<mj-text>fine</mj-text>\n<mj-tex>typo</mj-tex>", "line 4: <mj-tex> is no MJML element"),
    ("<mj-text>fine</mj-text>\n<MJ-TXT>typo</MJ-TXT>", "line 4: <MJ-TXT> is no MJML element"),
])
def test_a_misspelt_mjml_element_is_named_on_its_own_line(source: str, said: str) -> None:
    """MRML leaves an element it does not know in the email as written (with its text hidden
    in a 0px cell): refused, naming the line it is written on, not a longer element's."""
    with pytest.raises(ValueError, match=re.escape(said)):
        email_templates.compiled_html(f"<mjml><mj-body>\n<mj-section><mj-column>\n{source}\n</mj-column></mj-section></mj-body></mjml>")


@pytest.mark.parametrize("frame", ["email.mjml.j2", "email.txt.j2"])
@pytest.mark.parametrize("shown", ["{{ manage_url }}", "{% if reader_name %}{{ unsubscribe_url }}{% endif %}",
                                   "{% if more %}{{ unsubscribe_url }}{% endif %}"])
def test_an_email_without_its_unsubscribe_link_is_refused_at_start(tmp_path: Path, frame: str, shown: str) -> None:
    """One-click unsubscribe in a header is not enough: a reader looks for the link, and the
    law of several countries asks for it. A template edit that drops it, or shows it only to
    some readers (with a name, with more papers), stops rendering."""
    folder = edited_templates(tmp_path, {frame: ("{{ unsubscribe_url }}", shown)})
    with pytest.raises(ConfigError, match=re.escape(f"{folder / frame}: shows no unsubscribe link")):
        EmailRenderer(folder)


def test_a_missing_templates_folder_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "nope", tmp_path / "empty", Path(os.devnull)):
        with pytest.raises(ConfigError, match=r"setting 'templates_dir': cannot read .*email\.mjml\.j2"):
            EmailRenderer(folder)


@pytest.mark.parametrize(("missing", "named_in", "edits"), [
    ("email_paper.txt.j2", "email.txt.j2", {}),
    ("email_paper.html.j2", "email.mjml.j2", {}),
    ("footer.txt.j2", "email.txt.j2",
     {"email.txt.j2": ("{% for section in sections %}", '{% include "footer.txt.j2" %}{% for section in sections %}')}),
    ("macros.html.j2", "email_paper.html.j2",
     {"email_paper.html.j2": ("{% if paper.authors %}", '{% import "macros.html.j2" as m %}{% if paper.authors %}')}),
])
def test_a_missing_template_the_frames_name_is_one_error_at_start(tmp_path: Path, missing: str, named_in: str,
                                                                   edits: dict[str, tuple[str, str]]) -> None:
    """A block named by include_shared, include or import, however deep, is loaded when rendering
    starts: its absence is one error, not one per reader, naming the file and line that name it
    (email.mjml.j2's own line, not the compiled MJML's)."""
    folder = edited_templates(tmp_path, edits)
    (folder / missing).unlink(missing_ok=True)
    lines = (folder / named_in).read_text(encoding="utf-8").split("\n")
    line = next(number for number, text in enumerate(lines, 1) if f'"{missing}"' in text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(f'{folder / named_in}:{line}: no template {missing} in {folder}')}$"):
        EmailRenderer(folder)


def test_an_optional_include_may_be_missing(tmp_path: Path) -> None:
    folder = edited_templates(tmp_path, {"email.txt.j2": (
        "{% for section in sections %}", '{% include "extra.txt.j2" ignore missing %}{% for section in sections %}')})
    assert "Hi Ana," in EmailRenderer(folder).render(golden_digest(), SETTINGS).text


@pytest.mark.parametrize("file", ["email.mjml.j2", "email.txt.j2", "email_paper.html.j2", "email_paper.txt.j2"])
def test_a_template_that_is_not_utf8_is_one_error_naming_it(tmp_path: Path, file: str) -> None:
    folder = edited_templates(tmp_path, {})
    data = (folder / file).read_bytes()
    (folder / file).write_bytes(data.replace(b"\n", b"\n{# caf\xe9 #}\n", 1))
    offset = data.index(b"\n") + len(b"\n{# caf")
    with pytest.raises(ConfigError) as raised:
        EmailRenderer(folder)
    assert str(raised.value) == f"{folder / file}:2: not UTF-8 text (byte 0xe9 at offset {offset})"


def test_the_intro_counts_every_match_not_only_those_shown() -> None:
    """A capped digest says how many matched and how many it shows, as its "And N more" line does."""
    day = "the Mar 11 listing"
    assert render.intro(5, 65, day) == "70 new papers matched your topics in the Mar 11 listing; here are the best 5."
    assert render.intro(1, 0, day) == "1 new paper matched your topics in the Mar 11 listing."
    assert render.intro(0, 0, day) == "Nothing new matched your topics in the Mar 11 listing."


def test_a_digest_over_several_days_says_which_days_it_covers() -> None:
    """A weekly digest, or a daily reader's catching up since their last one (digest.window),
    covers several listings: its intro names them, not only the newest."""
    one_day = golden_digest()
    assert render.listings_label(one_day) == "the Mar 11 listing"
    week = dataclasses.replace(one_day, first_date=one_day.listing_date - dt.timedelta(days=6))
    assert render.listings_label(week) == "the listings from Mar 5 to Mar 11"
    text = EmailRenderer(TEMPLATES).render(week, SETTINGS).text
    assert "matched your topics in the listings from Mar 5 to Mar 11" in " ".join(text.split())


def test_no_line_of_the_text_part_ends_in_whitespace_so_quoted_printable_keeps_to_76(tmp_path: Path) -> None:
    """binascii writes a long line's trailing space past RFC 2045's 76 characters: the text
    templates are read without trailing whitespace (but for the signature's "-- "), so a
    template author's stray spaces cannot make such a line."""
    from paperwire import mail
    from tests.oracle import make_digest, seed_papers

    long_line = "{{ intro | wrap }}\n" + "x" * 75 + "   \t\n"
    folder = edited_templates(tmp_path, {"email.txt.j2": ("{{ intro | wrap }}\n", long_line)})
    papers, matches = seed_papers(random.Random(3))
    rng = random.Random(4)
    for renderer in (EmailRenderer(folder), EmailRenderer(TEMPLATES)):
        for number in range(40):
            digest = make_digest(number, rng, papers, matches)
            text = renderer.render(digest, SETTINGS).text
            assert [line for line in text.split("\n") if line != line.rstrip(" \t")] == ["-- "]
            data = mail.build_message(digest, renderer.render(digest, SETTINGS), SETTINGS).data
            body = data.split(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", 1)[1].split(b"\r\n--=_pw_", 1)[0]
            assert max(map(len, body.split(b"\r\n"))) <= 76
    assert "x" * 75 + "\n" in EmailRenderer(folder).render(digest, SETTINGS).text


@pytest.mark.parametrize("links, label", [
    ([Link("https://arxiv.org/abs/2403.00001", "abs"), Link("https://github.com/a/b", "code")], "arXiv"),
    ([Link("https://huggingface.co/Tyrannosaurus/ArtGPT-4", "model")], "Model"),
    ([Link("https://github.com/a/b", "code")], "Code"),
    ([Link("https://blog.example.org/lab-update", "project")], "Link"),  # "project" is only a guess by the host
    ([], "Paper"),  # our own paper page
])
def test_the_title_link_is_labelled_with_what_its_address_says_it_is(links: list[Link], label: str) -> None:
    """The text part's line for the title's link said "Paper:" whatever it pointed at, a model
    page or a blog post included."""
    main, _ = paperview.paper_links(links, "t-0123456789abcdef", "https://papers.example.org")
    assert main.label == label
    text = EmailRenderer(TEMPLATES).render(dataclasses.replace(
        golden_digest(), sections=(DigestSection(Topic("T", "t"), (DigestItem(
            Paper(id="t-0123456789abcdef", title="A paper", links=links), 1.0, 1, dt.date(2024, 3, 11), ("T",), ()),)),)),
        SETTINGS).text
    assert f"    {label}: {main.url}\n" in text


@pytest.mark.parametrize("topic, title, abstract, matched", [
    ("title:evaluating agents", "ChEF: A Comprehensive Evaluation Framework for Agents", "", "Evaluation, agents"),
    ("RAG", "Notes", "We study retrieval-augmented generation at scale.", "retrieval-augmented generation"),
    ('"scaling laws"', "Scaling Laws for Routing", "", "scaling laws"),  # the topic's words, in any case: as written
    # a word found only inside the run's phrase, and a run's function word, are not named again
    ("machine translation", "Notes", "We improve machine translation of rare words.", "machine translation"),
    ("robotics and embodied agents", "Notes", "We study robotics and embodied agents at home.",
     "robotics and embodied agents"),
    ("robotics and embodied agents", "Notes", "Embodied agents and home robotics.", "robotics, embodied, agents"),
    # a word of the run found elsewhere too (where the run also matched) is still named
    ("machine translation", "Notes", "Four machine learning domains: machine translation and speech.",
     "machine, machine translation"),
])
def test_matched_names_the_words_as_the_paper_writes_them(topic: str, title: str, abstract: str, matched: str) -> None:
    """Emails do not highlight titles: "matched: evaluating" sent readers looking for a word
    the title does not have ("Evaluation")."""
    from paperwire.match import match_one

    paper = Paper(id="t-0123456789abcdef", title=title, abstract=abstract)
    (found,) = match_one(topic, [paper])
    item = DigestItem(paper, 1.0, 1, dt.date(2024, 3, 11), ("T",), tuple(found.terms))
    assert paperview.item_view(item, SETTINGS).matched == matched


# -- paper anchors --------------------------------------------------------------------------

HTML_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Any text; ids made of the few characters the old anchor confused ("." "/" "_" "-" and others
# as "-"), so that lookalikes come up often; and ids of the forms paperwire gives papers.
PAPER_IDS = st.one_of(st.text(max_size=20), st.text(alphabet="a1.-/_ é:", max_size=8),
                      st.from_regex(normalize.PAPER_REF, fullmatch=True))


@given(st.lists(PAPER_IDS, unique=True, max_size=12))
def test_distinct_paper_ids_never_share_an_anchor_and_each_is_an_html_id(ids: list[str]) -> None:
    anchors = [urls.paper_anchor(paper_id) for paper_id in ids]
    assert len(set(anchors)) == len(ids), sorted(zip(anchors, ids))
    assert all(HTML_ID.fullmatch(anchor) for anchor in anchors), anchors


def test_the_anchors_sent_emails_link_to_stay_and_lookalike_ids_get_their_own() -> None:
    """Ids of the forms paperwire gives papers keep the anchor emails already carry in their
    "And N more" links; another id that read the same (2403-12345 as 2403.12345) is spelt out."""
    kept = {"2403.12345": "p-2403-12345", "2403.12345v2": "p-2403-12345v2", "hep-th/9901001": "p-hep-th-9901001",
            "math.GT/0309136": "p-math-GT-0309136", "t-0123456789abcdef": "p-t-0123456789abcdef"}
    assert {paper_id: urls.paper_anchor(paper_id) for paper_id in kept} == kept
    lookalikes = {"2403-12345": "px-2403-12345", "a/b": "px-a_2f_b", "a-b": "px-a-b", "a_b": "px-a__b",
                  "hep-th-9901001": "px-hep-th-9901001", "t.0123456789abcdef": "px-t_2e_0123456789abcdef"}
    assert {paper_id: urls.paper_anchor(paper_id) for paper_id in lookalikes} == lookalikes


def test_and_n_more_opens_at_the_paper_it_names_not_at_one_with_a_lookalike_id(renderer: EmailRenderer) -> None:
    """The archive page lists every match with the email template: papers ``x.1`` and ``x-1``
    had one HTML id, so "And N more" (and a browser) opened at whichever came first."""
    dotted, dashed = (Paper(id=paper_id, title=title, abstract="") for paper_id, title in
                      (("x.1", "The Dotted Paper"), ("x-1", "The Dashed Paper")))
    page = Digest(subscriber=READER, edition="2024-03-11", listing_date=DAY, more=1, more_from=dashed.id,
                  sections=(DigestSection(TOPICS[0], (item(dotted, ("scaling laws",)),
                                                      item(dashed, ("scaling laws",), rank=2))),))
    html = renderer.render(page, SETTINGS).html
    fragment = re.search(r'href="[^"]*/archive/tok123/2024-03-11#([^"]+)"', html)[1]
    ids = re.findall(r'<div class="pw-item" id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) == 2 and fragment in ids
    opened = html[html.index(f'id="{fragment}"'):]  # the dashed paper comes second
    assert "The Dashed Paper" in opened and "The Dotted Paper" not in opened


def test_what_a_paper_shows_whatever_its_hits_is_kept_by_all_it_reads() -> None:
    """``paperview.paper_parts`` keeps a paper's title, links, authors and whether its abstract
    needs cleaning for readers whose hits are their own: a reader with other hits on the
    paper as it has since changed, in any one of those, gets the changed paper's, never the
    parts kept from the paper before."""
    abstract = "We scale language models and study their scaling laws."
    paper = {"paper_id": "2403.99999", "title": "A Paper", "authors": ("Ada Author",),
             "links": (Link("https://arxiv.org/abs/2403.99999", "abs"),), "abstract": abstract}
    first = paperview.paper_view(**paper, hits=(hit("language models", abstract),), base_url=BASE)
    assert (first.title, first.url, first.authors) == ("A Paper", "https://arxiv.org/abs/2403.99999", "Ada Author")
    changed = abstract.replace("their", "their\x07")
    for field, value in (("title", "A Renamed Paper"), ("authors", ("Bo Author",)), ("abstract", changed),
                         ("links", (Link("https://arxiv.org/abs/2403.99998", "abs"),))):
        text = changed if field == "abstract" else abstract
        view = paperview.paper_view(**{**paper, field: value}, hits=(hit("scaling laws", text),), base_url=BASE)
        assert "<strong>scaling laws</strong>" in view.abstract_html  # other hits: the view is made anew
        assert (view.title, view.authors, view.url) == (
            "A Renamed Paper" if field == "title" else "A Paper", "Bo Author" if field == "authors" else "Ada Author",
            "https://arxiv.org/abs/2403.9999" + ("8" if field == "links" else "9")), field
        assert "\x07" not in view.abstract + view.abstract_html, field


def unsafe(char: str) -> bool:
    """What no output may show, written apart from normalize's pattern: controls but tab and
    line breaks, lone surrogates, bidi overrides and isolates, and U+FFFE/U+FFFF."""
    return (unicodedata.category(char) in ("Cc", "Cs") and char not in "\t\n\r"
            or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069" or char in "\ufffe\uffff")


@given(st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from("\x00\x07\x9f\u202e\u2066\ud800\ufffe")),
               max_size=40), st.integers(-2, 42), st.integers(-2, 42))
def test_an_excerpt_never_shows_an_unsafe_character(abstract: str, start: int, stop: int) -> None:
    """``excerpt`` cleans an abstract's pieces only when ``normalize.has_unsafe`` finds
    something to clean in the whole abstract (once per paper, ``paper_parts``): whatever the
    abstract and wherever its hit, neither the text nor the HTML shows an unsafe character."""
    view = paperview.paper_view("2403.99999", "A Paper", (), (), abstract, (Hit("x", "abstract", ((start, stop),)),), BASE)
    assert not any(map(unsafe, view.abstract + view.abstract_html))
