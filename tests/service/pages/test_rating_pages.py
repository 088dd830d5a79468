"""The rating grid: grouping and sorting, thumbs and selection by click, CLIP assistance with Undo, and training the
next round on the selection.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.domain.models import Rating, Round, Selection

from ..factories import finish_round
from .helpers import create_style, latest_round, session_of, text_of


def test_rating_grid_groups_sorts_and_documents_the_shortcuts(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, round_id)
    page = stub_app.get(f"/styles/{style_id}").text
    assert "Candidates for a cat" in page and "Candidates for a bridge" in page
    assert page.index("Candidates for a cat") < page.index("Candidates for a bridge")
    assert "/static/grid.js" in page
    for key in ("<kbd>j</kbd>", "<kbd>k</kbd>", "<kbd>u</kbd>", "<kbd>+</kbd>", "<kbd>d</kbd>", "<kbd>-</kbd>",
                "<kbd>s</kbd>", "<kbd>space</kbd>", "<kbd>←</kbd>"):
        assert key in page, key
    assert page.count('class="vote') == 3 * len(ids) and 'class="selbar"' in page
    assert page.count('tabindex="-1" class="vote') == 3 * len(ids)  # one Tab stop per card: the card itself
    assert "<kbd>?</kbd>" in page and '<dialog class="viewer" id="viewer"' in page and 'class="grid-size"' in page
    assert "0</strong> selected" in page and "Train round 2 with 0 selected" in text_of(page)
    assert re.search(r'<li class="card" id="cand-\d+" data-candidate="\d+" tabindex="-1"', page)  # grid.js roves
    assert "<script>" not in page and " onclick=" not in page  # CSP: no inline scripts or handlers
    assert '<dialog class="help-dialog" id="shortcuts"' in page and 'data-help="open"' in page  # "?" opens it
    assert page.count('<p class="card-prompt"') == len(ids) and '>a bridge</p>' in page  # each card's prompt
    assert f'<a class="skip" href="#grid-{round_id}" data-skip="grid">Skip to the images</a>' in page

    by_style = stub_app.get(f"/rounds/{round_id}/grid?sort=style").text  # style scores fall with the index
    order = [int(i) for i in re.findall(r'id="cand-(\d+)"', by_style)]
    assert order == ids  # groups by best style score (cat first), best first inside
    by_text = stub_app.get(f"/rounds/{round_id}/grid?sort=text").text  # text scores rise with the index
    assert [int(i) for i in re.findall(r'id="cand-(\d+)"', by_text)] == [ids[3], ids[2], ids[1], ids[0]]
    assert 'aria-current="true"' in by_text and "hx-trigger" not in by_text


def test_rating_endpoint_records_one_rating_per_user_and_candidate(stub_app):
    style_id = create_style(stub_app)
    ids = finish_round(stub_app.settings, latest_round(stub_app, style_id))
    up = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"}, headers={"HX-Request": "true"})
    assert up.status_code == 200
    assert up.text.lstrip().startswith(f'<li class="card selected liked" id="cand-{ids[0]}"')  # the card itself
    assert re.search(r'class="vote up" data-action="up" aria-pressed="true"', up.text)
    assert 'id="selbar-' in up.text and 'hx-swap-oob="true"' in up.text
    assert "Train round 2 with 1 selected" in text_of(up.text)
    down = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "-1"})
    assert re.search(r'class="vote down" data-action="down" aria-pressed="true"', down.text)
    stub_app.post(f"/candidates/{ids[1]}/rating", data={"value": "1"})
    stub_app.post(f"/candidates/{ids[1]}/rating", data={"value": "1"})  # the same thumb again takes it back
    with session_of(stub_app) as session:
        ratings = session.execute(select(Rating.candidate_id, Rating.value)).all()
        assert ratings == [(ids[0], -1)]  # one row per user and candidate, the latest value
        assert session.scalar(select(func.count(Selection.id))) == 0  # taking the like back took its pick too
    assert stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "3"}).status_code == 422
    assert stub_app.put("/candidates/99999/rating", data={"value": "1"}).status_code == 404
    # The API sees the same rating.
    assert stub_app.get(f"/api/v1/candidates/{ids[0]}").json()["my_rating"] == -1


def test_select_toggle_auto_select_and_train_the_next_round(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, round_id)
    toggled = stub_app.post(f"/candidates/{ids[2]}/selected").text
    assert 'data-action="select" aria-pressed="true"' in toggled and "1 selected" in toggled
    assert 'aria-pressed="false"' in stub_app.post(f"/candidates/{ids[2]}/selected").text

    picked = stub_app.post(f"/rounds/{round_id}/auto-select").text
    assert "CLIP added 2 picks" in picked and picked.count("✓ CLIP pick") == 2
    assert "Train round 2 with 2 selected" in text_of(picked) and f'id="picked-{round_id}" hx-swap-oob="true">2<' in picked

    started = stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == f"/styles/{style_id}"
    second = latest_round(stub_app, style_id)
    assert stub_app.dispatcher.rounds == [round_id, second]
    with session_of(stub_app) as session:
        rnd = session.get(Round, second)
        assert rnd.number == 2 and rnd.feedback == "clip" and len(rnd.parameters["training_set"]) == 3
    page = stub_app.get(f"/styles/{style_id}").text
    assert 'hx-trigger="every 2s"' in page and "Show its 4 candidates" in page  # round 1 folded away
    assert "Train round" not in page  # no second start while round 2 runs
    refused = stub_app.post(f"/styles/{style_id}/rounds", data={}, follow_redirects=False)
    assert refused.status_code == 409 and "Round 2 of style" in refused.text  # the style page, with why
    assert "is queued; wait for it" in refused.text and refused.headers["content-type"].startswith("text/html")


def test_clip_assistance_adds_to_the_persons_picks_and_undoes_in_one_click(stub_app):
    """CLIP never removes a pick, never picks a thumbed-down image, says what it added, and Undo takes back
    exactly that; each selection records who made it, and the next round says who picked what."""
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, round_id)  # CLIP alone would pick ids[1] (a cat) and ids[2] (a bridge)
    stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"})  # the person's pick, by a like
    stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "-1"})  # CLIP's favourite cat, thumbed down
    added = stub_app.post(f"/rounds/{round_id}/auto-select", headers={"HX-Request": "true"}).text
    assert "CLIP added 1 pick" in added and "a bridge (seed 102)" in added and "Your 1 pick stays" in added
    assert f'hx-post="/rounds/{round_id}/auto-select/undo' in added
    assert f'id="picked-{round_id}" hx-swap-oob="true">2<' in added  # the side table's count, without a reload
    with session_of(stub_app) as session:
        picks = {s.candidate_id: (s.by, s.rule, s.user_id) for s in session.scalars(select(Selection))}
    assert set(picks) == {ids[0], ids[2]}  # the person's pick kept, the thumbed-down cat not taken
    assert picks[ids[0]] == ("human", "thumbs up", 1)
    assert picks[ids[2]][0] == "clip" and picks[ids[2]][1] == "guarded" and picks[ids[2]][2]  # the rule by name

    undone = stub_app.post(f"/rounds/{round_id}/auto-select/undo").text
    assert "Undone: CLIP&#39;s 1 pick removed" in undone and "Train round 2 with 1 selected" in text_of(undone)
    with session_of(stub_app) as session:
        assert list(session.scalars(select(Selection.candidate_id))) == [ids[0]]
    assert "Nothing to undo" in stub_app.post(f"/rounds/{round_id}/auto-select/undo").text

    stub_app.post(f"/rounds/{round_id}/auto-select")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    with session_of(stub_app) as session:
        assert session.get(Round, latest_round(stub_app, style_id)).feedback == "mixed"
    page = stub_app.get(f"/styles/{style_id}").text
    assert "1 of your picks + 1 CLIP pick (guarded rule)" in page


def test_toggles_undo_what_they_did(stub_app):
    """Un-liking an image the like selected unselects it; a pick made before the like stays when un-liked."""
    style_id = create_style(stub_app)
    ids = finish_round(stub_app.settings, latest_round(stub_app, style_id))
    stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"})
    back = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"}).text  # the same thumb again
    assert 'data-action="select" aria-pressed="false"' in back and 'data-action="up" aria-pressed="false"' in back
    stub_app.post(f"/candidates/{ids[1]}/selected")  # picked first, liked afterwards, then un-liked
    stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "1"})
    kept = stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "1"}).text
    assert 'data-action="select" aria-pressed="true"' in kept
    with session_of(stub_app) as session:
        assert [(s.candidate_id, s.rule) for s in session.scalars(select(Selection))] == [(ids[1], None)]


def test_the_sort_order_chosen_is_remembered(stub_app):
    """A sort picked in the grid (htmx) or by its link is the one the style page opens with next time."""
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    finish_round(stub_app.settings, round_id)
    current = re.compile(r'class="seg on" aria-current="true"\s+hx-get="/rounds/\d+/grid\?sort=(\w+)"')
    assert current.findall(stub_app.get(f"/styles/{style_id}").text) == ["prompt"]
    stub_app.get(f"/rounds/{round_id}/grid?sort=style")
    assert current.findall(stub_app.get(f"/styles/{style_id}").text) == ["style"]  # no ?sort=: the last chosen
    assert current.findall(stub_app.get(f"/styles/{style_id}?sort=text").text) == ["text"]
    assert current.findall(stub_app.get(f"/styles/{style_id}").text) == ["text"]
    stub_app.get(f"/styles/{style_id}?sort=nonsense")  # an unknown order is neither shown nor kept
    assert current.findall(stub_app.get(f"/styles/{style_id}").text) == ["text"]
