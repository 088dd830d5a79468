"""The API docs at /docs, offline: Swagger UI's files are served from static/swagger-ui/ (with their licence)
instead of a CDN, and started by static/docs.js (no inline script, so it works under the pages' CSP).
FastAPI's own /docs and /redoc (CDN) are turned off in app/main.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render

router = APIRouter(include_in_schema=False)  # no session: like /openapi.json, readable without logging in


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    return render(request, "docs.html")
