"""A cancel that races the worker's claim: the API read the round as queued, the worker claimed it before the
cancel was written. The cancel must reach the running round, or a 5,000-step round cancelled at once runs to
its end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.fencing import Attempt
from app.domain.lifecycle import cancel_round, claim_round
from app.domain.models import Round, utcnow
from app.errors import ApiError
from app.infra.db import session_factory
from worker.progress import stop_checker

from .factories import finish_round
from .test_api import API, create_style


def test_a_cancel_reaches_a_round_the_worker_claimed_after_it_was_read(stub_app):
    settings = stub_app.settings
    style = create_style(stub_app)
    round_id = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"steps": 5000}).json()["id"]
    with session_factory(settings)() as api_session:
        rnd = api_session.get(Round, round_id)
        assert rnd.status == "queued"  # what the API read
        with session_factory(settings)() as worker_session:  # the worker, in between
            assert claim_round(worker_session, settings, round_id, "task-1") == "claimed"
        cancelled = cancel_round(api_session, rnd)
        assert (cancelled.status, cancelled.cancel_requested) == ("running", True)
    assert stop_checker(settings, Attempt.claimed(settings, round_id))()  # the worker's next check stops it


def test_a_cancel_asked_for_before_a_takeover_stands(stub_app):
    """A worker that takes over a round whose heartbeat went stale keeps the user's cancel (a retry clears it)."""
    settings = stub_app.settings
    style = create_style(stub_app)
    round_id = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()["id"]
    with session_factory(settings)() as session:
        assert claim_round(session, settings, round_id, "task-1") == "claimed"
        cancel_round(session, session.get(Round, round_id))
        session.get(Round, round_id).heartbeat_at = utcnow() - timedelta(hours=1)  # its worker died
        session.commit()
    with session_factory(settings)() as session:
        assert claim_round(session, settings, round_id, "task-2") == "claimed"
    attempt = Attempt.claimed(settings, round_id)
    assert attempt.token == 2 and stop_checker(settings, attempt)()
    finish_round(settings, round_id)  # it ran to its end before the worker read the flag
    with session_factory(settings)() as session:
        rnd = session.get(Round, round_id)
        with pytest.raises(ApiError, match="already succeeded; there is nothing to cancel") as refused:
            cancel_round(session, rnd)
        assert refused.value.status == 409
