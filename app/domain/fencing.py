"""Fencing: only the current attempt of a round writes its progress, its files and its candidates.

A round's attempt number (Round.attempts, raised by every claim) is its token (app.domain.lifecycle). A worker
that lost the round (its heartbeat went stale and another worker took it up, or `styledrop serve` was
restarted while an orphan worker still ran it) keeps an old token: every write it makes is conditioned on the
token and refused, and it stops at its next step. Without the fence, two workers would interleave their steps
and the one that lost would rewrite the adapter after the other had drawn the candidates from its own.

- Database writes: the lifecycle's fenced writes and transitions (UPDATE ... WHERE id = round AND attempts =
  token AND status = 'running'); no row, no write (StaleAttempt).
- Files: each attempt trains in its own folder (rounds/N/attempts/<token>/, seeded from the previous
  attempt's checkpoints or finished adapter). What the round keeps (the adapter, candidate images) is
  renamed into place (os.replace) inside the fenced transaction that records it.

Torch-free: the worker calls these functions; the engine never sees them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..infra import storage
from ..infra.db import session_factory
from ..settings import Settings
from . import lifecycle
from .lifecycle import JobStatus, StaleAttempt
from .models import Candidate, Round

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.safetensors"
CHECKPOINTS = "checkpoints"


def attempts_dir(style_id: int, number: int) -> str:
    return f"{storage.round_dir(style_id, number)}/attempts"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Attempt:
    settings: Settings
    round_id: int
    token: int  # Round.attempts as this attempt's claim left it
    style_id: int
    number: int

    @classmethod
    def claimed(cls, settings: Settings, round_id: int) -> Attempt:
        """The attempt a worker holds right after claim_round() succeeded for it."""
        with session_factory(settings)() as session:
            rnd = session.get(Round, round_id)
            return cls(settings, round_id, rnd.attempts, rnd.style_id, rnd.number)

    # ---- the database (app.domain.lifecycle: the fence, the heartbeat, the end) ---------------------------

    def update(self, session: Session | None = None, **values: Any) -> None:
        """Write the round's columns if this attempt is still the current one, else raise StaleAttempt.
        With `session`, inside the caller's transaction (which commits); else in its own."""
        if session is not None:
            lifecycle.write(session, self.round_id, self.token, **values)
            return
        with session_factory(self.settings)() as own:
            lifecycle.write(own, self.round_id, self.token, **values)
            own.commit()

    def beat(self) -> None:
        """The heartbeat: this attempt is alive (StaleAttempt when another one has the round)."""
        with session_factory(self.settings)() as session:
            lifecycle.beat(session, self.round_id, self.token)
            session.commit()

    def is_current(self) -> bool:
        with session_factory(self.settings)() as session:
            return lifecycle.is_current(session, self.round_id, self.token)

    def cancel_requested(self) -> bool:
        with session_factory(self.settings)() as session:
            return lifecycle.cancel_requested(session, self.round_id)

    def refusal(self) -> str:
        return lifecycle.refusal(self.round_id, self.token)

    def end(self, status: JobStatus, **values: Any) -> None:
        """End the round failed or cancelled (StaleAttempt when another attempt has it)."""
        with session_factory(self.settings)() as session:
            lifecycle.end_attempt(session, self.round_id, self.token, status, **values)
            session.commit()

    def requeue(self, reason: str) -> bool:
        """Back to the queue, this attempt given back (the worker shuts down); False if another attempt has it."""
        with session_factory(self.settings)() as session:
            return lifecycle.requeue_attempt(session, self.round_id, self.token, reason)

    # ---- files ----------------------------------------------------------------------------------------------

    def folder(self) -> Path:
        return storage.resolve(self.settings.storage_root, f"{attempts_dir(self.style_id, self.number)}/{self.token}")

    def prepare(self) -> Path:
        """This attempt's training folder, seeded from the latest earlier attempt (its checkpoints, or its
        finished adapter folder), so training resumes where the round got to. Rounds trained before attempt
        folders existed kept their checkpoints in the round folder itself: that counts as attempt 0."""
        mine = self.folder()
        if mine.exists():  # a redelivery of this same attempt: go on with what it has
            return mine
        root = storage.resolve(self.settings.storage_root, attempts_dir(self.style_id, self.number))
        earlier = sorted((int(p.name), p) for p in root.iterdir() if p.name.isdigit() and int(p.name) < self.token) \
            if root.exists() else []
        legacy = storage.resolve(self.settings.storage_root, storage.round_dir(self.style_id, self.number))
        sources = [p for _, p in reversed(earlier)] + [legacy]
        staging = mine.with_name(f"{self.token}.preparing")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for source in sources:
            if _copy_latest_checkpoint(source / CHECKPOINTS, staging / CHECKPOINTS):
                break
            if (source / ADAPTER_FILE).is_file():  # training had finished: the same adapter draws on
                for item in source.iterdir():
                    if item.is_file():
                        shutil.copy2(item, staging / item.name)
                    elif item.is_dir() and item.name not in (CHECKPOINTS, "candidates", "attempts"):
                        shutil.copytree(item, staging / item.name)
                break
        os.replace(staging, mine)
        return mine

    def add_candidate(self, image: Any, relative: str, **fields: Any) -> int:
        """Store a candidate image and its row, only if this attempt is current: the image is written in the
        attempt's folder, then renamed into place in the transaction that inserts the row."""
        final = storage.resolve(self.settings.storage_root, relative)
        staged = self.folder() / "candidates" / final.name
        staged.parent.mkdir(parents=True, exist_ok=True)
        image.save(staged, format="PNG")
        with session_factory(self.settings)() as session:
            try:
                lifecycle.beat(session, self.round_id, self.token)  # locks the round's row: a claim waits for us
            except StaleAttempt:
                staged.unlink(missing_ok=True)
                raise
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
            candidate = Candidate(round_id=self.round_id, image_path=relative, **fields)
            session.add(candidate)
            session.commit()
            return candidate.id

    def add_training_samples(self, step: int, images: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Store one step's training samples (image, record with its "name") only if this attempt is current:
        written in the attempt's folder, renamed into the round's samples/ folder in the transaction that
        records them on the round (replacing what an earlier attempt drew at the same step). Returns the
        round's list of samples."""
        staged_dir = self.folder() / "samples"
        staged_dir.mkdir(parents=True, exist_ok=True)
        entries, moves = [], []
        for image, record in images:
            relative = storage.training_sample_path(self.style_id, self.number, record["name"])
            staged = staged_dir / record["name"]
            image.save(staged, format="PNG")
            moves.append((staged, storage.resolve(self.settings.storage_root, relative)))
            entries.append({k: v for k, v in record.items() if k != "name"} | {"path": relative})
        with session_factory(self.settings)() as session:
            try:
                lifecycle.beat(session, self.round_id, self.token)  # locks the round's row: a claim waits for us
            except StaleAttempt:
                for staged, _ in moves:
                    staged.unlink(missing_ok=True)
                raise
            earlier = session.scalar(select(Round.training_samples).where(Round.id == self.round_id)) or []
            samples = sorted([s for s in earlier if s.get("step") != step] + entries,
                             key=lambda s: (s["step"], s.get("index", 0)))
            for staged, final in moves:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
            self.update(session, training_samples=samples)
            session.commit()
            return samples

    def finish(self, **values: Any) -> str:
        """Succeed: the attempt's adapter is renamed to the round's adapter path and the round ends succeeded,
        in one fenced transaction. Returns the adapter's relative path."""
        relative = storage.adapter_path(self.style_id, self.number)
        final = storage.resolve(self.settings.storage_root, relative)
        with session_factory(self.settings)() as session:
            lifecycle.end_attempt(session, self.round_id, self.token, JobStatus.succeeded, adapter_path=relative,
                                  **values)
            os.replace(self.folder() / ADAPTER_FILE, final)
            session.commit()
        shutil.rmtree(storage.resolve(self.settings.storage_root, attempts_dir(self.style_id, self.number)),
                      ignore_errors=True)
        return relative


def _copy_latest_checkpoint(source: Path, target: Path) -> bool:
    """Copy the newest step-*.pt of an earlier attempt (written atomically by the engine; a stale worker may
    still be adding newer ones and pruning older ones while we copy: take the newest one that is there)."""
    for _ in range(5):
        files = sorted(source.glob("step-*.pt")) if source.is_dir() else []
        if not files:
            return False
        target.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(files[-1], target / files[-1].name)
            return True
        except FileNotFoundError:  # pruned meanwhile
            continue
    return False
