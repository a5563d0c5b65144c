"""`digest`, `preview`, `feeds` and `demo` end to end on a real database and real files."""

from __future__ import annotations

import email
import html
import json
import shutil
import re
from email import policy
from pathlib import Path

import feedparser
import pytest

from .conftest import SEED


@pytest.fixture
def with_readers(run_cli):
    assert run_cli("ingest", "--date", "2024-03-11", SEED).exit_code == 0
    run_cli("subscribe", "ada@example.org", "--topic", "Scaling=scaling laws", "--topic", "MoE", "--name", "Ada")
    run_cli("subscribe", "bob@example.org", "--topic", "quantum chromodynamics")  # matches nothing
    run_cli("subscribe", "cy@example.org", "--topic", "*", "--max", "3")
    run_cli("unsubscribe", "cy@example.org")
    run_cli("topics", "add", "Scaling laws", '"scaling laws"')
    return run_cli


def test_digest_writes_html_text_and_eml_for_readers_with_matches(with_readers, tmp_path):
    result = with_readers("digest", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    (ada,) = json.loads(result.stdout)  # bob matched nothing; cy unsubscribed
    assert set(ada) == {"email", "subject", "papers", "html", "text", "eml"}
    assert ada["email"] == "ada@example.org" and ada["papers"] == 15
    # The subject counts what the intro counts: the papers shown, of those that matched.
    matched = re.fullmatch(r"15 of (\d+) new papers on Scaling, MoE \(Mar 11\)", ada["subject"])
    assert matched, ada["subject"]
    intro = f"{matched[1]} new papers matched your topics in the Mar 11 listing; here are the best 15."
    assert intro in " ".join(Path(ada["text"]).read_text().split())
    # On the wire: one plain line, no encoded word, well under 78 characters.
    head = Path(ada["eml"]).read_bytes().split(b"\r\n\r\n", 1)[0]
    assert f"Subject: {ada['subject']}".encode() in head.split(b"\r\n") and len(ada["subject"]) + 9 <= 78
    assert Path(ada["html"]) == tmp_path / "o" / "digests" / "2024-03-11" / "ada_at_example.org.html"
    message = email.message_from_bytes(Path(ada["eml"]).read_bytes(), policy=policy.default)
    assert message["Subject"] == ada["subject"] and message["To"] == "Ada <ada@example.org>"
    text_part, html_part = message.get_payload()
    assert (html.unescape(html_part.get_content()).replace("\r\n", "\n").rstrip("\n")
            == html.unescape(Path(ada["html"]).read_text()).rstrip("\n"))
    assert "scaling" in text_part.get_content().lower()
    # Each holds the reader's link secret: written whole (no temp file left) and for the owner only.
    assert {Path(ada[kind]).stat().st_mode & 0o777 for kind in ("html", "text", "eml")} == {0o600}
    assert sorted(p.name for p in Path(ada["html"]).parent.iterdir()) == [
        "ada_at_example.org.eml", "ada_at_example.org.html", "ada_at_example.org.txt"]


def test_readers_whose_addresses_differ_only_in_letters_a_file_name_cannot_hold_get_a_file_each(run_cli, tmp_path):
    assert run_cli("ingest", "--date", "2024-03-11", SEED).exit_code == 0
    readers = ["jörg@exämple.org", "jürg@exämple.org", "a" * 150 + "1@example.org", "a" * 150 + "2@example.org"]
    for address in readers:
        assert run_cli("subscribe", address, "--topic", "MoE").exit_code == 0
    result = run_cli("digest", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert sorted(d["email"] for d in written) == sorted(readers)
    assert len({d["eml"] for d in written}) == 4
    for d in written:  # each file is its own reader's
        assert d["email"].split("@")[0] in email.message_from_bytes(Path(d["eml"]).read_bytes(),
                                                                    policy=policy.default)["To"]
    assert all(len(Path(d["eml"]).name) < 160 for d in written)


def test_digest_says_why_readers_got_none(with_readers, tmp_path):
    """bob's topic matches nothing: the summary says so and names the way to see one anyway,
    where a template author after `demo` saw "0 digest(s)" and nothing more."""
    result = with_readers("digest", "--out", tmp_path / "o")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == (
        "1 digest(s) for 2024-03-11 from 2 active reader(s); 1 had nothing new (no match, or every match"
        " offered already: `paperwire preview EMAIL` writes one anyway)")


def test_digest_only_and_unknown_reader(with_readers, tmp_path):
    only = with_readers("digest", "--out", tmp_path, "--only", "ADA@example.org", "--json")
    assert [d["email"] for d in json.loads(only.stdout)] == ["ada@example.org"]
    missing = with_readers("digest", "--out", tmp_path, "--only", "nobody@example.org")
    assert missing.exit_code == 1 and "no active reader" in missing.stderr


def test_preview_writes_even_an_empty_digest(with_readers, monkeypatch, tmp_path):
    result = with_readers("preview", "bob@example.org")
    assert result.exit_code == 0, result.output
    page = Path(result.stdout.strip())
    assert page.exists() and page.name == "bob_at_example.org.html"


def test_a_template_that_fails_for_one_reader_is_named_by_file_and_line(with_readers, monkeypatch, tmp_path):
    """A template that fails only for some readers passes the start's sample digest: preview
    says which file and line failed in one line (it was a traceback), removes that reader's
    files of an earlier preview, and digest writes the other readers' emails and names that
    one's failure the same way."""
    from paperwire.config import DEFAULT_TEMPLATES

    folder = tmp_path / "mine"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    frame = folder / "email.mjml.j2"
    source = frame.read_text(encoding="utf-8")
    line = source[:source.index("{{ greeting }}")].count("\n") + 1
    frame.write_text(source.replace("{{ greeting }}", "{{ greeting }}{% if 'Ada' in greeting %}{{ ada.nope }}{% endif %}", 1),
                     encoding="utf-8")
    earlier = Path(with_readers("preview", "ada@example.org").stdout.strip())  # before the edit
    monkeypatch.setenv("PAPERWIRE_TEMPLATES_DIR", str(folder))
    failed = with_readers("preview", "ada@example.org")
    assert failed.exit_code == 1 and failed.stdout == ""
    # The earlier preview's files are gone: opened, they would pass for the edit's result.
    assert not [path.name for path in earlier.parent.glob(earlier.stem + ".*")]
    said = f"rendering raised UndefinedError: 'ada' is undefined (at {frame}:{line})"
    assert failed.stderr == f"Error: digest of ada@example.org not written: {said}\n"
    assert with_readers("preview", "bob@example.org").exit_code == 0
    written = with_readers("digest", "--out", tmp_path / "o", "--json")
    assert written.exit_code == 1 and said in written.stderr
    assert "ada@example.org" not in [d["email"] for d in json.loads(written.stdout)]


def test_a_templates_dir_without_the_index_page_is_one_clear_error(run_cli, monkeypatch, tmp_path):
    """The out/ index page is a template too: its absence is named, not a traceback."""
    from paperwire.config import DEFAULT_TEMPLATES

    folder = tmp_path / "mine"
    folder.mkdir()
    for source in DEFAULT_TEMPLATES.glob("email*.j2"):
        (folder / source.name).write_bytes(source.read_bytes())
    monkeypatch.setenv("PAPERWIRE_TEMPLATES_DIR", str(folder))
    result = run_cli("demo")
    assert result.exit_code == 1
    assert f"setting 'templates_dir': {folder} has no template index.html.j2" in result.stderr


@pytest.mark.parametrize("command", [("digest",), ("preview", "ada@example.org")])
def test_a_date_without_a_listing_is_refused_naming_the_newest(with_readers, tmp_path, command):
    """A digest is a listing's: a date without one is most likely a typo."""
    result = with_readers(*command, "--date", "1999-01-01")
    assert result.exit_code == 1
    assert result.stderr == "Error: no listing of 1999-01-01: the newest is of 2024-03-11\n"
    assert with_readers(*command, "--date", "2024-03-11").exit_code == 0


def test_feeds_take_a_date_without_a_listing(with_readers, tmp_path):
    """Feeds cover the week or month up to the date: a day with no listing (a weekend) is fine."""
    assert with_readers("feeds", "--out", tmp_path / "o", "--date", "2024-03-13").exit_code == 0
    assert (tmp_path / "o" / "feeds" / "trending.json").exists()


def test_feeds_refuse_a_date_with_no_listing_in_the_month_before_it(with_readers, tmp_path):
    """Such a date (a typo) gave empty feeds, written over the published ones."""
    assert with_readers("feeds", "--out", tmp_path / "o").exit_code == 0
    published = (tmp_path / "o" / "feeds" / "trending.atom").read_bytes()
    result = with_readers("feeds", "--out", tmp_path / "o", "--date", "2024-01-15")
    assert result.exit_code == 1
    assert result.stderr == "Error: no listing in the month up to 2024-01-15: the newest is of 2024-03-11\n"
    assert (tmp_path / "o" / "feeds" / "trending.atom").read_bytes() == published


@pytest.mark.parametrize("command", ["digest", "feeds"])
def test_an_out_folder_that_cannot_be_written_is_one_line(with_readers, tmp_path, command):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = with_readers(command, "--out", blocked / "o")
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write into {blocked / 'o'}: Not a directory\n"


def test_digest_without_listings_says_what_to_do(run_cli):
    result = run_cli("digest")
    assert result.exit_code == 1 and "paperwire ingest" in result.stderr


def test_a_topic_feed_shows_the_stretch_of_a_long_abstract_where_its_topic_matched(run_cli, tmp_path):
    """Issue 13: feeds, like emails, start the excerpt near the first matched term when it lies
    beyond what they show of an abstract (4,000 characters)."""
    filler = "Plain words about nothing in particular fill this sentence. " * 95  # ~5,700 characters
    listing = tmp_path / "long.txt"
    listing.write_text(f"Mar 12\n\nA Long Abstract\n\n{filler}Here the zyzzyva finally appears. {filler}\n",
                       encoding="utf-8")
    assert run_cli("ingest", "--date", "2024-03-12", listing).exit_code == 0
    assert run_cli("topics", "add", "Zyz", "zyzzyva").exit_code == 0
    assert run_cli("feeds", "--out", tmp_path / "o").exit_code == 0
    (entry,) = json.loads((tmp_path / "o" / "feeds" / "topics" / "zyz.json").read_text(encoding="utf-8"))["items"]
    assert entry["content_text"].startswith("…Here the zyzzyva finally appears. Plain words")
    assert "Here the zyzzyva" in entry["content_html"]
    (trending,) = json.loads((tmp_path / "o" / "feeds" / "trending.json").read_text(encoding="utf-8"))["items"]
    assert trending["content_text"].startswith("Plain words about nothing")  # no topic there: from the start


def test_a_topic_feed_explains_only_the_matches_it_shows(run_cli, tmp_path, monkeypatch):
    """A topic feed shows the newest 50 of its topic's matches: only those are explained
    (their hits worked out), not every match of the month."""
    from paperwire import digest

    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")
    assert run_cli("ingest", "--date", "2024-03-11", SEED).exit_code == 0
    assert run_cli("topics", "add", "Most", "model OR models OR learning OR data OR language").exit_code == 0
    explained = []
    hits_of = digest.hits_of
    monkeypatch.setattr(digest, "hits_of", lambda match: explained.append(match.paper_id) or hits_of(match))
    assert run_cli("feeds", "--out", tmp_path / "o").exit_code == 0
    items = json.loads((tmp_path / "o" / "feeds" / "topics" / "most.json").read_text(encoding="utf-8"))["items"]
    assert (len(items), len(explained)) == (50, 50)  # of 70 matches


def test_the_feed_files_of_a_topic_no_longer_public_are_removed(run_cli, tmp_path, monkeypatch):
    """A published out/ folder would otherwise serve a removed topic's feed, frozen; the
    other topics' files and files that are not feeds stay."""
    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")
    assert run_cli("ingest", "--date", "2024-03-11", SEED).exit_code == 0
    for name in ("Gone", "Kept"):
        assert run_cli("topics", "add", name, "model").exit_code == 0
    assert run_cli("feeds", "--out", tmp_path / "o").exit_code == 0
    topics = tmp_path / "o" / "feeds" / "topics"
    (topics / "notes.txt").write_text("mine", encoding="utf-8")
    assert {path.name for path in topics.iterdir()} >= {"gone.atom", "gone.rss", "gone.json", "kept.json"}
    assert run_cli("topics", "remove", "Gone").exit_code == 0
    assert run_cli("feeds", "--out", tmp_path / "o").exit_code == 0
    assert sorted(path.name for path in topics.iterdir()) == ["kept.atom", "kept.json", "kept.rss", "notes.txt"]


def test_feeds_parse_back_and_are_byte_identical_across_runs(with_readers, tmp_path):
    first = json.loads(with_readers("feeds", "--out", tmp_path / "a", "--json",
                                    "--base-url", "https://papers.example.org/").stdout)
    second = json.loads(with_readers("feeds", "--out", tmp_path / "b", "--json",
                                     "--base-url", "https://papers.example.org").stdout)
    assert [f["slug"] for f in first["feeds"]] == ["trending", "scaling-laws"]
    for feed_a, feed_b in zip(first["feeds"], second["feeds"]):
        for kind in ("atom", "rss", "json"):
            assert Path(feed_a[kind]).read_bytes() == Path(feed_b[kind]).read_bytes()
        for kind in ("atom", "rss"):
            parsed = feedparser.parse(Path(feed_a[kind]).read_bytes())
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert parsed.entries
        json.loads(Path(feed_a["json"]).read_text())
    trending = feedparser.parse(Path(first["feeds"][0]["atom"]).read_bytes())
    assert len(trending.entries) == 50 and trending.entries[0].title.startswith("ScaleDepth")
    assert "https://papers.example.org/feeds/topics/scaling-laws.atom" in Path(first["opml"]).read_text()


def test_bad_base_url_flag(with_readers):
    result = with_readers("feeds", "--base-url", "ftp://nope")
    assert result.exit_code == 1 and "setting 'base_url' from flag --base-url" in result.stderr


def test_demo_writes_an_index_that_links_to_everything(run_cli, tmp_path):
    assert list(tmp_path.iterdir()) == []  # an empty folder: the seed listing and readers ship with the package
    result = run_cli("demo", db=False)
    assert result.exit_code == 0, result.output
    index = tmp_path / "out" / "index.html"
    assert str(index) in result.stdout
    links = re.findall(r'href="([^"]+)"', index.read_text())
    assert sum(link.endswith(".eml") for link in links) == 4
    assert any(link.endswith("feeds.opml") for link in links)
    assert all((index.parent / link).exists() for link in links)
    outbox = sorted((tmp_path / "out" / "outbox").glob("*.eml"))
    assert "Delivered 4 digest(s) to out/outbox/" in result.stdout and len(outbox) == 4
    again = run_cli("demo", db=False)  # nothing duplicated, nothing sent twice, the pages still full
    assert again.exit_code == 0 and "0 papers added" in again.stdout
    assert "Delivered 0 digest(s)" in again.stdout and sorted((tmp_path / "out" / "outbox").glob("*.eml")) == outbox
    assert sum(link.endswith(".eml") for link in re.findall(r'href="([^"]+)"', index.read_text())) == 4
    readers = json.loads(run_cli("subscribers", "--json", db=False).stdout)
    assert len(readers) == 4


def test_demo_every_paper_matched_in_its_abstract_shows_the_match(run_cli, tmp_path):
    """The excerpt is taken around the first matched term when that lies beyond the cut: the
    demo reader's "Scaling laws" paper MiniCPM matched late in its abstract."""
    from paperwire import sources

    assert run_cli("demo", db=False).exit_code == 0  # the seed listing and readers shipped in the package
    (listing,) = sources.read_path(SEED)
    abstracts = {" ".join(paper.title.split()): paper.abstract.lower() for paper in listing.papers}
    checked = 0
    for page in sorted((tmp_path / "out" / "digests").rglob("*.html")):
        for block in page.read_text(encoding="utf-8").split('<div class="pw-item"')[1:]:
            title = html.unescape(re.search(r'text-decoration:none">([^<]*)</a>', block).group(1))
            matched = re.search(r"matched: ([^<·]*)", block)
            terms = [term.strip() for term in html.unescape(matched.group(1)).split(",")] if matched else []
            if any(term.lower() in abstracts[title] for term in terms):
                shown = re.search(r'<p class="pw-abs"[^>]*>(.*?)</p>', block, re.S).group(1)
                assert "<strong>" in shown, (page.name, title)
                checked += 1
    assert checked > 20
    ada = (tmp_path / "out" / "digests").rglob("ada_at_example.org.html").__next__().read_text(encoding="utf-8")
    minicpm = next(block for block in ada.split('<div class="pw-item"')[1:] if "MiniCPM" in block)
    assert '<p class="pw-abs" dir="auto" style="margin:8px 0">&#8230;' in minicpm  # "…", as the HTML writes it
    assert "<strong>scaling law</strong>" in minicpm
