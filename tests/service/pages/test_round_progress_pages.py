"""A round while it runs: the panel that polls, its phases and ETA, the loss curve, cancel and retry; the gallery card's
live phase and the jobs view.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import re

from sqlalchemy import update

from app.domain.models import Candidate, Evaluation, Generation, Round, Style, utcnow

from ..factories import finish_round, run_round
from .helpers import candidate_ids, create_style, latest_round, session_of


def test_round_fragment_polls_while_running_and_stops_when_finished(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    queued = stub_app.get(f"/rounds/{round_id}/panel").text
    assert 'hx-trigger="every 2s"' in queued and f'hx-get="/rounds/{round_id}/panel' in queued

    run_round(stub_app.settings, round_id, step=4, phase="training")
    training = stub_app.get(f"/rounds/{round_id}/panel").text
    # No round of this style has drawn images yet: the training ETA, and what comes after it, said plainly.
    assert "training 1 min 15 s + drawing 2 images" in training and "step 4 of 10" in training
    assert 'aria-label="Training" aria-valuemin="0" aria-valuemax="100" aria-valuenow="40"' in training
    run_round(stub_app.settings, round_id, step=10, phase="candidates", made=1)
    running = stub_app.get(f"/rounds/{round_id}/panel").text
    assert 'hx-trigger="every 2s"' in running and 'aria-live="polite"' in running
    assert 'role="progressbar"' in running and 'aria-valuenow="89"' in running and "width: 89%" in running
    assert "10 of 10" in running and "1.2345" in running and "TIME LEFT 0 s" not in running
    assert "making candidates (1 of 2)" in running and "1 of 2 images" in running  # 2 prompts x 1 per prompt
    assert '<li class="phase done" data-phase="training">' in running
    assert '<li class="phase now" data-phase="candidates">' in running
    assert running.count('<li class="slot"') == 1 and running.count("/api/v1/candidates/") == 1  # fixed slots
    assert f'hx-post="/rounds/{round_id}/cancel"' in running

    finish_round(stub_app.settings, round_id)
    done = stub_app.get(f"/rounds/{round_id}/panel", headers={"HX-Request": "true"}).text
    assert "hx-trigger" not in done.split('id="summary"')[0].split('class="grid-wrap"')[0]
    assert 'hx-trigger="every' not in done  # polling stops
    assert 'class="cards"' in done and done.count('class="card') >= 4
    assert 'id="summary" class="summary" aria-label="Style summary" hx-swap-oob="true"' in done  # side panel too
    page = stub_app.get(f"/styles/{style_id}").text
    assert 'hx-trigger="every' not in page and "Download adapter" in page


def test_cancel_and_retry_from_the_page(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id)
    cancelled = stub_app.post(f"/rounds/{round_id}/cancel", headers={"HX-Request": "true"})
    assert cancelled.status_code == 200 and "Stopping" in cancelled.text
    with session_of(stub_app) as session:
        rnd = session.get(Round, round_id)
        assert rnd.cancel_requested
        rnd.status, rnd.error, rnd.finished_at = "failed", "CUDA out of memory at step 4", utcnow()
        session.commit()
    failed = stub_app.get(f"/styles/{style_id}").text
    assert "This round failed." in failed and "CUDA out of memory at step 4" in failed
    assert f'hx-post="/rounds/{round_id}/retry"' in failed
    retried = stub_app.post(f"/rounds/{round_id}/retry", headers={"HX-Request": "true"})
    assert retried.status_code == 200 and 'hx-trigger="every 2s"' in retried.text
    assert stub_app.dispatcher.rounds == [round_id, round_id]
    again = stub_app.post(f"/rounds/{round_id}/retry", headers={"HX-Request": "true"})
    assert again.status_code == 200 and "only a failed or cancelled round can be retried" in again.text


def test_round_progress_covers_every_phase_with_one_eta():
    """Training's ETA plus drawing at the pace the style's last round drew; then this round's own pace."""
    from datetime import timedelta

    from app.pages.progress import round_progress

    t0 = utcnow()
    style = Style(content="a house", descriptor="sticker", base_model="tiny")
    done = Round(number=1, status="succeeded", parameters={}, style=style)
    done.candidates = [Candidate(content="a cat", prompt="p", seed=i, image_path="x",
                                 created_at=t0 + timedelta(seconds=10 * i)) for i in range(4)]
    rnd = Round(number=2, status="running", phase="training", step=5, total_steps=10, eta_seconds=50.0,
                started_at=t0, style=style, parameters={"candidates": {"count": 2, "per_prompt": 2}})
    live = round_progress(rnd, now=t0 + timedelta(seconds=50))
    assert live["eta_seconds"] == 90.0 and live["eta_text"] == "1 min 30 s"  # 50 s training + 4 x 10 s
    assert live["percent"] == round(100 * 50 / 140)
    assert [(p.key, p.state, p.percent) for p in live["phases"]] == [("training", "now", 50),
                                                                    ("candidates", "next", 0), ("scoring", "next", 0)]
    rnd.phase, rnd.step = "candidates", 10
    rnd.candidates = [Candidate(content="a cat", prompt="p", seed=i, image_path="x",
                                created_at=t0 + timedelta(seconds=100 + 8 * i)) for i in range(2)]
    live = round_progress(rnd, now=t0 + timedelta(seconds=110))
    assert live["eta_seconds"] == 16.0 and live["eta_text"] == "16 s"  # 2 more at this round's 8 s each
    assert [(p.state, p.detail) for p in live["phases"]][:2] == [("done", "step 10 of 10"), ("now", "2 of 4 images")]
    rnd.candidates += [Candidate(content="a cat", prompt="p", seed=i, image_path="x",
                                 created_at=t0 + timedelta(seconds=100 + 8 * i)) for i in (2, 3)]
    live = round_progress(rnd, now=t0 + timedelta(seconds=126))  # every image drawn, scoring not yet begun
    assert live["eta_text"] == "a few seconds", live["eta_text"]  # not "0 s" while the phase still says drawing
    batch = [Candidate(content="a cat", prompt="p", seed=i, image_path="x",
                       created_at=t0 + timedelta(seconds=100, milliseconds=3 * i)) for i in range(2)]
    rnd.candidates = batch  # two of a batch of four saved 3 ms apart: the other two are moments away
    assert round_progress(rnd, now=t0 + timedelta(seconds=101))["eta_text"] == "a few seconds"
    rnd.phase = "scoring"
    live = round_progress(rnd, now=t0 + timedelta(seconds=130))
    assert live["eta_text"] == "a few seconds" and [p.state for p in live["phases"]] == ["done", "done", "now"]


