"""One poisoned reader, paper, feed or mail costs that one only (issue 12, item 2).

Real SQLite files, the real outbox folder or a real aiosmtpd server, the real CLI. The
poisons are stored data the current checks would refuse (as an older version or another
tool could have written it), and one injected fault: a renderer that raises for one paper.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from paperwire import dispatch, pipeline, render
from paperwire.match import split
from paperwire.config import Settings
from paperwire.store import Store
from paperwire.store.schema import subscribers, topics
from paperwire.subscribers import build_subscriber, make_topic, parse_topic_spec

from .conftest import SEED, TODAY
from .test_dispatch import NOON, Inbox, smtp_server  # noqa: F401  (smtp_server is a fixture)

READERS = 100
POISONED = "reader050@example.org"
POISON_PAPER = "t-95b5ed1255e65f22"  # "Superpipeline: ...", the 69th of 70 seed papers: nobody's top 3
UNPARSEABLE = '(RAG OR "retrieval'  # unbalanced: the matcher refuses it


def hundred_readers(db_url: str, *, name=lambda i: f"Reader {i}, PhD", topic=lambda i: "*") -> Store:
    """100 active readers of the seed listing, each sent their top 3 papers."""
    from paperwire import sources

    store = Store(db_url)
    store.save_listings(sources.read_path(SEED, today=TODAY))
    store.save_subscribers([build_subscriber(f"reader{i:03d}@example.org", name=name(i), max_papers=3,
                                             topics=[parse_topic_spec(topic(i))]) for i in range(READERS)])
    return store


def write_unchecked(store: Store, table, where, **values) -> None:
    """Store a value the way an older version or another tool might have: past every check."""
    with store.engine.begin() as conn:
        assert conn.execute(table.update().where(where).values(**values)).rowcount >= 1


def outbox_recipients(folder: Path) -> list[str]:
    return sorted(email.message_from_bytes(p.read_bytes())["To"].rpartition("<")[2].rstrip(">")
                  for p in folder.glob("*.eml"))


def others() -> set[str]:
    return {f"reader{i:03d}@example.org" for i in range(READERS)} - {POISONED}


def poison_the_paper_view(monkeypatch) -> None:
    """The injected fault: the renderer raises for POISON_PAPER (nobody's top 3 but reader 50's)."""
    real_item_view = render.item_view

    def item_view(item, *args, **kwargs):
        if item.paper.id == POISON_PAPER:
            raise RuntimeError("injected fault for one paper")
        return real_item_view(item, *args, **kwargs)

    monkeypatch.setattr(render, "item_view", item_view)


def assert_one_recorded(store: Store, report: dict, poisoned: str) -> None:
    assert report["failed"] == 1
    (failure,) = report["failures"]
    assert failure["email"] == poisoned and failure["detail"]
    (delivery,) = store.deliveries_of(poisoned)
    assert delivery["status"] in ("error", "failed") and delivery["detail"]
    assert store.subscriber(poisoned).status == "active"


# -- 100 readers, one poisoned: 99 delivered, 1 recorded, exit status 1 -------------------------


def test_a_bad_address_costs_that_reader_only(db_url, run_cli, smtp_server, monkeypatch):  # noqa: F811
    inbox = Inbox()
    monkeypatch.setenv("PAPERWIRE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PAPERWIRE_SMTP_PORT", str(smtp_server(inbox)))
    store = hundred_readers(db_url)
    bad = "reader 050@example.org"  # a space: no mail system takes it
    write_unchecked(store, subscribers, subscribers.c.email == POISONED, email=bad)
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 99 and set(inbox.count_by_recipient()) == others()
    assert_one_recorded(store, report, bad)
    assert f"failed: {bad} (dispatch): " in run_cli("status").stdout


def test_a_utf8_address_on_a_server_without_smtputf8_costs_that_reader_only(db_url, run_cli, smtp_server,  # noqa: F811
                                                                              monkeypatch):
    """`subscribe jörg@example.org --name Jörg`: the name sent the address through the email
    package's parser, which raised NonASCIILocalPartDefect and ended the run for everyone.
    Now the message is built, and a server without SMTPUTF8 refuses that one reader."""
    inbox = Inbox()
    monkeypatch.setenv("PAPERWIRE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PAPERWIRE_SMTP_PORT", str(smtp_server(inbox, enable_SMTPUTF8=False)))
    store = hundred_readers(db_url)
    write_unchecked(store, subscribers, subscribers.c.email == POISONED, email="jörg@example.org", name="Jörg")
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 99 and set(inbox.count_by_recipient()) == others()
    assert_one_recorded(store, report, "jörg@example.org")
    assert "needs SMTPUTF8" in report["failures"][0]["detail"]


def test_a_name_the_message_builder_chokes_on_costs_that_reader_only(db_url, run_cli, smtp_server,  # noqa: F811
                                                                      monkeypatch):
    """An injected fault where a reader's name becomes a header: whatever building raises."""
    from paperwire import mailheaders

    inbox = Inbox()
    monkeypatch.setenv("PAPERWIRE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PAPERWIRE_SMTP_PORT", str(smtp_server(inbox)))
    store = hundred_readers(db_url)
    write_unchecked(store, subscribers, subscribers.c.email == POISONED, name="Poison Pill")
    real_phrase = mailheaders.phrase

    def phrase(name):
        if name == "Poison Pill":
            raise LookupError("injected fault for one name")
        return real_phrase(name)

    monkeypatch.setattr(mailheaders, "phrase", phrase)
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 99 and set(inbox.count_by_recipient()) == others()
    assert_one_recorded(store, report, POISONED)
    assert "LookupError: injected fault for one name" in report["failures"][0]["detail"]


