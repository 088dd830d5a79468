"""Limits: what one request may ask for (text, prompts, training steps, candidates), and how many jobs one
user may have waiting. Every refusal comes before anything is stored."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from styledrop.prompts import MAX_WORDS  # plain Python, no torch: the engine refuses longer text

from ..errors import ApiError
from ..settings import Settings
from .lifecycle import ACTIVE, JobStatus
from .models import Generation, Round, Style, User
from .uploads import check_storage_quota

RETRY_AFTER_SECONDS = 30  # Retry-After when no running job has an ETA (generations carry none)
CLIP_NOTE = "CLIP's text encoder reads only 77 tokens, about 300 characters, and cuts the rest"


def clean_text(value: str | None, field: str, settings: Settings) -> str:
    """One piece of user text (content, descriptor, a prompt), whitespace collapsed. 422 when it is empty,
    longer than CLIP reads (or than the engine's word limit, which would fail the job later on the worker),
    or holds control characters or lone surrogates (some databases cannot store them: a 500 otherwise)."""
    text = " ".join((value or "").split())
    if not text:
        raise ApiError(422, f"{field} is empty; describe it in a few words.")
    if len(text) > settings.max_prompt_chars:
        raise ApiError(422, f"{field} is {len(text)} characters long; the limit is {settings.max_prompt_chars} "
                            f"({CLIP_NOTE}).")
    if len(text.split()) > MAX_WORDS:
        raise ApiError(422, f"{field} has {len(text.split())} words; the limit is {MAX_WORDS} ({CLIP_NOTE}).")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise ApiError(422, f"{field} contains control characters; write plain text.")
    return text


def clean_prompts(values: list[str] | None, settings: Settings, field: str = "prompts") -> list[str]:
    """The prompts of one request: at least one, at most `max_prompts`, each checked by clean_text."""
    if not values:
        raise ApiError(422, f'{field} is empty; give at least one prompt, e.g. "a cat".')
    if len(values) > settings.max_prompts:
        raise ApiError(422, f"{field} has {len(values)} prompts; one request may have at most {settings.max_prompts}.")
    return [clean_text(value, f"Prompt {i + 1} ({field}[{i}])", settings) for i, value in enumerate(values)]


def check_train_steps(steps: int | None, settings: Settings) -> None:
    if steps is not None and steps > settings.max_train_steps:
        raise ApiError(422, f"{steps} training steps is more than the {settings.max_train_steps} allowed.")


def check_round_request(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """422 for a round that asks more than one request may (training steps, prompts, candidates), before
    anything is stored. Returns the body with its prompts cleaned."""
    body = dict(body)
    check_train_steps(body.get("train_steps"), settings)
    if body.get("prompts") is not None:
        body["prompts"] = clean_prompts(body["prompts"], settings)
        count = len(body["prompts"])
    else:
        count = body.get("candidate_prompts") or settings.candidate_prompts
        if body.get("candidate_prompts") and count > settings.max_prompts:
            raise ApiError(422, f"candidate_prompts is {count}; one request may have at most "
                                f"{settings.max_prompts} prompts.")
    per_prompt = body.get("candidates_per_prompt") or settings.candidates_per_prompt
    if count * per_prompt > settings.max_round_candidates:
        raise ApiError(422, f"{count} prompts x {per_prompt} candidates per prompt is {count * per_prompt} images; "
                            f"one round may draw at most {settings.max_round_candidates}.")
    return body


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def lock_user(session: Session, user_id: int | None) -> None:
    """Serialise one user's job requests: a fresh transaction that first locks the user's row, held until the
    caller commits. SQLite locks the whole database on the first write, so a no-op UPDATE takes its write lock
    before anything is read (a read first could see a count another request is about to change)."""
    session.commit()  # a fresh transaction: the lock comes before the reads that count
    if user_id is None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
    else:
        session.execute(update(User).where(User.id == user_id).values(id=User.id)
                        .execution_options(synchronize_session=False))


def check_job_quota(session: Session, user_id: int | None, settings: Settings, generation: bool = False) -> None:
    """429 when the user already has `max_active_jobs` rounds and generations queued or running (all styles
    together), or, before a generation, `max_pending_generations` generations. The message and the
    Retry-After header say when to try again: the soonest expected end of a running job (a round's ETA;
    RETRY_AFTER_SECONDS for a generation, which has none), else RETRY_AFTER_SECONDS.

    Atomic: the count runs after lock_user() has locked the user's row (PostgreSQL: SELECT ... FOR UPDATE;
    SQLite: the database's write lock), and the caller inserts the job and commits in the same transaction,
    so concurrent requests of one user are counted one after another and never overshoot. Also 413 when
    the user's stored files are over STYLEDROP_MAX_STORED_MB_PER_USER (a job stores more)."""
    check_storage_quota(session, settings, user_id)  # walks the user's files: before the lock
    lock_user(session, user_id)
    rounds = session.scalars(select(Round).join(Style).where(Style.user_id == user_id,
                                                             Round.status.in_(ACTIVE))).all()
    generations = session.scalars(select(Generation.status).where(Generation.user_id == user_id,
                                                                  Generation.status.in_(ACTIVE))).all()
    running, total = JobStatus.running.value, len(rounds) + len(generations)
    if total >= settings.max_active_jobs:
        what = (f"{_plural(total, 'job')} queued or running ({_plural(len(rounds), 'round')}, "
                f"{_plural(len(generations), 'generation')}); the limit is {settings.max_active_jobs} per user")
        ends = [r.eta_seconds for r in rounds
                if r.status == running and r.eta_seconds is not None and math.isfinite(r.eta_seconds)]
    elif generation and len(generations) >= settings.max_pending_generations:
        what = (f"{_plural(len(generations), 'generation job')} queued or running; the limit is "
                f"{settings.max_pending_generations} per user")
        ends = []
    else:
        return
    ends += [RETRY_AFTER_SECONDS for status in generations if status == running]
    seconds = max(5, math.ceil(min(ends))) if ends else RETRY_AFTER_SECONDS
    when = f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"
    raise ApiError(429, f"You have {what}. Try again in about {when}, when one has finished.",
                   headers={"Retry-After": str(seconds)})