def test_loss_curve_is_bounded_and_drawn_while_training(stub_app):
    from app.domain.loss_curve import LOSS_POINTS, add_loss_point

    curve: list = []
    for step in range(1, 1001):
        curve = add_loss_point(curve, step, 2.0 / step)
    assert len(curve) <= LOSS_POINTS and curve[0] == [1, 2.0] and curve[-1] == [1000, 0.002]
    assert add_loss_point([[1, 1.0], [2, 0.9]], 2, 0.5) == [[1, 1.0], [2, 0.5]]  # a resumed step replaces
    assert add_loss_point([[1, 1.0]], 2, float("nan")) == [[1, 1.0]]

    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=4, phase="training")
    assert "loss-chart" not in stub_app.get(f"/rounds/{round_id}/panel").text  # no curve yet
    with session_of(stub_app) as session:
        session.get(Round, round_id).loss_curve = [[1, 1.5], [2, 1.2], [3, 1.3], [4, 1.1]]
        session.commit()
    panel = stub_app.get(f"/rounds/{round_id}/panel").text
    assert '<svg class="chart loss-chart"' in panel and "1.100 at step 4 of 10" in panel
    assert panel.count("<polyline") == 1 and "<script" not in panel


def test_gallery_card_shows_the_live_phase_and_ready_to_rate(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=10, phase="candidates", made=1)
    gallery = stub_app.get("/").text
    assert f'hx-get="/styles/{style_id}/card" hx-trigger="every 3s"' in gallery  # the card polls itself
    card = stub_app.get(f"/styles/{style_id}/card").text
    assert "Round 1: drawing (1 of 2)" in card and "left" in card
    finish_round(stub_app.settings, round_id)
    card = stub_app.get(f"/styles/{style_id}/card").text
    assert "ready to rate" in card and "hx-trigger" not in card  # polling stops
    stub_app.put(f"/candidates/{candidate_ids(stub_app, round_id)[0]}/rating", data={"value": "-1"})
    assert "round 1: rated 1 of 5" in stub_app.get("/").text  # 1 drawn while running + 4
    assert stub_app.get("/styles/99999/card").status_code == 404


