"""The ``paperwire`` command: a thin click shell over pipeline and store.

Each command parses its flags, calls one library function and prints its report,
as text for people or ``--json`` for scripts. Domain errors become one-line
messages and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import click

from . import __version__, digest, files, logs, pipeline, redact, sources, subscriber_io
from .config import PACKAGE_DIR, Settings, load_settings, override
from .errors import EmbedderError, PaperwireError, ValidationError
from .models import SUBSCRIBER_STATUSES, Subscriber
from .normalize import clean_line, shorten, shown_title
from .runs import run_is_dead
from .store import Store
from .subscribers import build_subscriber, followed_topics, make_topic, normalize_email, parse_topic_spec

_DATE = click.DateTime(formats=["%Y-%m-%d"])


class App:
    """Settings and the store, made on first use so ``--help`` never opens a database."""

    def __init__(self, config_file: Path | None, flags: dict, *, verbose: bool = False):
        self._config_file = config_file
        self._flags = flags
        self.log_level = logging.DEBUG if verbose else logging.WARNING
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config_file, self._flags)
            logs.configure(self._settings.log_format, level=self.log_level)
        return self._settings

    def log_at(self, level: int) -> None:
        """Commands that run for long (schedule, send) report each run at INFO."""
        self.log_level = min(self.log_level, level)
        logs.configure(self.settings.log_format, level=self.log_level)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.db)
        return self._store


class PaperwireGroup(click.Group):
    """Turns PaperwireError into a clean ``Error: ...`` line with exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PaperwireError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=PaperwireGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paperwire")
@click.option("--db", metavar="URL", help="SQLAlchemy database URL [env PAPERWIRE_DB; default sqlite:///out/paperwire.sqlite3].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Settings file [default ./paperwire.toml when present; env PAPERWIRE_CONFIG].")
@click.option("-v", "--verbose", is_flag=True, help="Show warnings about tolerated input and debug logs.")
@click.option("--log-format", type=click.Choice(logs.FORMATS),
              help="Logs as readable lines or one JSON object per line [env PAPERWIRE_LOG_FORMAT; default text].")
@click.pass_context
def cli(ctx: click.Context, db: str | None, config_file: Path | None, verbose: bool, log_format: str | None) -> None:
    """paperwire turns trending-paper listings into personalized digests and feeds.

    \b
    Examples:
      paperwire ingest seeds/                 # read listings into the database
      paperwire papers --since 2024-03-01     # what is stored
      paperwire --db sqlite:////tmp/pw.db ingest listing.json   # four slashes: an absolute path
    """
    logs.configure(log_format or "text", level=logging.DEBUG if verbose else logging.WARNING)
    ctx.call_on_close(lambda: logging.captureWarnings(False))  # configure routes warnings to the log: for this command only
    ctx.obj = App(config_file, {"db": db, "log_format": log_format}, verbose=verbose)
    ctx.meta["verbose"] = verbose


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH_OR_URL...")
@click.option("--format", "format_", type=click.Choice(list(sources.FORMATS)),
              help="Read every file as this format instead of detecting it.")
@click.option("--date", type=_DATE, help="Listing date (YYYY-MM-DD) instead of the one in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: files, added, updated, unchanged, errors.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], format_: str | None, date: dt.datetime | None,
           as_json: bool) -> None:
    """Read paper listings (files, folders or http(s) URLs) into the database.

    Formats are detected from content: Daily Papers text captures, Hugging Face
    daily-papers JSON, arXiv API/listing feeds, and any RSS/Atom feed. Each file or
    URL is one transaction: a bad one changes nothing and the others still go in; the
    exit status is 1 if any failed. A URL is fetched only if it changed since its
    last ingest (ETag / Last-Modified).

    \b
    Examples:
      paperwire ingest seeds/
      paperwire ingest --format hf-json --date 2024-03-11 papers.json
      paperwire ingest https://huggingface.co/api/daily_papers
    """
    app: App = ctx.obj
    store = app.store
    items = pipeline.listing_sources(list(paths))
    total = len(items)
    show_progress = not as_json and total > 1
    with click.progressbar(length=total, label="Ingesting", file=sys.stderr,
                           hidden=not show_progress) as bar:
        report = pipeline.ingest(store, items or list(paths), format=format_,  # folders are walked once
                                 date=date.date() if date else None, timeout=app.settings.schedule_fetch_timeout, on_file=lambda _path: bar.update(1),
                                 max_bytes=app.settings.max_listing_bytes)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_ingest(report, store, verbose=ctx.meta["verbose"])
    if report.errors:
        ctx.exit(1)


def _print_ingest(report: pipeline.IngestReport, store: Store, *, verbose: bool) -> None:
    counts = report.counts
    for warning in report.warnings if verbose else []:
        click.echo(f"warning: {logs.printable(warning)}", err=True)
    for error in report.errors:
        where = error.file + (f":{error.line}" if error.line else "")
        click.echo(click.style("error: ", fg="red") + logs.printable(f"{where}: {error.message}"), err=True)
    click.echo(f"{report.files} file(s): {counts.added} papers added, {counts.updated} updated, "
               f"{counts.unchanged} unchanged, "
               + (f"{report.not_modified} URL(s) not modified, " if report.not_modified else "")
               + f"{len(report.errors)} error(s)"
               + (f", {len(report.warnings)} warning(s) (-v shows them)" if report.warnings and not verbose else ""))
    summaries = store.listing_summaries()
    if summaries:
        click.echo(f"\nListings in {redact.url(store.url)}:")
        for summary in summaries:
            click.echo(f"  {summary.date:%a %Y-%m-%d}  {summary.papers:5d} papers  {summary.source}")
        click.echo(f"  {store.count_papers()} distinct papers in all")


@cli.command()
@click.option("--since", type=_DATE, help="Only papers listed on or after this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of papers with their links and listings.")
@click.pass_obj
def papers(app: App, since: dt.datetime | None, as_json: bool) -> None:
    """List stored papers, newest listing first.

    \b
    Examples:
      paperwire papers
      paperwire papers --since 2024-03-11 --json
    """
    found = app.store.papers(since=since.date() if since else None)
    if as_json:
        click.echo(json.dumps([_paper_json(item) for item in found], indent=2, ensure_ascii=False))
        return
    for item in found:
        latest = item.listings[0]
        click.echo(f"{latest.date}  #{latest.rank:<3d} {item.paper.id:<20} {item.paper.title}")
    click.echo(f"{len(found)} paper(s)", err=True)


def _paper_json(item) -> dict:
    paper = item.paper
    return {
        "id": paper.id, "arxiv_id": paper.arxiv_id, "title": paper.title, "abstract": paper.abstract,
        "authors": paper.authors, "links": [{"url": l.url, "kind": l.kind} for l in paper.links],
        "listings": [{"date": a.date.isoformat(), "rank": a.rank, "source": a.source} for a in item.listings],
    }


# -- readers and topics ----------------------------------------------------------


@cli.command()
@click.argument("email")
@click.option("--topic", "topic_specs", multiple=True, metavar="[NAME=]QUERY",
              help="A topic of the reader's own; repeat for more. See the README for the query language.")
