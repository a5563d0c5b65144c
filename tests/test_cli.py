"""The paperwire command as a person or a script uses it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paperwire import __version__
from paperwire.cli import cli

from .conftest import DATA, ROOT, SEED


def test_ingest_prints_a_summary_per_listing(run_cli):
    result = run_cli("ingest", SEED)
    assert result.exit_code == 0, result.output
    assert "70 papers added" in result.stdout
    assert "-03-11" in result.stdout and "70 papers  daily-papers" in result.stdout


def test_ingest_json_and_exit_status_with_bad_files(run_cli):
    result = run_cli("ingest", "--json", SEED, DATA / "bad_broken.json", DATA / "bad_unknown.txt")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"files", "added", "updated", "unchanged", "errors"}
    assert report["files"] == 3 and report["added"] == 70
    assert report["errors"][0] == {"file": str(DATA / "bad_broken.json"), "line": 7,
                                   "message": "broken JSON: Expecting ',' delimiter (column 5)"}
    assert report["errors"][1]["file"] == str(DATA / "bad_unknown.txt")
    again = json.loads(run_cli("ingest", "--json", SEED).stdout)
    assert (again["added"], again["unchanged"]) == (0, 70)


def test_ingest_a_directory_with_format_and_date(run_cli, tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    (folder / "a.txt").write_text((DATA / "daily_no_date.txt").read_text())
    result = run_cli("ingest", "--date", "2024-03-09", "--format", "daily-papers", folder)
    assert result.exit_code == 0, result.output
    assert "2024-03-09" in result.stdout


def test_errors_go_to_stderr_naming_file_and_line(run_cli):
    result = run_cli("ingest", DATA / "bad_broken.json")
    assert result.exit_code == 1
    assert f"{DATA / 'bad_broken.json'}:7: broken JSON" in result.stderr


def test_papers_json(run_cli):
    run_cli("ingest", SEED, DATA / "hf_daily_papers.json")
    papers = json.loads(run_cli("papers", "--json").stdout)
    assert len(papers) == 75
    for paper in papers:
        assert set(paper) == {"id", "arxiv_id", "title", "abstract", "authors", "links", "listings"}
        assert all(set(l) == {"url", "kind"} for l in paper["links"])
        assert all(set(a) == {"date", "rank", "source"} for a in paper["listings"])
    minicpm = next(p for p in papers if p["id"] == "2404.06395")
    assert len(minicpm["listings"]) == 2
    newer = json.loads(run_cli("papers", "--json", "--since", "2099-01-01").stdout)
    assert newer == []


def test_bad_setting_is_one_clear_line(run_cli, monkeypatch):
    monkeypatch.setenv("PAPERWIRE_DB", "nonsense")
    result = run_cli("papers", db=False)
    assert result.exit_code == 1
    assert "setting 'db' from environment variable PAPERWIRE_DB" in result.stderr
    assert "Traceback" not in result.output


SECRET = "s3cret-Pa55"


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLite ignores ?password=, and says so
def test_ingest_names_the_database_without_its_password(run_cli, tmp_path):
    """`Listings in <db>` masks the password, in the URL's user part or in its query."""
    database = tmp_path / "pw.sqlite3"
    url = f"sqlite:///{database}?password={SECRET}"  # SQLite ignores the parameter; PostgreSQL's drivers read it
    text = run_cli("--db", url, "ingest", SEED, DATA / "bad_broken.json", db=False)
    assert text.exit_code == 1 and SECRET not in text.stdout + text.stderr
    assert f"Listings in sqlite:///{database}?password=***:" in text.stdout
    as_json = run_cli("--db", url, "ingest", "--json", SEED, DATA / "bad_broken.json", db=False)
    assert as_json.exit_code == 1 and SECRET not in as_json.stdout + as_json.stderr
    assert json.loads(as_json.stdout)["added"] == 0


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://root:{SECRET}@127.0.0.1:9/paperwire?sslpassword={SECRET}",  # no driver, or no server
    f"postgresql://root:{SECRET}@db.example:notaport/paperwire",  # not a URL SQLAlchemy takes
])
@pytest.mark.parametrize("command", [["ingest", "--json", str(SEED)], ["status", "--json"], ["send", "--json"]])
def test_a_database_that_cannot_be_opened_is_named_without_its_password(run_cli, url, command):
    result = run_cli("--db", url, *command, db=False)
    assert result.exit_code == 1 and SECRET not in result.stdout + result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "root:***@127.0.0.1:9/paperwire?sslpassword=***" in result.stderr or "setting 'db'" in result.stderr


