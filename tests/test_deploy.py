"""The example deployment under deploy/: the systemd units run real paperwire commands with
options paperwire accepts, and the environment file names only real settings with valid values."""

from __future__ import annotations

import configparser
import logging
import shlex
from pathlib import Path

import pytest

from paperwire.cli import cli
from paperwire.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
ENV_FILE = "/etc/paperwire/paperwire.env"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def test_there_is_a_unit_for_each_kind_of_process():
    assert {path.name for path in UNITS} == {"paperwire-serve@.service", "paperwire-schedule.service",
                                             "paperwire-worker@.service"}


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_each_unit_runs_a_paperwire_command_that_accepts_its_options(path: Path):
    unit = _unit(path)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    assert service["EnvironmentFile"] == ENV_FILE and service["Restart"] == "on-failure"
    assert service["User"] == "paperwire" and unit["Install"]["WantedBy"] == "multi-user.target"
    program, command, *options = shlex.split(service["ExecStart"].replace("%i", "8001"))
    assert program.startswith("/") and program.endswith("/paperwire")
    found = cli.get_command(None, command)
    assert found is not None, f"{path.name}: no command {command!r}"
    found.make_context(command, options)  # raises on an unknown option or a bad value
    assert ("%i" in path.read_text()) == path.name.endswith("@.service")  # template units name their instance


def test_the_environment_file_names_only_settings_and_their_values_are_valid(tmp_path, caplog):
    environ = {}
    for number, line in enumerate((DEPLOY / "paperwire.env.example").read_text().splitlines(), start=1):
        setting = line.removeprefix("#")  # a setting left commented out, to turn on, must be valid too
        if setting.startswith("PAPERWIRE_") or (line.strip() and not line.startswith("#")):
            name, _, value = setting.partition("=")
            assert name.startswith("PAPERWIRE_") and value, f"line {number}: {line!r}"
            environ[name] = value
    with caplog.at_level(logging.WARNING):
        settings = load_settings(environ=environ, cwd=tmp_path)
    assert not [record for record in caplog.records if "unknown environment variable" in record.getMessage()]
    assert settings.db.startswith("postgresql+psycopg://") and settings.workers_enabled
    assert settings.bounce_address and settings.bounces_imap_host  # the daemon reads the bounce mailbox