def test_a_bad_topic_costs_that_reader_only(db_url, run_cli, tmp_path):
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "LLM")
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == POISONED).scalar_subquery()
    write_unchecked(store, topics, topics.c.owner_id == owner, query=UNPARSEABLE)
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 99 and outbox_recipients(tmp_path / "out" / "outbox") == sorted(others())
    assert_one_recorded(store, report, POISONED)
    assert "matching raised QueryError" in report["failures"][0]["detail"]


def test_a_paper_the_renderer_chokes_on_costs_its_reader_only(db_url, run_cli, tmp_path, monkeypatch):
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "Superpipeline")
    poison_the_paper_view(monkeypatch)
    result = run_cli("send", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 99 and outbox_recipients(tmp_path / "out" / "outbox") == sorted(others())
    assert_one_recorded(store, report, POISONED)
    assert report["failures"][0]["detail"] == "rendering raised RuntimeError: injected fault for one paper"
    status = run_cli("status")
    assert f"failed: {POISONED} (dispatch): rendering raised RuntimeError: injected fault" in status.stdout
    assert "deliveries: 1 error, 99 sent" in status.stdout
    text = run_cli("send", "--all")
    assert text.exit_code == 1 and f"failed: {POISONED}" in text.stderr  # the next run tries again


def test_digest_writes_the_others_when_one_readers_digest_raises(db_url, run_cli, tmp_path, monkeypatch):
    """`paperwire digest` (and `demo`, the same functions) sends nothing, so nothing is recorded:
    the bad reader is logged and named, the 99 others' files are written, exit status 1."""
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "Superpipeline")
    store.save_subscribers([build_subscriber("badtopic@example.org", topics=[parse_topic_spec("LLM")])])
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == "badtopic@example.org").scalar_subquery()
    write_unchecked(store, topics, topics.c.owner_id == owner, query=UNPARSEABLE)
    poison_the_paper_view(monkeypatch)
    result = run_cli("digest", "--json")
    assert result.exit_code == 1, result.stderr
    assert {item["email"] for item in json.loads(result.stdout)} == others()
    assert len(list((tmp_path / "out" / "digests").glob("*/*.eml"))) == 99
    assert f"not written: {POISONED}: rendering raised RuntimeError: injected fault for one paper" in result.stderr
    assert "not written: badtopic@example.org: matching raised QueryError" in result.stderr
    assert f"digest of {POISONED} not written" in result.stderr  # the log line, traceback and all
    assert "digest of badtopic@example.org not written" in result.stderr
    assert result.stderr.count("Traceback (most recent call last)") == 1  # the render fault's (the bad topic was never raised)
    assert store.subscriber(POISONED).token not in result.stderr
    assert store.deliveries_of(POISONED) == []  # nothing sent, nothing recorded


# -- the policy: tried again every run, never "bouncing", sent once the bug is fixed ---------------


