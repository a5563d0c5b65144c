"""The ``paperwire`` command: a thin click shell over pipeline and store.

Each command parses its flags, calls one library function and prints its report,
as text for people or ``--json`` for scripts. Domain errors become one-line
messages and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import click

from . import __version__, pipeline, sources
from .config import Settings, load_settings
from .errors import PaperwireError
from .store import Store

_DATE = click.DateTime(formats=["%Y-%m-%d"])


class App:
    """Settings and the store, made on first use so ``--help`` never opens a database."""

    def __init__(self, config_file: Path | None, flags: dict):
        self._config_file = config_file
        self._flags = flags
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config_file, self._flags)
        return self._settings

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
@click.pass_context
def cli(ctx: click.Context, db: str | None, config_file: Path | None, verbose: bool) -> None:
    """paperwire turns trending-paper listings into personalized digests and feeds.

    \b
    Examples:
      paperwire ingest seeds/                 # read listings into the database
      paperwire papers --since 2024-03-01     # what is stored
      paperwire --db sqlite:///tmp/pw.db ingest listing.json
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    ctx.obj = App(config_file, {"db": db})
    ctx.meta["verbose"] = verbose


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "format_", type=click.Choice(list(sources.FORMATS)),
              help="Read every file as this format instead of detecting it.")
@click.option("--date", type=_DATE, help="Listing date (YYYY-MM-DD) instead of the one in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: files, added, updated, unchanged, errors.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], format_: str | None, date: dt.datetime | None,
           as_json: bool) -> None:
    """Read paper listings (files or folders) into the database.

    Formats are detected from content: Daily Papers text captures, Hugging Face
    daily-papers JSON, arXiv API/listing feeds, and any RSS/Atom feed. Each file is
    one transaction: a bad file changes nothing and the others still go in; the
    exit status is 1 if any file failed.

    \b
    Examples:
      paperwire ingest seeds/
      paperwire ingest --format hf-json --date 2024-03-11 papers.json
    """
    app: App = ctx.obj
    store = app.store
    files = sources.expand_paths(list(paths))
    show_progress = not as_json and len(files) > 1
    with click.progressbar(length=len(files), label="Ingesting", file=sys.stderr,
                           hidden=not show_progress) as bar:
        report = pipeline.ingest(store, list(paths), format=format_, date=date.date() if date else None,
                                 on_file=lambda _path: bar.update(1))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_ingest(report, store, verbose=ctx.meta["verbose"])
    if report.errors:
        ctx.exit(1)


def _print_ingest(report: pipeline.IngestReport, store: Store, *, verbose: bool) -> None:
    counts = report.counts
    for warning in report.warnings if verbose else []:
        click.echo(f"warning: {warning}", err=True)
    for error in report.errors:
        where = error.file + (f":{error.line}" if error.line else "")
        click.echo(click.style("error: ", fg="red") + f"{where}: {error.message}", err=True)
    click.echo(f"{report.files} file(s): {counts.added} papers added, {counts.updated} updated, "
               f"{counts.unchanged} unchanged, {len(report.errors)} error(s)"
               + (f", {len(report.warnings)} warning(s) (-v shows them)" if report.warnings and not verbose else ""))
    summaries = store.listing_summaries()
    if summaries:
        click.echo(f"\nListings in {store.url}:")
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


def main() -> None:
    cli(prog_name="paperwire")
