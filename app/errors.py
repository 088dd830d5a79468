"""Errors the API answers with JSON `{"detail": "clear message"}` and the right status."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers  # e.g. Retry-After with a 429


def not_found(what: str, ident: int) -> ApiError:
    return ApiError(404, f"{what} {ident} does not exist.")
