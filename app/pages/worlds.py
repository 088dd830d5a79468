"""A world base model's build on the pages: the panel the new-style page shows (polled while a worker builds),
and its button. The rules (one build at a time, resuming a stopped one) are app.domain.worlds'."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.deps import DispatcherDep, SettingsDep, check_workers, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain import worlds
from ..errors import ApiError
from .rendering import is_htmx, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


@router.get("/worlds/{name}/panel", response_class=HTMLResponse)
def world_panel(name: str, request: Request, settings: SettingsDep, user: UserDep) -> HTMLResponse:
    """The build panel as it stands (htmx polls it every 2 s while the build is queued or running)."""
    world = worlds.world_status(worlds.offered_world(name, settings), settings)
    return render(request, "_world_build.html", {"world": world})


@router.post("/worlds/{name}/build", response_class=HTMLResponse)
def build_world_page(name: str, request: Request, settings: SettingsDep, dispatcher: DispatcherDep,
                     user: UserDep) -> Response:
    """Start (or go on with) the world's build; any signed-in user may. Without JavaScript: back to the
    new-style page on that world."""
    name = worlds.offered_world(name, settings)
    try:
        check_workers(request)
        world = worlds.start_build(settings, dispatcher, name)
    except ApiError as exc:  # the queue or the workers are down: the panel says so, with its button (htmx swaps
        if not is_htmx(request):  # only a 2xx answer); a plain form gets the error page
            raise
        return render(request, "_world_build.html", {"world": worlds.world_status(name, settings),
                                                     "world_error": exc.detail})
    if not is_htmx(request):
        return RedirectResponse(f"/styles/new?base_model={name}", status_code=303)
    return render(request, "_world_build.html", {"world": world})
