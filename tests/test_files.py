"""The one atomic-write helper (files.py) on a real folder: whole files only, no leftovers."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from paperwire import files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_replace_file_swaps_in_the_new_bytes_with_plain_permissions(tmp_path: Path, umask_022) -> None:
    path = tmp_path / "feeds" / "topics" / "all.atom"  # folders are made as needed
    files.replace_file(path, b"old")
    files.replace_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert list(path.parent.iterdir()) == [path]  # no temp file left
    assert _mode(path) == 0o644  # like open(): a web server running as another user can serve it


def test_create_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "1.id@x.eml"
    files.create_file(path, b"first", mode=0o600)
    with pytest.raises(FileExistsError):
        files.create_file(path, b"second")
    assert path.read_bytes() == b"first" and _mode(path) == 0o600
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("write", [files.replace_file, files.create_file])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch, write) -> None:
    path = tmp_path / "feed.rss"
    if write is files.replace_file:
        path.write_bytes(b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write(path, b"new", durable=True)
    assert [p.name for p in tmp_path.iterdir()] == (["feed.rss"] if write is files.replace_file else [])
    if write is files.replace_file:
        assert path.read_bytes() == b"old"


def test_durable_writes_sync_the_data_and_the_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    files.create_file(tmp_path / "a", b"x", durable=True)
    files.replace_file(tmp_path / "b", b"x", durable=True)
    files.replace_file(tmp_path / "c", b"x")  # not durable: no fsync at all
    assert synced == ["file", "folder", "file", "folder"]


def test_long_names_get_temp_names_that_fit(tmp_path: Path) -> None:
    path = tmp_path / ("k." + "m" * 236 + ".eml")  # 240 bytes: the outbox's longest name
    files.create_file(path, b"x")
    assert path.read_bytes() == b"x"


def test_concurrent_writers_never_show_a_reader_half_a_file(tmp_path: Path) -> None:
    """Each writer has its own temp file: the reader only ever sees one writer's whole bytes."""
    path = tmp_path / "feed.json"
    versions = [bytes([65 + n]) * 200_000 for n in range(4)]
    files.replace_file(path, versions[0])
    seen: set[bytes] = set()
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(20):
                files.replace_file(path, data)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        seen.add(path.read_bytes())
    for thread in threads:
        thread.join()
    assert errors == [] and seen <= set(versions)
    assert [p.name for p in tmp_path.iterdir()] == ["feed.json"]
