"""The base models a new style may choose in the pages.

The STYLEDROP_BASE_MODELS allow-list (settings.base_models) where the settings have one; otherwise
the server's default model, the two aMUSEd checkpoints and the offline `tiny` preset.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BASE_MODELS = ["amused/amused-256", "amused/amused-512", "tiny"]


def allowed_base_models(settings: Any) -> list[str]:
    """The choices, the server's default model first when it is one of them."""
    listed = getattr(settings, "base_models", None)
    if isinstance(listed, str):
        listed = [m.strip() for m in listed.split(",") if m.strip()]
    models = list(listed) if listed else [settings.model] + DEFAULT_BASE_MODELS
    ordered = [settings.model] if settings.model in models else []
    return ordered + [m for m in dict.fromkeys(models) if m not in ordered]
