"""Settings layers: defaults, then paperwire.toml, then PAPERWIRE_* variables, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperwire.config import Settings, load_settings
from paperwire.errors import ConfigError


def test_defaults(tmp_path):
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings == Settings()
    assert settings.db == "sqlite:///out/paperwire.sqlite3"


def test_each_layer_overrides_the_one_before(tmp_path):
    (tmp_path / "paperwire.toml").write_text('db = "sqlite:///from-file.db"\nout_dir = "elsewhere"\n')
    from_file = load_settings(environ={}, cwd=tmp_path)
    assert from_file.db == "sqlite:///from-file.db" and from_file.out_dir == Path("elsewhere")
    from_env = load_settings(environ={"PAPERWIRE_DB": "sqlite:///from-env.db"}, cwd=tmp_path)
    assert from_env.db == "sqlite:///from-env.db" and from_env.out_dir == Path("elsewhere")
    from_flag = load_settings(flags={"db": "sqlite:///from-flag.db"},
                              environ={"PAPERWIRE_DB": "sqlite:///from-env.db"}, cwd=tmp_path)
    assert from_flag.db == "sqlite:///from-flag.db"
    not_given = load_settings(flags={"db": None}, environ={}, cwd=tmp_path)
    assert not_given.db == "sqlite:///from-file.db"


def test_the_unsubscribe_address_and_list_id_follow_the_sender_unless_set(tmp_path):
    """With only ``sender_email`` set, the mailto unsubscribe and List-Id named the placeholder
    domain paperwire.localhost, which no mail reaches; set, they stay as set."""
    (tmp_path / "paperwire.toml").write_text('sender_email = "digest@lab.example"\n')
    followed = load_settings(environ={}, cwd=tmp_path)
    assert (followed.unsubscribe_email, followed.list_id) == ("digest@lab.example", "digest.lab.example")
    idn = load_settings(environ={"PAPERWIRE_SENDER_EMAIL": "digest@bücher.example"}, cwd=tmp_path)
    assert idn.list_id == "digest.xn--bcher-kva.example"
    (tmp_path / "paperwire.toml").write_text('sender_email = "digest@lab.example"\nlist_id = "papers.lab.example"\n'
                                            'unsubscribe_email = "leave@lab.example"\n')
    chosen = load_settings(environ={}, cwd=tmp_path)
    assert (chosen.unsubscribe_email, chosen.list_id) == ("leave@lab.example", "papers.lab.example")


def test_explicit_config_file_wins_over_the_one_in_cwd(tmp_path):
    (tmp_path / "paperwire.toml").write_text('db = "sqlite:///cwd.db"\n')
    other = tmp_path / "other.toml"
    other.write_text('db = "sqlite:///other.db"\n')
    assert load_settings(other, environ={}, cwd=tmp_path).db == "sqlite:///other.db"
    assert load_settings(environ={"PAPERWIRE_CONFIG": str(other)}, cwd=tmp_path).db == "sqlite:///other.db"


def test_acronyms_table(tmp_path):
    (tmp_path / "paperwire.toml").write_text('[acronyms]\nSSM = ["state space model"]\nGQA = "grouped query attention"\n')
    assert load_settings(environ={}, cwd=tmp_path).acronyms == {
        "SSM": ("state space model",), "GQA": ("grouped query attention",)}


@pytest.mark.parametrize(
    ("toml", "env", "flags", "message"),
    [
        ('dbb = "x"', {}, {}, r"unknown setting 'dbb' in config file .*paperwire.toml.*did you mean 'db'"),
        ("db = 3", {}, {}, r"bad value for setting 'db' from config file .*paperwire.toml"),
        ('db = "x"\nfoo = = 1', {}, {}, r"config file .*paperwire.toml: .*line 2"),
        ("", {"PAPERWIRE_DB": "not a url"}, {}, r"setting 'db' from environment variable PAPERWIRE_DB"),
        ("", {}, {"db": "::::"}, r"setting 'db' from flag --db"),
        ("[acronyms]\nMoE = [1]", {}, {}, r"'acronyms' from config file"),
        ('[smtp]\npasword_file = "x"', {}, {}, r"unknown setting 'smtp.pasword_file'.*did you mean 'smtp.password_file'"),
        ('[schedule]\ndispatch_minute = 5', {}, {}, r"did you mean 'schedule.dispatch_minutes'"),
        ('[webhooks]\npostmark_password = "x"', {}, {}, r"'webhooks.postmark_password'.*secrets are not read from "
                                                         r"the config file; set PAPERWIRE_WEBHOOKS_POSTMARK_PASSWORD"),
        ('[webhooks]\nmailgun_signing_key = "x"', {}, {}, r"set PAPERWIRE_WEBHOOKS_MAILGUN_SIGNING_KEY"),
        ('[webhooks]\nses_topics = ["arn:aws:sqs:eu-west-1:123456789012:q"]', {}, {},
         r"'webhooks.ses_topics' from config file .*not an SNS topic ARN"),
        ("", {"PAPERWIRE_WEBHOOKS_SENDGRID_PUBLIC_KEY": "bm90IGEga2V5"}, {},
         r"'webhooks.sendgrid_public_key' from environment variable .*not a public key in base64 DER"),
    ],
)
def test_bad_settings_name_the_key_and_the_source(tmp_path, toml, env, flags, message):
    (tmp_path / "paperwire.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(flags=flags, environ=env, cwd=tmp_path)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_the_repr_of_settings_shows_no_secret(tmp_path):
    """A repr reaches tracebacks, debuggers and test reports: no password, key or token in it."""
    settings = load_settings(environ={
        "PAPERWIRE_DB": "postgresql+psycopg://root:dbPa55@db.example/paperwire?sslpassword=keyPa55&application_name=pw",
        "PAPERWIRE_SMTP_PASSWORD": "smtpPa55", "PAPERWIRE_SECRET_KEY": "signingPa55" * 4,
        "PAPERWIRE_ADMIN_TOKEN": "adminPa55", "PAPERWIRE_WEBHOOKS_POSTMARK_PASSWORD": "postmarkPa55",
        "PAPERWIRE_WEBHOOKS_MAILGUN_SIGNING_KEY": "mailgunPa55", "PAPERWIRE_SCHEDULE_SOURCES": "seeds,https://me:urlPa55@feeds.example/x?token=tokPa55",
    }, cwd=tmp_path)
    shown = repr(settings)
    assert "Pa55" not in shown
    assert "db='postgresql+psycopg://root:***@db.example/paperwire?sslpassword=***&application_name=pw'" in shown
    assert "schedule_sources=('seeds', 'https://feeds.example/x?…')" in shown


def test_unknown_variables_are_warned_about_but_not_the_test_suites_database(tmp_path, caplog):
    """PAPERWIRE_TEST_DB names the test suite's PostgreSQL server (tests/databases.py); CI exports
    it to every process the tests start, where a warning would be noise in their output."""
    with caplog.at_level("WARNING", logger="paperwire.config"):
        load_settings(environ={"PAPERWIRE_TEST_DB": "postgresql://u@h/db", "PAPERWIRE_TYPO": "1"}, cwd=tmp_path)
    assert [r.getMessage() for r in caplog.records] == ["ignoring unknown environment variable PAPERWIRE_TYPO"]


@pytest.mark.parametrize("value", ["https://a b.org", "https://x.org/a>b,<c", 'https://x.org/"', "https://x.org:bad",
                                   "ftp://x.org", "https://", "https://x.org/?a=1", "https://user:secret@x.org",
                                   "https://x.org/?", "https://x.org/#", "https://x.org/a\\b", "https://x.org/{a}",
                                   "https://x.org/a|b", "https://x.org/a^b", "https://x.org/a`b"])
def test_a_base_url_that_would_break_the_unsubscribe_header_or_show_a_password_is_refused(tmp_path, value):
    """Every email's List-Unsubscribe starts with base_url: a space, quote or angle bracket
    would split or end its URI, and a password in it would be in every email."""
    with pytest.raises(ConfigError, match="setting 'base_url'") as raised:
        load_settings(environ={"PAPERWIRE_BASE_URL": value}, cwd=tmp_path)
    assert "secret" not in str(raised.value)


def test_a_base_url_with_a_non_ascii_host_is_written_in_a_labels(tmp_path):
    """As addresses' domains are: a raw UTF-8 header would need SMTPUTF8 for every message."""
    for given, kept in [("https://exämple.org/papers/", "https://xn--exmple-cua.org/papers"),
                        ("https://exämple.org:8443", "https://xn--exmple-cua.org:8443"),
                        ("https://example.org/bücher/", "https://example.org/b%C3%BCcher"),
                        ("http://localhost:8000/", "http://localhost:8000")]:
        assert load_settings(environ={"PAPERWIRE_BASE_URL": given}, cwd=tmp_path).base_url == kept


@pytest.mark.parametrize("value", ["my list>, <x", "nodot", "a..b", "a b.org", ".a.b"])
def test_a_list_id_is_a_dot_atom(tmp_path, value):
    with pytest.raises(ConfigError, match="setting 'list_id'"):
        load_settings(environ={"PAPERWIRE_LIST_ID": value}, cwd=tmp_path)
    assert load_settings(environ={"PAPERWIRE_LIST_ID": "digest.papers.example.org"}, cwd=tmp_path).list_id


def test_a_home_folder_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="setting 'templates_dir'"):
        load_settings(environ={"PAPERWIRE_TEMPLATES_DIR": "~nosuchuser-paperwire/templates"}, cwd=tmp_path)
