"""Atom, RSS 2.0 and JSON Feed 1.1 documents for public topics and trending papers, plus OPML.

Pure: papers in, bytes out; the caller decides where they go. The same input always
gives the same bytes (no clock is read), so feeds can be regenerated on every run and
only rewritten, cached or served with a new ETag when something really changed.

Decisions, so readers' feed clients behave:

- Entry ids are ``urn:paperwire:paper:<paper id>``: they depend only on the paper,
  never on ``base_url`` or the feed, so moving the site does not make every paper
  look new, and a paper that shows up again later is recognised as already read. A
  paper re-keyed when its arXiv id was learned keeps the id it was first stored under
  (``FeedItem.first_id``), for the same reason.
- Every date comes from the data: an item's date is its listing date at 00:00 UTC and
  a feed's ``updated`` (RSS ``lastBuildDate``) is its newest item's. An empty feed uses
  ``empty_date`` when given, else the Unix epoch -- never "now".
- Newest first: listing date descending, then trending rank, then paper id. A paper
  listed twice keeps its first (newest) appearance, since duplicate ids are invalid.
- Text from sources is never trusted as markup: summaries are built here from
  escaped parts and typed ``html``. Every text and link goes through the cleaning rule
  emails use (normalize's ``clean_line`` and ``safe_url``): no XML-invalid characters
  (feedgen raises on them, and ElementTree would write an unparsable OPML), no bidi
  overrides, no link with a space or control in it.
- Bounded: an entry shows at most SHOWN_TITLE_CHARS of title, SHOWN_ABSTRACT_CHARS of
  abstract (cut at a word, with an ellipsis) and SHOWN_AUTHORS authors, whatever is stored
  (normalize's ``shown_*``, which the web pages use too).
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from feedgen.feed import FeedGenerator
from markupsafe import Markup

from . import urls
from .models import LINK_LABELS, Hit, Paper
from .normalize import SHOWN_ABSTRACT_CHARS, clean_line, safe_url, shown_abstract, shown_authors, shown_title
from .paperview import merged_spans, paper_links, snippet_start

TRENDING_SLUG = urls.TRENDING_SLUG
DEFAULT_LIMIT = 50
EPOCH = dt.date(1970, 1, 1)
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
OPML_DOCS = "http://opml.org/spec2.opml"
# What one entry shows at most; a real abstract is under 2,000 characters.
FEED_CATEGORIES = 20


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A paper as listed on ``date`` at trending ``rank`` (1 = top)."""

    paper: Paper
    date: dt.date
    rank: int
    hits: tuple[Hit, ...] = ()  # what the feed's topic matched in it (none in the trending feed)
    first_id: str | None = None  # the paper's id before a re-key (StoredPaper.first_id): its entries keep it


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What a feed is about. ``slug`` names its URLs; ``"trending"`` is the trending feed."""

    title: str
    slug: str
    description: str = ""
    query: str = ""  # a topic's query, shown in the feed description
    # kind -> absolute URL, for feeds not served at the public topic URLs (a reader's private feed).
    self_urls: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.slug.strip():
            raise ValueError("a feed needs a slug: it names the feed's URLs")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One item, cleaned and formatted once for all three formats."""

    id: str
    title: str
    url: str
    published: dt.datetime
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    html: str
    text: str


def entry_id(paper_id: str) -> str:
    """The stable id of a paper's entry in any paperwire feed."""
    return "urn:paperwire:paper:" + quote(paper_id, safe="")


def feed_id(slug: str) -> str:
    return "urn:paperwire:feed:" + quote(slug, safe="")


def feed_url(base_url: str, slug: str, kind: str = "atom") -> str:
    """Where the feed named ``slug`` is served, in format ``kind`` (atom, rss, json)."""
    if slug == TRENDING_SLUG:
        return urls.trending_feed(base_url, kind)
    return urls.topic_feed(base_url, slug, kind)


def self_url(spec: FeedSpec, base_url: str, kind: str) -> str:
    """The feed's own address: its ``self_urls`` entry, else the public URL of its slug."""
    return dict(spec.self_urls).get(kind) or feed_url(base_url, spec.slug, kind)