def test_help_never_shows_a_configured_secret(run_cli, monkeypatch):
    monkeypatch.setenv("PAPERWIRE_DB", f"postgresql://root:{SECRET}@db.example/paperwire")
    monkeypatch.setenv("PAPERWIRE_SMTP_PASSWORD", SECRET)
    for command in _command_paths():
        result = run_cli(*command, "--help", db=False)
        assert result.exit_code == 0 and SECRET not in result.output


def test_bad_date_flag(run_cli):
    result = run_cli("ingest", "--date", "11/03/2024", SEED)
    assert result.exit_code == 2 and "--date" in result.stderr


def _command_paths(group=cli, prefix=()):
    yield list(prefix)
    for name, command in getattr(group, "commands", {}).items():
        yield from _command_paths(command, (*prefix, name))


@pytest.mark.parametrize("command", list(_command_paths()), ids=lambda c: " ".join(c) or "paperwire")
def test_every_command_has_help_with_an_example(run_cli, command):
    result = run_cli(*command, "--help", db=False)
    assert result.exit_code == 0 and "Example" in result.stdout


def test_python_dash_m_and_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "paperwire", "--version"], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert done.stdout.strip() == f"paperwire, version {__version__}"


def test_console_script_runs_the_main_job_on_the_default_database(tmp_path):
    """What `make demo` does: the default SQLite file under out/, relative to where it runs."""
    script = ROOT / ".venv" / "bin" / "paperwire"
    if not script.exists():
        pytest.skip("console script not installed (run through make test)")
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / SEED.name).write_bytes(SEED.read_bytes())
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(script), "ingest", "seeds/"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "paperwire.sqlite3").exists()
    assert "70 papers added" in done.stdout


def test_a_command_that_stops_on_signals_gives_the_handlers_back(run_cli):
    """`send` (and `schedule`) catch SIGINT/SIGTERM to finish the message in flight; when the
    command returns, the handlers are the ones before it (they leaked into the process, where a
    forked matching process inherited a SIGTERM that did not end it)."""
    import signal

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run_cli("send", "--all", "--dry-run").exit_code == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_command_routes_pythons_warnings_to_its_log_only_while_it_runs(run_cli):
    """Each command logs Python's warnings in its log format (logs.configure); an in-process
    caller gets its own warning machinery back when the command returns."""
    import warnings

    before = warnings.showwarning
    assert run_cli("status").exit_code == 0
    assert warnings.showwarning is before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("after the command", UserWarning)
    assert [str(w.message) for w in caught] == ["after the command"]


# -- trying a topic: paperwire match ----------------------------------------------------------


def test_match_json_gives_every_similarity_it_computed_and_null_only_when_none_was(run_cli):
    """A paper found by its words has the similarity it came to, though under the threshold
    (0.28): null would say "not computed". A ``words:`` topic computes none."""
    assert run_cli("ingest", SEED).exit_code == 0
    found = json.loads(run_cli("match", "--json", "long context").stdout)
    assert found and all(item["similarity"] is not None for item in found)
    rag = next(item for item in found if item["title"].startswith("Inference Scaling for Long-Context"))
    assert rag["why"] == ["words"] and 0.2 < rag["similarity"] < 0.28
    by_words = json.loads(run_cli("match", "--json", "Words: long context").stdout)
    assert {item["id"] for item in by_words} >= {rag["id"]}  # "Words:" is the mode, in any case
    assert all(item["similarity"] is None and item["why"] == ["words"] for item in by_words)


def test_a_topic_that_finds_nothing_is_told_how_near_the_closest_paper_came_by_meaning(run_cli):
    """Testers' plain-language topics (``AI that writes code``) found nothing and said only
    "0 of 104 paper(s) matched"; a ``words:`` topic compares nothing by meaning, so it is not told."""
    assert run_cli("ingest", SEED).exit_code == 0
    said = run_cli("match", "protein structure prediction").stderr
    note = re.search(r'note: nothing is near it in meaning either: the closest paper, "(.+)", comes to (0\.\d\d), '
                     r"and a paper is related from 0\.28\n", said)
    assert note and float(note[2]) < 0.28 and "0 of 70 paper(s) matched" in said
    closest = json.loads(run_cli("match", "--json", "--limit", "1", "meaning: protein structure prediction").stdout)
    assert closest == []  # nothing is related: the note's paper is only the nearest
    assert "note:" not in run_cli("match", "words: protein structure prediction").stderr
    assert "note:" not in run_cli("match", "long context").stderr  # found papers: nothing to explain


