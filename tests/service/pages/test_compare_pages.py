"""Rounds compared: the summary's chart and table, the compare page's pictures, the charts' axes and the evaluation
panel.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import re

from app.infra.db import session_factory

from ..factories import finish_round
from .helpers import create_style, latest_round


def test_rounds_compared_with_an_inline_svg_chart(stub_app):
    style_id = create_style(stub_app)
    first = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    page = stub_app.get(f"/styles/{style_id}").text
    assert '<svg class="chart"' in page and page.count("<polyline") == 2 and "<script" not in page.split("<svg")[1]
    assert "round 1: text 0.215, style 0.670; round 2: text 0.215, style 0.670" in page  # the chart's description
    assert "Rounds side by side" in page and page.count('<th scope="row">') == 2
    assert 'href="/api/v1/styles/%d/adapter"' % style_id in page and "round 2 · .safetensors" in page


def test_every_finished_rounds_adapter_is_downloadable_from_the_style_page(stub_app):
    """Not only the latest: each finished round's adapter from the rounds table, named by style and round; a
    round still queued offers none."""
    style_id = create_style(stub_app, descriptor="ink wash")
    first = latest_round(stub_app, style_id)
    stub_app.post(f"/candidates/{finish_round(stub_app.settings, first)[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    second = latest_round(stub_app, style_id)
    page = stub_app.get(f"/styles/{style_id}").text
    assert f'href="/api/v1/rounds/{first}/adapter" download="ink-wash-round1-adapter.safetensors"' in page
    assert f'id="adapter-{second}"' not in page  # queued: no adapter yet
    finish_round(stub_app.settings, second)
    page = stub_app.get(f"/styles/{style_id}").text
    for rnd, number in ((first, 1), (second, 2)):
        assert f'href="/api/v1/rounds/{rnd}/adapter" download="ink-wash-round{number}-adapter.safetensors"' in page
        got = stub_app.get(f"/api/v1/rounds/{rnd}/adapter")
        assert got.status_code == 200 and f"ink-wash-round{number}-adapter.safetensors" in \
            got.headers["content-disposition"]


def test_compare_view_shows_the_same_prompt_and_seed_from_every_round(stub_app):
    style_id = create_style(stub_app)
    first = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    second = latest_round(stub_app, style_id)
    later = finish_round(stub_app.settings, second)  # the same contents and seeds (100..103), as the worker draws them
    page = stub_app.get(f"/styles/{style_id}/compare")
    assert page.status_code == 200 and "Compare rounds" in page.text
    assert "4 prompt and seed pairs drawn by more than one round" in page.text
    row = page.text.split('<th scope="row">a cat<br><span class="muted small">seed 100</span></th>')[1].split("</tr>")[0]
    assert f'src="/api/v1/candidates/{ids[0]}/image"' in row and f'src="/api/v1/candidates/{later[0]}/image"' in row
    assert row.index(f"candidates/{ids[0]}/") < row.index(f"candidates/{later[0]}/")  # round 1, then round 2
    assert row.index(f'src="/api/v1/styles/{style_id}/reference"') < row.index(f"candidates/{ids[0]}/")  # beside it
    assert '<svg class="chart"' in page.text
    assert f'href="/styles/{style_id}/compare"' in stub_app.get(f"/styles/{style_id}").text
    assert stub_app.get("/styles/99999/compare").status_code == 404


def test_compare_reads_a_pool_of_64_by_prompt_by_page_and_compact(stub_app):
    """16 prompts x 4 seeds from two rounds: a page of rows at a time, one prompt if asked, more rows compact."""
    contents = [f"a thing {k:02d}" for k in range(16) for _ in range(4)]
    style_id = create_style(stub_app)
    ids = finish_round(stub_app.settings, latest_round(stub_app, style_id), 64, contents)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    finish_round(stub_app.settings, latest_round(stub_app, style_id), 64, contents)
    row = re.compile(r'<th scope="row">(a thing \d+)<br>')

    first = stub_app.get(f"/styles/{style_id}/compare").text
    assert len(row.findall(first)) == 12 and "rows 1–12 of 64" in first
    assert first.count(f'src="/api/v1/styles/{style_id}/reference"') == 12  # the reference in every row
    assert f'href="/styles/{style_id}/compare?page=2" rel="next"' in first and 'aria-current="page">1<' in first
    last = stub_app.get(f"/styles/{style_id}/compare?page=6").text
    assert len(row.findall(last)) == 4 and "rows 61–64 of 64" in last and 'rel="next"' not in last
    assert stub_app.get(f"/styles/{style_id}/compare?page=99").text.count('aria-current="page">6<') == 1

    one = stub_app.get(f"/styles/{style_id}/compare", params={"prompt": "a thing 07"}).text
    assert set(row.findall(one)) == {"a thing 07"} and len(row.findall(one)) == 4
    assert '<option value="a thing 07" selected>a thing 07 (4)</option>' in one and "for “a thing 07”" in one

    compact = stub_app.get(f"/styles/{style_id}/compare?view=compact").text
    assert 'class="side-by-side compact"' in compact and len(row.findall(compact)) == 48
    assert f'href="/styles/{style_id}/compare?view=compact&amp;page=2"' in compact
    assert 'id="view-toggle" href="/styles/%d/compare">Large images' % style_id in compact
    unknown = stub_app.get(f"/styles/{style_id}/compare", params={"prompt": "a dragon", "view": "huge"}).text
    assert len(row.findall(unknown)) == 12  # an unknown prompt or view: all prompts, large


def test_chart_axes_fit_the_data():
    from app.pages.chart import RoundScores, scores_chart

    svg = str(scores_chart([RoundScores(1, 0.2151, 0.670), RoundScores(2, 0.2161, 0.671)]))
    ticks = [float(t) for t in re.findall(r'class="tick">(-?\d\.\d+)<', svg)]
    text_ticks, style_ticks = ticks[:3], ticks[3:6]
    assert 0.2145 < min(text_ticks) and max(text_ticks) < 0.2168  # fitted to the text scores alone
    assert 0.669 < min(style_ticks) and max(style_ticks) < 0.672
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert abs(ys[0] - ys[1]) > 40  # a 0.001 difference is plainly visible


def test_the_evaluation_panel_starts_a_job_and_shows_the_table_and_chart(stub_app):
    from app.domain.models import Evaluation

    style_id = create_style(stub_app)
    assert "Available once a round has finished" in stub_app.get(f"/styles/{style_id}/evaluation").text
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    assert f'hx-get="/styles/{style_id}/evaluation"' in stub_app.get(f"/styles/{style_id}").text
    refused = stub_app.post(f"/styles/{style_id}/evaluation", data={"limit": "0", "per_prompt": "2"})
    assert refused.status_code == 422 and "Prompts" in refused.text
    started = stub_app.post(f"/styles/{style_id}/evaluation", data={"limit": "5", "per_prompt": "1"})
    assert started.status_code == 200 and "Evaluating 5 prompts" in started.text and 'hx-trigger="every 3s"' in started.text
    assert len(stub_app.dispatcher.evaluations) == 1
    with session_factory(stub_app.settings)() as session:  # as the worker would finish it
        evaluation = session.get(Evaluation, stub_app.dispatcher.evaluations[0])
        evaluation.status, evaluation.result = "succeeded", {"clip_model": "tiny", "rows": [
            {"name": "base", "text_mean": 0.31, "text_std": 0.01, "style_mean": 0.55, "style_std": 0.02, "count": 5},
            {"name": "round 1", "text_mean": 0.30, "text_std": 0.01, "style_mean": 0.70, "style_std": 0.02, "count": 5}]}
        session.commit()
    panel = stub_app.get(f"/styles/{style_id}/evaluation").text
    assert 'id="evaluation-table"' in panel and "0.7000" in panel and "<svg" in panel and "round 1: text 0.300" in panel
    assert "every 3s" not in panel and "Evaluate every round" in panel  # finished: no polling, a new one may start