@click.option("--follow", multiple=True, metavar="NAME", help="Follow a public topic by name; repeatable.")
@click.option("--cadence", help="daily, or weekly:DAY (mon ... sun) [new reader: daily; else kept].")
@click.option("--hour", type=int, help="Send hour 0-23 in the reader's timezone [new reader: 8; else kept].")
@click.option("--tz", "timezone", metavar="ZONE", help="IANA timezone, e.g. Europe/Berlin [new reader: UTC; else kept].")
@click.option("--max", "max_papers", type=int, help="Most papers per email [new reader: 15; else kept].")
@click.option("--name", help="The reader's name, used in greetings.")
@click.pass_obj
def subscribe(app: App, email: str, topic_specs: tuple[str, ...], follow: tuple[str, ...], cadence: str | None,
              hour: int | None, timezone: str | None, max_papers: int | None, name: str | None) -> None:
    """Add a reader, active at once, or update one (same email: never a second reader).

    Options left out keep the reader's current values; giving topics replaces
    their topics.

    \b
    Examples:
      paperwire subscribe ada@example.org --topic "Scaling=scaling laws" --topic "MoE OR RAG"
      paperwire subscribe bob@example.org --follow trending --cadence weekly:fri --hour 7 --tz Europe/Berlin
    """
    store = app.store
    base = store.subscriber(normalize_email(email))
    try:
        followed = followed_topics(follow, store.public_topics())
    except ValidationError as exc:
        raise click.BadParameter(f"{exc.reason} (see 'paperwire topics')", param_hint="--follow") from None
    topics = [parse_topic_spec(spec) for spec in topic_specs] + followed
    reader = build_subscriber(email, name=name, status="active", cadence=cadence, hour=hour, timezone=timezone,
                              max_papers=max_papers, topics=topics, base=base)
    stored, created = store.save_subscriber(reader)
    click.echo(f"{'Subscribed' if created else 'Updated'} {stored.email}: {_describe(stored)}")
    _embed_saved_topics(app, [topic.query for topic in stored.topics])


def _embed_saved_topics(app: App, queries: list[str]) -> None:
    """After topics are saved (and said so): their vectors, stored (semantic.embed_saved_topics;
    a model that cannot load is one log line, and the save stands)."""
    from . import semantic  # numpy and the model only for the commands that need them

    semantic.embed_saved_topics(app.store, app.settings, queries)


def _describe(reader: Subscriber) -> str:
    topics = "; ".join(t.name if t.name == t.query else f"{t.name} = {t.query}" for t in reader.topics)
    return logs.printable(f"{reader.cadence} at {reader.hour:02d}:00 {reader.timezone}, up to {reader.max_papers} "
                          f"papers, topics: {topics}")


@cli.command()
@click.argument("email")
@click.pass_obj
def unsubscribe(app: App, email: str) -> None:
    """Stop sending to a reader (kept as 'unsubscribed', so a re-import cannot revive them silently).

    \b
    Example:
      paperwire unsubscribe ada@example.org
    """
    address = normalize_email(email)
    if not app.store.set_status(address, "unsubscribed"):
        raise click.ClickException(f"no reader with email {address}")
    click.echo(f"Unsubscribed {address}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of readers.")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only readers in this state.")
