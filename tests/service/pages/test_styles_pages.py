"""Style pages: the gallery, the new-style form (fields, errors, limits) and creating a style, the style page's own
notices, rename, edit and delete.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from app.domain.models import Round, Style
from app.infra import storage

from ..conftest import png_bytes
from ..factories import finish_round, run_round
from .helpers import FORM, create_style, latest_round, session_of


def test_styles_page_lists_styles_newest_first(stub_app):
    empty = stub_app.get("/")
    assert empty.status_code == 200 and "No styles yet" in empty.text and 'href="/styles/new"' in empty.text
    first = create_style(stub_app, descriptor="oil painting")
    second = create_style(stub_app, descriptor="line drawing")
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
    with session_of(stub_app) as session:
        assert session.scalar(select(func.count(Style.id))) == 0
    assert stub_app.dispatcher.rounds == []


def test_creating_a_style_starts_round_1_with_the_advanced_settings(stub_app):
    style_id = create_style(stub_app, adapter="lora", steps="12", learning_rate="2e-4", rank="8", seed="5")
    round_id = latest_round(stub_app, style_id)
    assert stub_app.dispatcher.rounds == [round_id]
    with session_of(stub_app) as session:
        style, rnd = session.get(Style, style_id), session.get(Round, round_id)
        assert (style.adapter_kind, style.base_model, style.descriptor) == ("lora", "tiny", "watercolor painting")
        assert style.settings == {"steps": 12, "seed": 5, "learning_rate": 2e-4, "rank": 8}
        assert rnd.number == 1 and rnd.total_steps == 12
        assert rnd.parameters["train"]["learning_rate"] == 2e-4 and rnd.parameters["train"]["seed"] == 5
        assert rnd.plan.adapter.model_dump() == {"kind": "lora", "rank": 8, "shared": False, "alpha": 8.0}
        assert storage.resolve(stub_app.settings.storage_root, style.reference_path).is_file()


def test_live_samples_are_set_on_the_new_style_form_and_kept_for_every_round(stub_app):
    """How often the live samples are drawn and what they show: the new-style form's Advanced, kept in the
    style's settings for its rounds; a round may set its own (API); too many or too long prompts are refused."""
    form = stub_app.get("/styles/new").text
    assert 'id="sample_every"' in form and 'id="sample_prompts"' in form and "a cat sleeping on a sofa" in form
    refused = stub_app.post("/styles/new", data=FORM | {"sample_prompts": "a\nb\nc\nd\ne", "sample_every": "-1"},
                            files={"image": ("ref.png", png_bytes(), "image/png")})
    assert refused.status_code == 422 and "Live samples draw at most 4 prompts, one per line." in refused.text
    assert "Live samples every must be between 0 and 100,000." in refused.text
    assert "a\nb\nc\nd\ne</textarea>" in refused.text  # what was typed is kept
    style_id = create_style(stub_app, sample_every="5", sample_prompts=" a red fox \n\n a  tea cup\n")
    with session_of(stub_app) as session:
        style, rnd = session.get(Style, style_id), session.get(Round, latest_round(stub_app, style_id))
        assert style.settings["sample_every"] == 5 and style.settings["sample_prompts"] == ["a red fox", "a tea cup"]
        assert rnd.parameters["train"]["sample_every"] == 5
        assert rnd.parameters["train"]["sample_prompts"] == ["a red fox", "a tea cup"]
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    bad = stub_app.post(f"/api/v1/styles/{style_id}/rounds", json={"sample_prompts": ["a"] * 5, "feedback": "clip"})
    assert bad.status_code == 422 and "sample_prompts" in bad.json()["detail"]
    own = stub_app.post(f"/api/v1/styles/{style_id}/rounds",
                        json={"sample_prompts": ["a  boat"], "sample_every": 0, "feedback": "clip"})
    assert own.status_code == 201, own.text
    assert own.json()["parameters"]["train"]["sample_prompts"] == ["a boat"]  # the round's own, cleaned
    assert own.json()["parameters"]["train"]["sample_every"] == 0


