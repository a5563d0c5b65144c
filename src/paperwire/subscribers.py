"""Reader input made safe: emails, cadences, hours, timezones and topics, checked once.

Every way a reader comes in (the ``subscribe`` command, CSV/JSON import, later the
web form) goes through ``build_subscriber``, so the rules live in one place and a
bad value is a ValidationError that names the field.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import zoneinfo
from collections.abc import Iterable
from typing import Any

from email_validator import EmailNotValidError, validate_email

from .errors import QueryError, ValidationError
from .models import SUBSCRIBER_STATUSES, WEEKDAYS, Subscriber, Topic
from .match.text import is_function_word
from .query import Node, Or, Query, like_refs, parse_query, positive_term_nodes
from .urls import RESERVED_SLUGS, RESERVED_SUFFIX

DEFAULTS = Subscriber(email="")
# Most papers a reader can ask for per email: at this many papers with the longest abstracts
# the HTML still stays under Gmail's 102 KB clipping point (render.MAX_PAPERS_UNDER_CLIP, a
# test keeps the two in step). The rest are behind the email's "and N more" link.
MAX_PAPERS_LIMIT = 38
_NAME_MAX = 200
_TOPIC_NAME_MAX = 100
QUERY_MAX = 1000


def normalize_email(raw: str) -> str:
    """The address as we store it, checked without DNS.

    Lower-cased whole: mail systems treat local parts case-insensitively in practice,
    and ``Ada@x.org`` and ``ada@x.org`` must be one reader, not two. Internationalized
    addresses are allowed (SMTPUTF8) and kept in Unicode, an IDN domain in U-labels however
    it was typed (``xn--exmple-cua.org`` is ``exämple.org``); ``addresses.wire`` gives the
    form that goes out.
    """
    try:
        return validate_email(str(raw).strip(), allow_smtputf8=True, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationError("email", f"{raw!r} is not a valid address: {exc}") from None


def parse_cadence(raw: str) -> str:
    """``daily`` or ``weekly:<weekday>`` (``weekly`` alone means Monday)."""
    text = str(raw).strip().lower()
    if text == "daily":
        return "daily"
    kind, _, day = text.partition(":")
    if kind == "weekly":
        day = (day or "mon")[:3]
        if day in WEEKDAYS:
            return f"weekly:{day}"
    raise ValidationError("cadence", f"{raw!r} is not 'daily' or 'weekly:<day>' (mon ... sun)")


def parse_hour(raw: Any) -> int:
    try:
        hour = int(str(raw).strip())
    except ValueError:
        raise ValidationError("hour", f"{raw!r} is not a whole hour 0-23") from None
    if not 0 <= hour <= 23:
        raise ValidationError("hour", f"{hour} is not a whole hour 0-23")
    return hour


def parse_timezone(raw: str) -> str:
    name = str(raw).strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"{raw!r} is not an IANA timezone such as Europe/Berlin") from None
    return name


def parse_max_papers(raw: Any) -> int:
    try:
        count = int(str(raw).strip())
    except ValueError:
        raise ValidationError("max", f"{raw!r} is not a number of papers") from None
    if not 1 <= count <= MAX_PAPERS_LIMIT:
        raise ValidationError("max", f"{count} is outside 1-{MAX_PAPERS_LIMIT}")
    return count


def stored_max_papers(stored: int) -> int:
    """A stored maximum as it counts today: readers saved when the limit was higher (39, 40)
    get what fits under the clip."""
    return min(stored, MAX_PAPERS_LIMIT)


def parse_status(raw: str) -> str:
    status = str(raw).strip().lower()
    if status not in SUBSCRIBER_STATUSES:
        raise ValidationError("status", f"{raw!r} is not one of {', '.join(SUBSCRIBER_STATUSES)}")
    return status


_JOINERS = "\u200c\u200d"  # ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER


def clean_name(raw: str | None, field: str = "name", limit: int = _NAME_MAX) -> str:
    """One line of text: control and format characters (CR/LF that could forge mail headers,
    bidi overrides) become spaces; the zero-width (non-)joiners stay, as parts of Persian
    names and emoji sequences (``مهدی‌زاده``, ``👩‍👩‍👧``) that inject nothing."""
    text = "".join(" " if unicodedata.category(ch)[0] == "C" and ch not in _JOINERS else ch
                   for ch in unicodedata.normalize("NFC", str(raw or "")))
    text = " ".join(text.split())
    if len(text) > limit:
        raise ValidationError(field, f"longer than {limit} characters")
    return text


def slugify(name: str) -> str:
    """A URL-safe feed name: ``Scaling Laws!`` -> ``scaling-laws``."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = decomposed.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")[:80]


