"""Rendering helpers of the pages: the Jinja2 templates (top-level templates/), their filters and globals,
`render`, and the HTML error page that app/main.py answers page requests with."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup

from ..domain.clip_rules import LABELS, RULE_HELP, origin, training_origins
from ..domain.downloads import adapter_name

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

SORTS = {"prompt": "Prompt", "text": "CLIP text score", "style": "CLIP style score"}
SORT_COOKIE = "styledrop_sort"  # the grid's sort order, remembered from one visit to the next

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


# ---- filters ------------------------------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def score(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


@pass_context
def csrf_field(context: Any) -> Markup:
    """The hidden CSRF field every posting form carries (checked by app/api/deps.py:csrf_guard)."""
    token = getattr(context["request"].state, "csrf_token", "")
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


def static_version() -> str:
    """Changes when a static file changes, so browsers fetch the new one (cache busting)."""
    try:
        return str(int(max(p.stat().st_mtime for p in STATIC_DIR.iterdir())))
    except (OSError, ValueError):
        return "0"


def feedback(value: Any) -> str:
    """Who picked a round's training images, as they were picked: a Round (each image's recorded origin and
    rule, app.domain.clip_rules.training_origins) or a bare rounds.feedback value."""
    if hasattr(value, "plan"):
        return training_origins(value.plan.training_set, value.feedback)
    return LABELS.get(value or "", value or "")


@pass_context
def assist_rule(context: dict[str, Any]) -> dict[str, str]:
    """The rule the rating grid's assist button runs (STYLEDROP_CLIP_RULE): its name, whose picks it adds and
    what it does, so the button says what it will do."""
    rule = context["request"].app.state.settings.clip_rule
    return {"name": rule, "who": "random" if origin(rule) == "random" else "CLIP's", "help": RULE_HELP[rule]}


templates.env.filters["feedback"] = feedback
templates.env.globals["assist_rule"] = assist_rule
templates.env.filters["duration"] = duration
templates.env.filters["when"] = when
templates.env.filters["score"] = score
templates.env.globals["SORTS"] = SORTS
templates.env.globals["adapter_name"] = adapter_name  # the name the server gives the download, shown alike
templates.env.globals["csrf_field"] = csrf_field
templates.env.globals["static_version"] = static_version()


# ---- responses ----------------------------------------------------------------------------------------------

def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code, headers=headers)


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    """What a page request gets for an error (app/main.py's one handler): the message on a page."""
    return render(request, "error.html", {"status": status, "message": message}, status_code=status,
                  headers=headers)


def chosen_sort(request: Request, sort: str | None) -> str:
    """The grid's sort order: the one asked for, else the one chosen last time (a cookie), else by prompt."""
    for value in (sort, request.cookies.get(SORT_COOKIE)):
        if value in SORTS:
            return value
    return "prompt"


def remember_sort(response: HTMLResponse, sort: str | None) -> HTMLResponse:
    """Keep a sort order the person chose for the next visit (a year; pages only, no script needed)."""
    if sort in SORTS:
        response.set_cookie(SORT_COOKIE, sort, max_age=365 * 24 * 3600, path="/", samesite="lax", httponly=True)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