def test_jobs_view_lists_queued_and_running_jobs_with_queue_position(stub_app):
    assert "Nothing is queued or running" in stub_app.get("/jobs").text
    first = create_style(stub_app, descriptor="oil painting")
    second = create_style(stub_app, descriptor="line drawing")
    first_round, second_round = latest_round(stub_app, first), latest_round(stub_app, second)
    run_round(stub_app.settings, first_round, step=4, phase="training")
    page = stub_app.get("/jobs").text
    assert 'hx-get="/jobs/list" hx-trigger="every 3s"' in page and 'href="/jobs"' in page
    rows = page.split('id="job-round-')
    assert rows[1].startswith(f'{first_round}"') and "running now" in rows[1] and "Training" in rows[1]
    assert rows[2].startswith(f'{second_round}"') and "1 job ahead in the queue" in rows[2]
    finish_round(stub_app.settings, first_round)
    stub_app.post(f"/styles/{first}/playground", data={"prompts": "a cat", "num_images": "1", "seed": "1"})
    listed = stub_app.get("/jobs/list").text
    assert "next in the queue" in listed and "Playground job" in listed and "1 job ahead in the queue" in listed
    playground = stub_app.get(f"/styles/{first}/playground").text
    assert "Waiting for the worker: 1 job ahead in the queue" in playground  # the round queued before it


def test_jobs_view_lists_evaluations_and_says_what_is_ahead(stub_app):
    """An evaluation waits for the same worker as rounds and playground jobs: /jobs lists it, and a job queued
    behind it says what is ahead (its owner's jobs named, another person's counted), not "next in the queue"."""
    style_id = create_style(stub_app, descriptor="oil painting")
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    assert stub_app.post(f"/styles/{style_id}/evaluation", data={"limit": "5", "per_prompt": "1"}).status_code == 200
    evaluation_id = stub_app.dispatcher.evaluations[0]
    listed = stub_app.get("/jobs/list").text
    assert f'id="job-evaluation-{evaluation_id}"' in listed and "Nothing is queued" not in listed
    assert "next in the queue" in listed.split(f'id="job-evaluation-{evaluation_id}"')[1]
    with session_of(stub_app) as session:  # the worker takes it
        session.get(Evaluation, evaluation_id).status = "running"
        session.commit()
    stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1", "seed": "1"})
    listed = stub_app.get("/jobs/list").text
    evaluation_row = listed.split(f'id="job-evaluation-{evaluation_id}"')[1].split("</tr>")[0]
    assert "running now" in evaluation_row and "scoring with CLIP" in evaluation_row
    ahead = f"1 job ahead in the queue: evaluation {evaluation_id} of oil painting (running)"
    assert ahead in listed.split('id="job-generation-')[1]
    assert f"Waiting for the worker: {ahead}" in stub_app.get(f"/styles/{style_id}/playground").text

    other = create_style(stub_app, descriptor="line drawing")  # queued after the playground job
    with session_of(stub_app) as session:  # the playground job is now another person's
        session.execute(update(Generation).values(user_id=None))
        session.commit()
    row = stub_app.get("/jobs/list").text.split(f'id="job-round-{latest_round(stub_app, other)}"')[1]
    assert (f"2 jobs ahead in the queue: evaluation {evaluation_id} of oil painting (running), 1 of another person"
            in row.split("</tr>")[0])


