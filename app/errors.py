"""Errors the API answers with JSON `{"detail": "clear message"}` and the right status."""

from __future__ import annotations

import re


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers  # e.g. Retry-After with a 429


def not_found(what: str, ident: int) -> ApiError:
    return ApiError(404, f"{what} {ident} does not exist.")


# An absolute path (POSIX, or a Windows drive), as tracebacks and library messages print them.
_PATH = re.compile(r"(?<![\w/.:~-])(?:~?/|[A-Za-z]:\\)(?:[\w.@+~-]+[/\\])*[\w.@+~-]*")


def without_paths(message: str, limit: int = 1000) -> str:
    """A message fit for a user: every absolute path on the server replaced by "[server path]" (a job's error
    is stored on its row and shown on the pages and in the API; paths tell an attacker the layout)."""
    return _PATH.sub("[server path]", message)[:limit]
