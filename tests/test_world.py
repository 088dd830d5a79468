"""The shapes world (issue 24): pictures, oracles, tokenizer, CLIP conversion, a micro world built and used.

The micro world is built once per session (about 3 minutes on two CPU cores) in a temporary cache folder and
loaded the way the CLI and the service load `shapes`: `load_components("shapes-micro")`. At that size the base
model has learned colours and backgrounds, hardly shapes; what the tests assert is what holds robustly there:
a world image round-trips, the oracles read renders exactly, a build resumes where it stopped, and StyleDrop's
round 1 moves a held-out style's match above the base model's.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from styledrop.world import oracle
from styledrop.world import scene as world
from styledrop.world.spec import WORLDS, StageSpec

# ---- pictures and oracles (no torch) --------------------------------------------------------------------------

def test_splits_never_meet():
    assert set(world.REFERENCE_SHAPES) | set(world.CANDIDATE_SHAPES) | set(world.EVAL_SHAPES) == set(world.SHAPES)
    assert not set(world.CANDIDATE_SHAPES) & set(world.EVAL_SHAPES)
    assert not set(world.REFERENCE_SHAPES) & (set(world.CANDIDATE_SHAPES) | set(world.EVAL_SHAPES))
    seen = set(world.pretraining_styles())
    held = set(world.EVAL_STYLES) | set(world.DEV_STYLES)
    assert not seen & held and not set(world.EVAL_STYLES) & set(world.DEV_STYLES)
    assert all(not s.unseen for s in seen) and len(world.SHAPES) >= 8
    for style in world.all_styles():
        assert world.Style.parse(style.descriptor) == style


def test_every_picture_of_a_descriptor_is_told_apart():
    """Two descriptors never draw the same picture (palettes have their own first colour)."""
    pictures = {}
    for style in world.all_styles():
        key = world.render_cells(world.Scene("square", style, 12, 2, 2)).tobytes()
        assert key not in pictures, (style, pictures.get(key))
        pictures[key] = style


def test_oracles_read_renders_exactly():
    rng = np.random.default_rng(3)
    scenes = [world.random_scene(rng, world.all_styles()) for _ in range(120)]
    images = [world.render(s) for s in scenes]
    assert [r.shape for r in oracle.read_contents(images)] == [s.shape for s in scenes]
    assert oracle.content_accuracy(images, [s.content for s in scenes]) == 1.0
    read = [oracle.style_of(img) for img in images]
    assert np.mean([r == s.style for r, s in zip(read, scenes)]) >= 0.97  # a few tiny shapes lose their fill
    same = oracle.style_match(world.render(world.Scene("star", scenes[0].style, 11, 3, 3)),
                              world.render(world.reference_scene(scenes[0].style)))
    other_style = next(s.style for s in scenes if s.style.background != scenes[0].style.background
                       and s.style.palette != scenes[0].style.palette)
    other = oracle.style_match(world.render(world.Scene("star", other_style, 11, 3, 3)),
                               world.render(world.reference_scene(scenes[0].style)))
    assert same > 0.9 > 0.5 > other


def test_oracles_read_any_image():
    """A picture the world did not draw: a photo-like gradient is read as the world's nearest colours."""
    from PIL import Image

    gradient = np.linspace(0, 255, 200 * 150 * 3).reshape(150, 200, 3).astype(np.uint8)
    image = Image.fromarray(gradient)
    cells = oracle.cells_of(image)
    assert cells.shape == (world.GRID, world.GRID) and cells.max() < world.NUM_COLOURS
    reading = oracle.read_content(image)
    assert set(reading.scores) == set(world.SHAPES)
    assert 0.0 <= oracle.style_match(image, world.render(world.reference_scene(world.EVAL_STYLES[0]))) <= 1.0


def test_shape_of_reads_content_phrases():
    assert world.shape_of("A heart") == "heart" and world.shape_of("an arrow") == "arrow"
    assert world.shape_of("A star in dusk striped on black style") == "star"
    assert world.shape_of("a cat") is None


# ---- tokenizer and CLIP (torch, random weights) ---------------------------------------------------------------