def test_a_reader_whose_digest_keeps_raising_is_tried_every_run_and_gets_it_once_fixed(db_url, tmp_path,
                                                                                        monkeypatch, caplog):
    store = hundred_readers(db_url)
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")
    real_build = dispatch.mail.build_message

    def build_message(item, *args, **kwargs):
        if item.subscriber.email == POISONED:
            raise ValueError(f"a bug, about {item.subscriber.token}")
        return real_build(item, *args, **kwargs)

    monkeypatch.setattr(dispatch.mail, "build_message", build_message)
    with caplog.at_level(logging.WARNING, logger="paperwire"):
        runs = [dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=5 * n)) for n in range(5)]
    assert [(r.sent, r.failed) for r in runs] == [(99, 1)] + [(0, 1)] * 4  # the others are settled; it is not
    token = store.subscriber(POISONED).token
    assert all(token not in r.failures[0]["detail"] for r in runs) and token not in caplog.text
    noted = [rec for rec in caplog.records if getattr(rec, "fields", {}).get("event") == "delivery-error"]
    # One traceback, the first time; then a line a run that counts the runs at this slot.
    assert [(rec.levelname, "Traceback" in getattr(rec, "trace", "")) for rec in noted] == [("ERROR", True)] + [
        ("WARNING", False)] * 4
    assert [rec.fields.get("runs") for rec in noted] == [None, 2, 3, 4, 5]
    assert "a bug, about <token>" in noted[0].trace and all(token not in getattr(rec, "trace", "") for rec in noted)
    assert store.subscriber(POISONED).status == "active"  # "bouncing" is for addresses a server refuses
    assert [d["status"] for d in store.deliveries_of(POISONED)] == ["error"]  # one note, not one per run
    monkeypatch.setattr(dispatch.mail, "build_message", real_build)  # the bug is fixed
    fixed = dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=30))
    assert (fixed.sent, fixed.failed) == (1, 0)
    assert [d["status"] for d in store.deliveries_of(POISONED)] == ["sent"]
    assert dispatch.dispatch(store, settings, now=NOON + dt.timedelta(minutes=35)).sent == 0  # and only once
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == READERS


def test_a_dry_run_names_the_reader_that_would_fail_and_records_nothing(db_url, tmp_path):
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "LLM")
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == POISONED).scalar_subquery()
    write_unchecked(store, topics, topics.c.owner_id == owner, query=UNPARSEABLE)
    report = dispatch.dispatch(store, Settings(out_dir=tmp_path / "out"), now=NOON, dry_run=True)
    assert (report.dry_run, report.failed, report.failures[0]["email"]) == (99, 1, POISONED)
    assert store.deliveries_of(POISONED) == []


def test_matching_finds_the_owners_whose_queries_raise_and_keeps_the_others_results(seed_papers):
    groups = [(n, [((n, 0), "LLM"), ((n, 1), f'"scaling laws" OR reader{n}')]) for n in range(40)]
    clean = pipeline.match_each(groups, seed_papers, None)
    poisoned = [(n, pairs if n not in (3, 17, 18) else [*pairs, ((n, 2), UNPARSEABLE)]) for n, pairs in groups]
    failed = []
    found = pipeline.match_each(poisoned, seed_papers, None, on_error=lambda owner, exc: failed.append(owner))
    assert sorted(failed) == [3, 17, 18]
    assert set(found) == {key for n, pairs in groups if n not in (3, 17, 18) for key, _ in pairs}
    assert all(found[key].paper_ids() == clean[key].paper_ids() for key in found)
    with pytest.raises(Exception, match="unbalanced"):
        pipeline.match_each(poisoned, seed_papers, None)  # without on_error: as before


def test_a_bad_query_is_named_by_its_text_and_costs_no_extra_matching_pass(seed_papers, monkeypatch):
    passes = []
    real = split.match_words
    monkeypatch.setattr(split, "match_words", lambda *a, **k: passes.append(1) or real(*a, **k))
    errors = []
    found = pipeline.match_each([(0, [((0, 0), "LLM")]), (1, [((1, 0), UNPARSEABLE)])], seed_papers, None,
                                on_error=lambda owner, exc: errors.append((owner, str(exc))))
    assert errors == [(1, f"topic {UNPARSEABLE!r}: unbalanced quote: this \" is never closed (at position 8)")]
    assert set(found) == {(0, 0)} and len(passes) == 1


