"""One plan, one candidate pipeline: the worker and the CLI draw the same images for the same settings, and a
round-2 adapter written by the worker samples with its round's λA = 2 under `styledrop generate`."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from app.domain.models import Candidate, Round, Style
from app.infra import storage
from app.infra.db import session_factory
from styledrop.candidates import candidate_seed
from styledrop.cli import main as cli
from worker.rounds import run_round

from .test_api import API, create_style

ROUND = {"steps": 3, "prompts": ["a cat", "a bridge"], "candidates_per_prompt": 2, "sample_steps": 2, "seed": 4}


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _candidates(settings, round_id: int) -> list[Candidate]:
    with session_factory(settings)() as session:
        return list(session.query(Candidate).filter(Candidate.round_id == round_id).order_by(Candidate.id))


def test_worker_and_cli_draw_the_same_candidates_and_round_two_keeps_its_lambda(stub_app, tmp_path):
    settings = stub_app.settings
    style = create_style(stub_app)
    first = stub_app.post(f"{API}/styles/{style['id']}/rounds", json=ROUND).json()
    assert run_round(settings, first["id"]) == "succeeded"
    made = _candidates(settings, first["id"])
    assert [c.seed for c in made] == [candidate_seed(4, k) for k in range(4)]  # the one seed rule

    # The CLI's pipeline on the same adapter with the same settings: the same images.
    # A style folder made as a user would: the round's downloaded adapter file and the reference image.
    folder = tmp_path / "style"
    folder.mkdir()
    with session_factory(settings)() as session:
        adapter = storage.resolve(settings.storage_root, session.get(Round, first["id"]).adapter_path)
        reference = storage.resolve(settings.storage_root, session.get(Style, style["id"]).reference_path)
    shutil.copy(adapter, folder / "adapter.safetensors")
    with Image.open(reference) as image:
        image.convert("RGB").save(folder / "reference.png")
    (tmp_path / "prompts.txt").write_text("a cat\na bridge\n")
    assert cli(["candidates", str(folder), "--prompts", str(tmp_path / "prompts.txt"), "--per-prompt", "2",
                "--seed", "4", "--scorer", "tiny", "--batch-size", "3"]) == 0
    pool = json.loads((folder / "rounds" / "round-001" / "candidates" / "candidates.json").read_text())
    assert [p["seed"] for p in pool] == [c.seed for c in made]
    for row, candidate in zip(pool, made):
        cli_image = _pixels(folder / "rounds" / "round-001" / "candidates" / row["file"])
        assert np.array_equal(cli_image, _pixels(storage.resolve(settings.storage_root, candidate.image_path)))

    # Round 2 (worker), then its adapter file under `styledrop generate`: λA = 2 from the file.
    assert stub_app.put(f"{API}/candidates/{made[0].id}/selected", json={"selected": True}).status_code == 200
    second = stub_app.post(f"{API}/styles/{style['id']}/rounds", json=ROUND).json()
    assert second["parameters"]["sampling"]["adapter_guidance"] == 2.0
    assert run_round(settings, second["id"]) == "succeeded"
    with session_factory(settings)() as session:
        adapter2 = storage.resolve(settings.storage_root, session.get(Round, second["id"]).adapter_path)
    out = tmp_path / "out"
    again = _candidates(settings, second["id"])[1]
    assert cli(["generate", str(adapter2), again.content, "--seed", str(again.seed), "--out", str(out)]) == 0
    record = json.loads((out / "generations.json").read_text())
    assert record["config"]["adapter_guidance"] == 2.0 and record["config"]["steps"] == 2
    # ... and with the candidate's own seed it draws that candidate again (the seed contract).
    assert np.array_equal(_pixels(out / record["images"][0]["file"]),
                          _pixels(storage.resolve(settings.storage_root, again.image_path)))


def test_the_workers_precision_is_recorded_and_the_playground_remakes_a_candidate_in_it(stub_app):
    """STYLEDROP_SAMPLING_PRECISION sets candidates and generations alike; the round records what drew its
    candidates, and a playground generation with a candidate's seed draws that candidate again."""
    from app.domain.models import Generation
    from styledrop.sampling import sampling_precision
    from worker.generations import run_generation

    for precision in ("fp32", "auto"):
        settings = stub_app.settings.model_copy(update={"sampling_precision": precision})
        style = create_style(stub_app)
        rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json=ROUND).json()
        assert run_round(settings, rnd["id"]) == "succeeded"
        with session_factory(settings)() as session:
            metrics = session.get(Round, rnd["id"]).metrics
        assert metrics["candidates_precision"] == sampling_precision(precision, "cpu")
        candidate = _candidates(settings, rnd["id"])[3]
        generation = stub_app.post(f"{API}/styles/{style['id']}/generations",
                                   json={"prompts": [candidate.content], "seed": candidate.seed}).json()
        assert run_generation(settings, generation["id"]) == "succeeded"
        with session_factory(settings)() as session:
            drawn = session.get(Generation, generation["id"]).image_paths[0]
        assert np.array_equal(_pixels(storage.resolve(settings.storage_root, drawn)),
                              _pixels(storage.resolve(settings.storage_root, candidate.image_path)))
