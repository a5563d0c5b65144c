"""Every demo digest, as a complete message, scores below 2.0 with SpamAssassin run offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

SPAM_LIMIT = 2.0


def need(program: str) -> str:
    found = shutil.which(program)
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is not installed; .ci/run installs it")
        pytest.skip(f"{program} is not installed (Debian package; .ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    """Run `paperwire demo` in a scratch folder, as `make demo` does."""
    from click.testing import CliRunner

    from paperwire.cli import cli

    work = tmp_path_factory.mktemp("demo")
    for folder in ("seeds", "examples"):
        shutil.copytree(ROOT / folder, work / folder)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return work / "out"


def test_every_demo_digest_scores_below_the_limit(demo_out, tmp_path):
    spamassassin = need("spamassassin")
    messages = sorted(demo_out.glob("digests/*/*.eml"))
    assert len(messages) >= 4
    for message in messages:
        done = subprocess.run([spamassassin, "-L", "-t"], input=message.read_bytes(), capture_output=True,
                              env={**os.environ, "HOME": str(tmp_path)}, timeout=120)
        report = done.stdout.decode("utf-8", "replace")
        found = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.MULTILINE)
        assert found, report[-2000:]
        assert float(found.group(1)) < SPAM_LIMIT, f"{message.name} scored {found.group(1)}:\n{report[-3000:]}"
