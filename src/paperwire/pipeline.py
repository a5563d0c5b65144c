"""The one place that calls the stages in order: read sources, then store what they gave.

cli/ and web/ call these functions; each returns a report the caller can print or
serialize, and never prints itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import sources
from .errors import SourceError
from .store import IngestCounts, Store


@dataclass(frozen=True)
class FileError:
    file: str
    line: int | None
    message: str


@dataclass
class IngestReport:
    files: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "files": self.files, "added": self.counts.added, "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "errors": [{"file": e.file, "line": e.line, "message": e.message} for e in self.errors],
        }


def ingest(
    store: Store,
    paths: Sequence[Path],
    *,
    format: str | None = None,
    date: dt.date | None = None,
    today: dt.date | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> IngestReport:
    """Read every file under ``paths`` into ``store``, one transaction per file.

    A bad file is recorded in the report and leaves the database as it was; the
    other files still go in.
    """
    report = IngestReport()
    files = sources.expand_paths(list(paths))
    if not files:
        report.errors.append(FileError(", ".join(map(str, paths)), None, "no listing files found"))
    for path in files:
        report.files += 1
        try:
            batch = sources.read_path(path, format=format, date=date, today=today)
            report.counts += store.save_listings(batch)
            report.warnings.extend(w for listing in batch for w in listing.warnings)
        except SourceError as exc:
            report.errors.append(FileError(exc.origin or str(path), exc.line, exc.reason))
        if on_file:
            on_file(path)
    return report
