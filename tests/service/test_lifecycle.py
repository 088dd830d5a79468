"""The job lifecycle (app/domain/lifecycle.py) as a state machine: every transition tried from every state a job
of each kind (round, generation, evaluation) can be in, on a real database (SQLite and PostgreSQL). A transition
from a state it does not leave changes nothing and says so (False, 409, StaleAttempt or "skipped"). Jobs are
brought to each state by the lifecycle's own transitions, never by writing their status."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.domain import lifecycle, reaper
from app.domain.lifecycle import JobStatus, StaleAttempt
from app.domain.models import Evaluation, Generation, Round, Style, User, utcnow
from app.errors import ApiError
from app.infra.db import session_factory
from app.infra.migrate import upgrade

from .conftest import StubDispatcher, make_settings

Q, R, S, F, C = (status.value for status in JobStatus)
STATES = [Q, R, S, F, C]
KINDS = {"round": Round, "generation": Generation, "evaluation": Evaluation}
ONE_SHOT = {"generation": Generation, "evaluation": Evaluation}  # no attempts, no cancel: never "cancelled"
ONE_SHOT_STATES = [Q, R, S, F]
JOB_STATES = [(kind, state) for kind in KINDS for state in STATES if not (kind in ONE_SHOT and state == C)]
LONG_AGO = timedelta(days=2)  # past every wait: heartbeat_stale_seconds, requeue_wait_seconds, the task time limit


class World:
    """A migrated database with one user; each job gets a style of its own."""

    def __init__(self, settings):
        self.settings = settings
        self.sessions = session_factory(settings)
        with self.sessions() as session:
            user = User(name="ann")
            session.add(user)
            session.commit()
            self.user_id = user.id

    def job(self, kind: str, state: str, callback_url: str | None = None) -> int:
        """A new job brought to `state` by the lifecycle's transitions (a running round is its attempt 1)."""
        with self.sessions() as session:
            style = Style(user_id=self.user_id, reference_path="", content="a house", descriptor="sticker",
                          base_model="tiny", adapter_kind="styledrop", settings={})
            session.add(style)
            session.flush()
            fields = {"number": 1, "parameters": {}, "total_steps": 10} if kind == "round" else \
                {"user_id": self.user_id, "request": {"prompts": ["a cat"]}}
            if kind != "evaluation":
                fields["callback_url"] = callback_url
            ident = lifecycle.enqueue(session, KINDS[kind](style_id=style.id, **fields)).id
            if state == Q:
                return ident
            if kind == "round" and state == C:
                lifecycle.cancel_round(session, session.get(Round, ident))  # a queued round's cancel ends it
                return ident
            if kind == "round":
                assert lifecycle.claim_round(session, self.settings, ident, "task-1") == "claimed"
                if state != R:
                    lifecycle.end_attempt(session, ident, 1, JobStatus(state))
                    session.commit()
            else:
                token = lifecycle.claim(session, KINDS[kind], ident)
                assert token
                if state != R:
                    assert lifecycle.finish(session, KINDS[kind], ident, token, JobStatus(state))
        return ident

    def row(self, kind: str, ident: int):
        with self.sessions() as session:
            return session.get(KINDS[kind], ident)

    def status(self, kind: str, ident: int) -> str:
        return self.row(kind, ident).status

    def backdate(self, kind: str, ident: int, **columns) -> None:
        """Time passes: timestamps (never the status) moved into the past."""
        with self.sessions() as session:
            session.execute(update(KINDS[kind]).where(KINDS[kind].id == ident).values(**columns))
            session.commit()

    def do(self, transition, *args, **kwargs):
        with self.sessions() as session:
            return transition(session, *args, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory, db):
    with db.fresh() as url:
        settings = make_settings(tmp_path_factory.mktemp("lifecycle") / "data", database_url=url)
        upgrade(settings)
        yield World(settings)


# ---- (new) → queued → sent ----------------------------------------------------------------------------------

class Broker:
    def __init__(self, up: bool):
        self.up, self.sent = up, []

    def __call__(self, ident: int) -> str:
        if not self.up:
            raise ConnectionError("Error 111 connecting to localhost:6379")
        self.sent.append(ident)
        return f"task-{ident}"


@pytest.mark.parametrize("kind", KINDS)
def test_enqueue_and_send(world, kind):
    ident = world.job(kind, Q)
    broker = Broker(up=True)
    with world.sessions() as session:
        job = session.get(KINDS[kind], ident)
        lifecycle.send_or_fail(session, job, broker)
        assert (job.status, job.celery_task_id, broker.sent) == (Q, f"task-{ident}", [ident])