def test_a_run_parses_each_distinct_topic_once_from_embedding_to_matching(db_url, monkeypatch):
    """The embedding step, the check for bad topics and matching take each topic parsed once
    for the run: at 100,000 readers every parse costs ~1.5 s. (They parsed it three times,
    the embedding step once per reader, not per topic.)"""
    from paperwire import query as query_module

    topic_of = ("words: agents", "words: language models", "*")
    store = hundred_readers(db_url, topic=lambda i: topic_of[i % 3])
    write_unchecked(store, topics, topics.c.owner_id == store.subscriber(POISONED).id, query=UNPARSEABLE)
    parsed = []
    real_parse = query_module._parse_without_mode
    monkeypatch.setattr(query_module, "_parse_without_mode", lambda text: parsed.append(text.strip()) or real_parse(text))
    errors = []
    planned = list(pipeline.plan_digests(store, Settings(), store.subscribers(), edition=store.latest_listing_date(),
                                         on_error=lambda reader, stage, exc: errors.append((reader.email, stage))))
    assert errors == [(POISONED, "matching")] and len(planned) == READERS - 1
    assert sorted(parsed) == sorted(["agents", "language models", "*", UNPARSEABLE])


def test_a_stored_topic_the_parser_refuses_now_costs_that_topic_not_the_digest(db_url, caplog):
    """A topic saved under older rules that the parser refuses now (say, after an upgrade)
    leaves that topic out of the reader's digest, said in the log on every run; their other
    topics are matched and sent. Only a reader left with no topic is a failure."""
    store = hundred_readers(db_url)
    store.save_subscribers([build_subscriber("two@example.org", max_papers=5, topics=[
        parse_topic_spec("Refused = RAG"), parse_topic_spec("Agents = agents")])])
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == "two@example.org").scalar_subquery()
    write_unchecked(store, topics, (topics.c.owner_id == owner) & (topics.c.name == "Refused"), query=UNPARSEABLE)
    errors = []
    with caplog.at_level(logging.WARNING, logger="paperwire.pipeline"):
        planned = {made.subscriber.email: made for made in pipeline.plan_digests(
            store, Settings(), store.subscribers(), edition=store.latest_listing_date(),
            on_error=lambda reader, stage, exc: errors.append(reader.email))}
    assert errors == [] and len(planned) == READERS + 1
    assert [section.topic.name for section in planned["two@example.org"].sections] == ["Agents"]
    assert planned["two@example.org"].papers == 5
    (warning,) = [record for record in caplog.records if "left out" in record.getMessage()]
    assert warning.getMessage().startswith("topic 1 of two@example.org left out of their digest: topic ")
    assert "unbalanced quote" in warning.getMessage()
    # Without on_error (`paperwire preview`) the same: only a reader left with no topic raises.
    (alone,) = pipeline.plan_digests(store, Settings(), [store.subscriber("two@example.org")],
                                     edition=store.latest_listing_date())
    assert [section.topic.name for section in alone.sections] == ["Agents"]


def test_a_reader_whose_digest_cannot_be_made_is_reported_at_its_turn(db_url, monkeypatch):
    """Digests are made a batch at a time, but a failure is told when its reader's turn comes
    in the readers' order: a caller that stops early hears of no reader it did not reach, and
    without on_error the readers before it are all yielded first."""
    from paperwire import digest

    store = hundred_readers(db_url)
    real = digest.build_digest
    monkeypatch.setattr(digest, "build_digest", lambda reader, *args, **kwargs: (
        (_ for _ in ()).throw(RuntimeError("injected")) if reader.email == POISONED else real(reader, *args, **kwargs)))
    readers, edition = store.subscribers(), store.latest_listing_date()
    errors = []
    planned = pipeline.plan_digests(store, Settings(), readers, edition=edition, with_history=False,
                                    on_error=lambda reader, stage, exc: errors.append(reader.email))
    first = [next(planned).subscriber.email for _ in range(50)]
    assert first == [f"reader{i:03d}@example.org" for i in range(50)] and errors == []
    assert next(planned).subscriber.email == "reader051@example.org" and errors == [POISONED]
    yielded = []
    with pytest.raises(RuntimeError, match="injected"):
        for planned_digest in pipeline.plan_digests(store, Settings(), readers, edition=edition, with_history=False):
            yielded.append(planned_digest.subscriber.email)
    assert yielded == [f"reader{i:03d}@example.org" for i in range(50)]


