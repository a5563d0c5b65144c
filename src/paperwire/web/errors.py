"""Errors a handler raises to answer with a page (or, under /api, a JSON body)."""

from __future__ import annotations


class PageError(Exception):
    """Answer ``status`` with a short page: ``title`` and a sentence saying what to do."""

    def __init__(self, status: int, title: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {title}: {message}")
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}
