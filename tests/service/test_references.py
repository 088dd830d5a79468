"""A style made from several reference images keeps every one: stored, shown, trained on in every round."""

from __future__ import annotations

from .conftest import png_bytes, wait_for

API = "/api/v1"
TINY_ROUND = {"steps": 4, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_steps": 2}


def test_a_two_reference_style_trains_every_round_on_both(live):
    files = [("image", ("one.png", png_bytes(64), "image/png")), ("more_images", ("two.png", png_bytes(48), "image/png"))]
    response = live.post(f"{API}/styles", files=files, data={"content": "a house", "descriptor": "sticker"})
    assert response.status_code == 201, response.text
    style = response.json()
    assert len(style["reference_urls"]) == 2
    sizes = [live.get(url).content for url in style["reference_urls"]]
    assert sizes[0] != sizes[1] and live.get(f"{API}/styles/{style['id']}/references/2").status_code == 404

    first = live.post(f"{API}/styles/{style['id']}/rounds", json=TINY_ROUND).json()
    assert wait_for(live, f"{API}/rounds/{first['id']}")["status"] == "succeeded"
    cat = live.get(f"{API}/rounds/{first['id']}/candidates").json()["items"]
    assert cat[0]["clip_style_score"] is not None  # scored against both references
    assert live.put(f"{API}/candidates/{cat[0]['id']}/selected", json={"selected": True}).status_code == 200
    second = live.post(f"{API}/styles/{style['id']}/rounds", json=TINY_ROUND).json()
    done = wait_for(live, f"{API}/rounds/{second['id']}")
    assert done["status"] == "succeeded", done
    training = done["parameters"]["training_set"]
    assert [t["content"] for t in training] == ["a house", "a house", "a cat"]  # both references, then the pick
    assert len({t["image"] for t in training[:2]}) == 2

    page = live.get(f"/styles/{style['id']}").text
    assert f"/api/v1/styles/{style['id']}/references/1" in page and "2 references show" in page


def test_too_many_references_are_refused_and_nothing_is_stored(stub_app):
    files = [("image", ("a.png", png_bytes(), "image/png"))] + \
            [("more_images", (f"{i}.png", png_bytes(), "image/png")) for i in range(4)]
    response = stub_app.post(f"{API}/styles", files=files, data={"content": "a house", "descriptor": "sticker"})
    assert response.status_code == 422 and "at most 4" in response.json()["detail"]
    assert stub_app.get(f"{API}/styles").json()["items"] == []


def test_each_reference_has_its_own_content_in_the_api_and_the_pages(stub_app):
    """As `styledrop train` takes one content per image: `contents`, parallel to the images, trains each
    reference with its own, is shown on the style page, and a list that does not fit is refused."""
    from .conftest import csrf_token

    files = [("image", ("one.png", png_bytes(64), "image/png")), ("more_images", ("two.png", png_bytes(48), "image/png"))]
    form = {"content": "a house", "descriptor": "sticker"}
    refused = stub_app.post(f"{API}/styles", files=files, data=form | {"contents": ["a house"]})
    assert refused.status_code == 422 and "one per image" in refused.json()["detail"]
    assert stub_app.post(f"{API}/styles", files=files,
                         data=form | {"contents": ["a barn", "a lighthouse"]}).status_code == 422  # [0] is content
    made = stub_app.post(f"{API}/styles", files=files, data=form | {"contents": ["a house", "a lighthouse"]})
    assert made.status_code == 201, made.text
    style = made.json()
    assert style["reference_contents"] == ["a house", "a lighthouse"]
    first = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    assert [t["content"] for t in first["parameters"]["training_set"]] == ["a house", "a lighthouse"]
    page = stub_app.get(f"/styles/{style['id']}").text
    assert "Reference image 2: a lighthouse in sticker style" in page and "a house, a lighthouse" in page

    # the new-style page: one line per image after the first
    token = csrf_token(stub_app.get("/styles/new").text)
    created = stub_app.post("/styles/new", files=[("image", ("one.png", png_bytes(64), "image/png")),
                                                  ("image", ("two.png", png_bytes(48), "image/png"))],
                            data={"csrf_token": token, "content": "a cat", "more_contents": "a dog\n",
                                  "descriptor": "sticker", "base_model": "tiny", "adapter": "styledrop",
                                  "steps": "10", "seed": "0"}, follow_redirects=False)
    assert created.status_code == 303, created.text
    newest = stub_app.get(f"{API}/styles").json()["items"][-1]
    assert newest["reference_contents"] == ["a cat", "a dog"]
    # an older client sending more_images alone: every reference shows `content`
    old = stub_app.post(f"{API}/styles", files=files, data=form).json()
    assert old["reference_contents"] == ["a house", "a house"]
