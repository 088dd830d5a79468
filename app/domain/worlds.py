"""A world's build (styledrop.world, e.g. the `shapes` base model) as a job of the workers, seen from the app.

A world is built once per server, from its seed, into its cache folder (styledrop.world.spec.world_dir); styles
and rounds on it are refused until it is (`refuse_unbuilt`). The build runs in a worker (worker/worlds.py), which
writes where it is to a small JSON file in the world's folder (`build-status.json`, replaced atomically); the app
reads that file, never torch. One build at a time per world and server: a press while one is queued or running
shows that one (the worker also holds a file lock while it builds). A worker that dies mid-build leaves the lock
free (it goes with the process) and stops writing its heartbeat: the build reads as stopped at once (or after
STYLEDROP_HEARTBEAT_STALE_SECONDS of silence, whichever comes first), and a new press goes on from the build's
checkpoints. No database rows: the world is the server's, not a user's.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from styledrop.world.spec import MANIFEST, WORLDS, is_built, is_world, world_dir  # torch-free

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings

STATUS_FILE = "build-status.json"
LOCK_FILE = ".build-status.lock"
BUILD_LOCK = ".build.lock"  # held by the worker that builds (worker/worlds.py) for the whole build
# What a world's build can be, as the API and the pages say it.
BUILT, NOT_BUILT, QUEUED, RUNNING, STOPPED, FAILED = "built", "not built", "queued", "running", "stopped", "failed"
STARTABLE = (NOT_BUILT, STOPPED, FAILED)


def status_path(name: str) -> Path:
    return world_dir(name) / STATUS_FILE


def read_record(name: str) -> dict[str, Any]:
    """What the last build wrote ({} when none has run here, or the file is being replaced)."""
    try:
        return json.loads(status_path(name).read_text())
    except (OSError, ValueError):
        return {}


def write_record(name: str, record: dict[str, Any]) -> None:
    """Replace the status file atomically (a reader sees the old or the new one, never half of one)."""
    path = status_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{STATUS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


@contextmanager
def record_lock(name: str) -> Iterator[None]:
    """Serialises read-modify-write of the status file between the app's presses and the worker's writes."""
    folder = world_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def builder_alive(name: str) -> bool:
    """Whether a process holds the world's build lock now (the lock goes with its process: a worker that died
    holds none). Probed for a moment only, and only when the status says running."""
    path = world_dir(name) / BUILD_LOCK
    if not path.is_file():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _partial(name: str) -> bool:
    """A build was started here (by a worker or `styledrop world build`) and did not finish: it resumes."""
    return (world_dir(name) / MANIFEST).is_file() and not is_built(name)


def world_status(name: str, settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Where the world's build stands, for the API (GET /api/v1/worlds/{name}) and the pages: `state` is one of
    built, not built, queued, running, stopped (resumable), failed (with `error`)."""
    now = time.time() if now is None else now
    spec = WORLDS[name]
    record = read_record(name)
    out: dict[str, Any] = {"name": name, "description": spec.description, "build_minutes": spec.build_minutes,
                           "built": is_built(name), "state": NOT_BUILT, "stage": None, "stage_index": None,
                           "stages": None, "step": None, "total": None, "percent": None, "eta_seconds": None,
                           "note": "", "error": None, "started_at": record.get("started_at"),
                           "updated_at": record.get("updated_at")}
    if out["built"]:
        out["state"] = BUILT
        return out
    for key in ("stage", "stage_index", "stages", "step", "total", "eta_seconds", "note"):
        if record.get(key) is not None:
            out[key] = record[key]
    if out["total"]:
        out["percent"] = round(100 * (out["step"] or 0) / out["total"])
    state = record.get("state")
    if state == QUEUED and now - record.get("queued_at", 0) < settings.requeue_wait_seconds:
        out["state"] = QUEUED
    elif (state == RUNNING and now - record.get("heartbeat_at", 0) < settings.heartbeat_stale_seconds
          and builder_alive(name)):
        out["state"] = RUNNING
    elif state == FAILED:
        out["state"], out["error"] = FAILED, record.get("error") or "The build failed."
    elif state in (QUEUED, RUNNING, STOPPED) or _partial(name):
        out["state"] = STOPPED
        out["eta_seconds"] = None
        out["note"] = {QUEUED: "No worker took the build up.",
                       RUNNING: "The worker building it stopped (it died or was restarted).",
                       STOPPED: "The worker stopped it (it was shutting down)."}.get(state, "A build was started "
                                                                                          "here and not finished.")
    return out


def offered_world(name: str, settings: Settings) -> str:
    """`name` when it is a world this server offers as a base model; 404 otherwise."""
    if not is_world(name) or name not in settings.allowed_base_models:
        worlds = [m for m in settings.allowed_base_models if is_world(m)]
        raise ApiError(404, f"No world '{name}' is offered here" + (f"; this server offers: {', '.join(worlds)}."
                                                                  if worlds else "."))
    return name


def start_build(settings: Settings, dispatcher: Dispatcher, name: str) -> dict[str, Any]:
    """Queue the world's build, unless it is built or a build is already queued or running (that one is the
    answer: one build at a time). A stopped or failed build goes on from its checkpoints."""
    with record_lock(name):
        status = world_status(name, settings)
        if status["state"] not in STARTABLE:
            return status
        now = time.time()
        record = read_record(name)
        write_record(name, {k: record.get(k) for k in ("stage", "stage_index", "stages", "step", "total")}
                     | {"state": QUEUED, "queued_at": now, "updated_at": now, "note": "Waiting for a worker."})
        try:
            dispatcher.build_world(name)
        except Exception as exc:  # the broker is down: nothing is queued, say so (and forget the press)
            write_record(name, record)
            raise ApiError(503, "The job queue is not reachable; the world's build did not start. Try again "
                                "once it is back.") from exc
    return world_status(name, settings)


def unbuilt_message(name: str) -> str:
    minutes = WORLDS[name].build_minutes
    return (f"The base model '{name}' is a world that is not built on this server yet, so nothing can be trained "
            f"on it. Build it first: \"Build the {name} world\" on the new-style page, or POST "
            f"/api/v1/worlds/{name}/build (about {minutes} minutes on one CPU core; one build serves everyone).")


def refuse_unbuilt(base_model: str | None) -> None:
    """409 before a style or a round on a world that is not built here: it would only fail in the worker."""
    if is_world(base_model) and not is_built((base_model or "").strip()):
        raise ApiError(409, unbuilt_message((base_model or "").strip()))