def test_a_paper_found_by_meaning_alone_shows_its_sentence_closest_to_the_topic(run_cli):
    """A tester saw only "related to your topic, similarity 0.43" under such a paper and could
    not tell why it was picked: match shows the abstract sentence closest to the topic, as
    emails highlight it; a paper its words found shows those words instead."""
    assert run_cli("ingest", SEED).exit_code == 0
    abstracts = SEED.read_text(encoding="utf-8").replace("\n", " ")
    for topic in ("giving language models external knowledge", "long context"):
        shown = run_cli("match", topic).stdout.splitlines()
        scores = [n for n, line in enumerate(shown) if line.startswith("     score ")]
        by_meaning = [n for n in scores if "matched: " not in shown[n]]
        assert by_meaning and (len(by_meaning) < len(scores) or topic != "long context"), shown  # both kinds there
        for n in scores:
            follows = shown[n + 1] if n + 1 < len(shown) else ""
            assert follows.startswith("     closest sentence: ") == (n in by_meaning), shown
            if n in by_meaning:
                sentence = follows.removeprefix("     closest sentence: ").rstrip("…")
                assert len(sentence) > 20 and sentence in abstracts, sentence
        found = json.loads(run_cli("match", "--json", topic).stdout)  # the same sentences, whole
        sentences = [item["closest_sentence"] for item in found if item["why"] == ["meaning"]]
        assert len(sentences) == len(by_meaning) and all(s and s in abstracts for s in sentences)
        assert all(item["closest_sentence"] is None for item in found if item["why"] != ["meaning"])
    # A paper found by meaning and by an example says "like: <title>": emails show no sentence for it.
    chef = next(paper["id"] for paper in json.loads(run_cli("papers", "--json").stdout)
                if paper["title"].startswith("ChEF: A Comprehensive Evaluation Framework"))
    found = json.loads(run_cli("match", "--json", f"benchmark multimodal models OR like:{chef}").stdout)
    assert any(item["why"] == ["meaning", "example"] for item in found), found
    assert all(item["closest_sentence"] is None for item in found if "example" in item["why"])


def test_match_says_how_many_matched_beyond_the_limit_and_takes_a_topic_that_starts_with_a_dash(run_cli):
    assert run_cli("ingest", SEED).exit_code == 0
    total = len(json.loads(run_cli("match", "--json", "--limit", "70", "words: language").stdout))
    capped = run_cli("match", "--limit", "2", "words: language")
    assert total > 2 and f"{total} of 70 paper(s) matched (--limit 2: the best 2 of {total} shown)" in capped.stderr
    dashed = run_cli("match", "--", "-survey language")  # after --, a topic, never an option
    assert dashed.exit_code == 0 and " of 70 paper(s) matched" in dashed.stderr


def test_match_lists_the_matched_words_as_the_paper_writes_them_as_emails_do(run_cli):
    """It listed the topic's word ("generalisation (title)" for a title that says "General-Purpose"),
    which hid what the stemmer had joined; emails already showed the paper's own word."""
    assert run_cli("ingest", SEED).exit_code == 0
    shown = run_cli("match", "words: title:evaluating").stdout
    assert "matched: Evaluation (title)" in shown and "matched: evaluating (title)" in shown  # "Evaluating" as the topic
    general = run_cli("match", "words: generalisation").stdout  # British: the papers write it otherwise
    assert "matched: generalization (abstract)" in general and "matched: generalizing (abstract)" in general
    assert "matched: generalisation" not in general and "General" not in general  # no more "General-Purpose"
    as_json = json.loads(run_cli("match", "--json", "words: generalisation").stdout)  # the same words: it said the topic's
    assert ["generalization"] in [found["matched"] for found in as_json] and ["generalizing"] in [
        found["matched"] for found in as_json]


def test_matched_words_keep_the_papers_capitals_but_not_its_title_case():
    """A tester's ``lora`` listed "matched: lora" for "LoRA Soups", ``rag!!`` "rag" and
    ``SPECULATIVE DECODING`` itself: a reader looks for "LoRA" in the paper. A title's
    capitals on a lower-case topic's words ("Scaling Laws") stay the topic's."""
    from types import SimpleNamespace

    from paperwire.paperview import written_word

    def shown(term: str, text: str) -> str:
        return written_word(SimpleNamespace(term=term, spans=[(0, len(term))]), text)

    assert shown("lora", "LoRA Soups") == "LoRA" and shown("rag", "RAG for law") == "RAG"
    assert shown("SPECULATIVE DECODING", "Speculative Decoding") == "Speculative Decoding"
    assert shown("scaling laws", "Scaling Laws for LLMs") == "scaling laws" and shown("moe", "Moe") == "moe"
    assert shown("mixture of experts", "Mixture of Experts") == "mixture of experts"  # small words stay small
    assert shown("mixture-of-experts", "Mixture-of-Experts") == "mixture-of-experts"