def test_base_model_is_a_choice_from_the_allowed_list(stub_app):
    from styledrop.model_sources import availability

    page = stub_app.get("/styles/new").text
    assert '<select id="base_model" name="base_model"' in page and '<option value="tiny"' in page
    options = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>',
                              page.split('id="base_model"')[1].split("</select>")[0]))
    for model, label in options.items():  # each choice says whether it is on this machine
        assert ("not on this machine" in label) == (not availability(model).available), (model, label)
    assert "not on this machine" not in options["tiny"]
    for model in options:  # and why not, under the choice
        if not availability(model).available:
            assert f"<code>{model}</code> ({availability(model).reason})" in html.unescape(page)
    bad = stub_app.post("/styles/new", data=FORM | {"base_model": "amused/amused-265"},
                        files={"image": ("ref.png", png_bytes(), "image/png")})
    assert bad.status_code == 422 and "Choose one of the base models offered" in bad.text


def test_one_seed_range_for_the_api_and_the_pages(stub_app):
    """The seed is 0 to 2^31-1 everywhere (app/domain/schemas.py: SEED_MAX), with the API's and the forms' words."""
    from app.domain.schemas import SEED_MAX

    too_big = str(SEED_MAX + 1)
    page = stub_app.post("/styles/new", data=FORM | {"seed": too_big},
                         files={"image": ("ref.png", png_bytes(), "image/png")})
    assert page.status_code == 422 and re.search(r'id="seed-error"[^>]*>Seed must be between 0 and 2,147,483,647',
                                                 page.text)
    style_id = create_style(stub_app, seed=str(SEED_MAX))  # the top of the range is accepted
    api = stub_app.post(f"/api/v1/styles/{style_id}/rounds", json={"seed": SEED_MAX + 1})
    assert api.status_code == 422 and "seed" in api.json()["detail"]
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    play = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1",
                                                                 "seed": too_big})
    assert play.status_code == 422 and "Seed must be between 0 and 2,147,483,647" in play.text
    gen = stub_app.post(f"/api/v1/styles/{style_id}/generations", json={"prompts": ["a cat"], "seed": SEED_MAX + 1})
    assert gen.status_code == 422 and "seed" in gen.json()["detail"]
    assert stub_app.dispatcher.generations == []


def test_the_styles_learning_rate_trains_every_round_and_its_rank_the_first(stub_app):
    style_id = create_style(stub_app, learning_rate="2e-4", rank="8")
    first = latest_round(stub_app, style_id)
    ids = finish_round(stub_app.settings, first)
    stub_app.post(f"/candidates/{ids[0]}/selected")
    stub_app.post(f"/styles/{style_id}/rounds", data={"feedback": "human"})
    with session_of(stub_app) as session:
        one, two = session.get(Round, first), session.get(Round, latest_round(stub_app, style_id))
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


def test_the_style_page_says_only_its_own_notices(tmp_path):
    """?notice= is a code from a fixed set: a link cannot put its own sentence in the page's alert box. With
    the job queue down, the new style is kept and its page says (by code) that round 1 did not start."""
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    from ..conftest import browser_session, make_settings

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