def order_items(items: Iterable[FeedItem], limit: int | None = DEFAULT_LIMIT) -> list[FeedItem]:
    """Newest first, best rank first within a day, one item per paper, at most ``limit``."""
    ordered = sorted(items, key=lambda item: (-item.date.toordinal(), item.rank, item.paper.id))
    seen: set[str] = set()
    unique = []
    for item in ordered:
        if item.paper.id not in seen:
            seen.add(item.paper.id)
            unique.append(item)
    return unique if limit is None else unique[:limit]


def render_feed(
    spec: FeedSpec,
    items: Iterable[FeedItem],
    base_url: str,
    *,
    publisher: str = "paperwire",
    limit: int | None = DEFAULT_LIMIT,
    empty_date: dt.date | None = None,
) -> dict[str, bytes]:
    """All three formats at once: ``{"atom": ..., "rss": ..., "json": ...}``.

    ``publisher`` is the feed's author (``Settings.sender_name``): Atom needs one for
    entries whose paper has no authors. ``empty_date`` is the ``updated`` date of a feed
    with no items (e.g. the newest listing date); the epoch when not given.
    """
    entries = _entries(order_items(items, limit), base_url)
    updated = _midnight(empty_date or EPOCH) if not entries else entries[0].published
    return {
        "atom": _atom(spec, entries, base_url, publisher, updated),
        "rss": _rss(spec, entries, base_url, publisher, updated),
        "json": _json(spec, entries, base_url, publisher),
    }


def render_opml(
    feeds: Sequence[tuple[str, str]],
    base_url: str,
    *,
    title: str = "paperwire feeds",
    trending_title: str | None = "Trending papers",
) -> bytes:
    """OPML 2.0 subscription list: the trending feed first, then each ``(title, slug)``.

    Pass ``trending_title=None`` to leave the trending feed out; it is not listed twice
    when ``feeds`` already names it. Outlines point at the Atom feeds.
    """
    listed = list(feeds)
    if trending_title is not None and all(slug != TRENDING_SLUG for _, slug in listed):
        listed.insert(0, (trending_title, TRENDING_SLUG))
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = clean_line(title)
    ET.SubElement(head, "docs").text = OPML_DOCS
    body = ET.SubElement(root, "body")
    for feed_title, slug in listed:
        name = clean_line(feed_title) or slug
        ET.SubElement(
            body,
            "outline",
            type="rss",
            text=name,
            title=name,
            xmlUrl=feed_url(base_url, slug, "atom"),
            htmlUrl=urls.home(base_url),
        )
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


# -- building entries -----------------------------------------------------------------


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def _entries(items: Sequence[FeedItem], base_url: str) -> list[_Entry]:
    return [_entry(item, base_url) for item in items]


def feed_abstract(abstract: str, hits: tuple[Hit, ...]) -> str:
    """The abstract as an entry shows it: whole up to SHOWN_ABSTRACT_CHARS, or, when the topic's
    first matched term lies beyond that, from shortly before it (``…`` marks the cut), as the
    emails do (``paperview.snippet_start``)."""
    start = snippet_start(abstract, merged_spans(hits, "abstract", len(abstract)), shown_to=SHOWN_ABSTRACT_CHARS - 1)
    return "…" + shown_abstract(abstract[start:]) if start else shown_abstract(abstract)


def _entry(item: FeedItem, base_url: str) -> _Entry:
    paper = item.paper
    # Only http(s) links without spaces or controls reach a reader: never `javascript:`.
    links = [(link.kind, url) for link in paper.links if (url := safe_url(link.url))]
    url = paper_links(paper.links, paper.id, base_url)[0].url  # the title's target, as emails link it
    title = shown_title(paper.title) or f"Untitled paper {clean_line(paper.id)}"
    abstract = feed_abstract(paper.abstract, item.hits)
    authors, byline = shown_authors(paper.authors)
    categories = tuple(dict.fromkeys(c for c in map(clean_line, paper.categories) if c))[:FEED_CATEGORIES]
    extra = [(LINK_LABELS.get(kind, LINK_LABELS["other"]), u) for kind, u in dict.fromkeys(links) if u != url]
    listed = f"#{item.rank} in the {item.date.isoformat()} listing"

    html = [Markup("<p>{}</p>").format(abstract)] if abstract else []
    if authors:
        html.append(Markup("<p>Authors: {}</p>").format(byline))
    if extra:
        anchors = (Markup('<a href="{}">{}</a>').format(u, label) for label, u in extra)
        html.append(Markup("<p>{}</p>").format(Markup(" · ").join(anchors)))
    html.append(Markup("<p>{}</p>").format(listed))

    text = [abstract] if abstract else []
    if authors:
        text.append("Authors: " + byline)
    text.extend(f"{label}: {u}" for label, u in extra)
    text.append(listed)

    return _Entry(
        id=entry_id(item.first_id or paper.id),
        title=title,
        url=url,
        published=_midnight(item.date),
        authors=authors,
        categories=categories,
        html="\n".join(html),
        text="\n\n".join(text),
    )