@pytest.mark.parametrize("kind, state", JOB_STATES)
def test_send_or_fail_with_the_broker_down(world, kind, state):
    """A queued job that cannot be sent ends failed, with when and why, and the request gets a 503 (every kind:
    the generation's copy of this rule had left finished_at empty). A job a worker already took is left alone."""
    ident = world.job(kind, state)
    with world.sessions() as session:
        with pytest.raises(ApiError) as refused:
            lifecycle.send_or_fail(session, session.get(KINDS[kind], ident), Broker(up=False))
    assert refused.value.status == 503 and "is Redis running?" in refused.value.detail
    row = world.row(kind, ident)
    if state == Q:
        assert row.status == F and row.finished_at is not None and "Could not queue the job" in row.error
    else:
        assert row.status == state


# ---- queued → running: claim -----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_claim_round(world, state):
    ident = world.job("round", state)
    outcome = world.do(lifecycle.claim_round, world.settings, ident, "task-2")
    expected = ("claimed", R) if state == Q else (f"skipped ({state})", state)
    assert (outcome, world.status("round", ident)) == expected
    if state == Q:
        row = world.row("round", ident)
        assert (row.attempts, row.phase, row.celery_task_id) == (1, "starting", "task-2")
        assert row.started_at is not None and row.heartbeat_at is not None


def test_claim_takes_over_a_silent_round_and_fences_its_old_attempt(world):
    ident = world.job("round", R)
    assert world.do(lifecycle.claim_round, world.settings, ident, "dup") == "skipped (running)"  # alive: no
    world.backdate("round", ident, heartbeat_at=utcnow() - LONG_AGO)
    assert world.do(lifecycle.claim_round, world.settings, ident, "redelivered") == "claimed"
    assert world.row("round", ident).attempts == 2
    assert not world.do(lifecycle.is_current, ident, 1) and world.do(lifecycle.is_current, ident, 2)
    for old_write in (lambda s: lifecycle.write(s, ident, 1, step=7), lambda s: lifecycle.beat(s, ident, 1),
                      lambda s: lifecycle.end_attempt(s, ident, 1, JobStatus.failed, error="late")):
        with pytest.raises(StaleAttempt):
            world.do(old_write)
    assert world.status("round", ident) == R and world.row("round", ident).step == 0


def test_claim_gives_up_at_the_attempts_limit(world):
    ident = world.job("round", Q)
    world.backdate("round", ident, attempts=world.settings.max_attempts)  # it ran that often already
    assert world.do(lifecycle.claim_round, world.settings, ident, "t") == "gave up"
    row = world.row("round", ident)
    assert row.status == F and "Gave up after" in row.error and row.finished_at is not None


def test_claim_of_a_missing_round(world):
    assert world.do(lifecycle.claim_round, world.settings, 999_999, "t") == "missing"


@pytest.mark.parametrize("kind", ONE_SHOT)
@pytest.mark.parametrize("state", ONE_SHOT_STATES)
def test_claim_generation_or_evaluation(world, kind, state):
    ident = world.job(kind, state)
    assert (world.do(lifecycle.claim, KINDS[kind], ident) is not None) is (state == Q)
    assert world.status(kind, ident) == (R if state == Q else state)


# ---- running: the fence, the heartbeat, the cancel flag (rounds) ------------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_writes_and_heartbeat_are_fenced(world, state):
    ident = world.job("round", state)

    def write(session):
        lifecycle.write(session, ident, 1, step=5, phase="training")
        lifecycle.beat(session, ident, 1)
        session.commit()

    if state == R:
        world.do(write)
        row = world.row("round", ident)
        assert (row.status, row.step, row.phase) == (R, 5, "training")
    else:
        with pytest.raises(StaleAttempt):
            world.do(write)
        assert world.row("round", ident).step == 0 and world.status("round", ident) == state


def test_a_write_never_changes_the_status(world):
    ident = world.job("round", R)
    with pytest.raises(ValueError, match="only by a transition"):
        world.do(lifecycle.write, ident, 1, status=S)
    assert world.status("round", ident) == R


# ---- running → succeeded, failed, cancelled ---------------------------------------------------------------------

@pytest.mark.parametrize("end", [S, F, C])
@pytest.mark.parametrize("state", STATES)
def test_end_attempt(world, state, end):
    ident = world.job("round", state)

    def ending(session):
        lifecycle.end_attempt(session, ident, 1, JobStatus(end), error=None if end == S else "why")
        session.commit()

    if state == R:
        world.do(ending)
        row = world.row("round", ident)
        assert (row.status, row.phase) == (end, None) and row.finished_at is not None
    else:
        with pytest.raises(StaleAttempt):
            world.do(ending)
        assert world.status("round", ident) == state


