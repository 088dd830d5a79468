"""The world build job: styledrop.world.build_world in a worker, its progress written where the app reads it
(app.domain.worlds: the world folder's status file), a heartbeat while it runs, a file lock so that one build
runs at a time. A warm shutdown stops it at its next step with a checkpoint (stopped, resumable); a failure
keeps its reason for the pages."""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.domain import worlds
from app.settings import Settings

from . import progress
from .errors import describe

log = logging.getLogger(__name__)
LOCK_TRIES = 20  # the app probes the lock for a moment (app.domain.worlds.builder_alive): try again a few times


@contextmanager
def build_lock(name: str) -> Iterator[bool]:
    """True while this process holds the world's build lock; False when another process builds it now. The
    lock goes with the process, so a worker that died leaves none behind."""
    from styledrop.world.spec import world_dir

    folder = world_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / worlds.BUILD_LOCK, "a") as handle:
        for attempt in range(LOCK_TRIES):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_TRIES - 1:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BuildReport:
    """What the running build writes: its stage and step (at most one write per progress interval, and at each
    stage's start and end), a heartbeat from a thread (the measure stage reports nothing for minutes), its end."""

    def __init__(self, settings: Settings, name: str, task_id: str | None):
        self.settings, self.name = settings, name
        now = time.time()
        previous = worlds.read_record(name)  # where a stopped build was: said until the resumed one reports
        self.record: dict[str, Any] = {k: previous.get(k) for k in ("stage", "stage_index", "stages", "step",
                                                                   "total")}
        self.record |= {"state": worlds.RUNNING, "task_id": task_id, "started_at": now, "heartbeat_at": now,
                        "updated_at": now, "note": "Starting: going on from the last checkpoint."
                        if previous.get("step") else "Starting."}
        self.last_write = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.write()
        self.beat = threading.Thread(target=self._heartbeat, name="world-build-heartbeat", daemon=True)
        self.beat.start()

    def write(self, **changes: Any) -> None:
        with self.lock, worlds.record_lock(self.name):
            now = time.time()
            self.record.update(changes, heartbeat_at=now, updated_at=now)
            worlds.write_record(self.name, self.record)
            self.last_write = now

    def _heartbeat(self) -> None:
        while not self.done.wait(self.settings.heartbeat_seconds):
            self.write()

    def progress(self, p: Any) -> None:
        """build_world's on_progress (styledrop.world.stages.Progress): every step; written now and then."""
        edge = p.step in (0, p.total) or p.stage != self.record.get("stage")
        if not edge and time.time() - self.last_write < self.settings.progress_interval_seconds:
            return
        self.write(stage=p.stage, stage_index=p.index, stages=p.stages, step=p.step, total=p.total,
                   loss=p.loss, eta_seconds=None if p.eta_seconds is None else round(p.eta_seconds),
                   note=p.note or f"{p.stage}: step {p.step} of {p.total}")

    def end(self, state: str, **changes: Any) -> None:
        self.done.set()
        self.beat.join()
        self.write(state=state, eta_seconds=None, **changes)


def run_world_build(settings: Settings, name: str, task_id: str | None = None) -> str:
    """Build (or go on building) the world `name`; returns what happened: built (nothing to do), busy (another
    process builds it), succeeded, stopped or failed."""
    from styledrop.world.build import build_world  # the engine, imported in the worker only
    from styledrop.world.spec import WORLDS, is_built

    if name not in WORLDS:
        return "failed"
    if is_built(name):
        return "built"
    with build_lock(name) as mine:
        if not mine:
            log.info("world %s: another process builds it; this copy of the job does nothing", name)
            return "busy"
        report = BuildReport(settings, name, task_id)
        try:
            build_world(name, on_progress=report.progress, should_stop=progress.shutting_down.is_set,
                        threads=settings.world_build_threads or None)
        except Exception as exc:  # the reason, without server paths, for the pages; the traceback in the log
            log.exception("world %s: the build failed", name)
            report.end(worlds.FAILED, error=describe(exc), note="")
            return "failed"
        finally:  # whatever ends the build (SystemExit included), the heartbeat stops: a silent build reads stopped
            report.done.set()
        if is_built(name):
            report.end("succeeded", note="Built.")
            return "succeeded"
        report.end(worlds.STOPPED, note="The worker stopped it (it was shutting down).")
        return "stopped"
