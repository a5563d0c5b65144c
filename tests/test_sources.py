"""Every input format, read from realistic fixture files, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import json
from xml.sax.saxutils import escape as xml_escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperwire import sources
from paperwire.errors import SourceError
from paperwire.models import LINK_KINDS
from paperwire.normalize import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, safe_url, strip_unsafe
from paperwire.sources import daily_papers, hf_json

from .conftest import DATA, SEED, TODAY


def read(name: str, **kwargs):
    return sources.read_path(DATA / name, today=TODAY, **kwargs)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        (SEED, "daily-papers"), ("daily_markdown.md", "daily-papers"), ("daily_crlf_bom.txt", "daily-papers"),
        ("hf_daily_papers.json", "hf-json"), ("arxiv_api.atom", "arxiv"), ("arxiv_listing.rss", "arxiv"),
        ("arxiv_listing.atom", "arxiv"), ("arxiv_listing_weekend.rss", "arxiv"),
        ("blog_feed.rss", "feed"), ("blog_feed.atom", "feed"),
    ],
)
def test_format_is_detected_from_content(name, fmt):
    path = DATA / name
    assert sources.detect_format(sources.decode(path.read_bytes(), str(path)), str(path)) == fmt


def test_markdown_capture():
    (listing,) = read("daily_markdown.md")
    assert listing.date == dt.date(2024, 3, 12)
    assert len(listing.papers) == 4
    assert listing.papers[0].title.startswith("RAGGED-Bench")
    assert not any(p.title.startswith("#") or "AK and the research" in p.title for p in listing.papers)


def test_crlf_and_bom_capture():
    (listing,) = read("daily_crlf_bom.txt")
    assert listing.date == dt.date(2024, 3, 13)
    assert len(listing.papers) == 3
    assert not listing.papers[0].title.startswith("\ufeff")
    assert all("\r" not in p.title + p.abstract for p in listing.papers)
    assert "naïve" in " ".join(p.abstract for p in listing.papers)


def test_hard_wrapped_abstracts_are_joined_and_cleaned():
    (listing,) = read("daily_wrapped.txt")
    assert listing.date == dt.date(2024, 3, 14) and len(listing.papers) == 4
    text = " ".join(p.abstract for p in listing.papers)
    assert "\n" not in text and "  " not in text
    assert "teal{" not in text and "Tool-use" in text and "~4.4" in text
    urls = [l.url for p in listing.papers for l in p.links]
    assert "https://lce-edit.github.io/" in urls
    assert not [u for u in urls if u.endswith(".") or "{" in u]


def test_duplicate_is_kept_once_and_missing_abstract_is_kept_with_a_warning():
    (listing,) = read("daily_duplicate_missing.txt")
    titles = [p.title for p in listing.papers]
    assert len(titles) == 4 and len(set(titles)) == 4
    no_abstract = [p for p in listing.papers if not p.abstract]
    assert len(no_abstract) == 1 and no_abstract[0].title.startswith("Hymba-Lite")
    assert titles.index(no_abstract[0].title) == 2  # its place in the page is kept
    assert any("no abstract" in w for w in listing.warnings)
    assert any("listed twice" in w for w in listing.warnings)


def test_no_date_line_needs_the_date_flag():
    with pytest.raises(SourceError, match="no date line.*--date"):
        read("daily_no_date.txt")
    (listing,) = read("daily_no_date.txt", date=dt.date(2024, 3, 9))
    assert listing.date == dt.date(2024, 3, 9) and len(listing.papers) == 2


def test_hf_json():
    (listing,) = read("hf_daily_papers.json")
    assert listing.source == "hf-json" and listing.date == dt.date(2024, 3, 11)
    assert len(listing.papers) == 6
    minicpm = next(p for p in listing.papers if p.arxiv_id == "2404.06395")
    assert minicpm.title.startswith("MiniCPM: Unveiling")
    assert minicpm.authors and all(isinstance(a, str) and a for a in minicpm.authors)
    assert {l.kind for l in minicpm.links} >= {"abs", "pdf"}
    bare = next(p for p in listing.papers if p.arxiv_id == "2403.04990")
    assert bare.keywords == [] and all(l.kind in ("abs", "pdf") for l in bare.links)
    assert all("\n" not in p.abstract for p in listing.papers)


def test_arxiv_api_response():
    (listing,) = read("arxiv_api.atom")
    assert listing.source == "arxiv:api"
    assert len(listing.papers) == 4
    paper = next(p for p in listing.papers if p.arxiv_id == "2403.09611")
    assert paper.id == "2403.09611"  # version dropped
    assert "\n" not in paper.title and paper.abstract == paper.abstract.strip()
    assert paper.categories and len(paper.authors) >= 2
    assert [l.url for l in paper.links][:2] == ["https://arxiv.org/abs/2403.09611", "https://arxiv.org/pdf/2403.09611"]


def test_arxiv_listing_rss_drops_the_announce_prefix():
    (listing,) = read("arxiv_listing.rss")
    assert listing.source == "arxiv:cs.CL" and listing.date == dt.date(2024, 3, 11)
    assert len(listing.papers) == 5
    for paper in listing.papers:
        assert not paper.abstract.startswith(("arXiv:", "Abstract")) and "Announce Type" not in paper.abstract
        assert len(paper.authors) >= 1 and not any("," in a for a in paper.authors)
    assert any("Jiménez" in a for p in listing.papers for a in p.authors)
    replaced = next(p for p in listing.papers if p.arxiv_id == "2402.11877")
    assert replaced.id == "2402.11877"


def test_arxiv_listing_atom():
    (listing,) = read("arxiv_listing.atom")
    assert listing.source == "arxiv:cs.LG" and len(listing.papers) == 3
    assert all(len(p.authors) > 1 for p in listing.papers)
    cross = next(p for p in listing.papers if p.arxiv_id == "2310.17723")
    assert cross.categories[0] == "stat.ML"


def test_empty_weekend_feed_is_a_listing_without_papers():
    (listing,) = read("arxiv_listing_weekend.rss")
    assert listing.papers == [] and listing.date == dt.date(2024, 3, 16)


@pytest.mark.parametrize("name", ["blog_feed.rss", "blog_feed.atom"])
def test_generic_feeds(name):
    (listing,) = read(name)
    assert listing.source.startswith("feed:") and len(listing.papers) == 3
    for paper in listing.papers:
        assert "<" not in paper.abstract and "&lt;" not in paper.abstract
        assert paper.links and paper.links[0].url.startswith("http")


@pytest.mark.parametrize(
    ("name", "message", "line"),
    [
        ("bad_broken.json", "broken JSON", 7),
        ("bad_not_papers.json", "not a Hugging Face daily-papers list", None),
        ("bad_broken.xml", "broken XML", 20),
        ("bad_binary.bin", "binary file", None),
        ("bad_unknown.txt", "unknown format", None),
        ("bad_empty_listing.txt", "no papers", None),
    ],
)
def test_bad_input_is_a_clear_error_naming_file_and_line(name, message, line):
    with pytest.raises(SourceError, match=message) as caught:
        read(name)
    assert caught.value.origin == str(DATA / name)
    assert caught.value.line == line
    assert str(DATA / name) in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_listing_is_named_as_such(tmp_path, encoding):
    """What 'Unicode' means to some Windows editors: not a binary file, but a save as UTF-8 away."""
    path = tmp_path / "papers.json"
    path.write_bytes(("\ufeff" if encoding == "utf-16-be" else "").encode(encoding) + '[{"title": "x"}]'.encode(encoding))
    with pytest.raises(SourceError, match="UTF-16 text, not UTF-8: save the file as UTF-8"):
        sources.read_path(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Mar 11\n\nA title\n\nCaf\xe9 abstract.\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8") as caught:
        sources.read_path(path)
    assert caught.value.line == 5


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        sources.read_path(tmp_path / "nope.txt")


def test_format_flag_overrides_detection():
    with pytest.raises(SourceError, match="broken JSON"):
        sources.read_path(SEED, format="hf-json")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Mar 11\n\r\t.?!#*abcXYZ[]()https://ég\ufeff{}")) | st.characters(), max_size=400))
def test_daily_papers_parser_raises_only_its_own_error(text):
    try:
        listings = daily_papers.parse(text, "fuzz", today=TODAY)
    except SourceError:
        return
    for listing in listings:
        assert listing.papers and all(p.title for p in listing.papers)
    assert_clean(listings)


# -- every parser, any shape of input: its own clear error or a clean listing ------------------

# Characters that broke or soiled ingest before: lone surrogates (from JSON escapes), bidi
# overrides, controls, NUL, a non-ASCII digit, markup and URL pieces.
SPICY = ["\ud800", "\udfff", "\u202e", "\u2066", "\x00", "\x1b", "\x85", "\ufffe", "٣", "<", "&", "]]>", " ",
         "https://", "http://[", "github.com/a/b", "2403.01234v2", "\n", "{", "teal{", "sim4"]
spicy_text = st.lists(st.sampled_from(SPICY) | st.characters(), max_size=24).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | spicy_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(spicy_text, inner, max_size=3), max_leaves=12)
HF_FIELDS = ["id", "title", "summary", "authors", "ai_keywords", "githubRepo", "projectPage", "publishedAt",
             "submittedOnDailyAt"]
hf_values = (json_values | spicy_text
             | st.sampled_from(["2024-03-11T08:00:00.000Z", "https://ex.com/a Bcc: evil@x.org", "https://[x",
                                "https://github.com/a/b\ud800", "javascript:alert(1)", "2403.01234"])
             | st.lists(st.fixed_dictionaries({"name": json_values | spicy_text}) | json_values, max_size=3))
hf_items = st.lists(st.fixed_dictionaries({"paper": st.dictionaries(st.sampled_from(HF_FIELDS), hf_values)})
                    | json_values, max_size=5)
hf_documents = hf_items | json_values | st.fixed_dictionaries({"papers": hf_items})


def assert_clean(listings) -> None:
    """What a parser returns is safe to store and to show: clean, encodable text and fit links."""
    for listing in listings:
        assert all(isinstance(error, str) and error for error in listing.errors)
        for paper in listing.papers:
            assert paper.title and paper.id
            texts = [paper.title, paper.abstract, paper.id, paper.arxiv_id or "", listing.source,
                     *paper.authors, *paper.keywords, *paper.categories]
            for text in texts:
                assert strip_unsafe(text) == text
                text.encode("utf-8")  # what the database needs: no lone surrogates
            assert len(paper.title) <= MAX_TITLE_CHARS and len(paper.abstract) <= MAX_ABSTRACT_CHARS
            assert all(safe_url(link.url) == link.url and link.kind in LINK_KINDS for link in paper.links)
            assert paper.arxiv_id is None or paper.arxiv_id.isascii()


@settings(max_examples=300, deadline=None)
@given(hf_documents)
def test_hf_json_parser_gives_a_clean_listing_or_its_own_error(document):
    try:
        listings = hf_json.parse(json.dumps(document), "fuzz.json")
    except SourceError:
        return
    assert_clean(listings)


def _xml(text: str) -> str:
    return xml_escape(text, {'"': "&quot;"})


xml_text = spicy_text | st.sampled_from(["Mon, 11 Mar 2024 00:00:00 -0500", "2024-03-11T00:00:00Z",
                                         "http://arxiv.org/abs/2403.01234v1", "https://ex.com/a Bcc: evil@x.org",
                                         "<b>bold</b>", "cs.CL"])
RSS_TAGS = ["title", "link", "description", "pubDate", "guid", "author", "category", "dc:creator", "comments"]
ATOM_TAGS = ["id", "title", "summary", "published", "updated", "arxiv:comment"]


@st.composite
def feed_documents(draw) -> str:
    """RSS or Atom (with or without arXiv's namespace) of entries with any elements and texts."""
    if draw(st.booleans()):
        entries = "".join(
            "<item>" + "".join(f"<{tag}>{_xml(draw(xml_text))}</{tag}>" for tag in draw(st.lists(st.sampled_from(RSS_TAGS), max_size=6))) + "</item>"
            for _ in range(draw(st.integers(0, 3))))
        head = f"<title>{_xml(draw(xml_text))}</title><pubDate>{_xml(draw(xml_text))}</pubDate>"
        return ('<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                f"<channel>{head}{entries}</channel></rss>")
    entries = "".join(
        "<entry>" + "".join(f"<{tag}>{_xml(draw(xml_text))}</{tag}>" for tag in draw(st.lists(st.sampled_from(ATOM_TAGS), max_size=6)))
        + "".join(f'<link href="{_xml(draw(xml_text))}"/>' for _ in range(draw(st.integers(0, 2))))
        + "".join(f"<author><name>{_xml(draw(xml_text))}</name></author>" for _ in range(draw(st.integers(0, 2))))
        + f'<category term="{_xml(draw(xml_text))}"/><arxiv:primary_category term="{_xml(draw(xml_text))}"/>'
        + "</entry>" for _ in range(draw(st.integers(0, 3))))
    return ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">'
            f"<title>{_xml(draw(xml_text))}</title><updated>{_xml(draw(xml_text))}</updated>{entries}</feed>")


@settings(max_examples=200, deadline=None)
@given(feed_documents() | st.builds(lambda head, rest: head + rest, st.sampled_from(["<rss>", "<feed>", "<rdf:RDF>"]), spicy_text),
       st.sampled_from(["arxiv", "feed"]), st.none() | st.just(dt.date(2024, 3, 11)))
def test_feed_parsers_give_a_clean_listing_or_their_own_error(text, name, date):
    try:
        listings = sources.FORMATS[name].parse(text, "fuzz.xml", date=date, today=TODAY)
    except SourceError:
        return
    assert_clean(listings)


@settings(max_examples=200, deadline=None)
@given(spicy_text | st.text() | st.builds(lambda head, rest: head + "\n\n" + rest, st.sampled_from(["Mar 11", "[", "<rss>"]), spicy_text))
def test_any_text_is_read_or_refused_with_a_source_error(text):
    try:
        listings = sources.parse_text(text, "fuzz", today=TODAY)
    except SourceError:
        return
    assert_clean(listings)
