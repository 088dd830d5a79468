"""The error a failed job's row keeps for its user: the engine's own message, or the exception's type and
message, with no server paths in it (app.errors.without_paths)."""

from __future__ import annotations

from app.errors import without_paths


def describe(exc: Exception) -> str:
    from styledrop.errors import StyleDropError  # torch-free
    from styledrop.model_sources import ModelUnavailableError

    if isinstance(exc, ModelUnavailableError):  # the CLI's advice names --model; the pages' user needs the setting
        return exc.service_message()
    if isinstance(exc, StyleDropError):
        return without_paths(str(exc))
    return without_paths(f"{type(exc).__name__}: {exc}")