def test_manage_a_style_rename_edit_and_delete_after_confirmation(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    form = stub_app.get(f"/styles/{style_id}/edit").text
    assert '<label for="name">' in form and 'value="watercolor painting"' in form
    busy = stub_app.post(f"/styles/{style_id}/edit", data={"name": "Sunny", "descriptor": "oil painting"})
    assert busy.status_code == 409 and "Round 1 is queued and reads the descriptor" in busy.text
    assert "The name “Sunny” is saved." in busy.text  # the rename sent with the refused descriptor is kept
    with session_of(stub_app) as session:
        assert (session.get(Style, style_id).name, session.get(Style, style_id).descriptor) == \
            ("Sunny", "watercolor painting")
    assert stub_app.post(f"/styles/{style_id}/edit", data={"name": "x", "descriptor": " "}).status_code == 422
    finish_round(stub_app.settings, round_id)
    saved = stub_app.post(f"/styles/{style_id}/edit", data={"name": " My  sunny style ", "descriptor": "oil painting"},
                          follow_redirects=False)
    assert saved.status_code == 303
    with session_of(stub_app) as session:
        style = session.get(Style, style_id)
        assert (style.name, style.descriptor) == ("My sunny style", "oil painting")
    assert "My sunny style" in stub_app.get("/").text and "<h1>My sunny style</h1>" in stub_app.get(
        f"/styles/{style_id}").text

    confirm = stub_app.get(f"/styles/{style_id}/delete").text
    assert "Delete “My sunny style”?" in confirm and "4 candidate images" in confirm
    with session_of(stub_app) as session:  # still there after only looking at the confirmation
        assert session.get(Style, style_id) is not None
    gone = stub_app.post(f"/styles/{style_id}/delete", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/?notice=deleted"
    assert "The style is deleted, with its rounds, adapters and images." in stub_app.get(gone.headers["location"]).text
    with session_of(stub_app) as session:
        assert session.get(Style, style_id) is None
    assert stub_app.get(f"/styles/{style_id}/delete").status_code == 404


def test_a_style_whose_round_is_queued_or_running_is_cancelled_and_deleted_in_one_step(stub_app):
    """No trip back to the style page to cancel first: the confirmation offers "Cancel round N and delete". A
    queued round ends at once and the style goes; a running one stops at its next step while the page waits
    (polling), then the page posts the delete itself and the gallery says it is deleted."""
    queued = create_style(stub_app)
    confirm = stub_app.get(f"/styles/{queued}/delete").text
    assert "Cancel round 1 and delete the style" in confirm and 'name="cancel"' in confirm
    assert " disabled" not in confirm
    gone = stub_app.post(f"/styles/{queued}/delete", data={"cancel": "1"}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/?notice=deleted"
    with session_of(stub_app) as session:
        assert session.get(Style, queued) is None

    running = create_style(stub_app)
    round_id = latest_round(stub_app, running)
    run_round(stub_app.settings, round_id)
    waiting = stub_app.post(f"/styles/{running}/delete", data={"cancel": "1"})
    assert waiting.status_code == 202 and "Round 1 is stopping" in waiting.text
    assert f'hx-get="/styles/{running}/delete/when-stopped" hx-trigger="every 2s"' in waiting.text
    with session_of(stub_app) as session:
        assert session.get(Round, round_id).cancel_requested and session.get(Style, running) is not None
    assert "Round 1 is stopping" in stub_app.get(f"/styles/{running}/delete/when-stopped").text
    with session_of(stub_app) as session:  # the worker reads the flag and ends the round
        session.get(Round, round_id).status = "cancelled"
        session.commit()
    stopped = stub_app.get(f"/styles/{running}/delete/when-stopped").text
    assert f'hx-post="/styles/{running}/delete" hx-trigger="load"' in stopped and "every 2s" not in stopped
    posted = stub_app.post(f"/styles/{running}/delete", headers={"HX-Request": "true"}, follow_redirects=False)
    assert posted.status_code == 204 and posted.headers["hx-redirect"] == "/?notice=deleted"
    with session_of(stub_app) as session:
        assert session.get(Style, running) is None


def test_a_styles_live_samples_change_on_its_edit_page_for_the_next_rounds(stub_app):
    """The edit page sets how often the live samples are drawn and what they show, for the rounds started from
    now on (a running round keeps its own); blank goes back to the server's defaults."""
    style_id = create_style(stub_app)
    form = stub_app.get(f"/styles/{style_id}/edit").text
    assert 'id="sample_every"' in form and 'id="sample_prompts"' in form
    keep = {"name": "", "descriptor": "watercolor painting"}
    bad = stub_app.post(f"/styles/{style_id}/edit",
                        data=keep | {"sample_every": "-3", "sample_prompts": "a\nb\nc\nd\ne"})
    assert bad.status_code == 422 and "Live samples every must be between 0 and 100,000." in bad.text
    assert "Live samples draw at most 4 prompts, one per line." in bad.text
    saved = stub_app.post(f"/styles/{style_id}/edit",
                          data=keep | {"sample_every": "3", "sample_prompts": "a red fox\n"}, follow_redirects=False)
    assert saved.status_code == 303
    with session_of(stub_app) as session:
        assert session.get(Style, style_id).settings["sample_prompts"] == ["a red fox"]
        assert session.get(Style, style_id).settings["sample_every"] == 3
    assert "a red fox</textarea>" in stub_app.get(f"/styles/{style_id}/edit").text
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    rnd = stub_app.post(f"/api/v1/styles/{style_id}/rounds", json={"feedback": "clip"}).json()
    assert rnd["parameters"]["train"]["sample_prompts"] == ["a red fox"]
    assert rnd["parameters"]["train"]["sample_every"] == 3
    finish_round(stub_app.settings, rnd["id"])
    stub_app.post(f"/styles/{style_id}/edit", data=keep | {"sample_every": "", "sample_prompts": ""})
    with session_of(stub_app) as session:
        assert "sample_prompts" not in session.get(Style, style_id).settings