def make_topic(name: str | None, query: str, *, public: bool = False) -> Topic:
    """A topic whose query parses; its name defaults to the query text."""
    query_text = " ".join(str(query or "").split())
    if len(query_text) > QUERY_MAX:
        raise ValidationError("topic", f"query longer than {QUERY_MAX} characters")
    try:
        query = parse_query(query_text)
    except QueryError as exc:
        pointer = f"\n  {query_text}\n  {' ' * _columns(query_text[:exc.position])}^"
        raise ValidationError("topic", f"{exc.reason} at position {exc.position} of {query_text!r}{pointer}") from None
    # Each side of OR picks papers on its own: "the OR RAG" picked all but a few.
    for side in (query.root.children if isinstance(query.root, Or) else (query,)):
        if common := _only_common_words(side):
            where = repr(query_text) if side is query else f"one side of OR in {query_text!r}"
            raise ValidationError("topic", f"{where} has only common words ({', '.join(common)}): they are in "
                                           "nearly every paper, so it would pick nearly all of them")
    topic_name = clean_name(name, "topic name", _TOPIC_NAME_MAX) or query_text[:_TOPIC_NAME_MAX]
    slug = _feed_name(topic_name)
    if slug in RESERVED_SLUGS:  # "Trending": its own feed, never in place of the built-in one
        slug += RESERVED_SUFFIX
    if public and not slug:
        raise ValidationError("topic name", f"{topic_name!r} needs at least one letter or digit (it names a feed)")
    return Topic(name=topic_name, query=query_text, public=public, slug=slug)


def _columns(text: str) -> int:
    """How many terminal columns ``text`` takes: wide characters (CJK, most emoji) two, so the
    caret under a query stands under the character the error names."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _only_common_words(query: Query | Node) -> list[str]:
    """The topic's words when they are all bare function words ("the of and", "a") and
    nothing else can pick a paper (no phrase, field such as ``author:He``, or ``like:``);
    else []. Checked where people's topics come in (this function's callers), not when a
    stored topic is matched. Capitals ("IT", "US") may be acronyms, so they count as content."""
    terms = positive_term_nodes(query)
    if not terms or like_refs(query) or any(term.phrase or term.field for term in terms):
        return []
    words = [term.text for term in terms]
    common = all(map(is_function_word, words))
    return list(dict.fromkeys(words)) if common else []


def _feed_name(name: str) -> str:
    """``slugify(name)``, with a short hash of the name after it when the name has letters
    slugify cannot spell in ASCII (Русский, 中文, Ω): "Русский NLP" and "中文 NLP" are two
    feeds, not one "nlp". "" for a name with no letter or digit."""
    slug = slugify(name)
    if not any(char.isalnum() and not char.isascii() for char in unicodedata.normalize("NFKD", name)):
        return slug
    return f"{slug or 'topic'}-{hashlib.sha256(name.casefold().encode()).hexdigest()[:10]}"


def parse_topic_spec(spec: str) -> Topic:
    """``NAME=QUERY`` or just ``QUERY`` (the name is then the query). An ``=`` inside a quote or
    a parenthesis left open before it is the query's (``title:"x=y" RAG``), not the end of a
    name; a name may hold closed ones (``Agents (tool use) = agents tools``)."""
    name, sep, query = str(spec).partition("=")
    if not sep or _left_open(name):
        name, query = "", spec
    return make_topic(name.strip() or None, query)


def _left_open(text: str) -> bool:
    """Whether ``text`` ends inside a quote (typographic ones too) or a parenthesis."""
    quotes = sum(text.count(mark) for mark in '"\u201c\u201d\u201e\u00ab\u00bb')
    return quotes % 2 == 1 or text.count("(") > text.count(")")


def followed_topics(names: Iterable[str], public: Iterable[Topic]) -> list[Topic]:
    """The public topics a reader follows by name (any case), each once; an unknown name is an error."""
    by_name = {topic.name.casefold(): topic for topic in public}
    followed = []
    for name in dict.fromkeys(names):
        if name.casefold() not in by_name:
            raise ValidationError("follow", f"no public topic named {name!r}")
        followed.append(by_name[name.casefold()])
    return followed


def new_token() -> str:
    """The secret in a reader's links (manage, unsubscribe, private feed)."""
    return secrets.token_urlsafe(24)


def build_subscriber(
    email: str,
    *,
    name: str | None = None,
    status: str | None = None,
    cadence: str | None = None,
    hour: Any = None,
    timezone: str | None = None,
    max_papers: Any = None,
    topics: Iterable[Topic] = (),
    base: Subscriber | None = None,
) -> Subscriber:
    """A checked Subscriber: given values over ``base`` (the stored reader) over defaults.

    Topics given replace the stored ones but for the reader's liked papers, which stay
    unless ``topics`` has a topic of that name: they are edited with their own buttons and
    API, and a command or API call that sets topics would otherwise drop them unseen."""
    from . import liked  # it builds on this module

    base = base or DEFAULTS
    topic_list = liked.keep_liked(list(topics), base.topics) if topics else list(base.topics)
    if not topic_list:
        raise ValidationError("topic", "a reader needs at least one topic (--topic QUERY or --follow NAME)")
    seen: set[str] = set()
    for topic in topic_list:
        if topic.name.casefold() in seen:
            raise ValidationError("topic", f"two topics are named {topic.name!r}")
        seen.add(topic.name.casefold())
    return Subscriber(
        email=normalize_email(email),
        name=clean_name(name) if name is not None else base.name,
        status=parse_status(status) if status is not None else base.status,
        cadence=parse_cadence(cadence) if cadence is not None else base.cadence,
        hour=parse_hour(hour) if hour is not None else base.hour,
        timezone=parse_timezone(timezone) if timezone is not None else base.timezone,
        max_papers=parse_max_papers(max_papers) if max_papers is not None else base.max_papers,
        topics=topic_list,
        token=base.token or new_token(),
        created_at=base.created_at,
        confirmed_at=base.confirmed_at,
        id=base.id,
    )
