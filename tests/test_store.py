"""The store on real SQLite files: idempotent ingest, merging across sources, atomic files, migrations."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paperwire import pipeline, sources, store as store_module
from paperwire.errors import StoreError
from paperwire.models import Topic
from paperwire.store import Store

from .conftest import DATA, SEED, TODAY


def ingest(store, *paths, **kwargs):
    return pipeline.ingest(store, list(paths), today=TODAY, **kwargs)


def dump(store: Store) -> dict:
    """Every row of every table, to compare whole databases."""
    with store.engine.connect() as conn:
        return {table.name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
                for table in store_module.metadata.sorted_tables}


def test_seed_ingest_and_reingest_changes_nothing(store):
    first = ingest(store, SEED)
    assert (first.counts.added, first.counts.updated, first.counts.unchanged) == (70, 0, 0)
    before = dump(store)
    second = ingest(store, SEED)
    assert (second.counts.added, second.counts.updated, second.counts.unchanged) == (0, 0, 70)
    assert dump(store) == before
    stored = store.papers()
    assert [p.paper.title for p in stored][:1] == [SEED.read_text().split("\n\n")[5].strip()]
    assert [p.listings[0].rank for p in stored] == list(range(1, 71))
    assert {(a.date, a.source) for p in stored for a in p.listings} == {(dt.date(2024, 3, 11), "daily-papers")}


def test_same_paper_from_two_sources_is_one_paper_with_both_appearances(store):
    ingest(store, SEED)
    report = ingest(store, DATA / "hf_daily_papers.json")
    assert report.counts.added == 5 and report.counts.updated == 1
    assert store.count_papers() == 75
    minicpm = next(p for p in store.papers() if p.paper.title.startswith("MiniCPM: Unveiling"))
    assert minicpm.paper.id == "2404.06395" == minicpm.paper.arxiv_id  # re-keyed to its arXiv id
    assert minicpm.paper.authors  # filled from the richer record
    assert len(minicpm.paper.abstract) > 500  # the seed's abstract stays
    assert {a.source for a in minicpm.listings} == {"daily-papers", "hf-json"}
    kinds = {l.kind for l in minicpm.paper.links}
    assert {"abs", "pdf", "code"} <= kinds


def test_rekeying_a_paper_moves_like_references_in_topics(store):
    """A reader liked a title-only paper (``t-...``); when its arXiv id arrives, the topics name
    the new id, so the example is still found (and still left out of its own matches)."""
    from paperwire.subscribers import build_subscriber

    ingest(store, SEED)
    by_title = {p.paper.title: p.paper.id for p in store.papers()}
    old = next(pid for title, pid in by_title.items() if title.startswith("MiniCPM: Unveiling"))
    other = next(pid for pid in by_title.values() if pid.startswith("t-") and pid != old)
    assert old.startswith("t-")
    store.save_subscriber(build_subscriber("ada@example.org", topics=[
        Topic("Liked", f"like:{other} OR LIKE:{old}"), Topic("Mine", f"agents like:{old} -survey")]))
    ingest(store, DATA / "hf_daily_papers.json")
    assert [t.query for t in store.subscriber("ada@example.org").topics] == [
        f"like:{other} OR LIKE:2404.06395", "agents like:2404.06395 -survey"]


def test_a_rekeyed_paper_keeps_its_feed_entry_id(store):
    """The seed (a page capture) has no arXiv ids: its papers are stored as ``t-...``. When the
    same paper comes again with its arXiv id it is re-keyed, but its feed entries keep the id
    they had, in every format, or feed readers would show it twice."""
    from paperwire.config import Settings

    def trending_entry(title_start: str) -> dict[str, str]:
        built, _ = pipeline.build_feeds(store, Settings(), edition=store.latest_listing_date())
        documents = next(feed.documents for feed in built if feed.spec.slug == "trending")
        found = {}
        for kind, pattern in (("atom", r"<id>(urn:paperwire:paper:[^<]+)</id>\s*<title>{}"),
                              ("rss", r"<title>{}[^<]*</title>(?:(?!</item>).)*<guid isPermaLink=\"false\">([^<]+)</guid>"),
                              ("json", r'"id": "(urn:paperwire:paper:[^"]+)",\s*"url": "[^"]*",\s*"title": "{}')):
            match = re.search(pattern.format(re.escape(title_start)), documents[kind].decode(), re.DOTALL)
            assert match, kind
            found[kind] = match.group(1)
        return found

    ingest(store, SEED)
    old = next(p.paper.id for p in store.papers() if p.paper.title.startswith("MiniCPM: Unveiling"))
    assert old.startswith("t-") and trending_entry("MiniCPM: Unveiling") == dict.fromkeys(
        ("atom", "rss", "json"), f"urn:paperwire:paper:{old}")
    ingest(store, DATA / "hf_daily_papers.json")
    assert old not in {p.paper.id for p in store.papers()}  # re-keyed: 2404.06395
    assert trending_entry("MiniCPM: Unveiling") == dict.fromkeys(("atom", "rss", "json"), f"urn:paperwire:paper:{old}")


def test_a_maximum_stored_above_todays_limit_reads_as_the_limit(store):
    """Readers saved when the limit was 40 get what fits under Gmail's clip (38); the archive
    page, which sets its own maximum, is not held to it."""
    from paperwire.store.schema import subscribers
    from paperwire.subscribers import MAX_PAPERS_LIMIT, build_subscriber

    store.save_subscriber(build_subscriber("ada@example.org", topics=[Topic("All", "*")]))
    with store.engine.begin() as conn:
        conn.execute(subscribers.update().values(max_papers=MAX_PAPERS_LIMIT + 2))
    assert store.subscriber("ada@example.org").max_papers == MAX_PAPERS_LIMIT
    assert [reader.max_papers for reader in store.subscribers()] == [MAX_PAPERS_LIMIT]


def test_merge_is_the_same_whichever_source_comes_first(new_db, tmp_path):
    one, two = Store(new_db(tmp_path / "a.db")), Store(new_db(tmp_path / "b.db"))
    ingest(one, SEED, DATA / "hf_daily_papers.json")
    ingest(two, DATA / "hf_daily_papers.json", SEED)

    def view(store):
        return sorted((p.paper.id, p.paper.arxiv_id, bool(p.paper.authors), tuple(sorted(
            (a.source, a.rank) for a in p.listings))) for p in store.papers())

    assert view(one) == view(two)


def test_versions_of_one_arxiv_paper_merge(store):
    ingest(store, DATA / "hf_daily_papers.json", DATA / "arxiv_api.atom", DATA / "arxiv_listing.rss",
           DATA / "arxiv_listing.atom", DATA / "daily_markdown.md")
    by_id = {p.paper.id: p for p in store.papers()}
    expert = by_id["2403.09611"]
    assert expert.paper.categories  # from the API record; HF had none
    assert {a.source for a in expert.listings} == {"hf-json", "arxiv:api"}
    ragged = by_id["2403.06212"]
    assert {a.source for a in ragged.listings} == {"hf-json", "arxiv:cs.CL", "daily-papers"}
    assert not [pid for pid in by_id if pid.startswith("t-") and "RAGGED" in by_id[pid].paper.title]


def test_a_failed_file_leaves_the_database_exactly_as_it_was(store, monkeypatch):
    ingest(store, SEED)
    before = dump(store)

    def crash(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    # Fail after the papers of the file were written, inside the file's transaction.
    monkeypatch.setattr(Store, "_save_entries", staticmethod(crash))
    with pytest.raises(RuntimeError):
        store.save_listings(sources.read_path(DATA / "hf_daily_papers.json", today=TODAY))
    assert dump(store) == before


def test_bad_files_are_reported_and_the_others_still_go_in(store):
    report = ingest(store, DATA / "bad_broken.json", DATA / "daily_crlf_bom.txt", DATA / "bad_binary.bin")
    assert report.files == 3 and report.counts.added == 3
    assert [(e.file.rsplit("/", 1)[-1], e.line) for e in report.errors] == [("bad_broken.json", 7),
                                                                          ("bad_binary.bin", None)]


def test_weekend_feed_is_stored_as_an_empty_listing(store):
    report = ingest(store, DATA / "arxiv_listing_weekend.rss")
    assert report.errors == []
    assert [(s.date, s.papers) for s in store.listing_summaries()] == [(dt.date(2024, 3, 16), 0)]


def test_papers_since(store):
    ingest(store, SEED, DATA / "daily_crlf_bom.txt")
    assert len(store.papers(since=dt.date(2024, 3, 12))) == 3
    assert len(store.papers(since=dt.date(2024, 3, 1))) == 73


def test_recapture_of_a_day_updates_ranks(store):
    (listing,) = sources.read_path(DATA / "daily_crlf_bom.txt", today=TODAY)
    store.save_listings([listing])
    listing.papers.reverse()
    counts = store.save_listings([listing])
    assert (counts.added, counts.updated, counts.unchanged) == (0, 2, 1)  # the middle one kept rank 2
    ranks = {p.paper.title: p.listings[0].rank for p in store.papers()}
    assert [ranks[p.title] for p in listing.papers] == [1, 2, 3]


@pytest.mark.sqlite_only("WAL and SQLite's pragmas")
def test_sqlite_runs_in_wal_mode(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrations_build_the_schema_the_code_expects(store):
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), store_module.metadata)
    assert diffs == []


def test_an_older_database_upgrades_in_place_on_first_use(db_url):
    engine = store_module.create_engine(db_url)
    store_module.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(store_module.papers.insert().values(
            id="t-old", title_hash="x", title="Old", abstract="", authors=[], categories=[], keywords=[],
            first_seen=dt.datetime(2024, 1, 1), updated_at=dt.datetime(2024, 1, 1)))
    engine.dispose()
    reopened = Store(db_url)
    with reopened.engine.connect() as conn:
        head = MigrationContext.configure(conn).get_current_revision()
        assert conn.execute(sa.select(store_module.papers.c.title)).scalars().all() == ["Old"]
    from alembic.script import ScriptDirectory
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS))
    assert head == ScriptDirectory.from_config(config).get_current_head()


def test_a_database_a_newer_paperwire_migrated_is_refused_with_what_to_do(db_url, run_cli):
    """A host still on the old code (a rolling upgrade, a second worker) gets told why, not Alembic's traceback."""
    Store(db_url).close()
    engine = store_module.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"schema revision 9999_from_the_future, newer than this paperwire") as caught:
        Store(db_url)
    assert "pip install --upgrade paperwire" in str(caught.value)
    result = run_cli("status")
    assert result.exit_code != 0 and "Traceback" not in result.output + result.stderr
    assert "newer than this paperwire" in result.stderr and "Can't locate revision" not in result.stderr


