"""The HTML pages (app/pages/, templates/, static/) with FastAPI's TestClient: no worker, no browser.

Rounds are brought to "running" or "succeeded" by writing the database as the worker would (factories.py)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from app.domain.models import Candidate, Generation, Rating, Round, Selection, Style, utcnow
from app.infra import storage
from app.infra.db import session_factory

from .conftest import png_bytes
from .factories import finish_generation, finish_round, run_round

ROOT = Path(__file__).resolve().parents[2]
FORM = {"content": "a house", "descriptor": "watercolor painting", "base_model": "tiny", "adapter": "styledrop",
        "steps": "10", "seed": "1"}


def _create(client, **fields) -> int:
    response = client.post("/styles/new", data=FORM | fields, files={"image": ("ref.png", png_bytes(), "image/png")},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1].split("?")[0])


def _session(client):
    return session_factory(client.settings)()


def _latest_round(client, style_id: int) -> int:
    with _session(client) as session:
        return session.scalar(select(Round.id).where(Round.style_id == style_id).order_by(Round.number.desc()))


# ---- rendering ----------------------------------------------------------------------------------------------

def test_styles_page_lists_styles_newest_first(stub_app):
    empty = stub_app.get("/")
    assert empty.status_code == 200 and "No styles yet" in empty.text and 'href="/styles/new"' in empty.text
    first = _create(stub_app, descriptor="oil painting")
    second = _create(stub_app, descriptor="line drawing")
    page = stub_app.get("/").text
    assert page.index("line drawing") < page.index("oil painting")  # newest first
    assert f'src="/api/v1/styles/{first}/reference"' in page and f'/styles/{second}"' in page
    assert "1 round" in page and "queued" in page
    assert re.search(r'<img[^>]+alt="Reference image of style \d+: a house in line drawing style"', page)


def test_new_style_page_has_labels_examples_and_advanced_defaults(stub_app):
    page = stub_app.get("/styles/new").text
    for name in ("image", "content", "descriptor", "base_model", "steps", "learning_rate", "rank", "seed"):
        assert f'<label for="{name}">' in page, name
        assert f'id="{name}"' in page
    assert 'type="file"' in page and 'accept="image/png,image/jpeg,image/webp"' in page
    assert '<datalist id="descriptors">' in page
    for descriptor in ("watercolor painting", "oil painting", "line drawing", "flat cartoon illustration", "sticker",
                       "3d rendering", "kid crayon drawing", "wooden sculpture"):
        assert f'<option value="{descriptor}">' in page
    assert 'value="styledrop"' in page and 'value="lora"' in page
    assert "<details class=\"advanced\"" in page and 'name="steps" value="10"' in page  # the server's default
    assert "/static/upload.js" in page and 'id="dropzone"' in page


def test_form_errors_are_shown_next_to_fields_and_keep_what_was_typed(stub_app):
    response = stub_app.post("/styles/new", data=FORM | {"descriptor": "  ", "content": "a red barn", "steps": "abc"},
                             files={"image": ("notes.txt", b"not a picture", "text/plain")})
    assert response.status_code == 422
    page = response.text
    assert 'value="a red barn"' in page  # kept
    assert re.search(r'id="descriptor-error"[^>]*>The style descriptor is empty', page)
    assert re.search(r'id="image-error"[^>]*>notes.txt: The upload is not an image[^<]*Choose another file', page)
    assert re.search(r'id="steps-error"[^>]*>Training steps must be a whole number', page)
    assert 'id="descriptor"' in page and 'aria-invalid="true" aria-describedby="descriptor-error' in page
    assert "<details class=\"advanced\" open>" in page  # the error inside Advanced is visible

    # A good image with another error: the page asks to choose the file again (a browser cannot keep it).
    again = stub_app.post("/styles/new", data=FORM | {"content": ""},
                          files={"image": ("ref.png", png_bytes(), "image/png")})
    assert again.status_code == 422 and "Please choose the image again" in again.text
    assert 'value="watercolor painting"' in again.text
    missing = stub_app.post("/styles/new", data=FORM)
    assert missing.status_code == 422 and "Choose a reference image" in missing.text
    with _session(stub_app) as session:
        assert session.scalar(select(func.count(Style.id))) == 0
    assert stub_app.dispatcher.rounds == []


def test_creating_a_style_starts_round_1_with_the_advanced_settings(stub_app):
    style_id = _create(stub_app, adapter="lora", steps="12", learning_rate="2e-4", rank="8", seed="5")
    round_id = _latest_round(stub_app, style_id)
    assert stub_app.dispatcher.rounds == [round_id]
    with _session(stub_app) as session:
        style, rnd = session.get(Style, style_id), session.get(Round, round_id)
        assert (style.adapter_kind, style.base_model, style.descriptor) == ("lora", "tiny", "watercolor painting")
        assert style.settings == {"steps": 12, "seed": 5, "learning_rate": 2e-4, "rank": 8}
        assert rnd.number == 1 and rnd.total_steps == 12
        assert rnd.parameters["train"]["learning_rate"] == 2e-4 and rnd.parameters["train"]["seed"] == 5
        assert rnd.plan.adapter.model_dump() == {"kind": "lora", "rank": 8, "shared": False, "alpha": 8.0}
        assert storage.resolve(stub_app.settings.storage_root, style.reference_path).is_file()


def test_round_fragment_polls_while_running_and_stops_when_finished(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
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
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id)
    cancelled = stub_app.post(f"/rounds/{round_id}/cancel", headers={"HX-Request": "true"})
    assert cancelled.status_code == 200 and "Stopping" in cancelled.text
    with _session(stub_app) as session:
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


def test_rating_grid_groups_sorts_and_documents_the_shortcuts(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
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
    assert "0</strong> selected" in page and "Train round 2 with 0 selected" in page
    assert re.search(r'<li class="card" id="cand-\d+" data-candidate="\d+" tabindex="-1"', page)  # grid.js roves
    assert "<script>" not in page and " onclick=" not in page  # CSP: no inline scripts or handlers

    by_style = stub_app.get(f"/rounds/{round_id}/grid?sort=style").text  # style scores fall with the index
    order = [int(i) for i in re.findall(r'id="cand-(\d+)"', by_style)]
    assert order == ids  # groups by best style score (cat first), best first inside
    by_text = stub_app.get(f"/rounds/{round_id}/grid?sort=text").text  # text scores rise with the index
    assert [int(i) for i in re.findall(r'id="cand-(\d+)"', by_text)] == [ids[3], ids[2], ids[1], ids[0]]
    assert 'aria-current="true"' in by_text and "hx-trigger" not in by_text


def test_rating_endpoint_records_one_rating_per_user_and_candidate(stub_app):
    style_id = _create(stub_app)
    ids = finish_round(stub_app.settings, _latest_round(stub_app, style_id))
    up = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"}, headers={"HX-Request": "true"})
    assert up.status_code == 200
    assert up.text.lstrip().startswith(f'<li class="card selected liked" id="cand-{ids[0]}"')  # the card itself
    assert re.search(r'class="vote up" data-action="up" aria-pressed="true"', up.text)
    assert 'id="selbar-' in up.text and 'hx-swap-oob="true"' in up.text and "Train round 2 with 1 selected" in up.text
    down = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "-1"})
    assert re.search(r'class="vote down" data-action="down" aria-pressed="true"', down.text)
    stub_app.post(f"/candidates/{ids[1]}/rating", data={"value": "1"})
    stub_app.post(f"/candidates/{ids[1]}/rating", data={"value": "1"})  # the same thumb again takes it back
    with _session(stub_app) as session:
        ratings = session.execute(select(Rating.candidate_id, Rating.value)).all()
        assert ratings == [(ids[0], -1)]  # one row per user and candidate, the latest value
        assert session.scalar(select(func.count(Selection.id))) == 0  # taking the like back took its pick too
    assert stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "3"}).status_code == 422
    assert stub_app.put("/candidates/99999/rating", data={"value": "1"}).status_code == 404
    # The API sees the same rating.
    assert stub_app.get(f"/api/v1/candidates/{ids[0]}").json()["my_rating"] == -1


def test_select_toggle_auto_select_and_train_the_next_round(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, round_id)
    toggled = stub_app.post(f"/candidates/{ids[2]}/selected").text
    assert 'data-action="select" aria-pressed="true"' in toggled and "1 selected" in toggled
    assert 'aria-pressed="false"' in stub_app.post(f"/candidates/{ids[2]}/selected").text

    picked = stub_app.post(f"/rounds/{round_id}/auto-select").text
    assert "CLIP added 2 picks" in picked and picked.count("✓ CLIP pick") == 2
    assert "Train round 2 with 2 selected" in picked and f'id="picked-{round_id}" hx-swap-oob="true">2<' in picked

    started = stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == f"/styles/{style_id}"
    second = _latest_round(stub_app, style_id)
    assert stub_app.dispatcher.rounds == [round_id, second]
    with _session(stub_app) as session:
        rnd = session.get(Round, second)
        assert rnd.number == 2 and rnd.feedback == "clip" and len(rnd.parameters["training_set"]) == 3
    page = stub_app.get(f"/styles/{style_id}").text
    assert 'hx-trigger="every 2s"' in page and "Show its 4 candidates" in page  # round 1 folded away
    assert "Train round" not in page  # no second start while round 2 runs
    refused = stub_app.post(f"/styles/{style_id}/rounds", data={}, follow_redirects=False)
    assert refused.status_code == 409 and "Round 2 of style" in refused.text  # the style page, with why
    assert "is queued; wait for it" in refused.text and refused.headers["content-type"].startswith("text/html")


def test_rounds_compared_with_an_inline_svg_chart(stub_app):
    style_id = _create(stub_app)
    first = _latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    finish_round(stub_app.settings, _latest_round(stub_app, style_id))
    page = stub_app.get(f"/styles/{style_id}").text
    assert '<svg class="chart"' in page and page.count("<polyline") == 2 and "<script" not in page.split("<svg")[1]
    assert "round 1: text 0.215, style 0.670; round 2: text 0.215, style 0.670" in page  # the chart's description
    assert "Rounds side by side" in page and page.count('<th scope="row">') == 2
    assert 'href="/api/v1/styles/%d/adapter"' % style_id in page and "round 2 · .safetensors" in page


def test_playground_starts_a_generation_and_polls_it(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    before = stub_app.get(f"/styles/{style_id}/playground").text
    assert "no finished round yet" in before and 'id="generate" disabled' in before
    finish_round(stub_app.settings, round_id)
    page = stub_app.get(f"/styles/{style_id}/playground").text
    assert '<label for="prompts">' in page and '<label for="num_images">' in page and '<label for="seed">' in page
    assert "disabled" not in page.split('id="generate"')[1].split(">")[0]

    bad = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": " \n ", "num_images": "99", "seed": "1"})
    assert bad.status_code == 422 and "Write at least one prompt" in bad.text and "between 1 and 16" in bad.text
    started = stub_app.post(f"/styles/{style_id}/playground",
                            data={"prompts": "a cat\n\na boat\n", "num_images": "2", "seed": "7"},
                            follow_redirects=False)
    assert started.status_code == 303
    assert len(stub_app.dispatcher.generations) == 1
    gen_id = stub_app.dispatcher.generations[0]
    with _session(stub_app) as session:
        generation = session.get(Generation, gen_id)
        assert generation.request["prompts"] == ["a cat", "a boat"] and generation.request["seed"] == 7
    queued = stub_app.get(f"/generations/{gen_id}/panel").text
    assert 'hx-trigger="every 2s"' in queued and queued.count('class="slot"') == 4

    finish_generation(stub_app.settings, style_id, gen_id, 4)  # as the worker
    done = stub_app.get(f"/generations/{gen_id}/panel").text
    assert "hx-trigger" not in done and done.count("Download</a>") == 4
    assert f'href="/api/v1/generations/{gen_id}/images/3" download="style{style_id}-gen{gen_id}-003.png"' in done
    assert done.count(">a cat<") == 2 and done.count(">a boat<") == 2  # tiled prompts
    assert all(f"seed {7 + j} · #{j + 1}" in done for j in range(4))  # each image's own seed: the request's + j
    assert stub_app.get(f"/api/v1/generations/{gen_id}/images/3").status_code == 200


def test_static_files_scripts_and_no_cdn(stub_app):
    script = stub_app.get("/static/grid.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for needle in ('"ArrowRight"', '"ArrowLeft"', '"j"', '"k"', '"u"', '"+"', '"d"', '"-"', '"s"', '" "',
                   "htmx:afterSwap", "localStorage", "showModal"):
        assert needle in script.text, needle
    htmx = stub_app.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("/*! htmx.org 2.") and "0BSD" in htmx.text[:200]
    assert stub_app.get("/static/htmx.LICENSE").status_code == 200
    assert stub_app.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert stub_app.get("/static/upload.js").status_code == 200
    assert stub_app.get("/static/../app/main.py").status_code == 404
    assert stub_app.get("/static/nope.js").status_code == 404
    style_id = _create(stub_app)
    finish_round(stub_app.settings, _latest_round(stub_app, style_id))
    for url in ("/", "/styles/new", f"/styles/{style_id}", f"/styles/{style_id}/playground",
                f"/styles/{style_id}/compare", "/jobs", f"/styles/{style_id}/edit"):
        page = stub_app.get(url).text
        assert not re.search(r'(src|href)="(https?:)?//', page), url  # everything is served from here
        assert '<script src="/static/htmx.min.js' in page
    for path in list((ROOT / "templates").iterdir()) + list((ROOT / "static").glob("*.js")):
        if path.name != "htmx.min.js":
            assert not re.search(r"(src|href)=[\"']?(https?:)?//", path.read_text()), path


def test_unknown_ids_answer_404_pages(stub_app):
    for url in ("/styles/999", "/styles/999/playground", "/rounds/999/panel", "/generations/999/panel"):
        response = stub_app.get(url)
        assert response.status_code == 404 and "does not exist" in response.text
        assert response.headers["content-type"].startswith("text/html")


def test_the_style_page_says_only_its_own_notices(tmp_path):
    """?notice= is a code from a fixed set: a link cannot put its own sentence in the page's alert box. With
    the job queue down, the new style is kept and its page says (by code) that round 1 did not start."""
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    from .conftest import browser_session, make_settings

    settings = make_settings(tmp_path / "data", redis_url="redis://127.0.0.1:9/0")  # nothing listens there
    upgrade(settings)
    with TestClient(create_app(settings)) as client:  # the real Celery dispatcher, its broker unreachable
        browser_session(client)
        response = client.post("/styles/new", data=FORM, files={"image": ("ref.png", png_bytes(), "image/png")},
                               follow_redirects=False)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.endswith("?notice=queue-down"), location
        page = client.get(location).text
        assert 'role="alert">The style is saved, but its first round did not start: the job queue' in page
        forged = client.get(location.split("?")[0] + "?notice=Your+account+is+locked%2C+call+us").text
        assert "account is locked" not in forged and 'class="alert"' not in forged


def test_page_urls_get_html_errors_and_api_urls_json(stub_app):
    for url, status in (("/styles/abc", 422), ("/no/such/page", 404), ("/rounds/abc/panel", 422)):
        response = stub_app.get(url)
        assert response.status_code == status and response.headers["content-type"].startswith("text/html"), url
        assert "<h1>" in response.text
    for url, status in (("/api/v1/styles/abc", 422), ("/api/v1/no/such/thing", 404)):
        response = stub_app.get(url)
        assert response.status_code == status and isinstance(response.json()["detail"], str), url


def test_one_seed_range_for_the_api_and_the_pages(stub_app):
    """The seed is 0 to 2^31-1 everywhere (app/domain/schemas.py: SEED_MAX), with the API's and the forms' words."""
    from app.domain.schemas import SEED_MAX

    too_big = str(SEED_MAX + 1)
    page = stub_app.post("/styles/new", data=FORM | {"seed": too_big},
                         files={"image": ("ref.png", png_bytes(), "image/png")})
    assert page.status_code == 422 and re.search(r'id="seed-error"[^>]*>Seed must be between 0 and 2,147,483,647',
                                                 page.text)
    style_id = _create(stub_app, seed=str(SEED_MAX))  # the top of the range is accepted
    api = stub_app.post(f"/api/v1/styles/{style_id}/rounds", json={"seed": SEED_MAX + 1})
    assert api.status_code == 422 and "seed" in api.json()["detail"]
    finish_round(stub_app.settings, _latest_round(stub_app, style_id))
    play = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1",
                                                                 "seed": too_big})
    assert play.status_code == 422 and "Seed must be between 0 and 2,147,483,647" in play.text
    gen = stub_app.post(f"/api/v1/styles/{style_id}/generations", json={"prompts": ["a cat"], "seed": SEED_MAX + 1})
    assert gen.status_code == 422 and "seed" in gen.json()["detail"]
    assert stub_app.dispatcher.generations == []


def test_the_styles_learning_rate_trains_every_round_and_its_rank_the_first(stub_app):
    style_id = _create(stub_app, learning_rate="2e-4", rank="8")
    first = _latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    with _session(stub_app) as session:
        one, two = session.get(Round, first), session.get(Round, _latest_round(stub_app, style_id))
        assert one.plan.adapter.model_dump() == {"kind": "styledrop", "rank": 8, "shared": True, "alpha": None}
        assert two.number == 2 and two.plan.adapter.model_dump() == {"kind": "styledrop", "rank": 32, "shared": False, "alpha": None}
        assert one.parameters["train"]["learning_rate"] == two.parameters["train"]["learning_rate"] == 2e-4
    # The API takes the same fields, with the same limits.
    made = stub_app.post("/api/v1/styles", data={"content": "a house", "descriptor": "sticker",
                                                 "learning_rate": "1e-4", "rank": "4"},
                         files={"image": ("ref.png", png_bytes(), "image/png")})
    assert made.status_code == 201 and made.json()["settings"] == {"learning_rate": 1e-4, "rank": 4}
    refused = stub_app.post("/api/v1/styles", data={"content": "a house", "descriptor": "sticker", "rank": "0"},
                            files={"image": ("ref.png", png_bytes(), "image/png")})
    assert refused.status_code == 422 and "rank" in refused.json()["detail"]


def test_clip_assistance_adds_to_the_persons_picks_and_undoes_in_one_click(stub_app):
    """CLIP never removes a pick, never picks a thumbed-down image, says what it added, and Undo takes back
    exactly that; each selection records who made it, and the next round says "both"."""
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, round_id)  # CLIP alone would pick ids[1] (a cat) and ids[2] (a bridge)
    stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"})  # the person's pick, by a like
    stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "-1"})  # CLIP's favourite cat, thumbed down
    added = stub_app.post(f"/rounds/{round_id}/auto-select", headers={"HX-Request": "true"}).text
    assert "CLIP added 1 pick" in added and "a bridge (seed 102)" in added and "Your 1 pick stays" in added
    assert f'hx-post="/rounds/{round_id}/auto-select/undo' in added
    assert f'id="picked-{round_id}" hx-swap-oob="true">2<' in added  # the side table's count, without a reload
    with _session(stub_app) as session:
        picks = {s.candidate_id: (s.by, s.rule, s.user_id) for s in session.scalars(select(Selection))}
    assert set(picks) == {ids[0], ids[2]}  # the person's pick kept, the thumbed-down cat not taken
    assert picks[ids[0]] == ("human", "thumbs up", 1)
    assert picks[ids[2]][0] == "clip" and picks[ids[2]][1] == "guarded" and picks[ids[2]][2]  # the rule by name

    undone = stub_app.post(f"/rounds/{round_id}/auto-select/undo").text
    assert "Undone: CLIP&#39;s 1 pick removed" in undone and "Train round 2 with 1 selected" in undone
    with _session(stub_app) as session:
        assert list(session.scalars(select(Selection.candidate_id))) == [ids[0]]
    assert "Nothing to undo" in stub_app.post(f"/rounds/{round_id}/auto-select/undo").text

    stub_app.post(f"/rounds/{round_id}/auto-select")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    with _session(stub_app) as session:
        assert session.get(Round, _latest_round(stub_app, style_id)).feedback == "both"
    page = stub_app.get(f"/styles/{style_id}").text
    assert "your picks + CLIP&#39;s" in page


def test_toggles_undo_what_they_did(stub_app):
    """Un-liking an image the like selected unselects it; a pick made before the like stays when un-liked."""
    style_id = _create(stub_app)
    ids = finish_round(stub_app.settings, _latest_round(stub_app, style_id))
    stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"})
    back = stub_app.put(f"/candidates/{ids[0]}/rating", data={"value": "1"}).text  # the same thumb again
    assert 'data-action="select" aria-pressed="false"' in back and 'data-action="up" aria-pressed="false"' in back
    stub_app.post(f"/candidates/{ids[1]}/selected")  # picked first, liked afterwards, then un-liked
    stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "1"})
    kept = stub_app.put(f"/candidates/{ids[1]}/rating", data={"value": "1"}).text
    assert 'data-action="select" aria-pressed="true"' in kept
    with _session(stub_app) as session:
        assert [(s.candidate_id, s.rule) for s in session.scalars(select(Selection))] == [(ids[1], None)]


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


def test_gallery_card_shows_the_live_phase_and_ready_to_rate(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=10, phase="candidates", made=1)
    gallery = stub_app.get("/").text
    assert f'hx-get="/styles/{style_id}/card" hx-trigger="every 3s"' in gallery  # the card polls itself
    card = stub_app.get(f"/styles/{style_id}/card").text
    assert "Round 1: drawing (1 of 2)" in card and "left" in card
    finish_round(stub_app.settings, round_id)
    card = stub_app.get(f"/styles/{style_id}/card").text
    assert "ready to rate" in card and "hx-trigger" not in card  # polling stops
    stub_app.put(f"/candidates/{_candidate_ids(stub_app, round_id)[0]}/rating", data={"value": "-1"})
    assert "round 1: rated 1 of 5" in stub_app.get("/").text  # 1 drawn while running + 4
    assert stub_app.get("/styles/99999/card").status_code == 404


def _candidate_ids(client, round_id: int) -> list[int]:
    with _session(client) as session:
        return list(session.scalars(select(Candidate.id).where(Candidate.round_id == round_id)
                                    .order_by(Candidate.id)))


def test_compare_view_shows_the_same_prompt_and_seed_from_every_round(stub_app):
    style_id = _create(stub_app)
    first = _latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    second = _latest_round(stub_app, style_id)
    later = finish_round(stub_app.settings, second)  # the same contents and seeds (100..103), as the worker draws them
    page = stub_app.get(f"/styles/{style_id}/compare")
    assert page.status_code == 200 and "Compare rounds" in page.text
    assert "4 prompt and seed pairs drawn by more than one round" in page.text
    row = page.text.split('<th scope="row">a cat<br><span class="muted small">seed 100</span></th>')[1].split("</tr>")[0]
    assert f'src="/api/v1/candidates/{ids[0]}/image"' in row and f'src="/api/v1/candidates/{later[0]}/image"' in row
    assert row.index(f"candidates/{ids[0]}/") < row.index(f"candidates/{later[0]}/")  # round 1, then round 2
    assert '<svg class="chart"' in page.text
    assert f'href="/styles/{style_id}/compare"' in stub_app.get(f"/styles/{style_id}").text
    assert stub_app.get("/styles/99999/compare").status_code == 404


def test_chart_axes_fit_the_data():
    from app.pages.chart import RoundScores, scores_chart

    svg = str(scores_chart([RoundScores(1, 0.2151, 0.670), RoundScores(2, 0.2161, 0.671)]))
    ticks = [float(t) for t in re.findall(r'class="tick">(-?\d\.\d+)<', svg)]
    text_ticks, style_ticks = ticks[:3], ticks[3:6]
    assert 0.2145 < min(text_ticks) and max(text_ticks) < 0.2168  # fitted to the text scores alone
    assert 0.669 < min(style_ticks) and max(style_ticks) < 0.672
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert abs(ys[0] - ys[1]) > 40  # a 0.001 difference is plainly visible


def test_loss_curve_is_bounded_and_drawn_while_training(stub_app):
    from app.domain.loss_curve import LOSS_POINTS, add_loss_point

    curve: list = []
    for step in range(1, 1001):
        curve = add_loss_point(curve, step, 2.0 / step)
    assert len(curve) <= LOSS_POINTS and curve[0] == [1, 2.0] and curve[-1] == [1000, 0.002]
    assert add_loss_point([[1, 1.0], [2, 0.9]], 2, 0.5) == [[1, 1.0], [2, 0.5]]  # a resumed step replaces
    assert add_loss_point([[1, 1.0]], 2, float("nan")) == [[1, 1.0]]

    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    run_round(stub_app.settings, round_id, step=4, phase="training")
    assert "loss-chart" not in stub_app.get(f"/rounds/{round_id}/panel").text  # no curve yet
    with _session(stub_app) as session:
        session.get(Round, round_id).loss_curve = [[1, 1.5], [2, 1.2], [3, 1.3], [4, 1.1]]
        session.commit()
    panel = stub_app.get(f"/rounds/{round_id}/panel").text
    assert '<svg class="chart loss-chart"' in panel and "1.100 at step 4 of 10" in panel
    assert panel.count("<polyline") == 1 and "<script" not in panel


def test_manage_a_style_rename_edit_and_delete_after_confirmation(stub_app):
    style_id = _create(stub_app)
    round_id = _latest_round(stub_app, style_id)
    form = stub_app.get(f"/styles/{style_id}/edit").text
    assert '<label for="name">' in form and 'value="watercolor painting"' in form
    busy = stub_app.post(f"/styles/{style_id}/edit", data={"name": "Sunny", "descriptor": "oil painting"})
    assert busy.status_code == 409 and "Round 1 is queued and reads the descriptor" in busy.text
    assert stub_app.post(f"/styles/{style_id}/edit", data={"name": "x", "descriptor": " "}).status_code == 422
    finish_round(stub_app.settings, round_id)
    saved = stub_app.post(f"/styles/{style_id}/edit", data={"name": " My  sunny style ", "descriptor": "oil painting"},
                          follow_redirects=False)
    assert saved.status_code == 303
    with _session(stub_app) as session:
        style = session.get(Style, style_id)
        assert (style.name, style.descriptor) == ("My sunny style", "oil painting")
    assert "My sunny style" in stub_app.get("/").text and "<h1>My sunny style</h1>" in stub_app.get(
        f"/styles/{style_id}").text

    confirm = stub_app.get(f"/styles/{style_id}/delete").text
    assert "Delete “My sunny style”?" in confirm and "4 candidate images" in confirm
    with _session(stub_app) as session:  # still there after only looking at the confirmation
        assert session.get(Style, style_id) is not None
    gone = stub_app.post(f"/styles/{style_id}/delete", follow_redirects=False)
    assert gone.status_code == 303
    with _session(stub_app) as session:
        assert session.get(Style, style_id) is None
    assert stub_app.get(f"/styles/{style_id}/delete").status_code == 404


def test_base_model_is_a_choice_from_the_allowed_list(stub_app):
    page = stub_app.get("/styles/new").text
    assert '<select id="base_model" name="base_model"' in page and '<option value="tiny"' in page
    bad = stub_app.post("/styles/new", data=FORM | {"base_model": "amused/amused-265"},
                        files={"image": ("ref.png", png_bytes(), "image/png")})
    assert bad.status_code == 422 and "Choose one of the base models offered" in bad.text


def test_jobs_view_lists_queued_and_running_jobs_with_queue_position(stub_app):
    assert "Nothing is queued or running" in stub_app.get("/jobs").text
    first = _create(stub_app, descriptor="oil painting")
    second = _create(stub_app, descriptor="line drawing")
    first_round, second_round = _latest_round(stub_app, first), _latest_round(stub_app, second)
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


def test_api_docs_are_served_offline(stub_app):
    page = stub_app.get("/docs")
    assert page.status_code == 200 and '<div id="swagger-ui">' in page.text
    assert "cdn" not in page.text.lower() and "<script>" not in page.text  # local files, no inline script
    for path in re.findall(r'(?:src|href)="(/static/[^"?]+)', page.text):
        assert stub_app.get(path).status_code == 200, path
    assert "Apache License" in stub_app.get("/static/swagger-ui/swagger-ui.LICENSE").text
    assert stub_app.get("/redoc").status_code == 404


def test_the_evaluation_panel_starts_a_job_and_shows_the_table_and_chart(stub_app):
    from app.domain.models import Evaluation

    style_id = _create(stub_app)
    assert "Available once a round has finished" in stub_app.get(f"/styles/{style_id}/evaluation").text
    finish_round(stub_app.settings, _latest_round(stub_app, style_id))
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
