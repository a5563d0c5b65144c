"""Every absolute link paperwire hands out, built from the one ``base_url`` setting.

Emails, feeds and (later) the web app all call these, so a route can change in one
place. Reader links carry the reader's secret token, which is what lets a click manage
or unsubscribe without a login.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from .models import Subscriber
from .normalize import PAPER_REF

TRENDING_SLUG = "trending"  # the built-in feed of each day's trending papers
# Feed names the built-in feeds hold: a public topic named so gets RESERVED_SUFFIX on its slug.
RESERVED_SLUGS = frozenset({TRENDING_SLUG, "opml"})
RESERVED_SUFFIX = "-topic"

FEED_KINDS = ("atom", "rss", "json")


_URL_SAFE_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() never changes, and the slashes between parts
_URL_SAFE_PART = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote(part, safe="") never changes


def _join(base_url: str, *parts: str) -> str:
    """``base_url`` and the parts, each quoted (a slash in a part too) unless nothing in them
    needs it: the usual case, checked once for the whole path."""
    path = "/".join(parts)
    if path.count("/") != len(parts) - 1 or not _URL_SAFE_PATH.fullmatch(path):
        path = "/".join(quote(part, safe="") for part in parts)
    return base_url.rstrip("/") + "/" + path


def quoted(text: str) -> str:
    """``text`` as ``urllib.parse.quote`` gives it (for a path or a query value), without the
    call when nothing in it needs quoting."""
    return text if _URL_SAFE_PATH.fullmatch(text) else quote(text)


def home(base_url: str) -> str:
    return base_url.rstrip("/") + "/"


def manage(base_url: str, reader: Subscriber) -> str:
    return _join(base_url, "manage", reader.token)


def unsubscribe(base_url: str, reader: Subscriber) -> str:
    """The RFC 8058 one-click address: POST unsubscribes, GET only shows a button."""
    return _join(base_url, "unsubscribe", reader.token)


def archive(base_url: str, reader: Subscriber, edition: str, part: int = 1) -> str:
    """The digest in a browser ("view in browser"); ``part`` 2, 3, ...: a later email of the
    edition (``Digest.part``), whose page shows what it chose from, not what the first did."""
    return _join(base_url, "archive", reader.token, edition, *([str(part)] if part > 1 else []))


def more(base_url: str, reader: Subscriber, edition: str, first_not_shown: str, part: int = 1) -> str:
    """Everything that matched, opened at the first paper the email had no room for
    (the archive shows every match; each paper carries its ``paper_anchor``)."""
    return archive(base_url, reader, edition, part) + "#" + paper_anchor(first_not_shown)


def paper_anchor(paper_id: str) -> str:
    """An HTML id for a paper, the same in every email and archive page, and never one two ids
    share: "And N more" must not open at another paper (``2403.12345`` and ``2403-12345``).

    An id of the forms paperwire gives papers (``normalize.PAPER_REF``) keeps the anchor sent
    emails link to, ``p-`` and the id with "." and "/" as "-" (``p-2403-12345``,
    ``p-hep-th-9901001``, ``p-t-<hash>``): within those forms no two ids read the same so. Any
    other id is spelt out under ``px-``: letters, digits and "-" as they are, "_" as "__", any
    other character as "_", its code point in hex and "_" (``a/b``: ``px-a_2f_b``)."""
    if PAPER_REF.fullmatch(paper_id):
        return "p-" + paper_id.replace(".", "-").replace("/", "-")
    return "px-" + _ANCHOR_ESCAPED.sub(_anchor_escape, paper_id)


_ANCHOR_ESCAPED = re.compile(r"[^A-Za-z0-9-]")


def _anchor_escape(found: re.Match[str]) -> str:
    return "__" if found[0] == "_" else f"_{ord(found[0]):x}_"


def more_like(base_url: str, reader: Subscriber, paper_id: str) -> str:
    """A paper's "More like this" page: GET shows the paper and a button, whose POST adds it
    to the reader's liked papers (liked.py)."""
    return more_like_links(base_url, reader)(paper_id)


def more_like_links(base_url: str, reader: Subscriber) -> Callable[[str], str]:
    """``more_like`` for one reader's many papers (every paper of an email has the link):
    the reader's part of the address is built once."""
    prefix = _join(base_url, "like", reader.token) + "/"
    return lambda paper_id: prefix + (paper_id if _URL_SAFE_PART.fullmatch(paper_id) else quote(paper_id, safe=""))


def private_feed(base_url: str, reader: Subscriber, kind: str = "atom") -> str:
    return _join(base_url, "feeds", "private", f"{reader.token}.{kind}")


def topic_feed(base_url: str, slug: str, kind: str = "atom") -> str:
    """A public topic's feed (its slug is never one of RESERVED_SLUGS)."""
    return _join(base_url, "feeds", "topics", f"{slug}.{kind}")


def trending_feed(base_url: str, kind: str = "atom") -> str:
    return _join(base_url, "feeds", f"trending.{kind}")


def opml(base_url: str) -> str:
    return _join(base_url, "feeds", "feeds.opml")


def paper(base_url: str, paper_id: str) -> str:
    """Our own page for a paper without an arXiv link."""
    return _join(base_url, "papers", paper_id)


def confirm(base_url: str, signed: str) -> str:
    """The double opt-in link: ``signed`` is a signed, expiring token bound to the address."""
    return _join(base_url, "confirm", signed)