def test_times_come_back_timezone_aware_in_utc(store):
    from paperwire.sources import read_path

    store.save_listings(read_path(SEED, today=TODAY))
    run = store.start_run("dispatch")
    store.finish_run(run, {})
    (info,) = store.recent_runs()
    stamp = store.data_stamp()
    for moment in (info.started_at, info.finished_at, stamp.changed_at):
        assert moment.tzinfo is not None and moment.utcoffset() == dt.timedelta(0)


@pytest.mark.slow
def test_processes_opening_a_new_database_at_once_all_get_the_whole_schema(new_db, tmp_path):
    """Four processes start on one new (or older) database at the same moment, five times over:
    each opens it, none dies on "table alembic_version already exists"."""
    from . import concurrently

    fresh = [new_db(tmp_path / f"new{i}.sqlite3") for i in range(3)]
    older = [new_db(tmp_path / f"old{i}.sqlite3") for i in range(2)]
    for url in older:  # migrations left to run from an older revision, too
        engine = store_module.create_engine(url)
        store_module.upgrade(engine, "0002")
        engine.dispose()
    outcomes = concurrently.at_once(concurrently.open_store, fresh + older, processes=4)
    assert outcomes == ["ok"] * len(outcomes)
    for url in fresh + older:
        opened = Store(url)
        with opened.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), store_module.metadata) == []
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
        opened.close()


def test_a_failing_statement_quotes_no_value(tmp_path: Path) -> None:
    """A database error names its statement but not its values: a reader's address or link
    secret would otherwise reach the logs with the traceback (the web app's 500 log)."""
    import sqlalchemy as sa

    store = Store(f"sqlite:///{tmp_path / 'values.sqlite3'}")
    try:
        with pytest.raises(sa.exc.OperationalError) as raised, store.engine.connect() as connection:
            connection.execute(sa.text("SELECT * FROM no_such_table WHERE token = :token"), {"token": "s3cretLinkToken"})
        assert "no_such_table" in str(raised.value) and "s3cretLinkToken" not in str(raised.value)
    finally:
        store.close()