@click.pass_context
def subscribers(ctx: click.Context, as_json: bool, status: str | None) -> None:
    """List readers, or import and export them (CSV or JSON).

    \b
    Examples:
      paperwire subscribers
      paperwire subscribers --json
      paperwire subscribers export --format csv -o readers.csv
      paperwire subscribers import readers.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    readers = ctx.obj.store.subscribers(status=status)
    bounced = ctx.obj.store.latest_bounces([reader.id for reader in readers])
    if as_json:
        click.echo(json.dumps([{**subscriber_io.subscriber_record(reader),
                                "last_bounce": subscriber_io.bounce_record(bounced.get(reader.id))} for reader in readers],
                              indent=2, ensure_ascii=False))
        return
    for reader in readers:
        last = bounced.get(reader.id)
        click.echo(f"{logs.printable(reader.email):<32} {reader.status:<12} {_describe(reader)}"
                   + (f" · last bounce: {_bounce_line(last)}" if last else ""))
    click.echo(f"{len(readers)} reader(s)", err=True)


def _bounce_line(event) -> str:
    return logs.printable(f"{event.kind} {event.status} ({event.source}, {event.received_at:%Y-%m-%d})".replace("  ", " "))


def _io_format(path: Path | None, given: str | None) -> str:
    if given:
        return given
    return "csv" if path is not None and path.suffix.lower() == ".csv" else "json"


@subscribers.command("export")
@click.option("--format", "format_", type=click.Choice(["json", "csv"]), help="[default: from the file name, else json]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; - for stdout [default: stdout].")
@click.pass_obj
def subscribers_export(app: App, format_: str | None, output: Path | None) -> None:
    """Write every reader with their topics as JSON or CSV (one row per topic).

    \b
    Example:
      paperwire subscribers export -o out/readers.csv
    """
    readers = app.store.subscribers()
    if output is not None and str(output) == "-":
        output = None
    text = (subscriber_io.to_csv if _io_format(output, format_) == "csv" else subscriber_io.to_json)(readers)
    if output is None:
        click.echo(text, nl=False)
    else:
        files.replace_file(output, text.encode("utf-8"), mode=0o600)  # readers' addresses: the owner's only
        click.echo(f"Wrote {len(readers)} reader(s) to {output}", err=True)


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_", type=click.Choice(["json", "csv"]),
              help="[default: from the file name, else from its first character: [ is JSON]")
@click.pass_obj
def subscribers_import(app: App, file: Path, format_: str | None) -> None:
    """Add or update readers from a JSON or CSV export. All rows or none: every bad row (up to 20) is named with its line.

    \b
    Example:
      paperwire subscribers import readers.csv
    """
    public = {t.name.casefold(): t for t in app.store.public_topics()}
    text = subscriber_io.decode(file.read_bytes(), str(file))
    if format_ is None and file.suffix.lower() not in (".csv", ".json"):  # readers.txt: JSON starts with [
        format_ = "json" if text.lstrip("\ufeff \t\r\n").startswith("[") else "csv"
    parse = subscriber_io.from_csv if _io_format(file, format_) == "csv" else subscriber_io.from_json
    readers = parse(text, str(file), public)
    stored = {reader.email: reader for reader in app.store.subscribers()}  # one read, not one per reader
    readers = subscriber_io.keeping_liked(readers, stored.get)
    created, updated = app.store.save_subscribers(readers)
    click.echo(f"Imported {len(readers)} reader(s): {created} new, {updated} updated")
    _embed_saved_topics(app, [topic.query for reader in readers for topic in reader.topics])


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of public topics.")
@click.pass_context
def topics(ctx: click.Context, as_json: bool) -> None:
    """List public topics, or add and remove them. Each public topic gets its own feeds.
    `topics check` lists every stored topic (readers' too) that reads otherwise than its
    writer may expect.

    \b
    Examples:
      paperwire topics
      paperwire topics add "Scaling laws" '"scaling laws" OR "compute-optimal"'
      paperwire topics add trending '*'
      paperwire topics remove "Scaling laws"
      paperwire topics check
    """
    if ctx.invoked_subcommand is not None:
        return
    found = ctx.obj.store.public_topics()
    if as_json:
        click.echo(json.dumps([{"name": t.name, "slug": t.slug, "query": t.query} for t in found], indent=2,
                              ensure_ascii=False))
        return
    for topic in found:
        click.echo(logs.printable(f"{topic.name:<30} {topic.slug:<30} {topic.query}"))
    click.echo(f"{len(found)} public topic(s)", err=True)


@topics.command("add")
@click.argument("name")
@click.argument("query")
@click.pass_obj
def topics_add(app: App, name: str, query: str) -> None:
    """Create a public topic, or change the query of an existing one.

    \b
    Example:
      paperwire topics add "Mixture of experts" 'MoE OR "sparse experts"'
    """
    topic = make_topic(name, query, public=True)
    created = app.store.add_public_topic(topic)
    click.echo(f"{'Added' if created else 'Updated'} public topic {topic.name!r} (feed name {topic.slug})")
    _embed_saved_topics(app, [topic.query])


@topics.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even if readers follow it.")
@click.pass_obj
def topics_remove(app: App, name: str, force: bool) -> None:
    """Delete a public topic. Refuses while readers follow it, unless --force.

    \b
    Example:
      paperwire topics remove "Mixture of experts"
    """
    followers = app.store.remove_public_topic(name, force=force)
    click.echo(f"Removed public topic {name!r}" + (f"; {followers} reader(s) no longer follow it" if followers else ""))


@topics.command("check")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: checked, found, and topics, each with email (null for a public topic), "
                   "status, topic, query, reading, error, rules [{rule, detail}] and hints.")
@click.pass_obj
def topics_check(app: App, as_json: bool) -> None:
    """List the stored topics that read otherwise than their writers may expect.

    Every reader's topics (whatever the reader's status) and every public topic are
    parsed as digests parse them. A topic is listed, with how it reads now, when it
    does not parse (digests leave it out; the parser's error is shown), when `match`
    would warn about it (author:Xu Han, a lower-case or between words, "not", "except",
    "excluding" or a spaced dash meant to leave papers out), or when a
    newer rule reads it: "separator" (a comma or semicolon between terms means OR),
    "outer-exclusion" (an exclusion outside parentheses excludes from every side of
    OR), "negation-side" (a side whose words say not/no/never/except/excluding
    is matched by its words only, not by meaning). It changes nothing, and exits 0
    whatever it finds.

    \b
    Examples:
      paperwire topics check
      paperwire topics check --json | jq -r '.topics[] | select(.error) | .email'
    """
    from . import topiccheck  # the meaning module (numpy) only for this command

    checked, found = topiccheck.check_topics(app.store.subscribers(), app.store.public_topics())
    if as_json:
        click.echo(json.dumps({"checked": checked, "found": len(found), "topics": [item.as_dict() for item in found]},
                              indent=2, ensure_ascii=False))
        return
    for item in found:
        owner = f"{item.email} ({item.status})" if item.email else "public topic"
        lines = [f"{owner} · " + (item.query if item.name == item.query else f"{item.name} = {item.query}")]
        lines += [f"  error: {item.read.error}"] if item.read.error else [f"  reads: {item.read.reading}"]
        lines += [f"  {rule}: {detail}" for rule, detail in item.read.rules]
        lines += [f"  hint: {hint}" for hint in item.read.hints]
        click.echo("\n".join(map(logs.printable, lines)))
    refused = sum(1 for item in found if item.read.error)
    click.echo(f"{len(found)} of {checked} stored topics read differently or have hints"
               + (f" ({refused} do not parse)" if refused else ""), err=True)


# -- digests ----------------------------------------------------------------------


def _embed_step(app: App, *, since: dt.date | None, until: dt.date | None, quiet: bool):
    """The embedding step of a command: a progress bar on stderr (hidden for --json and when
    stderr is not a terminal). A paper that failed, or a model that cannot load, is a log
    line on stderr (semantic.embed_step)."""
    with contextlib.ExitStack() as stack:
        bar = None

        def start(total: int) -> None:
            nonlocal bar
            bar = stack.enter_context(click.progressbar(
                length=total, label="Embedding", file=sys.stderr,
                hidden=quiet or total < 2 or not sys.stderr.isatty()))

        return pipeline.embed(app.store, app.settings, since=since, until=until, on_start=start,
                              on_paper=lambda _paper: bar.update(1))


def _embed_recent(app: App, edition: dt.date | None, *, quiet: bool = False) -> None:
    """Before matching: vectors for every paper a run for ``edition`` can match."""
    edition = edition or app.store.latest_listing_date()
    if edition is not None:
        _embed_step(app, since=pipeline.matching_window(edition), until=edition, quiet=quiet)


def _note_unembedded(app: App, papers: list) -> None:
    """Say on stderr how many papers have no vectors yet (they match by their words only)."""
    from . import semantic

    embedder = pipeline.embedder(app.settings)
    if embedder is None:
        return
    try:
        missing = len(semantic.pending(app.store, embedder, papers))
    except EmbedderError:  # the embedding step has already said why the model is unusable
        return
    if missing:
        click.echo(f"note: {missing:,} older paper(s) have no vectors yet and match by their words only; "
                   "`paperwire embed` computes them, or pass --since", err=True)


@cli.command()
@click.option("--since", type=_DATE, help="Only papers listed on or after this date (YYYY-MM-DD) [default: all].")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: model, papers, missing, embedded, topics, failed, error.")
@click.pass_obj
def embed(app: App, since: dt.datetime | None, as_json: bool) -> None:
    """Compute the vectors that matching by meaning needs, for papers and topics that have none.

    Each paper and topic is embedded once per model (relevance.embedder setting) and
    kept in the database; a changed title, abstract or query is embedded again. The
    commands that match (digest, send, feeds, demo) and the schedule daemon do this
    step themselves; run it after a large ingest or a model change to do it up front.
    Exit status 1 if a paper failed (the others are stored) or the model cannot load.

    \b
    Examples:
      paperwire embed
      paperwire embed --since 2024-03-01 --json
    """
    if app.settings.relevance_embedder == "off":
        raise click.ClickException('relevance.embedder is "off": there is nothing to embed with')
    report = _embed_step(app, since=since.date() if since else None, until=None, quiet=as_json)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"{report.embedded} paper(s) embedded, {report.papers - report.missing} already had vectors, "
                   f"{len(report.failed)} failed; {report.topics} topic(s) embedded ({report.model})")
    if report.failed or report.error:
        raise click.exceptions.Exit(1)


def _once(ctx: click.Context, param: click.Parameter, given: tuple[str, ...]) -> str | None:
    """An option that names one thing, given at most once: click would keep the last of
    several without a word (``--only a --only b`` would be b alone)."""
    if len(given) > 1:
        raise click.BadParameter(f"given {len(given)} times; it takes one value", param=param)
    return given[0] if given else None


def _edition(app: App, date: dt.datetime | None, *, listed: bool = True) -> dt.date:
    """The edition ``--date`` names, else the newest. With ``listed``, a date with no listing
    is refused: a digest is that day's listing (a weekly one's last day), so it would be
    empty or short for a reason no one would guess (a typo). Feeds, which cover a month up
    to the date, take any date with a listing in that month: a day without one (a weekend)
    is fine, but a typo that would overwrite the published feeds with empty ones is not."""
    latest = app.store.latest_listing_date()
    if latest is None:
        raise click.ClickException("no listings yet: run 'paperwire ingest PATH' first")
    if date is None:
        return latest
    edition = date.date()
    first = edition if listed else pipeline.matching_window(edition)
    if not any(first <= listing.date <= edition for listing in app.store.listing_summaries()):
        where = f"of {edition}" if listed else f"in the month up to {edition}"
        raise click.ClickException(f"no listing {where}: the newest is of {latest}")
    return edition


@contextlib.contextmanager
def _writing_into(folder: Path):
    """A folder the output cannot be written into is one line naming it and the OS reason,
    not a traceback."""
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot write into {folder}: {exc.strerror or exc}") from None


def _renderer(app: App):
    from .render import EmailRenderer  # loads MJML and Jinja: only for the commands that render

    return EmailRenderer(app.settings.templates_dir)


@cli.command("digest")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into [default: the out_dir setting, out/].")
@click.option("--date", type=_DATE, help="Edition date (YYYY-MM-DD) [default: the newest listing].")
@click.option("--only", metavar="EMAIL", multiple=True, callback=_once,
              help="Only this reader.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: email, subject, papers, html, text, eml.")
@click.pass_obj
def digest_command(app: App, out_dir: Path | None, date: dt.datetime | None, only: str | None, as_json: bool) -> None:
    """Render every active reader's digest to files, without sending anything.

    Writes DIR/digests/<date>/<reader>.html, .txt and .eml (open the .eml in a mail
    program to see exactly what would be sent). A reader sent this edition already
    (its listing grew since) gets its next email, as <reader>.2.html, .2.txt and .2.eml
    (.3 for a third): the first email's files stay. Readers with nothing new (every match
    offered to them already) get no digest unless the send_empty setting is on. --date
    takes a stored listing's date (``paperwire papers`` lists them); default: the newest.

    \b
    Examples:
      paperwire digest
      paperwire digest --only ada@example.org --json
    """
    settings = app.settings
    edition = _edition(app, date)
    readers = app.store.subscribers(status="active")
    if only:
        address = normalize_email(only)
        readers = [r for r in readers if r.email == address]
        if not readers:
            raise click.ClickException(f"no active reader with email {address}")
    _embed_recent(app, edition, quiet=as_json)
    unwritten = pipeline.UnwrittenDigests()  # one reader's failure costs that reader; exit 1 at the end
    planned = pipeline.plan_digests(app.store, settings, readers, edition=edition, on_error=unwritten)
    renderer, out_dir = _renderer(app), out_dir or settings.out_dir
    with _writing_into(out_dir):
        written = pipeline.write_digests(planned, settings, renderer, out_dir, on_error=unwritten)
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in written], indent=2, ensure_ascii=False))
    else:
        for item in written:
            click.echo(f"{logs.printable(item.email):<32} {item.papers:3d} papers  {item.html}")
        quiet = len(readers) - len(written) - len(unwritten.failures)
        click.echo(f"{len(written)} digest(s) for {edition} from {len(readers)} active reader(s)"
                   + (f"; {quiet} had nothing new (no match, or every match offered already:"
                      " `paperwire preview EMAIL` writes one anyway)" if quiet else ""), err=True)
    _exit_if_unwritten(unwritten)


def _exit_if_unwritten(unwritten: pipeline.UnwrittenDigests) -> None:
    """After the rest is done: name the readers whose digest could not be written (the log has
    the tracebacks), and exit 1."""
    for failure in unwritten.failures:
        click.echo(logs.printable(f"not written: {failure['email']}: {failure['error']}"), err=True)
    if unwritten.failures:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("email")
@click.option("--date", type=_DATE, help="Edition date (YYYY-MM-DD) [default: the newest listing].")
@click.pass_obj
def preview(app: App, email: str, date: dt.datetime | None) -> None:
    """Write one reader's digest (whatever their status, even if nothing matched) and print its path.

    \b
    Example:
      paperwire preview ada@example.org && xdg-open "$(paperwire preview ada@example.org)"
    """
    address = normalize_email(email)
    reader = app.store.subscriber(address)
    if reader is None:
        raise click.ClickException(f"no reader with email {address}")
    settings = replace(app.settings, send_empty=True)
    edition = _edition(app, date)
    _embed_recent(app, edition)
    planned = pipeline.plan_digests(app.store, settings, [reader], edition=edition)
    renderer = _renderer(app)
    failed: list[str] = []
    with _writing_into(settings.out_dir):
        written = pipeline.write_digests(planned, settings, renderer, settings.out_dir, on_error=lambda who, stage, exc:
                                         failed.append(pipeline.reader_error(who, stage, exc)))
    if failed:  # a template that fails for this reader: one line naming its file and line, not a traceback
        raise click.ClickException(logs.printable(f"digest of {address} not written: {failed[0]}"))
    click.echo(str(written[0].html))


@cli.command("feeds")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into [default: the out_dir setting, out/].")
@click.option("--base-url", help="Address the feeds will be served from [default: the base_url setting].")
@click.option("--date", type=_DATE, help="Newest listing date to include [default: the newest listing].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object: feeds (title, slug, atom, rss, json) and opml.")
@click.pass_obj
def feeds_command(app: App, out_dir: Path | None, base_url: str | None, date: dt.datetime | None,
                  as_json: bool) -> None:
    """Write the trending feed and one feed per public topic (Atom, RSS 2.0, JSON Feed) plus an OPML list.

    Files: DIR/feeds/trending.*, DIR/feeds/topics/<slug>.atom|.rss|.json and
    DIR/feeds/feeds.opml. The same database gives byte-identical feeds.

    \b
    Examples:
      paperwire feeds
      paperwire feeds --base-url https://papers.example.org --out public/
    """
    settings = override(app.settings, base_url=base_url)
    errors: list[dict] = []

    def feed_failed(slug: str, exc: Exception) -> None:  # one bad feed costs that feed; exit 1 at the end
        pipeline.log_feed_error(slug, exc)
        errors.append({"feed": slug, "error": f"{type(exc).__name__}: {exc}"})

    edition = _edition(app, date, listed=False)
    _embed_recent(app, edition, quiet=as_json)
    out_dir = out_dir or settings.out_dir
    with _writing_into(out_dir):
        written, opml = pipeline.write_feeds(app.store, settings, out_dir, edition=edition, on_error=feed_failed)
    if as_json:
        click.echo(json.dumps({"feeds": [f.as_dict() for f in written], "opml": str(opml), "errors": errors},
                              indent=2, ensure_ascii=False))
    else:
        for feed in written:
            click.echo(f"{feed.title:<36} {feed.files['atom']}")
        click.echo(f"OPML: {opml}")
    if errors:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("--seeds", type=click.Path(exists=True, path_type=Path), show_default="the listing shipped with paperwire",
              help="Listings to ingest.")
@click.option("--examples", type=click.Path(exists=True, file_okay=False, path_type=Path),
              show_default="the readers and topics shipped with paperwire",
              help="Folder with readers.json and topics.json.")
@click.pass_obj
def demo(app: App, seeds: Path | None, examples: Path | None) -> None:
    """Run the whole job on the shipped examples: ingest, demo readers, digests, feeds, index page.

    Works in any folder: the seed listing and demo readers ship inside the package, and
    everything is written under out/. Safe to run again: nothing is duplicated. Open
    out/index.html afterwards.

    \b
    Example:
      paperwire demo            # what `make demo` runs
    """
    seeds = seeds or PACKAGE_DIR / "seeds"
    examples = examples or PACKAGE_DIR / "examples"
    settings, store = app.settings, app.store
    report = pipeline.ingest(store, [seeds], max_bytes=settings.max_listing_bytes)
    _print_ingest(report, store, verbose=False)
    for raw in json.loads((examples / "topics.json").read_text(encoding="utf-8")):
        store.add_public_topic(make_topic(raw["name"], raw["query"], public=True))
    public = {t.name.casefold(): t for t in store.public_topics()}
    readers_file = examples / "readers.json"
    readers = subscriber_io.from_json(readers_file.read_text(encoding="utf-8"), str(readers_file), public)
    store.save_subscribers(readers)
    edition = _edition(app, None)
    _embed_recent(app, edition)  # the papers, and every stored topic: the examples' topics just saved too
    from . import dispatch  # the demo delivers too: to the outbox folder unless smtp.host is set

    sent = dispatch.dispatch(store, settings, everyone=True)
    unwritten = pipeline.UnwrittenDigests()
    planned = pipeline.plan_digests(store, settings, store.subscribers(status="active"), edition=edition,
                                    with_history=False, on_error=unwritten)
    written = pipeline.write_digests(planned, settings, _renderer(app), settings.out_dir, on_error=unwritten)
    feed_files, opml = pipeline.write_feeds(store, settings, settings.out_dir, edition=edition)
    index = pipeline.write_index(store, settings, settings.out_dir, edition=edition, digests=written,
                                 feed_files=feed_files, opml=opml)
    click.echo(f"\n{len(readers)} demo readers, {len(written)} digest(s) and {len(feed_files)} feed(s) for {edition}:")
    for item in written:
        click.echo(logs.printable(f"  {item.email:<24} {item.subject}"))
    where = f"SMTP {settings.smtp_host}" if settings.smtp_host else f"{settings.outbox_dir}/"
    click.echo(f"\nDelivered {sent.sent} digest(s) to {where}"
               + (" (the others went out on an earlier run: never twice)" if sent.sent < len(written) else ""))
    click.echo(f"Open {index.resolve()} to see everything.")
    _exit_if_unwritten(unwritten)
    if report.errors:
        raise click.exceptions.Exit(1)


# -- sending ----------------------------------------------------------------------


@cli.command()
@click.option("--only", metavar="EMAIL", multiple=True, callback=_once,
              help="Only this reader (if due, or with --all).")
@click.option("--all", "everyone", is_flag=True, help="Everyone active now, whatever their send hour (never twice per slot).")
@click.option("--dry-run", is_flag=True, help="Build everything, send nothing, record nothing (always in this process).")
@click.option("--wait", is_flag=True, help="With workers: wait for the batches to be sent and print the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary: sent, retried, failed, skipped, ...")
@click.option("--resend-unknown", is_flag=True,
              help="With --only: forget that reader's digests whose fate is unknown (your mail server's log says "
                   "they never arrived), and their papers, so this run sends them anew.")
@click.pass_obj
def send(app: App, only: str | None, everyone: bool, dry_run: bool, wait: bool, as_json: bool,
         resend_unknown: bool) -> None:
    """Run one dispatch now: send each due reader their digest, exactly once.

    Uses SMTP when smtp.host is set, else writes .eml files to the outbox folder
    (out/outbox/). A reader is due at their send hour in their timezone (daily, or
    weekly on their day); a digest already sent for a slot is never sent again, and
    one whose fate is unknown after a crash is reported, not re-sent. With
    workers.enabled the due readers are queued in batches for `paperwire worker`
    processes; --wait waits for them and prints the same summary.

    \b
    Examples:
      paperwire send
      paperwire send --all --dry-run --json
      PAPERWIRE_SMTP_HOST=127.0.0.1 PAPERWIRE_SMTP_PORT=2525 paperwire send --only ada@example.org --all
      PAPERWIRE_WORKERS_ENABLED=1 paperwire --db postgresql+psycopg://u@h/db send --all --wait --json
      paperwire send --only ada@example.org --all --resend-unknown
    """
    from . import dispatch  # loads the mail and render stack only for sending

    app.log_at(logging.INFO)  # one log line for the run, one per failure (cron keeps them)
    stop = _stop_on_signals()
    only = normalize_email(only) if only else None
    if resend_unknown:
        _forget_unknown(app, only, dry_run)
    _embed_recent(app, None, quiet=as_json)
    if app.settings.workers_enabled and not dry_run:
        from . import workers

        enqueued = workers.enqueue(app.store, app.settings, only=only, everyone=everyone)
        if not wait:
            _print_enqueued(enqueued, as_json=as_json)
            return
        report = workers.wait(app.store, app.settings, enqueued, stop=stop, on_slow=lambda pending: click.echo(
            f"waiting for {pending} batch(es): is a `paperwire worker` running on this database?", err=True))
    else:
        report = dispatch.dispatch(app.store, app.settings, only=only, everyone=everyone, dry_run=dry_run, stop=stop)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"sent {report.sent}, retried {report.retried}, failed {report.failed}, "
                   f"deferred {report.deferred}, skipped {report.skipped}"
                   + (f", dry run {report.dry_run}" if dry_run else ""))
        for address in report.would_send[:DRY_RUN_SHOWN]:
            click.echo(f"would send: {logs.printable(address)}")
        if len(report.would_send) > DRY_RUN_SHOWN:
            click.echo(f"would send: and {len(report.would_send) - DRY_RUN_SHOWN} more (--json lists them all)")
        for address in report.needs_smtputf8:
            click.echo(f"needs SMTPUTF8: {logs.printable(address)} (a server without it refuses the message)", err=True)
        for item in report.unknown:
            click.echo(f"unknown: {logs.printable(item['email'])} (slot {item['slot']}): "
                       + logs.printable(item.get("detail", "the run sending it died before the server answered"))
                       + "; check the mail log, it is not sent again", err=True)
        for failure in report.failures:
            code = f"{failure['code']} " if failure["code"] else ""
            click.echo(f"failed: {logs.printable(failure['email'])}: {code}{logs.printable(failure['detail'])}",
                       err=True)
        if report.error:
            click.echo(click.style("error: ", fg="red") + f"stopped early: {logs.printable(report.error)}", err=True)
    if report.failed or report.unknown or report.error:
        raise click.exceptions.Exit(1)


def _forget_unknown(app: App, only: str | None, dry_run: bool) -> None:
    """``send --resend-unknown``: one reader's digests whose fate is unknown, forgotten (the
    operator checked that they never arrived), so they are owed again."""
    if not only or dry_run:
        raise click.UsageError("--resend-unknown needs --only EMAIL (one reader, whose digests you checked) "
                               "and no --dry-run")
    reader = app.store.subscriber(only)
    if reader is None:
        raise click.ClickException(f"no reader {logs.printable(only)}")
    slots = app.store.forget_unknown(reader.id)
    if not slots:
        raise click.ClickException(f"no digest of {logs.printable(only)} has an unknown fate")
    click.echo(f"forgot {len(slots)} digest(s) of {logs.printable(only)} whose fate was unknown "
               f"(slots {', '.join(slot.isoformat() for slot in slots)}): a slot that is still their newest is sent "
               "now; else its papers come with their next digest (ten days back at most)", err=True)


def _print_enqueued(enqueued, *, as_json: bool) -> None:
    report = enqueued.report
    if as_json:
        click.echo(json.dumps(enqueued.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"queued {enqueued.readers} reader(s) in {len(enqueued.jobs)} batch(es) for the workers, "
                   f"skipped {report.skipped}")
        for item in report.unknown:
            click.echo(f"unknown: {logs.printable(item['email'])} (slot {item['slot']}): the run sending it died "
                       "before the server answered; check the mail log, it is not sent again", err=True)
    if report.unknown or report.error:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Batches this process sends at once (each in its own thread, with its own SMTP pool).")
@click.pass_obj
def worker(app: App, concurrency: int) -> None:
    """Run a worker in the foreground: send the batches that dispatches queue (workers.enabled).

    Each batch goes through the same steps as an in-process send: match, render, claim,
    send, record; the claims make sure no reader is sent twice, however many workers run on
    however many hosts. Ctrl-C or SIGTERM finishes the batches in progress, then stops. A
    worker killed outright is noticed by the others after workers.stalled_seconds; they put
    its batch back in the queue.

    \b
    Examples:
      PAPERWIRE_WORKERS_ENABLED=1 PAPERWIRE_DB=postgresql+psycopg://u@h/db paperwire worker --concurrency 2
    """
    from . import workers

    app.log_at(logging.INFO)
    workers.run_worker(app.store, app.settings, concurrency=concurrency)


@cli.command()
@click.option("--every", "dispatch_minutes", type=click.IntRange(1, 60),
              help="Minutes between dispatch runs [setting schedule.dispatch_minutes; default 5].")
@click.option("--ingest-every", "ingest_minutes", type=click.IntRange(1, 7 * 24 * 60),
              help="Minutes between ingest runs [setting schedule.ingest_minutes; default 60].")
@click.pass_obj
def schedule(app: App, dispatch_minutes: int | None, ingest_minutes: int | None) -> None:
    """Run in the foreground: ingest the configured sources and send due digests.

    The ingest job reads schedule.sources (paths and http(s) URLs, fetched only
    when changed); the dispatch job finds the readers whose send hour has come in
    their own timezone, sends each digest exactly once, and rewrites the feeds under
    out/feeds/. Both start at once and then repeat. After downtime each reader gets
    one catch-up digest, never a burst. Jobs live in the paperwire database
    (APScheduler's SQLAlchemy job store). Ctrl-C or SIGTERM stops cleanly: the
    messages in flight finish, nothing claimed is left behind. Logs one line per run
    and per failure (--log-format json for collectors).

    \b
    Examples:
      paperwire schedule
      PAPERWIRE_SCHEDULE_SOURCES=https://huggingface.co/api/daily_papers paperwire --log-format json schedule
    """
    from . import schedule as daemon  # APScheduler only for the daemon

    app.log_at(logging.INFO)
    settings = override(app.settings, schedule_dispatch_minutes=dispatch_minutes,
                        schedule_ingest_minutes=ingest_minutes)
    stop = _stop_on_signals(quiet=True)
    daemon.run(app.store, settings, stop)


def _stop_on_signals(*, quiet: bool = False):
    """SIGINT/SIGTERM finish the message in flight and stop taking new ones, while the command runs."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, _frame):
        stop.set()
        if quiet:
            logging.getLogger("paperwire").info(
                "stopping after the messages in flight", extra={"fields": {"signal": signal.Signals(signum).name}})
        else:
            click.echo(f"stopping after the messages in flight ({signal.Signals(signum).name})", err=True)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    # The command's own: when it returns, the handlers are what they were (a program or test that
    # runs commands in-process, or a process forked later, must not inherit a stop that only asks).
    click.get_current_context().call_on_close(lambda: [signal.signal(n, h) for n, h in previous.items()])
    return stop


BOUNCES_SHOWN_FOR = dt.timedelta(days=30)  # `status` counts bounce events of this long
STATUS_BOUNCES_SHOWN = 20  # the newest events in `status --json`


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print runs and delivery counts as JSON.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Show the readers queued for the next dispatch, delivery counts and the last runs.

    \b
    Example:
      paperwire status
    """
    from .dispatch import due_readers

    store = app.store
    counts = store.delivery_counts()
    runs = store.recent_runs()
    states = _run_states(runs, app.settings)
    everyone = store.subscribers()
    readers = Counter(r.status for r in everyone)
    active = [r for r in everyone if r.status == "active"]
    queued = len(due_readers(store, active, dt.datetime.now(dt.timezone.utc), everyone=False))
    bounce_counts = store.bounce_counts(since=dt.datetime.now(dt.timezone.utc) - BOUNCES_SHOWN_FOR)
    if as_json:
        click.echo(json.dumps({
            "queued": queued, "deliveries": counts, "readers": dict(readers),
            "bounces": {"last_days": BOUNCES_SHOWN_FOR.days, "kinds": bounce_counts,
                        "recent": [subscriber_io.bounce_record(event) for event in store.recent_bounces(STATUS_BOUNCES_SHOWN)]},
            "runs": [{"id": r.id, "kind": r.kind, "state": states[r.id], "started_at": r.started_at.isoformat(),
                      "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                      "heartbeat_at": r.heartbeat_at.isoformat(), "summary": r.summary}
                     for r in runs]}, indent=2))
        return
    click.echo("readers: " + (", ".join(f"{n} {s}" for s, n in sorted(readers.items())) or "none"))
    click.echo(f"queued: {queued} reader(s) due at the next dispatch (nothing new means no email)")
    click.echo("deliveries: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    _echo_failures(_latest_failures(store))  # who did not get their mail, and why
    for email, slot in store.unknown_deliveries(STATUS_FAILURES_SHOWN) if counts.get("unknown") else ():
        click.echo(f"unknown: {logs.printable(email)} (slot {slot.isoformat()}): if the mail server's log shows it "
                   f"never arrived, paperwire send --only {logs.printable(email)} --all --resend-unknown")
    if bounce_counts:
        click.echo(f"bounces in the last {BOUNCES_SHOWN_FOR.days} days: "
                   + ", ".join(f"{n} {kind}" for kind, n in sorted(bounce_counts.items())))
    for run in runs:
        summary = run.summary or {}
        brief = ", ".join(f"{k} {len(v) if isinstance(v, list) else v}" for k, v in summary.items() if v)
        state = states[run.id]
        click.echo(f"{run.started_at:%Y-%m-%d %H:%M:%S}  {run.kind:<9} {state:<8} {brief}")


@cli.command()
@click.option("--mbox", type=click.Path(dir_okay=False, path_type=Path), help="Read this mbox file instead of IMAP.")
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path), help="Read this Maildir instead of IMAP.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: read, new, kinds (hard, soft, complaint, auto-reply, unknown), "
                   "unmatched, changed, failed.")
@click.pass_obj
def bounces(app: App, mbox: Path | None, maildir: Path | None, as_json: bool) -> None:
    """Read bounces and complaints that came back after sending, and act on them.

    Reads the bounce mailbox (bounces.imap_host and friends; the password from
    PAPERWIRE_BOUNCES_IMAP_PASSWORD), or an mbox file or Maildir where the mail server
    delivers bounces. Each message is classified (hard or soft bounce, complaint,
    auto-reply, unknown), tied to its reader (by its VERP address, the original
    Message-ID, or the recipient) and recorded once; a hard bounce marks the reader
    bouncing, a complaint unsubscribes them. Processed messages are flagged or moved.

    \b
    Examples:
      paperwire bounces
      paperwire bounces --mbox /var/mail/bounces --json
    """
    from .bounces import mailboxes

    if mbox is not None and maildir is not None:
        raise click.UsageError("give --mbox or --maildir, not both")
    if mbox is not None:
        tally = mailboxes.read(app.store, app.settings, mailboxes.mbox_messages(mbox), "mbox")
    elif maildir is not None:
        tally = mailboxes.read(app.store, app.settings, mailboxes.maildir_messages(maildir), "maildir")
    elif app.settings.bounces_imap_host:
        with mailboxes.imap_session(app.settings) as imap:
            tally = mailboxes.read(app.store, app.settings, mailboxes.imap_messages(imap, app.settings), "imap")
    else:
        raise click.UsageError("no bounce mailbox: set bounces.imap_host (README: Bounces and complaints), "
                               "or pass --mbox PATH or --maildir PATH")
    if as_json:
        click.echo(json.dumps(tally.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(tally.describe())
    if tally.failed:
        raise SystemExit(1)


def _run_states(runs, settings: Settings) -> dict[str, str]:
    """run id -> done, running or dead. A run killed with kill -9 never finishes: it is dead by
    the rule a dispatch uses to settle its claims (process gone, or heartbeat older than the lease)."""
    now = dt.datetime.now(dt.timezone.utc)
    lease = dt.timedelta(seconds=settings.run_lease_seconds)
    return {run.id: "done" if run.finished_at is not None else "dead" if run_is_dead(asdict(run), lease, now)
            else "running" for run in runs}


STATUS_FAILURES_SHOWN = 20
DRY_RUN_SHOWN = 50  # readers `send --dry-run` names before "and N more"


def _latest_failures(store: Store) -> list[dict]:
    """The failures of the web mails since the newest finished dispatch run, then of that run and
    of its batches on the workers: who did not get their mail, and why (the error text or the
    server's answer). Read apart from the list of runs, so that many web mails or batches
    cannot push the dispatch out of it."""
    from .workers import batch_runs

    last = store.recent_runs(1, kind="dispatch", finished=True)
    since = last[0].started_at if last else None
    mails = store.recent_runs(STATUS_FAILURES_SHOWN + 1, kind="web-mail", since=since)
    batches = batch_runs(store, last[0].id, last[0].started_at) if last else []
    return [{**failure, "run": run.id, "kind": run.kind}
            for run in (*mails, *last, *batches) for failure in (run.summary or {}).get("failures", [])]


def _echo_failures(failures: list[dict]) -> None:
    for failure in failures[:STATUS_FAILURES_SHOWN]:  # a server's answer is in the detail, code first
        click.echo(f"failed: {logs.printable(failure['email'])} ({failure['kind']}): "
                   f"{logs.printable(failure.get('detail') or '')}")
    if len(failures) > STATUS_FAILURES_SHOWN:
        click.echo(f"failed: and {len(failures) - STATUS_FAILURES_SHOWN} more (in the runs' summaries: status --json)")


# -- trying a topic -------------------------------------------------------------


@cli.command("match")
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Most papers to show.")
@click.option("--since", type=_DATE, help="Only papers listed on or after this date (YYYY-MM-DD) [default: all; "
              "papers older than the last month are compared by meaning only if `paperwire embed` did them].")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list in rank order: id, title, score, matched (the words as the paper writes "
              "them, as the text shows them), similarity (null: not computed), "
              "why, like_similarity (to the liked paper; null: not found by example).")
@click.pass_obj
def match_command(app: App, query: str, limit: int, since: dt.datetime | None, as_json: bool) -> None:
    """Try a topic query on the stored papers before subscribing to it.

    Prints the papers it picks, best first, with the matched words highlighted and
    why each was picked: by its words, by meaning (similarity to the topic) or by example
    (like:ID). See the README for the query language.

    \b
    Examples:
      paperwire match '"scaling laws"'
      paperwire match 'MoE OR "mixture of experts" -survey' --since 2024-03-11 --json
      paperwire match 'title:RAG author:"Ada Lovelace"'
      paperwire match -- '-survey diffusion'    # a topic that starts with "-" comes after --
    """
    make_topic(None, query)  # a bad query is a clear error with a pointer to the position
    from . import semantic, typos  # numpy and the model only for the commands that match

    for warning in semantic.topic_warnings(app.store, [query], app.settings.acronyms):
        click.echo(f"warning: {logs.printable(warning)}", err=True)
    papers = [item.paper for item in app.store.papers(since=since.date() if since else None)]
    if since is not None:
        _embed_step(app, since=since.date(), until=None, quiet=as_json)
    else:  # the whole store may be years of papers: embed what runs match, say what is left
        _embed_recent(app, None, quiet=as_json)
        _note_unembedded(app, papers)
    found_all = semantic.match_topics([(0, query)], papers, app.settings, app.store)[0]
    if papers and typos.words_found_nothing(found_all):  # say why, if a word is why
        for note in _unknown_word_notes(query, papers, app.settings):
            click.echo(f"warning: {logs.printable(note)}", err=True)
    if papers and not len(found_all):
        note = _nearest_by_meaning_note(app, query, papers)
        if note:
            click.echo(f"note: {logs.printable(note)}", err=True)
    ranking = [found_all[position] for position in range(min(limit, len(found_all)))]
    by_id = {paper.id: paper for paper in papers}
    titles = semantic.example_titles(app.store, [query], app.settings.acronyms)
    closest = _closest_sentences(app, query, [by_id[found.paper_id] for found in ranking
                                             if digest.meaning_alone(getattr(found, "why", ()))])
    if as_json:
        computed = semantic.similarities(app.store, app.settings, query, [by_id[m.paper_id] for m in ranking])
        click.echo(json.dumps([_match_json(m, by_id[m.paper_id], similarity, closest.get(m.paper_id))
                               for m, similarity in zip(ranking, computed)], indent=2, ensure_ascii=False))
        return
    for place, found in enumerate(ranking, start=1):
        paper = by_id[found.paper_id]
        title_spans = [span for hit in found.terms if hit.field == "title" for span in hit.spans]
        click.echo(f"{place:3d}. {_highlight(paper.title, title_spans)}")
        reasons = ", ".join(f"{word} ({', '.join(dict.fromkeys(fields))})"
                            for word, fields in _matched_as_written(found, paper).values())
        because = digest.reason(found, titles)
        click.echo(f"     score {found.score:.2f} · {paper.id}" + (f" · matched: {reasons}" if reasons else "")
                   + (f" · {because}" if because else ""))
        if paper.id in closest:
            click.echo(f"     closest sentence: {shorten(clean_line(closest[paper.id]), CLOSEST_SENTENCE_CHARS)}")
    more = f" (--limit {limit}: the best {len(ranking)} of {len(found_all)} shown)" if len(found_all) > len(ranking) else ""
    click.echo(f"{len(found_all)} of {len(papers)} paper(s) matched{more}", err=True)


CLOSEST_SENTENCE_CHARS = 200  # of a closest sentence shown by match (one or two terminal lines)


def _closest_sentences(app: App, query: str, papers: list) -> dict[str, str]:
    """The abstract sentence closest to the topic of each paper found by meaning alone, as
    emails highlight it (explain.py): no matched word says why such a paper is about the topic."""
    if not papers:
        return {}
    from .explain import ClosestSentences

    return ClosestSentences(app.store, pipeline.embedder(app.settings), app.settings.acronyms).sentences(papers, query)


def _nearest_by_meaning_note(app: App, query: str, papers: list) -> str | None:
    """For a topic that found nothing: how near the closest paper came by meaning, when that
    is below the bar, so "0 matched" says why (testers' plain-language topics, such as
    ``models making things up``, found nothing and nothing said so). None when nothing was
    compared (no meaning part, no vectors) or the closest was left out by another rule."""
    from . import semantic
    from .match.meaning import Calibration

    near = [(similarity, paper) for similarity, paper in
            zip(semantic.similarities(app.store, app.settings, query, papers), papers) if similarity is not None]
    if not near:
        return None
    similarity, paper = max(near, key=lambda pair: pair[0])
    calibration = Calibration()
    bar = min(calibration.threshold, calibration.like_threshold)  # a meaning's, or an example's
    if similarity >= bar:
        return None
    shown = math.floor(similarity * 100) / 100  # 0.279 is not "0.28", which would reach the bar
    return (f"nothing is near it in meaning either: the closest paper, \"{shown_title(paper.title)}\", comes to "
            f"{shown:.2f}, and a paper is related from {bar:.2f}")


def _unknown_word_notes(query: str, papers: list, settings: Settings) -> list[str]:
    """Notes on the topic's words that no paper's title or abstract has (``typos``):
    ``retreival augmented generation`` found nothing, and nothing said why."""
    from . import typos
    from .match.text import Stems

    stems = Stems()
    return typos.topic_notes(query, typos.vocabulary_of(papers, stems), stems, settings.acronyms, "no stored paper")


def _matched_as_written(found, paper) -> dict[str, tuple[str, list[str]]]:
    """The matched words as the paper writes them, as emails list them, each with the fields it
    is in (keyed by its case-folded form): both outputs of ``match`` show these."""
    from . import paperview
    from .match.text import field_text

    fields_by_word: dict[str, tuple[str, list[str]]] = {}
    for hit in paperview.listed_hits(found.terms):
        if word := paperview.written_word(hit, field_text(paper, hit.field)):
            fields_by_word.setdefault(word.casefold(), (word, []))[1].append(hit.field)
    return fields_by_word


def _match_json(found, paper, computed: float | None, closest: str | None) -> dict:
    """One result of ``match --json``. ``similarity`` is null only when it was not computed (a
    ``words:`` topic, no vectors, the embedder off): a paper found by its words has the
    similarity it came to as well (``computed``), though it fell below the threshold.
    ``like_similarity`` is the figure the text output's "like: <title> (similarity ...)" shows,
    so a script sees why an example picked the paper; null when no example did.
    ``closest_sentence``: the abstract sentence the text output shows under a paper found by
    meaning alone; null for the others, or when it was not found."""
    similarity = getattr(found, "similarity", None)  # words alone (embedder off) have none
    similarity = computed if similarity is None else similarity
    like_similarity = getattr(found, "like_similarity", None)  # set only when an example found it
    return {"id": found.paper_id, "title": paper.title, "score": round(found.score, 4),
            "matched": [word for word, _ in _matched_as_written(found, paper).values()],
            "similarity": None if similarity is None else round(similarity, 4),
            "why": list(getattr(found, "why", ("words",))),
            "like_similarity": None if like_similarity is None else round(like_similarity, 4),
            "closest_sentence": None if closest is None else clean_line(closest)}


def _highlight(text: str, spans: list[tuple[int, int]]) -> str:
    """Matched parts in bold (colour is dropped by click when not on a terminal)."""
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out += [text[last:start], click.style(text[start:end], bold=True, fg="yellow")]
        last = end
    return "".join(out) + text[last:]


# -- the web app ------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--dev", is_flag=True, help="Allow the built-in development secret (never on a public server).")
@click.pass_obj
def serve(app: App, host: str, port: int, dev: bool) -> None:
    """Run the web app: subscribe, confirm, manage, one-click unsubscribe, feeds, archive, JSON API.

    Links are signed with PAPERWIRE_SECRET_KEY; without one it refuses to start
    unless --dev. Set base_url to the address people reach it at (links in emails
    start there) and PAPERWIRE_ADMIN_TOKEN to use the admin API. Behind a reverse
    proxy, set PAPERWIRE_TRUSTED_PROXIES to its address: X-Forwarded-For is believed
    only from those (never by default).

    \b
    Examples:
      paperwire serve --dev                                  # try it on http://127.0.0.1:8000
      PAPERWIRE_SECRET_KEY=... PAPERWIRE_BASE_URL=https://papers.example.org paperwire serve --port 8080
    """
    import uvicorn

    from .web import check_secret, create_app

    check_secret(app.settings, dev=dev)
    web_app = create_app(app.settings, store=app.store)
    web_app.state.web.email_renderer()  # the archive's templates: a broken one stops the start, not a reader's click
    click.echo(f"paperwire on http://{host}:{port}/ (links point at {app.settings.base_url})", err=True)
    # The app itself trusts X-Forwarded-For from settings.trusted_proxies only; uvicorn's own
    # proxy handling (which trusts 127.0.0.1 by default) stays off so the two cannot disagree.
    config = uvicorn.Config(web_app, host=host, port=port, log_level="info", proxy_headers=False)
    logging.getLogger("uvicorn.access").addFilter(_LinkSecretsHidden())  # after Config set uvicorn's logging up
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down; exit 0, as uvicorn.run does
        pass
    if not server.started:  # as uvicorn.run: the port taken, say (uvicorn has said why)
        raise SystemExit(3)


class _LinkSecretsHidden(logging.Filter):
    """The access log's request lines without the readers' link secrets (``redact.web_path``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact.web_path(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def main() -> None:
    cli(prog_name="paperwire")