def test_halving_finds_owners_whose_matching_raises_and_their_errors_stand_alone(seed_papers, monkeypatch):
    """A fault the parser cannot see (here injected for queries naming "poison"): found by
    halving, and each owner's error carries no traceback of the searches before it."""
    real = split.match_words

    def match_words(pairs, papers, acronyms):
        if any("poison" in query.text for _, query in pairs):  # each topic comes parsed (match_each parsed it)
            raise RuntimeError("injected fault in matching")
        return real(pairs, papers, acronyms)

    monkeypatch.setattr(split, "match_words", match_words)
    groups = [(n, [((n, 0), "LLM" if n not in (5, 6, 30) else "LLM OR poison")]) for n in range(32)]
    errors = []
    found = pipeline.match_each(groups, seed_papers, None, on_error=lambda owner, exc: errors.append((owner, exc)))
    assert [owner for owner, _ in errors] == [5, 6, 30]
    assert all(exc.__context__ is None and exc.__cause__ is None for _, exc in errors)
    assert set(found) == {(n, 0) for n in range(32)} - {(5, 0), (6, 0), (30, 0)}


# -- feeds --------------------------------------------------------------------------------------


def _public_topics(store: Store) -> None:
    for name, query in (("LLMs", "LLM"), ("Broken", "RAG"), ("Scaling", '"scaling laws"')):
        store.add_public_topic(make_topic(name, query, public=True))
    write_unchecked(store, topics, topics.c.name == "Broken", query=UNPARSEABLE)


def test_a_bad_public_topic_costs_its_feed_only(db_url, run_cli, tmp_path):
    store = hundred_readers(db_url)
    _public_topics(store)
    result = run_cli("feeds", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f["slug"] for f in report["feeds"]] == ["trending", "llms", "scaling"]
    assert [e["feed"] for e in report["errors"]] == ["broken"] and "unbalanced" in report["errors"][0]["error"]
    folder = tmp_path / "out" / "feeds"
    assert sorted(p.name for p in (folder / "topics").iterdir()) == sorted(
        f"{slug}.{kind}" for slug in ("llms", "scaling") for kind in ("atom", "rss", "json"))
    opml = (folder / "feeds.opml").read_text()
    assert "topics/llms.atom" in opml and "broken" not in opml  # no link to a feed that is not there


def test_a_feed_that_fails_to_render_costs_that_feed_only(db_url, run_cli, tmp_path, monkeypatch):
    store = hundred_readers(db_url)
    for name, query in (("LLMs", "LLM"), ("Scaling", '"scaling laws"')):
        store.add_public_topic(make_topic(name, query, public=True))
    real = pipeline.feeds.render_feed

    def render_feed(spec, *args, **kwargs):
        if spec.slug == "llms":
            raise RuntimeError("injected fault for one feed")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(pipeline.feeds, "render_feed", render_feed)
    result = run_cli("feeds")
    assert result.exit_code == 1 and "feed llms not written: RuntimeError: injected fault" in result.stderr
    assert (tmp_path / "out" / "feeds" / "topics" / "scaling.atom").exists()
    assert not (tmp_path / "out" / "feeds" / "topics" / "llms.atom").exists()


def test_the_daemon_rewrites_the_good_feeds_and_tries_the_bad_one_again(db_url, tmp_path, monkeypatch):
    import threading

    from paperwire import schedule

    store = hundred_readers(db_url)
    _public_topics(store)
    settings = Settings(out_dir=tmp_path / "out", outbox_dir=tmp_path / "outbox")

    def broken_dispatch(*args, **kwargs):
        raise RuntimeError("a bug in dispatch")

    monkeypatch.setattr(dispatch, "dispatch", broken_dispatch)
    monkeypatch.setattr(schedule, "_daemon", schedule._Daemon(store, settings, threading.Event()))
    assert schedule.dispatch_job() is None  # the bug is logged; the feeds are still written
    topics_folder = tmp_path / "out" / "feeds" / "topics"
    assert sorted(p.stem for p in topics_folder.glob("*.atom")) == ["llms", "scaling"]
    assert schedule._daemon.feeds_written_for is None  # so the next run tries "broken" again
    write_unchecked(store, topics, topics.c.name == "Broken", query="RAG")  # fixed
    schedule.dispatch_job()
    assert sorted(p.stem for p in topics_folder.glob("*.atom")) == ["broken", "llms", "scaling"]
    assert schedule._daemon.feeds_written_for is not None


