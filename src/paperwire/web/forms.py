"""The subscribe and manage forms: raw strings in, a checked Subscriber (or field errors) out.

The forms post plain strings so they work without JavaScript. Topics are one per
line, ``Name = query`` or just ``query`` (the same as ``--topic`` on the command
line); public topics are check boxes. Every value then goes through
``build_subscriber``, the one place reader input is checked, and a ValidationError
names the form field it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import liked
from ..errors import ValidationError
from ..models import WEEKDAYS, Subscriber, Topic
from ..subscribers import build_subscriber, followed_topics, parse_topic_spec

MAX_TOPICS = 10
CADENCES = ("daily",) + tuple(f"weekly:{day}" for day in WEEKDAYS)
CADENCE_LABELS = {"daily": "Daily"} | {
    f"weekly:{day}": f"Weekly on {name}" for day, name in zip(WEEKDAYS, (
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))}
# ValidationError.field -> the form field that shows the message.
_FIELD_OF = {"email": "email", "topic": "topics", "topic name": "topics", "cadence": "cadence", "hour": "hour",
             "timezone": "timezone", "name": "name", "max": "max_papers", "follow": "topics"}


@dataclass
class ReaderForm:
    """What the person typed, kept as typed so a form with an error shows it again."""

    email: str = ""
    name: str = ""
    topics: str = ""
    follow: list[str] = field(default_factory=list)
    cadence: str = "daily"
    hour: str = "8"
    timezone: str = "UTC"
    max_papers: str = "15"

    @classmethod
    def of(cls, reader: Subscriber) -> ReaderForm:
        """The manage form for a stored reader (the liked papers have buttons of their own)."""
        own = [t for t in liked.without_liked(reader.topics) if not t.public]
        return cls(email=reader.email, name=reader.name, topics="\n".join(topic_line(t) for t in own),
                   follow=[t.name for t in reader.topics if t.public], cadence=reader.cadence, hour=str(reader.hour),
                   timezone=reader.timezone, max_papers=str(reader.max_papers))

    def topic_lines(self) -> list[str]:
        return [line.strip() for line in self.topics.replace("\r", "\n").split("\n") if line.strip()]


@dataclass
class FormError(Exception):
    field: str  # the form field: email, topics, cadence, hour, timezone, name, max_papers
    message: str


def topic_line(topic: Topic) -> str:
    return topic.query if topic.name == topic.query else f"{topic.name} = {topic.query}"


def form_error(exc: ValidationError) -> FormError:
    return FormError(_FIELD_OF.get(exc.field, exc.field), exc.reason)


def parse_topics(form: ReaderForm, public: list[Topic]) -> list[Topic]:
    lines = form.topic_lines()
    if len(lines) + len(form.follow) > MAX_TOPICS:
        raise FormError("topics", f"at most {MAX_TOPICS} topics, please")
    topics = []
    for number, line in enumerate(lines, start=1):
        try:
            topics.append(parse_topic_spec(line))
        except ValidationError as exc:
            raise FormError("topics", f"line {number}: {exc.reason}") from None
    try:
        topics += followed_topics(form.follow, public)
    except ValidationError as exc:
        raise FormError("topics", exc.reason) from None
    if not topics:
        raise FormError("topics", "write at least one topic, or pick one of the public topics")
    return topics


def parse_reader(form: ReaderForm, public: list[Topic], *, base: Subscriber | None = None,
                 status: str | None = None) -> Subscriber:
    """A checked reader from the form, over ``base`` (the stored reader) when managing; the
    stored liked papers stay, as the form does not show them."""
    if form.cadence not in CADENCES:
        raise FormError("cadence", f"{form.cadence!r} is not one of the choices")
    topics = parse_topics(form, public)
    if base is not None and liked.liked_topic(base.topics) is not None:
        if any(liked.named_liked(t) for t in topics):
            raise FormError("topics", f"{liked.NAME!r} is the name of your liked papers: give this topic another name")
        topics = liked.keep_liked(topics, base.topics)
    try:
        return build_subscriber(base.email if base else form.email, name=form.name, status=status,
                                cadence=form.cadence, hour=form.hour, timezone=form.timezone,
                                max_papers=form.max_papers, topics=topics, base=base)
    except ValidationError as exc:
        raise form_error(exc) from None