def test_a_paper_found_by_meaning_or_example_lists_the_words_its_topic_required(run_cli):
    """A literal condition beside an example or a meaning is checked by words, so it is listed
    as matched and highlighted (issue 14: every match says why); an exclusion is not."""
    assert run_cli("ingest", SEED).exit_code == 0
    chef = next(paper["id"] for paper in json.loads(run_cli("papers", "--json").stdout)
                if paper["title"].startswith("ChEF: A Comprehensive Evaluation Framework"))
    liked = json.loads(run_cli("match", "--json", f"like:{chef} title:benchmark").stdout)
    assert [(found["title"][:8], found["matched"], found["why"]) for found in liked] == [
        ("II-Bench", ["benchmark"], ["example"])]
    fast = "Fast and Slow Generating: An Empirical Study on Large and Small Language Models Collaborative Decoding"
    topic = "faster decoding -video title:(efficient OR fast)"
    (found,) = json.loads(run_cli("match", "--json", topic).stdout)
    assert (found["title"], found["matched"], found["why"]) == (fast, ["fast"], ["meaning"])
    shown = run_cli("match", topic).stdout
    assert "matched: fast (title) · related to your topic" in shown
    (alone,) = json.loads(run_cli("match", "--json", "faster decoding -video").stdout)
    assert (alone["title"], alone["matched"], alone["why"]) == (fast, [], ["meaning"])


def test_match_json_gives_the_similarity_to_the_liked_paper_the_text_shows(run_cli):
    """``like_similarity`` is the figure after "like: <title>" in the text output, even when the
    topic's meaning came closer (``similarity``); null for a paper no example found."""
    assert run_cli("ingest", SEED).exit_code == 0
    chef = next(paper["id"] for paper in json.loads(run_cli("papers", "--json").stdout)
                if paper["title"].startswith("ChEF: A Comprehensive Evaluation Framework"))
    topic = f"benchmark multimodal models OR like:{chef}"
    found = json.loads(run_cli("match", "--json", topic).stdout)
    assert all(list(item)[-4:] == ["similarity", "why", "like_similarity", "closest_sentence"] for item in found)
    by_example = [item for item in found if "example" in item["why"]]
    assert by_example and all(item["like_similarity"] is not None for item in by_example)
    assert all(item["like_similarity"] is None for item in found if "example" not in item["why"])
    ii_bench = next(item for item in by_example if item["title"].startswith("II-Bench"))
    assert ii_bench["why"] == ["words", "meaning", "example"] and ii_bench["like_similarity"] < ii_bench["similarity"]
    lines = run_cli("match", topic).stdout.splitlines()
    for item in by_example:
        (line,) = [line for line in lines if f" · {item['id']}" in line]
        assert line.endswith(f"(similarity {item['like_similarity']:.2f})"), line


def test_a_like_of_an_unknown_paper_is_warned_about_and_the_topic_kept(run_cli, store):
    assert run_cli("ingest", SEED).exit_code == 0
    warning = "like:2403.12345 names no stored paper: it finds nothing until that paper is ingested"
    for args in (["match", "like:2403.12345"], ["match", "--json", "like:2403.12345"]):
        tried = run_cli(*args)
        assert tried.exit_code == 0 and f"warning: {warning}" in tried.stderr
    assert json.loads(tried.stdout) == []
    known = store.papers()[0].paper.id
    assert "warning" not in run_cli("match", f"like:{known}").stderr
    saved = run_cli("subscribe", "r@example.org", "--topic", "Ghost=like:2501.99999")
    assert saved.exit_code == 0 and "like:2501.99999 names no stored paper" in saved.stderr
    assert [(t.name, t.query) for t in store.subscriber("r@example.org").topics] == [("Ghost", "like:2501.99999")]