def test_jobs_view_cancels_a_round_and_lists_the_jobs_that_ended(stub_app):
    """/jobs has a round's Cancel (queued: cancelled at once; running: stopping) and, below the active jobs, the
    ones that ended lately with how they ended."""
    done = create_style(stub_app, descriptor="oil painting")
    finish_round(stub_app.settings, latest_round(stub_app, done))
    queued = create_style(stub_app, descriptor="line drawing")
    queued_round = latest_round(stub_app, queued)
    page = stub_app.get("/jobs").text
    assert f'hx-post="/jobs/rounds/{queued_round}/cancel"' in page and "Cancel Round 1 of line drawing" in page
    ended = page.split('id="recent-title"')[1]
    assert "Ended lately" in page and 'id="ended-round-' in ended and "succeeded" in ended and "oil painting" in ended

    cancelled = stub_app.post(f"/jobs/rounds/{queued_round}/cancel", headers={"HX-Request": "true"})
    assert cancelled.status_code == 200 and "Round 1 of line drawing is cancelled." in cancelled.text
    assert f'id="job-round-{queued_round}"' not in cancelled.text  # no longer active ...
    assert f'id="ended-round-{queued_round}"' in cancelled.text  # ... but listed as ended, first
    assert cancelled.text.index(f'id="ended-round-{queued_round}"') < cancelled.text.index("oil painting</td>")

    running = create_style(stub_app, descriptor="ink wash")
    running_round = latest_round(stub_app, running)
    run_round(stub_app.settings, running_round)
    plain = stub_app.post(f"/jobs/rounds/{running_round}/cancel", follow_redirects=False)  # no script: a form
    assert plain.status_code == 303 and plain.headers["location"] == "/jobs"
    row = stub_app.get("/jobs/list").text.split(f'id="job-round-{running_round}"')[1].split("</tr>")[0]
    assert "stopping…" in row and "Cancel" not in row
    with session_of(stub_app) as session:
        assert session.get(Round, running_round).cancel_requested


def test_a_round_that_ended_early_keeps_its_loss_chart(stub_app):
    """Cancelled or failed, a round shows the loss curve it trained so far, as a finished one does."""
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=4)
    for status in ("cancelled", "failed"):
        with session_of(stub_app) as session:
            rnd = session.get(Round, round_id)
            rnd.loss_curve = [[1, 1.5], [2, 1.2], [3, 1.3], [4, 1.1]]
            rnd.status, rnd.phase, rnd.finished_at = status, None, utcnow()
            session.commit()
        panel = stub_app.get(f"/rounds/{round_id}/panel").text
        assert '<svg class="chart loss-chart"' in panel and "1.100 at step 4 of 10" in panel, status


def test_no_eta_is_told_from_the_first_step(stub_app):
    """After the first step alone the worker has no ETA (styledrop/pace.py): the pages say they are estimating,
    never a time extrapolated from that step."""
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=1)
    with session_of(stub_app) as session:
        session.get(Round, round_id).eta_seconds = None
        session.commit()
    panel = stub_app.get(f"/rounds/{round_id}/panel").text
    assert re.search(r'class="num eta"[^>]*>estimating…<', panel), panel  # not "training 34 min + drawing …"
    assert "estimating the time left" in stub_app.get(f"/styles/{style_id}/card").text
    assert "estimating…" in stub_app.get("/jobs").text
