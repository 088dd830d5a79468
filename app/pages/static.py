"""The static files (top-level static/): scripts, styles, htmx. No session and no CSRF check for them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..errors import ApiError
from .rendering import STATIC_DIR

MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png",
               ".ico": "image/x-icon", ".txt": "text/plain", ".LICENSE": "text/plain"}

router = APIRouter(include_in_schema=False)


@router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file():
        raise ApiError(404, f"No static file {name}.")
    media = MEDIA_TYPES.get(path.suffix) or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