def test_an_author_field_before_a_second_name_is_warned_about_and_the_topic_kept(run_cli, store):
    """``author:Xu Han`` limits "Xu" alone to authors, as the grammar says; the reader meant one
    name, so the commands that read a topic say how to write it, and change nothing."""
    hint = 'author:Xu Han limits only "Xu" to authors; "Han" is a word of any field. For one author\'s name write author:"Xu Han"'
    tried = run_cli("match", "author:Xu Han")
    assert tried.exit_code == 0 and f"warning: {hint}" in tried.stderr
    listed = run_cli("match", "author:Lovelace, Ada").stderr
    assert 'author:Lovelace, Ada limits only "Lovelace" to authors' in listed and 'author:"Ada Lovelace"' in listed
    quoted = run_cli("match", 'author:"Lovelace, Ada"').stderr  # found nothing, and said nothing
    assert 'warning: author:"Lovelace, Ada" matches no paper' in quoted and 'write author:"Ada Lovelace"' in quoted
    assert "write like:2403.09611" in run_cli("match", "MoE 2403.09611").stderr
    for fine in ('author:"Xu Han"', "author:(Xu Han)", "author:Xu agents", "author:Smith LLM", "author:Smith, agents"):
        assert "warning" not in run_cli("match", fine).stderr, fine
    either = run_cli("match", "MoE or mixture of experts").stderr
    assert 'warning: MoE or mixture: a lower-case "or" is a word' in either and "write OR in capitals" in either
    assert "write -video or NOT video" in run_cli("match", "diffusion not video").stderr
    saved = run_cli("subscribe", "r@example.org", "--topic", "Han=author:Xu Han")
    assert saved.exit_code == 0 and hint in saved.stderr
    assert [(t.name, t.query) for t in store.subscriber("r@example.org").topics] == [("Han", "author:Xu Han")]


def test_a_topic_whose_words_find_nothing_names_the_words_no_paper_has(run_cli):
    """``retreival augmented generation`` found nothing, and nothing said why."""
    assert run_cli("ingest", SEED).exit_code == 0
    typo = run_cli("match", "words: retreival augmented generation")
    assert typo.exit_code == 0
    assert "warning: no stored paper has the word 'retreival'; did you mean 'retrieval'?" in typo.stderr
    assert "'augmented'" not in typo.stderr and "'generation'" not in typo.stderr
    for fine in ("words: retrieval augmented generation", "words: xyzzy OR RAG"):
        assert "no stored paper has" not in run_cli("match", fine).stderr, fine


@pytest.mark.parametrize("command", ["digest", "send"])
def test_only_given_twice_is_refused_not_cut_to_the_last(run_cli, command):
    """click keeps the last of a repeated option without a word: --only a --only b was b alone."""
    result = run_cli(command, "--only", "a@example.org", "--only", "b@example.org")
    assert result.exit_code == 2 and "'--only': given 2 times; it takes one value" in result.stderr


def test_a_second_email_of_an_edition_gets_its_own_digest_files(run_cli, tmp_path, monkeypatch):
    """A listing that grew after the edition's email went out (a Daily Papers page fills up
    through the day) gives the reader a second email of that edition: `digest` writes it as
    <reader>.2.html/.txt/.eml, as its archive page is .../<date>/2; it overwrote the first's files."""
    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")  # words: topics; the files are the point

    def listing(*kinds: str) -> None:
        capture = tmp_path / "friday.txt"
        capture.write_text("".join(f"Zebrafish {kind} regrow\n\nWe find that zebrafish {kind} regrow.\n\n"
                                   for kind in kinds))
        assert run_cli("ingest", "--date", "2024-03-15", "--format", "daily-papers", capture).exit_code == 0

    listing("fins", "hearts")
    assert run_cli("subscribe", "ada@example.org", "--topic", "Fish=words: zebrafish").exit_code == 0
    first = json.loads(run_cli("digest", "--json").stdout)
    assert run_cli("send", "--all").exit_code == 0  # to out/outbox/: the edition's first email is out
    listing("fins", "hearts", "livers", "tails")  # added to Friday's page after it went out
    second = json.loads(run_cli("digest", "--json").stdout)
    folder = Path("out", "digests", "2024-03-15")  # under the folder it runs in (tmp_path)
    assert [(item["html"], item["text"], item["eml"]) for item in first] == [
        tuple(str(folder / f"ada_at_example.org.{suffix}") for suffix in ("html", "txt", "eml"))]
    assert [(item["html"], item["text"], item["eml"]) for item in second] == [
        tuple(str(folder / f"ada_at_example.org.2.{suffix}") for suffix in ("html", "txt", "eml"))]
    kept, later = (folder / "ada_at_example.org.html").read_text(), (folder / "ada_at_example.org.2.html").read_text()
    assert "Zebrafish hearts regrow" in kept and "Zebrafish tails regrow" not in kept
    assert "Zebrafish tails regrow" in later and "Zebrafish hearts regrow" not in later
    assert "/archive/" in later and "/2024-03-15/2" in later