def _title(spec: FeedSpec) -> str:
    """Atom and RSS both require a non-blank title."""
    return clean_line(spec.title) or clean_line(spec.slug) or "paperwire"


def _description(spec: FeedSpec) -> str:
    """RSS requires a non-blank description."""
    description = clean_line(spec.description) or _title(spec)
    query = clean_line(spec.query)
    return f"{description} (query: {query})" if query else description


# -- the three formats ----------------------------------------------------------------


def _generator(spec: FeedSpec, entries: Sequence[_Entry], publisher: str, updated: dt.datetime) -> FeedGenerator:
    """A FeedGenerator with every field set from the data (feedgen defaults to now())."""
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)  # RSS <author> needs an email; dc:creator does not
    fg.id(feed_id(spec.slug))
    fg.title(_title(spec))
    fg.description(_description(spec))
    fg.author(name=clean_line(publisher) or "paperwire")
    fg.generator("paperwire")  # no feedgen version: golden files survive upgrades
    fg.updated(updated)  # sets RSS lastBuildDate too
    for entry in entries:
        fe = fg.add_entry(order="append")  # feedgen prepends by default
        fe.id(entry.id)
        fe.title(entry.title)
        fe.link(href=entry.url, rel="alternate")
        fe.published(entry.published)
        fe.updated(entry.published)
        fe.summary(entry.html, type="html")
        if entry.authors:
            fe.author([{"name": name} for name in entry.authors])
            fe.dc.dc_creator(list(entry.authors))
        for term in entry.categories:
            fe.category(term=term)
    return fg


def _set_links(fg: FeedGenerator, base_url: str, self_url: str, self_type: str) -> None:
    # The alternate link goes last: feedgen uses the last link as the RSS channel <link>.
    fg.link(href=self_url, rel="self", type=self_type, replace=True)
    fg.link(href=urls.home(base_url), rel="alternate", type="text/html")


def _atom(spec: FeedSpec, entries: Sequence[_Entry], base_url: str, publisher: str, updated: dt.datetime) -> bytes:
    fg = _generator(spec, entries, publisher, updated)
    _set_links(fg, base_url, self_url(spec, base_url, "atom"), "application/atom+xml")
    return fg.atom_str(pretty=True)


def _rss(spec: FeedSpec, entries: Sequence[_Entry], base_url: str, publisher: str, updated: dt.datetime) -> bytes:
    fg = _generator(spec, entries, publisher, updated)
    _set_links(fg, base_url, self_url(spec, base_url, "rss"), "application/rss+xml")
    return fg.rss_str(pretty=True)


def _json(spec: FeedSpec, entries: Sequence[_Entry], base_url: str, publisher: str) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/); feedgen does not write it."""
    feed = {
        "version": JSON_FEED_VERSION,
        "title": _title(spec),
        "home_page_url": urls.home(base_url),
        "feed_url": self_url(spec, base_url, "json"),
        "description": _description(spec),
        "authors": [{"name": clean_line(publisher) or "paperwire"}],
        "items": [
            {
                "id": entry.id,
                "url": entry.url,
                "title": entry.title,
                "content_html": entry.html,
                "content_text": entry.text,
                "date_published": entry.published.isoformat(),
            }
            | ({"authors": [{"name": name} for name in entry.authors]} if entry.authors else {})
            | ({"tags": list(entry.categories)} if entry.categories else {})
            for entry in entries
        ],
    }
    return json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