@pytest.mark.parametrize("kind", ONE_SHOT)
@pytest.mark.parametrize("end", [S, F])
@pytest.mark.parametrize("state", ONE_SHOT_STATES)
def test_finish_generation_or_evaluation(world, kind, state, end):
    """Only a running job ends: a worker that finishes a job the reaper already failed changes nothing."""
    ident = world.job(kind, state)
    token = world.row(kind, ident).claim
    assert world.do(lifecycle.finish, KINDS[kind], ident, token, JobStatus(end), error="why") is (state == R)
    row = world.row(kind, ident)
    assert row.status == (end if state == R else state)
    assert (row.finished_at is not None) is (state in (R, S, F))


def test_an_end_is_succeeded_failed_or_cancelled(world):
    with pytest.raises(ValueError):
        world.do(lifecycle.end_attempt, world.job("round", R), 1, JobStatus.queued)
    with pytest.raises(ValueError):
        world.do(lifecycle.finish, Generation, world.job("generation", R), "token", JobStatus.cancelled)


# ---- queued → cancelled; running → cancel flag ------------------------------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_cancel_round(world, state):
    ident = world.job("round", state)
    if state in (Q, R):
        rnd = world.do(lambda s: lifecycle.cancel_round(s, s.get(Round, ident)))
        assert (rnd.status, rnd.cancel_requested) == ((C, True) if state == Q else (R, True))
        assert world.do(lifecycle.cancel_requested, ident)
    else:
        with pytest.raises(ApiError) as refused:
            world.do(lambda s: lifecycle.cancel_round(s, s.get(Round, ident)))
        assert refused.value.status == 409 and f"already {state}" in refused.value.detail
        assert world.status("round", ident) == state


@pytest.mark.parametrize("state", ONE_SHOT_STATES)
def test_cancel_evaluation(world, state):
    """Queued or running, an evaluation ends cancelled at once; its worker's claim then stops and ends nothing."""
    ident = world.job("evaluation", state)
    token = world.row("evaluation", ident).claim
    assert world.do(lambda s: lifecycle.cancel_one_shot(s, s.get(Evaluation, ident))) is (state in (Q, R))
    assert world.status("evaluation", ident) == (C if state in (Q, R) else state)
    if state == R:
        assert world.do(lifecycle.stopped, Evaluation, ident, token)
        assert not world.do(lifecycle.finish, Evaluation, ident, token, JobStatus.succeeded)


# ---- running → queued: requeue ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_requeue_attempt_on_shutdown(world, state):
    ident = world.job("round", state)
    world.backdate("round", ident, step=30)
    assert world.do(lifecycle.requeue_attempt, ident, 1, "the worker shut down") is (state == R)
    row = world.row("round", ident)
    if state == R:
        assert (row.status, row.attempts, row.phase) == (Q, 0, None)  # the attempt is given back
        (interruption,) = row.metrics["interruptions"]
        assert (interruption["at_step"], interruption["reason"]) == (30, "the worker shut down")
        assert row.metrics["requeued_at"]
    else:
        assert row.status == state and "interruptions" not in (row.metrics or {})


@pytest.mark.parametrize("state", STATES)
def test_wait_afresh(world, state):
    """A starting worker restarts the wait of every round put back in the queue, and of nothing else."""
    ident = world.job("round", state)
    long_ago = (utcnow() - LONG_AGO).isoformat()
    world.backdate("round", ident, metrics={"requeued_at": long_ago})
    ids = world.do(lifecycle.wait_afresh)
    assert (ident in ids) is (state == Q)
    assert (world.row("round", ident).metrics["requeued_at"] > long_ago) is (state == Q)
    assert world.status("round", ident) == state


# ---- failed, cancelled → queued: retry ---------------------------------------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_retry(world, state):
    ident = world.job("round", state)
    if state in (F, C):
        rnd = world.do(lambda s: lifecycle.retry(s, s.get(Round, ident)))
        assert (rnd.status, rnd.error, rnd.finished_at, rnd.cancel_requested) == (Q, None, None, False)
    else:
        with pytest.raises(ApiError) as refused:
            world.do(lambda s: lifecycle.retry(s, s.get(Round, ident)))
        assert refused.value.status == 409 and world.status("round", ident) == state


# ---- the reaper -------------------------------------------------------------------------------------------------

