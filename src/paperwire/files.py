"""Writing a whole file at once: the one way paperwire puts a file in place.

Feeds are served while the scheduler rewrites them, digests are opened while a run
rewrites them, and the outbox is a queue another program may pick up: none of them may ever
see half a file. So the bytes go to a temporary file in the SAME folder (a rename or a
link across file systems is not atomic), which is then renamed or hard-linked into place.

- ``replace_file``: the new file takes the old one's place (feeds, caches).
- ``create_file``: never overwrites; a name that exists raises ``FileExistsError`` and
  leaves the file that was there alone (the outbox: each message is written once).

Permissions are those of a plain ``open()`` (0o666 less the umask): ``tempfile.mkstemp``
would make every file 0o600, which a web server reading ``out/`` as another user cannot
serve. Pass ``mode=0o600`` for files only this user should read.

``durable`` fsyncs the data before it is put in place and the folder after, so a power
loss cannot leave an empty or missing file behind a step already reported done (the
outbox counts a written file as sent). Files rebuilt by every run skip that cost.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_TEMP_SUFFIX = ".tmp"


def replace_file(path: Path, data: bytes, *, durable: bool = False, mode: int = 0o666) -> None:
    """Put ``data`` at ``path`` in one step: readers see the old file or the new one."""
    temp = _write_temp(path, data, durable=durable, mode=mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def create_file(path: Path, data: bytes, *, durable: bool = False, mode: int = 0o666) -> None:
    """Put ``data`` at ``path`` in one step, unless ``path`` exists: then ``FileExistsError``
    and nothing changes. A hard link fails on an existing name, so two writers racing for one
    name can never overwrite each other (a rename would)."""
    temp = _write_temp(path, data, durable=durable, mode=mode)
    try:
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        _fsync_folder(path.parent)


def _write_temp(path: Path, data: bytes, *, durable: bool, mode: int) -> Path:
    """A new hidden file beside ``path`` holding ``data``; removed again if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        # A short prefix of the name: the temp name must stay under the 255-byte limit too.
        temp = path.with_name(f".{path.name[:40]}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        except FileExistsError:  # 48 random bits taken: try another name
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _fsync_folder(folder: Path) -> None:
    """Make the rename or link itself durable (POSIX); not possible everywhere, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