def test_patch_codebook_round_trips_world_pictures():
    from styledrop.world.tokenizer import encode_cells, patch_codebook

    vq = patch_codebook(world.RGB, world.CELL, world.SIDE)
    rng = np.random.default_rng(0)
    cells = np.stack([world.render_cells(world.random_scene(rng, world.all_styles())) for _ in range(8)])
    pixels = torch.from_numpy(np.stack([np.asarray(world.cells_to_image(c)) for c in cells])).permute(0, 3, 1, 2)
    codes = encode_cells(vq, pixels.float() / 255)
    assert (codes.numpy() == cells).all()
    out = vq.decode(codes, force_not_quantize=True, shape=(*codes.shape, vq.config.latent_channels)).sample
    assert ((out.clip(0, 1) * 255).round().to(torch.uint8) == pixels).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what sampling does on a CPU with native bf16
        out16 = vq.decode(codes, force_not_quantize=True, shape=(*codes.shape, vq.config.latent_channels)).sample
    again = encode_cells(vq, (out16.float().clip(0, 1) * 255).round() / 255)
    assert (again.numpy() == cells).all()
    # any picture: each patch becomes the world colour nearest its mean
    noise = torch.rand(2, 3, world.SIDE, world.SIDE)
    means = noise.reshape(2, 3, world.GRID, world.CELL, world.GRID, world.CELL).mean((3, 5)).permute(0, 2, 3, 1)
    nearest = ((means[..., None, :] - torch.tensor(world.RGB / 255.0)) ** 2).sum(-1).argmin(-1)
    assert (encode_cells(vq, noise) == nearest).all()


def test_clip_text_tower_converts_to_transformers_exactly():
    from styledrop.world.clip import ClipSpec, build_clip, hf_text_encoder, hf_tokenizer, open_clip_tokenizer

    spec = ClipSpec(**WORLDS["shapes-micro"].clip)
    model = build_clip(spec, seed=3)
    hf = hf_text_encoder(model, spec)
    captions = ["A star in dusk striped outlined on navy style", "A heart", "", "A picture in mint two-tone on "
                "white style"]
    ids = hf_tokenizer(spec)(captions, return_tensors="pt", padding="max_length", truncation=True,
                             max_length=spec.context_length).input_ids
    open_ids = open_clip_tokenizer(spec)(captions)
    ends = open_ids.argmax(-1)
    assert (ids.gather(1, ends[:, None]) == open_ids.gather(1, ends[:, None])).all()
    with torch.no_grad():
        assert torch.allclose(model.encode_text(open_ids), hf(ids).text_embeds, atol=1e-5)


# ---- a micro world, built once --------------------------------------------------------------------------------

# The fixture `micro_world` (tests/conftest.py: the service tests' world build job shares it).

