"""Forms parsed into the API's own pydantic models (app/domain/schemas.py), so a page and the API take the same
input with the same limits; what the model refuses becomes a message next to the form field, in the words
of the form's labels."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..domain.schemas import field_bounds

Model = TypeVar("Model", bound=BaseModel)


async def form_values(request: Request, **limits: Any) -> tuple[dict[str, str], Any]:
    """The posted form's text fields (stripped) and the form itself (for files)."""
    form = await request.form(**limits)
    return {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}, form


def _message(model: type[BaseModel], name: str, error: dict[str, Any], label: str) -> str:
    kind = error.get("type", "")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{label} must be a whole number."
    if kind in ("float_parsing", "float_type"):
        return f"{label} must be a number."
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than") and name in model.model_fields:
        bounds = field_bounds(model, name)
        low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
        if low is not None and high is not None:
            return f"{label} must be between {low:,} and {high:,}."
    return f"{label}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}."


def parse_form(model: type[Model], values: dict[str, Any], labels: dict[str, str],
               messages: dict[str, str] | None = None) -> tuple[Model | None, dict[str, str]]:
    """The form's values as `model`, or None and a message per field. An empty optional field takes the
    model's default (a form sends "" for a field left blank). `messages` replaces a field's message."""
    fields = model.model_fields
    data = {k: v for k, v in values.items()
            if k in fields and not (v == "" and not fields[k].is_required())}
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error.get("loc") else "form"
            message = (messages or {}).get(name) or _message(model, name, error, labels.get(name, name))
            errors.setdefault(name, message)
        return None, errors