def _silent(world, kind: str, ident: int) -> None:
    """Its worker vanished long ago: no heartbeat, created long ago, and (queued) put back long ago."""
    then = utcnow() - LONG_AGO
    if kind == "round":
        world.backdate(kind, ident, heartbeat_at=then, started_at=then, created_at=then,
                       metrics={"requeued_at": then.isoformat()})
    else:
        world.backdate(kind, ident, created_at=then)


def _no_worker_alive(world) -> None:
    """No round had a heartbeat lately: no worker is busy (one that is would take the queue next)."""
    with world.sessions() as session:
        session.execute(update(Round).values(heartbeat_at=utcnow() - LONG_AGO))
        session.commit()


def _reap(world) -> tuple[dict[str, list[int]], StubDispatcher]:
    dispatcher = StubDispatcher()
    return reaper.run(world.settings, dispatcher), dispatcher


@pytest.mark.parametrize("kind, state", JOB_STATES)
def test_reap(world, kind, state):
    """A silent running round goes back to the queue and is sent again; a round put back that no worker took up
    fails; a generation or evaluation running past the task time limit fails. Nothing else changes."""
    ident = world.job(kind, state)
    _no_worker_alive(world)
    _silent(world, kind, ident)
    reaped, dispatcher = _reap(world)
    expected = {("round", R): Q, ("round", Q): F}.get((kind, state), F if state == R else state)
    assert world.status(kind, ident) == expected
    key = {"round": "failed", "generation": "failed_generations", "evaluation": "failed_evaluations"}[kind]
    assert (ident in reaped[key]) is (expected == F and state != F)
    assert (ident in reaped["requeued"]) is (kind == "round" and expected == Q)
    assert (ident in dispatcher.rounds) is (kind == "round" and expected == Q)  # sent again


@pytest.mark.parametrize("kind", KINDS)
def test_reap_leaves_live_jobs_alone(world, kind):
    running, queued = world.job(kind, R), world.job(kind, Q)
    reaped, _ = _reap(world)
    assert world.status(kind, running) == R and world.status(kind, queued) == Q
    assert not {running, queued} & {i for ids in reaped.values() for i in ids}


def test_reap_fails_a_silent_round_on_its_last_attempt(world):
    ident = world.job("round", Q)
    world.backdate("round", ident, attempts=world.settings.max_attempts - 1)
    assert world.do(lifecycle.claim_round, world.settings, ident, "t") == "claimed"
    _silent(world, "round", ident)
    reaped, dispatcher = _reap(world)
    row = world.row("round", ident)
    assert row.status == F and ident in reaped["failed"] and ident not in dispatcher.rounds
    assert f"attempt {world.settings.max_attempts} of" in row.error


def test_reap_sends_the_webhooks_of_what_it_failed_through_the_dispatcher(world):
    rnd, generation = world.job("round", Q, "https://hooks.example/r"), world.job("generation", R,
                                                                                    "https://hooks.example/g")
    for kind, ident in (("round", rnd), ("generation", generation)):
        _silent(world, kind, ident)
    _no_worker_alive(world)
    _, dispatcher = _reap(world)
    sent = {url: body for _, url, body in dispatcher.webhooks}
    assert '"type": "round.failed"' in sent["https://hooks.example/r"]
    assert '"type": "generation.failed"' in sent["https://hooks.example/g"]


def test_serve_runs_the_reaper_on_its_own_timer(world):
    """`styledrop serve` has no celery beat: its timer reaps (app.runner.ReaperTimer)."""
    from app.runner import ReaperTimer

    ident = world.job("generation", R)
    _silent(world, "generation", ident)
    timer = ReaperTimer(world.settings, StubDispatcher(), interval=0.05)
    try:
        while world.status("generation", ident) == R:  # progress, not a deadline: the next tick reaps it
            time.sleep(0.05)
    finally:
        timer.stop()
    assert world.status("generation", ident) == F


# ---- `styledrop serve`'s only worker died -------------------------------------------------------------------------

@pytest.mark.parametrize("kind, state", JOB_STATES)
def test_requeue_running_and_fail_running(world, kind, state):
    requeued = world.job(kind, state)
    ids = world.do(lifecycle.requeue_running, "the worker process died (exit code -9)", -9)
    assert world.status(kind, requeued) == ((Q if kind == "round" else F) if state == R else state)
    assert (requeued in ids) is (kind == "round" and state == R)
    failed = world.job(kind, state)
    ids = world.do(lifecycle.fail_running, "The worker process died")
    assert world.status(kind, failed) == (F if state == R else state)
    assert (failed in ids) is (kind == "round" and state == R)