# -- the web app's mail -------------------------------------------------------------------------


def test_a_web_mail_that_cannot_be_sent_is_logged_and_recorded_never_a_crash(new_db, tmp_path, caplog):
    from .test_web import make_site

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbox folder should be")
    site = make_site(new_db, tmp_path, outbox_dir=blocked)
    with caplog.at_level(logging.ERROR, logger="paperwire"):
        for address in ("ada@example.org", "bob@example.org"):
            answer = site.subscribe(address)
            assert answer.status_code == 200 and "inbox" in answer.text.lower()
    assert "web mail to ada@example.org" in caplog.text
    runs = [run for run in site.store.recent_runs() if run.kind == "web-mail"]
    assert sorted(run.summary["failures"][0]["email"] for run in runs) == ["ada@example.org", "bob@example.org"]
    assert all(run.finished_at is not None for run in runs)
    assert site.client.get("/").status_code == 200
    from click.testing import CliRunner

    from paperwire.cli import cli

    status = CliRunner().invoke(cli, ["--db", site.settings.db, "status"], catch_exceptions=False)
    assert "failed: bob@example.org (web-mail): " in status.stdout
    site.client.close()
    site.store.close()


def test_status_shows_the_last_dispatch_failures_however_many_web_mails_failed_since(db_url, run_cli):
    store = hundred_readers(db_url, topic=lambda i: "*" if i != 50 else "LLM")
    owner = sa.select(subscribers.c.id).where(subscribers.c.email == POISONED).scalar_subquery()
    write_unchecked(store, topics, topics.c.owner_id == owner, query=UNPARSEABLE)
    assert run_cli("send", "--all").exit_code == 1
    for n in range(15):  # strangers can cause these, within the rate limit
        store.note_run("web-mail", {"failed": 1, "failures": [{"email": f"x{n}@example.org", "detail": "refused"}]})
    failed = [line for line in run_cli("status").stdout.splitlines() if line.startswith("failed:")]
    assert f"failed: {POISONED} (dispatch): matching raised QueryError: topic {UNPARSEABLE!r}: unbalanced quote: " \
           'this " is never closed (at position 8)' in failed
    assert "failed: x14@example.org (web-mail): refused" in failed


def test_status_shows_the_failures_of_the_last_dispatchs_batches_whatever_the_workers_clocks(db_url, run_cli):
    """Batch runs carry their worker host's clock: one that started (by its clock) before its
    dispatch is still that dispatch's; a batch of an older dispatch that finished late is not."""
    from paperwire.store.schema import runs

    store = Store(db_url)
    older = store.start_run("dispatch")
    store.finish_run(older, {})
    late = store.start_run("batch")  # the older dispatch's, finishing after the newer one started
    last = store.start_run("dispatch")
    store.finish_run(last, {})
    skewed = store.start_run("batch")  # the last dispatch's, on a host whose clock is 20 minutes behind
    for run_id, dispatch_id, email in ((late, older, "late@example.org"), (skewed, last, "skewed@example.org")):
        store.finish_run(run_id, {"dispatch": dispatch_id, "batch": 0, "failed": 1,
                                  "failures": [{"email": email, "detail": "550 no such user"}]})
    with store.engine.begin() as conn:
        started = conn.execute(sa.select(runs.c.started_at).where(runs.c.id == last)).scalar_one()
        conn.execute(runs.update().where(runs.c.id == older).values(started_at=started - dt.timedelta(hours=2)))
        conn.execute(runs.update().where(runs.c.id == late).values(started_at=started - dt.timedelta(minutes=90)))
        conn.execute(runs.update().where(runs.c.id == skewed).values(started_at=started - dt.timedelta(minutes=20)))
    store.close()
    failed = [line for line in run_cli("status").stdout.splitlines() if line.startswith("failed:")]
    assert failed == ["failed: skewed@example.org (batch): 550 no such user"]