@pytest.mark.slow
def test_micro_world_builds_and_loads_like_amused(micro_world):
    from styledrop.clip_scores import load_scorer
    from styledrop.models import load_components
    from styledrop.presets import scorer_for
    from styledrop.sampling import SampleConfig, generate

    folder, steps = micro_world
    manifest = json.loads((folder / "world.json").read_text())
    assert manifest["complete"] and set(manifest["stages"]) == {"tokenizer", "clip", "transformer", "measure"}
    assert ("transformer", WORLDS["shapes-micro"].transformer_training.steps) in steps
    curve = manifest["stages"]["transformer"]["curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == WORLDS["shapes-micro"].transformer_training.steps
    for part in ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler", "clip"):
        assert (folder / part).is_dir()
    components = load_components("shapes-micro")
    assert components.source == "shapes-micro" and components.resolution == world.SIDE
    assert components.token_grid == world.GRID and components.codebook_size == world.NUM_COLOURS
    assert scorer_for("shapes-micro") == "shapes-micro"
    scorer = load_scorer("shapes-micro", "cpu")
    images = generate(components, ["A star in fire striped on navy style"], SampleConfig(steps=4), seeds=[0]).images
    assert images[0].size == (world.SIDE, world.SIDE)
    # the world's pictures are world pictures: the tokenizer reads the sample back to the tokens it came from
    text, style = scorer.score(images, ["A star"], scorer.reference_embedding(images[0]))
    assert -1 <= text[0] <= 1 and style[0] == pytest.approx(1.0, abs=1e-4)


def test_unbuilt_world_says_how_to_build_it(tmp_path, monkeypatch):
    from styledrop.errors import StyleDropError
    from styledrop.models import load_components

    monkeypatch.setenv("STYLEDROP_WORLD_DIR", str(tmp_path))
    with pytest.raises(StyleDropError, match="styledrop world build shapes"):
        load_components("shapes")


NANO = replace(WORLDS["shapes-micro"], name="shapes-nano",
               clip_training=StageSpec(steps=4, batch_size=16, learning_rate=3e-3, warmup_steps=2, eval_every=4,
                                       checkpoint_every=2),
               transformer_training=StageSpec(steps=4, batch_size=4, learning_rate=3e-3, warmup_steps=2,
                                              eval_every=4, checkpoint_every=2),
               eval_images=2, curve_images=2)


@pytest.mark.slow
def test_a_stopped_build_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from styledrop.world.build import build_world

    whole = build_world(spec=NANO, folder=tmp_path / "whole", precision="fp32", threads=1)
    calls = {"n": 0}

    def stop_in_the_transformer_stage() -> bool:
        calls["n"] += 1
        return calls["n"] == NANO.clip_training.steps + 3  # the 3rd transformer step

    part = build_world(spec=NANO, folder=tmp_path / "part", precision="fp32", threads=1,
                       should_stop=stop_in_the_transformer_stage)
    manifest = json.loads((part / "world.json").read_text())
    assert not manifest["complete"] and "transformer" not in manifest["stages"]
    part = build_world(spec=NANO, folder=tmp_path / "part", precision="fp32", threads=1)
    a = load_file(whole / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(part / "transformer" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((part / "world.json").read_text())["stages"]["transformer"]["resumed_from"] == 2


@pytest.mark.slow
def test_round_one_moves_a_held_out_style_above_the_base_model(micro_world, tmp_path):
    """The harness of bench/table2.py on the micro world, one held-out style, seed fixed."""
    from bench import table2

    settings = table2.Settings(round1_steps=40, round2_steps=20, batch_size=4, learning_rate=3e-3, pool_per_prompt=2,
                               eval_per_prompt=2, bootstrap=200, sample_steps=6)
    result = table2.run("shapes-micro", ["dusk striped on black"], [0], settings, tmp_path / "report",
                        log=lambda s: None)
    rows = result["units"][0]["rows"]
    assert set(rows) == set(table2.ROWS)
    assert rows["round 1"]["style_match"] > rows["base"]["style_match"]
    for name in ("table2.md", "table2.json", "table2.png", "grid.png"):
        assert (tmp_path / "report" / name).is_file()
    assert "round 2: CLIP (guarded)" in (tmp_path / "report" / "table2.md").read_text()


@pytest.mark.slow
def test_cli_world_commands(micro_world, tmp_path, capsys):
    from styledrop.cli import main

    assert main(["world", "info", "shapes-micro"]) == 0
    assert "base model on seen styles" in capsys.readouterr().out
    out = tmp_path / "ref.png"
    assert main(["world", "render", "dusk striped on black", "--shape", "tree", "--out", str(out)]) == 0
    assert "a held-out style" in capsys.readouterr().out
    assert main(["world", "read", str(out), "--reference", str(out)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["shape"] == "tree" and row["style"] == "dusk striped on black" and row["style_match"] == 1.0
    assert main(["world", "render", "plaid on mars", "--out", str(out)]) == 1
    style_dir = tmp_path / "style"
    assert main(["train", "--image", str(out), "--content", "a tree", "--descriptor", "dusk striped on black",
                 "--out", str(style_dir), "--model", "shapes-micro", "--steps", "3", "--batch-size", "2"]) == 0
    assert json.loads((style_dir / "style.json").read_text())["base_model"] == "shapes-micro"
    capsys.readouterr()
    assert main(["generate", str(style_dir), "a star", "--out", str(tmp_path / "out"), "--steps", "3"]) == 0
    assert list((tmp_path / "out").glob("*.png"))
