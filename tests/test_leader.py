"""One `paperwire schedule` per database: two real daemons, the second waits and takes over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paperwire import redact
from paperwire.store import Store

from .conftest import SEED
from .test_dispatch import _write_readers
from .test_workers import pg_url  # noqa: F401  (fixture)


class Daemon:
    """A `paperwire --log-format json schedule` process whose log lines are read as they come."""

    def __init__(self, cwd: Path, env: dict):
        self.process = subprocess.Popen([sys.executable, "-m", "paperwire", "--log-format", "json", "schedule"],
                                        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            if line.strip().startswith("{"):
                self.lines.append(json.loads(line))

    def events(self) -> list[str]:
        return [line.get("event") for line in self.lines]

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.lines if line.get("event") == event), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline and self.process.poll() is None, (event, self.lines)
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pw.db'}"
    return request.getfixturevalue("pg_url")


def test_a_second_scheduler_waits_as_a_standby_and_takes_over_when_the_first_dies(database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    env.update(PAPERWIRE_DB=database, PAPERWIRE_RELEVANCE_EMBEDDER="off", PAPERWIRE_OUT_DIR=str(tmp_path / "out"),
               PAPERWIRE_OUTBOX_DIR=str(tmp_path / "outbox"), PAPERWIRE_SCHEDULE_SOURCES=str(SEED))
    readers = tmp_path / "readers.json"
    _write_readers(readers, 6)
    done = subprocess.run([sys.executable, "-m", "paperwire", "subscribers", "import", str(readers)], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first = Daemon(tmp_path, env)
    second = None
    try:
        assert first.wait_for("dispatch")["sent"] == 6
        second = Daemon(tmp_path, env)
        standby = second.wait_for("schedule-standby")
        assert standby["db"] == redact.url(database) and "paperwire:paperwire@" not in standby["db"]
        assert f"pid {first.process.pid}" in standby["holder"]
        time.sleep(2.5)  # a standby runs nothing, however long it waits
        assert "schedule-start" not in second.events() and "ingest" not in second.events()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        second.wait_for("schedule-takeover", timeout=30)
        assert second.wait_for("dispatch")["sent"] == 0  # nothing sent twice
        assert second.events().index("schedule-takeover") < second.events().index("schedule-start")
    finally:
        first.stop()
        code = second.stop() if second is not None else 0
    assert code == 0
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 6
    store = Store(database)
    assert store.delivery_counts() == {"sent": 6}
    store.close()


def test_a_standby_stopped_while_waiting_exits_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    env.update(PAPERWIRE_DB=f"sqlite:///{tmp_path / 'pw.db'}", PAPERWIRE_RELEVANCE_EMBEDDER="off",
               PAPERWIRE_OUT_DIR=str(tmp_path / "out"), PAPERWIRE_SCHEDULE_SOURCES=str(SEED))
    first = Daemon(tmp_path, env)
    try:
        first.wait_for("schedule-start")
        second = Daemon(tmp_path, env)
        second.wait_for("schedule-standby")
        assert second.stop() == 0
        assert second.events()[-1] == "schedule-stop" and "schedule-start" not in second.events()
    finally:
        assert first.stop() == 0