def test_topics_check_lists_the_stored_topics_read_by_newer_rules_with_their_reading(run_cli, store, monkeypatch):
    """Every stored topic, of readers of any status and public ones (a followed public topic once),
    parsed as digests parse it: listed when it does not parse, has hints, or a newer rule reads it."""
    from dataclasses import replace

    from paperwire.models import Topic

    monkeypatch.setenv("PAPERWIRE_RELEVANCE_EMBEDDER", "off")  # saving topics embeds them otherwise
    assert run_cli("topics", "add", "Trending", "*").exit_code == 0
    assert run_cli("topics", "add", "Names", "author:Xu Han").exit_code == 0
    store.add_public_topic(Topic("Broken", 'title:"scaling', public=True, slug="broken"))  # saved under older rules
    assert run_cli("subscribe", "ada@example.org", "--topic", "Agents=RAG, agents -survey",
                   "--topic", 'Fine="scaling laws" OR (MoE -survey) OR RAG').exit_code == 0
    assert run_cli("subscribe", "bob@example.org", "--topic", "Diffusion=diffusion not video",
                   "--follow", "Names").exit_code == 0
    assert run_cli("unsubscribe", "bob@example.org").exit_code == 0
    assert run_cli("subscribe", "carol@example.org", "--topic", "agents").exit_code == 0
    store.save_subscriber(replace(store.subscriber("carol@example.org"), topics=[Topic("Old", "agents (tools")]))

    report = run_cli("topics", "check", "--json")
    assert report.exit_code == 0, report.output
    found = json.loads(report.stdout)
    assert (found["checked"], found["found"]) == (7, 5)  # ada 2, bob 1, carol 1, public 3
    by_topic = {item["topic"]: item for item in found["topics"]}
    assert list(by_topic) == ["Agents", "Diffusion", "Old", "Broken", "Names"]
    agents = by_topic["Agents"]
    assert (agents["email"], agents["status"], agents["query"], agents["reading"], agents["error"], agents["hints"]) == (
        "ada@example.org", "active", "RAG, agents -survey", "(RAG -survey) OR (agents -survey)", None, [])
    assert [rule["rule"] for rule in agents["rules"]] == ["separator", "outer-exclusion"]
    assert agents["rules"][0]["detail"] == 'RAG, agents: a "," between terms means OR'
    assert agents["rules"][1]["detail"].startswith("-survey is outside parentheses, so it excludes from every side")
    diffusion = by_topic["Diffusion"]
    assert (diffusion["email"], diffusion["status"], diffusion["reading"]) == (
        "bob@example.org", "unsubscribed", "diffusion not video")
    assert diffusion["rules"] == [{"rule": "negation-side", "detail": 'diffusion not video: "not" keeps this side to '
                                                                      "matching by its words only, never by meaning"}]
    assert len(diffusion["hints"]) == 1 and "write -video or NOT video" in diffusion["hints"][0]
    old, broken = by_topic["Old"], by_topic["Broken"]
    assert (old["email"], old["reading"], old["rules"]) == ("carol@example.org", None, [])
    assert old["error"] == "unbalanced parenthesis: this '(' is never closed (at position 7)"
    assert (broken["email"], broken["status"], broken["error"]) == (
        None, "public", "unbalanced quote: this \" is never closed (at position 6)")
    names = by_topic["Names"]
    assert (names["email"], names["reading"], names["rules"]) == (None, "author:Xu Han", [])
    assert names["hints"] and names["hints"][0].startswith('author:Xu Han limits only "Xu" to authors')

    shown = run_cli("topics", "check")
    assert shown.exit_code == 0
    assert shown.stderr.strip() == "5 of 7 stored topics read differently or have hints (2 do not parse)"
    assert ("ada@example.org (active) · Agents = RAG, agents -survey\n"
            "  reads: (RAG -survey) OR (agents -survey)\n"
            '  separator: RAG, agents: a "," between terms means OR\n'
            "  outer-exclusion: -survey is outside parentheses") in shown.stdout
    assert "public topic · Broken = title:\"scaling\n  error: unbalanced quote" in shown.stdout
    assert "  hint: author:Xu Han limits only" in shown.stdout
