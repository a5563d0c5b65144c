"""No dead links (issue 12, item 8): the paper page, and every link paperwire hands out resolves.

A real digest delivered to the outbox (HTML and text parts), every feed (Atom, RSS,
JSON, OPML, public and private) and every page of the app are crawled through the
ASGI app: each link at base_url answers (no 404), and each #fragment names an id on
the page it points at.
"""

from __future__ import annotations

import datetime as dt
import email
import html
import re
from email import policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest

from paperwire import dispatch, urls
from paperwire.models import Link, Listing, Paper
from paperwire.normalize import paper_id
from paperwire.subscribers import make_topic
from paperwire.transport import OutboxTransport

from .test_web import BASE, EDITION, Site, make_site

URL_IN_TEXT = re.compile(re.escape(BASE) + r"[^\s\"'<>\\)\]]*")


@pytest.fixture
def site(new_db, tmp_path: Path):
    made = make_site(new_db, tmp_path)
    made.store.add_public_topic(make_topic("Language models", "LLM", public=True))
    made.store.add_public_topic(make_topic("Trending", "*", public=True))
    yield made
    made.client.close()
    made.store.close()


class _Links(HTMLParser):
    """href, src and form action values of an HTML document, and its element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.actions: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "form" and values.get("action"):
            self.actions.append(values["action"])
        for name in ("href", "src"):
            if values.get(name):
                self.links.append(values[name])


def _parse_html(text: str) -> _Links:
    parser = _Links()
    parser.feed(text)
    return parser


def _ours(url: str) -> str | None:
    """The path (with query and fragment) of a link into the app; None for other sites."""
    url = url.rstrip(".,;:")
    if url.startswith(BASE + "/") or url == BASE:
        return url[len(BASE):] or "/"
    if url.startswith("/") and not url.startswith("//"):
        return url
    return None


def _links_in(body: str, content_type: str) -> tuple[set[str], set[str]]:
    """(links to GET, form actions) into the app found in a response or message part."""
    if "html" not in content_type:  # text, feeds (their HTML summaries too), JSON, OPML
        return {p for p in (_ours(u) for u in URL_IN_TEXT.findall(html.unescape(body))) if p}, set()
    parsed = _parse_html(body)
    return ({p for p in (_ours(u) for u in parsed.links) if p},
            {p for p in (_ours(u) for u in parsed.actions) if p})


def _deliver_digest(site: Site) -> email.message.EmailMessage:
    reader = site.reader("ada@example.org", "*", "LLM")
    site.store.save_subscriber(type(reader)(**{**{f: getattr(reader, f) for f in reader.__slots__}, "max_papers": 5}))
    outbox = site.settings.outbox_dir / "digests"
    report = dispatch.dispatch(site.store, site.settings, everyone=True,
                               transport=OutboxTransport(outbox, fsync=False))
    assert report.sent == 1, report
    (eml,) = outbox.glob("*.eml")
    return email.message_from_bytes(eml.read_bytes(), policy=policy.default)


def test_every_link_in_digests_feeds_and_pages_resolves(site: Site) -> None:
    message = _deliver_digest(site)
    reader = site.store.subscriber("ada@example.org")
    start: set[str] = set()
    for part, kind in ((message.get_body(("html",)), "html"), (message.get_body(("plain",)), "text")):
        found, _ = _links_in(part.get_content(), kind)
        assert found, f"no links into the app in the digest's {kind} part"
        start |= found
    digest_papers = {p for p in start if p.startswith("/papers/")}
    assert digest_papers, "the seed's papers without links should link to their paper page"
    # Every paper has its "More like this" link, with this reader's token, in both parts.
    more_like = {p for p in start if p.startswith(f"/like/{reader.token}/")}
    assert len(more_like) == 5, more_like
    feeds = ["/feeds/feeds.opml"] + [f"/feeds/{name}.{kind}" for kind in ("atom", "rss", "json")
                                     for name in ("trending", "topics/language-models", f"private/{reader.token}")]
    start |= set(feeds) | {"/", f"/manage/{reader.token}", f"/unsubscribe/{reader.token}"}

    seen: dict[str, tuple[str, str]] = {}  # path -> (content type, body)
    queue = sorted(start)
    actions: set[tuple[str, str]] = set()
    while queue:
        target = queue.pop()
        path = target.split("#")[0]
        if path in seen:
            continue
        answer = site.client.get(path)
        assert answer.status_code == 200, (target, answer.status_code)
        content_type = answer.headers["content-type"]
        seen[path] = (content_type, answer.text)
        links, forms = _links_in(answer.text, content_type)
        actions |= {(path, action) for action in forms}
        queue.extend(sorted(link for link in links if link.split("#")[0] not in seen))
        assert len(seen) < 2000, "the crawl does not end"

    # Every #fragment names an element of the page it points at.
    for target in start | {link for _, body in seen.values() for link in URL_IN_TEXT.findall(body)}:
        path, _, fragment = (_ours(target) or target).partition("#")
        if fragment and "html" in seen.get(path, ("", ""))[0]:
            assert fragment in _parse_html(seen[path][1]).ids, target
    # Every form posts somewhere that exists (GET on a POST-only address is a 405, not a 404).
    for page, action in sorted(actions):
        assert site.client.get(action.split("#")[0]).status_code != 404, (page, action)
    assert {p.split("#")[0] for p in digest_papers} <= set(seen)
    assert any(p.startswith("/papers/") for p in seen) and any(p.startswith("/archive/") for p in seen)
    assert more_like <= set(seen)
    # Opening every link (as a mail scanner does) liked nothing and changed no reader.
    assert site.store.subscriber("ada@example.org") == reader


# -- the paper page ------------------------------------------------------------------------------


def _a_paper_without_links(site: Site):
    return next(s for s in site.store.papers() if not s.paper.links)


def test_paper_page_shows_the_paper_and_is_cacheable(site: Site) -> None:
    stored = _a_paper_without_links(site)
    url = f"/papers/{stored.paper.id}"
    page = site.client.get(url)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert html.escape(stored.paper.title, quote=False) in page.text
    assert html.escape(stored.paper.abstract[:80], quote=False) in page.text
    assert f"{EDITION}: #{stored.listings[0].rank} in daily-papers" in page.text
    # The public topics it matches, with their feeds ("Trending" has its own, beside the built-in trending feed).
    assert f'Trending (<a href="{BASE}/feeds/topics/trending-topic.atom">feed</a>)' in page.text
    assert f'href="{BASE}/#subscribe"' in page.text
    # Public and short-lived, never a cookie; a strong ETag that revalidates to 304.
    assert page.headers["cache-control"] == "public, max-age=300" and "set-cookie" not in page.headers
    etag = page.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again = site.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert site.client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert site.client.head(url).status_code == 200
    # A new public topic changes the page, and so its ETag.
    site.store.add_public_topic(make_topic("Everything", "*", public=True))
    changed = site.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "Everything" in changed.text and changed.headers["etag"] != etag


def test_paper_page_escapes_what_sources_wrote(site: Site) -> None:
    nasty = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    paper = Paper(id=paper_id(None, nasty), title=nasty, abstract=nasty, authors=[nasty],
                  links=[Link('javascript:alert(1)', "code"), Link('https://ex.com/"><script>', "project")])
    site.store.save_listings([Listing("daily-papers", dt.date(2024, 3, 12), [paper])])
    page = site.client.get(f"/papers/{paper.id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text and "javascript:" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


def test_an_edition_dated_on_an_empty_listing_opens_in_the_browser(new_db, tmp_path: Path) -> None:
    """arXiv's weekend feed is an empty listing: a digest dated that Saturday (with a paper
    added to Friday's listing after Friday's email) links its archive page, which must open
    with the paper it sent."""
    site = make_site(new_db, tmp_path, ingest=False)
    friday, saturday = dt.date(2024, 3, 15), dt.date(2024, 3, 16)

    def zebrafish(title: str) -> Paper:
        return Paper(id=paper_id(None, title), title=title, abstract=f"{title}, we find.")

    def send(day: dt.date) -> str:
        outbox = tmp_path / f"sent-{day}"
        noon = dt.datetime.combine(day, dt.time(12), dt.timezone.utc)
        assert dispatch.dispatch(site.store, site.settings, now=noon, everyone=True,
                                 transport=OutboxTransport(outbox, fsync=False)).sent == 1
        (eml,) = outbox.glob("*.eml")
        return eml.read_text()

    reader = site.reader("ada@example.org", "words:zebrafish")
    site.store.save_listings([Listing("daily-papers", friday, [zebrafish("Zebrafish regrow hearts")])])
    send(friday)
    site.store.save_listings([Listing("daily-papers", friday, [zebrafish("Zebrafish regrow hearts"),
                                                               zebrafish("Zebrafish regrow fins")]),
                              Listing("arxiv", saturday, [])])
    assert "Zebrafish regrow fins" in send(saturday)
    page = site.client.get(f"/archive/{reader.token}/{saturday}")
    assert page.status_code == 200 and "Zebrafish regrow fins" in page.text and "Zebrafish regrow hearts" not in page.text
    assert site.client.get(f"/archive/{reader.token}/2024-03-17").status_code == 404  # no listing that day
    site.client.close()
    site.store.close()


def test_unknown_papers_are_404_and_rekeyed_ids_follow_the_paper(site: Site) -> None:
    missing = site.client.get("/papers/t-0000000000000000")
    assert missing.status_code == 404 and "No such paper" in missing.text
    title = "A paper first seen without its arXiv id"
    old = Paper(id=paper_id(None, title), title=title, abstract="First.")
    site.store.save_listings([Listing("daily-papers", dt.date(2024, 3, 12), [old])])
    assert site.client.get(f"/papers/{old.id}").status_code == 200
    known = Paper(id="2403.99999", arxiv_id="2403.99999", title=title, abstract="First.")
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 13), [known])])
    moved = site.client.get(f"/papers/{old.id}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"{BASE}/papers/2403.99999"
    assert "arXiv 2403.99999" in site.client.get("/papers/2403.99999").text
    versioned = site.client.get("/papers/2403.99999v2", follow_redirects=False)  # as arXiv links write it
    assert versioned.status_code == 301 and versioned.headers["location"] == f"{BASE}/papers/2403.99999"
    # Another arXiv paper of the same title (kept apart, it has another id) does not take the old link.
    namesake = Paper(id="2403.00001", arxiv_id="2403.00001", title=title, abstract="Another paper.")
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 14), [namesake])])
    assert {p.paper.id for p in site.store.papers()} >= {"2403.99999", "2403.00001"}
    moved = site.client.get(f"/papers/{old.id}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"{BASE}/papers/2403.99999"


def test_paper_ids_with_a_slash_have_a_page(site: Site) -> None:
    """Old-style arXiv ids (hep-th/9901001) hold a slash; links quote it and the page is found."""
    from paperwire import urls

    paper = Paper(id="hep-th/9901001", arxiv_id="hep-th/9901001", title="Old style id", abstract="x")
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 12), [paper])])
    link = urls.paper(BASE, paper.id)
    assert link == f"{BASE}/papers/hep-th%2F9901001"
    assert "Old style id" in site.client.get(urlsplit(link).path).text


def test_a_public_topic_named_trending_never_takes_the_place_of_the_trending_feed(new_db, tmp_path):
    """Feed names are identities: the built-in trending feed (and the OPML list) keep theirs."""
    site = make_site(new_db, tmp_path)
    site.store.add_public_topic(make_topic("Trending", "\"scaling laws\"", public=True))
    site.store.add_public_topic(make_topic("OPML", "RAG", public=True))
    trending = feedparser.parse(site.client.get("/feeds/trending.atom").content)
    topic = feedparser.parse(site.client.get("/feeds/topics/trending-topic.atom").content)
    assert trending.feed.title == "Trending papers" and topic.feed.title == "Trending"
    assert 0 < len(topic.entries) < 30 < len(trending.entries)
    assert site.client.get("/feeds/feeds.opml").headers["content-type"].startswith("text/x-opml")
    assert site.client.get("/feeds/topics/opml-topic.atom").status_code == 200
    site.client.close()
    site.store.close()


def test_a_catch_up_digest_opens_in_the_browser_with_the_days_it_covers(new_db, tmp_path: Path) -> None:
    """A daily reader last sent a digest three days ago gets one digest over the days since
    (``digest.window``). Its "View in browser" and "And N more" links open the archive of
    that edition, which must list the papers of the same days: the one the email shows and
    the one it had no room for, at the anchor the link names."""
    site = make_site(new_db, tmp_path, ingest=False)
    day = dt.date.fromisoformat(EDITION)

    def listing(days_before: int, *titles: str) -> None:
        papers = [Paper(id=paper_id(None, title), title=title, abstract=f"{title}, we find.") for title in titles]
        site.store.save_listings([Listing("daily-papers", day - dt.timedelta(days=days_before), papers)])

    def send(days_before: int) -> email.message.EmailMessage:
        outbox = tmp_path / f"sent-{days_before}"
        noon = dt.datetime.combine(day - dt.timedelta(days=days_before), dt.time(12), dt.timezone.utc)
        report = dispatch.dispatch(site.store, site.settings, now=noon, everyone=True,
                                   transport=OutboxTransport(outbox, fsync=False))
        assert report.sent == 1, report
        (eml,) = outbox.glob("*.eml")
        return email.message_from_bytes(eml.read_bytes(), policy=policy.default)

    reader = site.reader("ada@example.org", "words:zebrafish")
    site.store.save_subscriber(type(reader)(**{**{f: getattr(reader, f) for f in reader.__slots__}, "max_papers": 1}))
    listing(3, "Zebrafish fins regrow")
    send(3)
    listing(1, "Zebrafish hearts regrow", "Zebrafish livers regrow", "Zebrafish fins regrow")  # fins: listed again
    listing(0, "Mouse hearts do not regrow")  # the edition's own listing: nothing for this reader
    message = send(0)
    html_part = message.get_body(("html",)).get_content()
    shown = set(re.findall(r"Zebrafish \w+ regrow", html_part))
    assert shown == {"Zebrafish hearts regrow"} and "And 1 more" in html_part, shown
    archive_links = {path for path in _links_in(html_part, "html")[0] if path.startswith("/archive/")}
    assert {path.split("#")[0] for path in archive_links} == {f"/archive/{reader.token}/{EDITION}"}
    page = site.client.get(f"/archive/{reader.token}/{EDITION}")
    assert page.status_code == 200
    assert "Zebrafish hearts regrow" in page.text and "Zebrafish livers regrow" in page.text
    assert "Zebrafish fins regrow" not in page.text  # sent three days ago, in the digest before
    intro = "2 new papers matched your topics in the listings from Mar 10 to Mar 11"  # the days with listings
    assert intro in " ".join(html_part.split()) and intro in " ".join(page.text.split())
    ids = _parse_html(page.text).ids
    assert all(path.partition("#")[2] in ids for path in archive_links if "#" in path), archive_links
    site.client.close()
    site.store.close()


def test_and_n_more_lands_on_its_paper_after_the_paper_is_rekeyed(site: Site) -> None:
    """The email's "And N more" names the first left-out paper by the id it had then: a
    page capture's ``t-<hash>``. When an arXiv listing later re-keys that paper, the
    archive page must still carry that anchor (and the new one, for emails sent since)."""
    message = _deliver_digest(site)
    (link,) = {path for path in _archive_links(message) if "#" in path}  # the same in both parts
    fragment = link.partition("#")[2]
    assert fragment.startswith("p-t-"), link
    left_out = next(s.paper for s in site.store.papers() if urls.paper_anchor(s.paper.id) == fragment)
    day_after = dt.date.fromisoformat(EDITION) + dt.timedelta(days=1)
    known = Paper(id="2403.99999", arxiv_id="2403.99999", title=left_out.title, abstract=left_out.abstract)
    site.store.save_listings([Listing("arxiv", day_after, [known])])
    assert left_out.id not in {s.paper.id for s in site.store.papers()}  # re-keyed
    page = site.client.get(link.partition("#")[0])
    assert page.status_code == 200
    ids = _parse_html(page.text).ids
    assert fragment in ids and urls.paper_anchor("2403.99999") in ids
    # The old anchor stands at the paper's own entry, right after the paper's new one.
    entry = re.search(r'id="%s"[^>]*>\s*<a id="%s"></a>' % (urls.paper_anchor("2403.99999"), fragment), page.text)
    assert entry, fragment


def _archive_links(message: email.message.EmailMessage) -> set[str]:
    """The archive links of a digest ("View in browser", "And N more"), from both parts."""
    return {path for kind in ("html", "plain") for path in _links_in(message.get_body((kind,)).get_content(), kind)[0]
            if path.startswith("/archive/")}


def test_a_second_email_of_an_edition_opens_its_own_archive_page(new_db, tmp_path: Path) -> None:
    """A Daily Papers page grows through the day: papers added after a reader's email went out
    come in their next one, dated the same edition while no newer listing comes (a weekend).
    That second email's "View in browser" and "And N more" open a page of what it chose from
    (what the first offered left out), and the first email's page keeps showing its own."""
    site = make_site(new_db, tmp_path, ingest=False)
    friday = dt.date(2024, 3, 15)
    reader = site.reader("ada@example.org", "words:zebrafish")
    site.store.save_subscriber(type(reader)(**{**{f: getattr(reader, f) for f in reader.__slots__}, "max_papers": 1}))

    def listing(*kinds: str) -> None:
        titles = [f"Zebrafish {kind} regrow" for kind in kinds]
        site.store.save_listings([Listing("daily-papers", friday, [
            Paper(id=paper_id(None, title), title=title, abstract=f"{title}, we find.") for title in titles])])

    def send(day: dt.date) -> email.message.EmailMessage:
        outbox = tmp_path / f"sent-{day}"
        noon = dt.datetime.combine(day, dt.time(12), dt.timezone.utc)
        assert dispatch.dispatch(site.store, site.settings, now=noon, everyone=True,
                                 transport=OutboxTransport(outbox, fsync=False)).sent == 1
        (eml,) = outbox.glob("*.eml")
        return email.message_from_bytes(eml.read_bytes(), policy=policy.default)

    def shown(page: str) -> set[str]:
        return set(re.findall(r"Zebrafish \w+ regrow", page))

    listing("fins", "hearts")
    first = _archive_links(send(friday))
    listing("fins", "hearts", "livers", "tails")  # added to Friday's page after the email went out
    second = _archive_links(send(friday + dt.timedelta(days=1)))  # Saturday: no newer listing
    assert {p.partition("#")[0] for p in first} == {f"/archive/{reader.token}/2024-03-15"}
    assert {p.partition("#")[0] for p in second} == {f"/archive/{reader.token}/2024-03-15/2"}
    for links, papers in ((first, {"Zebrafish fins regrow", "Zebrafish hearts regrow"}),
                          (second, {"Zebrafish livers regrow", "Zebrafish tails regrow"})):
        page = site.client.get(min(links).partition("#")[0])
        assert page.status_code == 200 and shown(page.text) == papers, shown(page.text)
        assert "2 new papers matched your topics in the Mar 15 listing." in " ".join(page.text.split())
        ids = _parse_html(page.text).ids
        assert all(path.partition("#")[2] in ids for path in links if "#" in path), links
    # The next email's page opens already (`paperwire digest` writes it with its link); none after it.
    assert site.client.get(f"/archive/{reader.token}/2024-03-15/3").status_code == 200
    for wrong in ("1", "4", "0", "02", "x", "99999"):  # the first email's page has no number
        assert site.client.get(f"/archive/{reader.token}/2024-03-15/{wrong}").status_code == 404, wrong
    site.client.close()
    site.store.close()
