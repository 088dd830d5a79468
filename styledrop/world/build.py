"""`build_world`: make a world's base model from its seed, in the diffusers folder layout aMUSEd uses.

    <world dir>/vqvae/         the exact patch codebook (styledrop.world.tokenizer), a diffusers VQModel
    <world dir>/clip/          the world's CLIP (open_clip weights and config): the scorer
    <world dir>/text_encoder/  its text tower as transformers' CLIPTextModelWithProjection (frozen, as aMUSEd's)
    <world dir>/tokenizer/     OpenAI CLIP's BPE tokenizer (offline), cut at the CLIP's context length
    <world dir>/transformer/   the base model, a diffusers UVit2DModel trained from scratch (Muse's objective)
    <world dir>/scheduler/     AmusedScheduler (the mask token)
    <world dir>/world.json     spec, seed, timings, learning curves and the base model's measurements
    <world dir>/curves.png     loss and accuracy against training time

Stages run in order, each resumable from its checkpoints (<world dir>/checkpoints/); a finished stage is not
run again. `load_components(<world dir>)` loads the result like any aMUSEd folder.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import StyleDropError
from . import scene as world
from .spec import MANIFEST, WORLDS, WorldSpec, world_dir
from .stages import Progress, ProgressFn, StageResult, autocast_for, run_stage

STAGES = ("tokenizer", "clip", "transformer", "measure")
CHECKPOINTS = "checkpoints"
AESTHETIC = 6.0


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_manifest(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(folder / MANIFEST)


def training_precision(requested: str = "fp32") -> str:
    """fp32 by default (the same weights on every CPU; at this model size bf16 autocast was slower on one core
    here); "auto": bf16 where the CPU multiplies bf16 natively."""
    if requested != "auto":
        return requested
    from ..sampling import native_bf16

    return "bf16" if native_bf16("cpu") else "fp32"


def _transformer_config(spec: WorldSpec, clip_spec) -> dict[str, Any]:
    return dict(spec.transformer, vocab_size=world.NUM_COLOURS + 1, codebook_size=world.NUM_COLOURS,
                cond_embed_dim=clip_spec.embed_dim, encoder_hidden_size=clip_spec.text_width,
                sample_size=world.GRID)


# ---- stages ---------------------------------------------------------------------------------------------------

def _build_tokenizer(folder: Path) -> dict[str, Any]:
    from .tokenizer import encode_cells, patch_codebook

    vq = patch_codebook(world.RGB, world.CELL, world.SIDE)
    rng = np.random.default_rng(0)
    scenes = [world.random_scene(rng, world.all_styles()) for _ in range(32)]
    cells = np.stack([world.render_cells(s) for s in scenes])
    pixels = torch.from_numpy(world.RGB[cells].repeat(world.CELL, 1).repeat(world.CELL, 2)).permute(0, 3, 1, 2)
    codes = encode_cells(vq, pixels.float() / 255)
    decoded = vq.decode(codes, force_not_quantize=True, shape=(*codes.shape, vq.config.latent_channels)).sample
    round_trip = bool((codes.numpy() == cells).all()) and bool(
        ((decoded.clip(0, 1) * 255).round().to(torch.uint8) == pixels).all())
    if not round_trip:
        raise StyleDropError("The world's tokenizer does not round-trip its own pictures; this is a bug.")
    vq.save_pretrained(folder / "vqvae")
    return {"round_trip": round_trip, "codes": world.NUM_COLOURS, "patch": world.CELL}


def _clip_stage(spec: WorldSpec, folder: Path, index: int, precision: str, on_progress: ProgressFn | None,
                should_stop: Callable[[], bool] | None) -> tuple[StageResult, Any, Any]:
    from .clip import ClipSpec, build_clip, caption_table, cell_pixels, clip_batch, multi_positive_loss

    clip_spec = ClipSpec(**spec.clip)
    model = build_clip(clip_spec, spec.seed)
    styles = world.all_styles()  # the world's CLIP knows every style, as CLIP knows "watercolor"
    table = caption_table(clip_spec, styles)
    stage = spec.clip_training
    eval_rng = np.random.default_rng(10_000 + spec.seed)
    eval_scenes = [world.random_scene(eval_rng, styles) for _ in range(240)]
    eval_pixels = cell_pixels(np.stack([world.render_cells(s) for s in eval_scenes]))
    content_tokens = table.tokens[[table.content[s] for s in world.SHAPES]]

    def loss_fn(rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        pixels, tokens, truth = clip_batch(rng, table, styles, stage.batch_size)
        with autocast_for(precision):
            image = model.encode_image(pixels, normalize=True)
            text = model.encode_text(tokens, normalize=True)
        return multi_positive_loss(image.float(), text.float(), model.logit_scale.exp(), truth)

    def clamp_scale() -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)  # at most 100, as open_clip's training

    def evaluate(step: int) -> dict[str, Any]:
        image = model.encode_image(eval_pixels, normalize=True)
        text = model.encode_text(content_tokens, normalize=True)
        ranked = (image @ text.T).argmax(1).numpy()
        return {"content_rank1": round(float(np.mean([world.SHAPES[r] == s.shape
                                                      for r, s in zip(ranked, eval_scenes)])), 4)}

    result = run_stage("clip", index, len(STAGES), stage, model, loss_fn, evaluate,
                       folder / CHECKPOINTS / "clip.pt", spec.seed, on_progress, should_stop,
                       after_step=clamp_scale)
    return result, model, clip_spec


def _save_clip_parts(model, clip_spec, folder: Path) -> None:
    from .clip import hf_text_encoder, hf_tokenizer, save_clip

    save_clip(model, clip_spec, folder)
    hf_text_encoder(model, clip_spec).save_pretrained(folder / "text_encoder")
    hf_tokenizer(clip_spec).save_pretrained(folder / "tokenizer")


def _components(folder: Path, transformer, name: str):
    from diffusers import VQModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    from ..models import Components

    vq = VQModel.from_pretrained(folder / "vqvae").eval().requires_grad_(False)
    text = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder").eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    return Components(name, transformer, vq, text, tokenizer, world.NUM_COLOURS)


def eval_prompts(styles: list[world.Style], count: int, seed: int) -> tuple[list[world.Scene], list[str]]:
    """`count` (shape, style) prompts, every shape in turn, styles drawn with `seed`."""
    rng = np.random.default_rng(seed)
    scenes = [world.Scene(world.SHAPES[i % len(world.SHAPES)], styles[rng.integers(len(styles))])
              for i in range(count)]
    return scenes, [world.caption(s) for s in scenes]


def sample_config(spec: WorldSpec, **overrides: Any):
    """The world's sampling defaults (spec.sampling) as a SampleConfig; overrides win."""
    from ..sampling import SampleConfig

    values = dict(spec.sampling) | {k: v for k, v in overrides.items() if v is not None}
    if "temperature" in values:
        values["temperature"] = tuple(values["temperature"])
    return SampleConfig(**values)


def measure_samples(components, scenes: list[world.Scene], prompts: list[str], seed: int, scorer=None,
                    batch: int = 24, config=None) -> dict[str, Any]:
    """Draw one image per prompt with the product's sampler (`config`, default SampleConfig()); read them with
    the oracles."""
    from ..sampling import SampleConfig, generate
    from . import oracle

    config = config or SampleConfig()
    images = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        images += generate(components, chunk, config, seeds=[seed + start + j for j in range(len(chunk))]).images
    readings = oracle.read_contents(images)
    content = [r.shows(s.shape) for r, s in zip(readings, scenes)]
    refs = {s.style: world.render(world.reference_scene(s.style)) for s in scenes}
    style = [oracle.style_match(img, refs[s.style]) for img, s in zip(images, scenes)]
    out = {"content_accuracy": round(float(np.mean(content)), 4), "style_match": round(float(np.mean(style)), 4),
           "images": len(images)}
    if scorer is not None:
        emb = scorer.image_embeddings(images)
        text = scorer.text_embeddings([world.caption(world.Scene(s, scenes[0].style), with_style=False)
                                       for s in world.SHAPES])
        ranked = (emb @ text.T).argmax(1).tolist()
        out["clip_content_rank1"] = round(float(np.mean([world.SHAPES[r] == s.shape for r, s in zip(ranked, scenes)])), 4)
        # CLIP's ranking of the shape oracle's reading (what the picture shows, right or wrong)
        shown = [(r.shape, world.SHAPES[k]) for r, k in zip(readings, ranked) if r.shape is not None]
        out["clip_agrees_with_oracle"] = round(float(np.mean([a == b for a, b in shown])), 4) if shown else None
    return out, images


def _transformer_stage(spec: WorldSpec, folder: Path, index: int, precision: str, on_progress: ProgressFn | None,
                       should_stop: Callable[[], bool] | None) -> tuple[StageResult, Any]:
    from diffusers import UVit2DModel

    from ..conditioning import encode_prompts
    from ..training import mask_tokens, masked_token_loss
    from .clip import ClipSpec

    clip_spec = ClipSpec(**spec.clip)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        transformer = UVit2DModel(**_transformer_config(spec, clip_spec))
    components = _components(folder, transformer, spec.name)
    styles = world.pretraining_styles()
    captions = [""] + [world.caption(world.Scene(s, styles[0]), with_style=False) for s in world.SHAPES]
    content_index = {s: 1 + i for i, s in enumerate(world.SHAPES)}
    full_index = {}
    for style in styles:
        for shape in world.SHAPES:
            full_index[(shape, style)] = len(captions)
            captions.append(world.caption(world.Scene(shape, style)))
    cond = encode_prompts(components, captions)  # the product's text path: tokenizer, hidden_states[-2], text_embeds
    stage = spec.transformer_training
    micro = torch.tensor([[world.SIDE, world.SIDE, 0, 0, AESTHETIC]]).expand(stage.batch_size, -1)
    mix = np.array(spec.caption_mix) / sum(spec.caption_mix)
    eval_scenes, eval_captions = eval_prompts(styles, spec.curve_images, 20_000 + spec.seed)

    def loss_fn(rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        scenes = [world.random_scene(rng, styles) for _ in range(stage.batch_size)]
        tokens = torch.from_numpy(np.stack([world.render_cells(s) for s in scenes])).reshape(stage.batch_size, -1)
        kinds = rng.choice(3, size=stage.batch_size, p=mix)
        idx = [full_index[(s.shape, s.style)] if k == 0 else content_index[s.shape] if k == 1 else 0
               for s, k in zip(scenes, kinds)]
        input_ids, labels = mask_tokens(tokens, components.mask_token_id, generator)
        with autocast_for(precision):
            logits = transformer(input_ids.reshape(-1, world.GRID, world.GRID), encoder_hidden_states=cond.hidden[idx],
                                 pooled_text_emb=cond.pooled[idx], micro_conds=micro)
        return masked_token_loss(logits, labels)

    def evaluate(step: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for guidance in spec.curve_guidances:
            metrics, _ = measure_samples(components, eval_scenes, eval_captions, seed=1,
                                         config=sample_config(spec, guidance=guidance))
            suffix = "" if guidance == spec.curve_guidances[0] else f"_guidance{guidance:g}"
            out |= {k + suffix: v for k, v in metrics.items() if k != "images"}
        return out

    result = run_stage("transformer", index, len(STAGES), stage, transformer, loss_fn, evaluate,
                       folder / CHECKPOINTS / "transformer.pt", spec.seed + 1, on_progress, should_stop)
    return result, transformer


def _save_transformer(transformer, folder: Path) -> None:
    from diffusers import AmusedScheduler

    transformer.save_pretrained(folder / "transformer")
    AmusedScheduler(mask_token_id=world.NUM_COLOURS, masking_schedule="cosine").save_pretrained(folder / "scheduler")


def _measure(spec: WorldSpec, folder: Path) -> dict[str, Any]:
    """The base model as the product loads it: content and style on seen styles, the CLIP's ranking."""
    from ..models import load_components
    from .clip import world_scorer

    components = load_components(str(folder))
    scorer = world_scorer(folder, "cpu", spec.name)
    scenes, prompts = eval_prompts(world.pretraining_styles(), spec.eval_images, 30_000 + spec.seed)
    seen, _ = measure_samples(components, scenes, prompts, seed=7, scorer=scorer, config=sample_config(spec))
    by_guidance = {}
    for guidance in sorted({0.0, 3.0, 9.0} - {float(spec.sampling.get("guidance", 9.0))}):
        metrics, _ = measure_samples(components, scenes, prompts, seed=7, config=sample_config(spec, guidance=guidance))
        by_guidance[f"{guidance:g}"] = {k: metrics[k] for k in ("content_accuracy", "style_match")}
    # The CLIP on the world's own pictures, every style (held-out ones too): does it rank the right shape first?
    rng = np.random.default_rng(40_000 + spec.seed)
    renders = [world.random_scene(rng, world.all_styles()) for _ in range(240)]
    emb = scorer.image_embeddings([world.render(s) for s in renders])
    text = scorer.text_embeddings([world.caption(world.Scene(s, renders[0].style), with_style=False)
                                   for s in world.SHAPES])
    ranked = (emb @ text.T).argmax(1).tolist()
    clip_renders = float(np.mean([world.SHAPES[r] == s.shape for r, s in zip(ranked, renders)]))
    return {"base_model_seen_styles": seen, "clip_content_rank1_on_renders": round(clip_renders, 4),
            "sampling": dict(spec.sampling), "seen_styles_by_guidance": by_guidance}


# ---- the build ----------------------------------------------------------------------------------------------

def build_world(name: str = "shapes", folder: str | Path | None = None, seed: int | None = None,
                on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                restart: bool = False, precision: str = "fp32", spec: WorldSpec | None = None,
                threads: int | None = None) -> Path:
    """Build (or finish building) a world; returns its folder. Resumes an interrupted build unless `restart`.

    `on_progress(Progress)` is called after every training step and at each stage's start; `should_stop()` is
    polled every step: a stop checkpoints and returns (run again to go on). `threads`: torch's CPU threads
    (None: torch's default; on a machine shared with other CPU-heavy processes 1 is much faster: two OpenMP
    threads spin at every barrier while the other is descheduled).
    """
    if spec is None:
        if name not in WORLDS:
            raise StyleDropError(f"Unknown world '{name}': choose from {', '.join(WORLDS)}.")
        spec = WORLDS[name]
    if seed is not None:
        spec = replace(spec, seed=seed)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _build(spec, folder, on_progress, should_stop, restart, precision)
    finally:
        torch.set_num_threads(previous_threads)


def _build(spec: WorldSpec, folder: str | Path | None, on_progress: ProgressFn | None,
           should_stop: Callable[[], bool] | None, restart: bool, precision: str) -> Path:
    from ..models import _quiet_libraries

    _quiet_libraries()
    torch.set_flush_denormal(True)
    folder = Path(folder) if folder is not None else world_dir(spec.name)
    precision = training_precision(precision)
    manifest = _manifest(folder)
    wanted = {"spec": spec.fingerprint(), "precision": precision}
    if manifest and not restart and {k: manifest.get(k) for k in wanted} != json.loads(json.dumps(wanted)):
        raise StyleDropError(f"{folder} holds a world built with another spec, seed or precision: pass --restart "
                             "to build it again there, or --out for another folder.")
    if restart and folder.exists():
        shutil.rmtree(folder)
        manifest = {}
    if not manifest:
        manifest = dict(wanted, name=spec.name, complete=False, stages={}, torch=torch.__version__,
                        machine=platform.machine(), cpu_threads=torch.get_num_threads())
        _write_manifest(folder, manifest)
    done = manifest["stages"]

    def announce(index: int, stage: str, note: str = "") -> None:
        if on_progress is not None:
            on_progress(Progress(stage, index, len(STAGES), 0, 1, note=note))

    started = time.perf_counter()
    if "tokenizer" not in done:
        announce(1, "tokenizer")
        done["tokenizer"] = _build_tokenizer(folder)
        _write_manifest(folder, manifest)
    if "clip" not in done:
        announce(2, "clip")
        result, model, clip_spec = _clip_stage(spec, folder, 2, precision, on_progress, should_stop)
        if result.steps < spec.clip_training.steps:
            return folder
        _save_clip_parts(model, clip_spec, folder)
        done["clip"] = _stage_record(result)
        _write_manifest(folder, manifest)
    if "transformer" not in done:
        announce(3, "transformer")
        result, transformer = _transformer_stage(spec, folder, 3, precision, on_progress, should_stop)
        if result.steps < spec.transformer_training.steps:
            return folder
        _save_transformer(transformer, folder)
        done["transformer"] = _stage_record(result)
        _write_manifest(folder, manifest)
    measured = done.get("measure", {})
    if measured and (measured.get("sampling") != json.loads(json.dumps(spec.sampling))
                     or measured.get("base_model_seen_styles", {}).get("images") != spec.eval_images):
        del done["measure"]  # measured with other settings: measure again
        manifest["complete"] = False
    if "measure" not in done:
        announce(4, "measure", f"drawing {spec.eval_images} base-model images")
        wall, cpu = time.perf_counter(), time.process_time()
        done["measure"] = _measure(spec, folder) | {"seconds": round(time.perf_counter() - wall, 1),
                                                     "cpu_seconds": round(time.process_time() - cpu, 1)}
        _write_manifest(folder, manifest)
    manifest["complete"] = True
    manifest["seconds"] = round(sum(s.get("seconds", 0) for s in done.values()), 1)
    manifest["this_session_seconds"] = round(time.perf_counter() - started, 1)
    _write_manifest(folder, manifest)
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
    try:
        from .curves import plot_curves

        plot_curves(manifest, folder / "curves.png")
    except ImportError:  # matplotlib is optional
        pass
    return folder


def _stage_record(result: StageResult) -> dict[str, Any]:
    record = asdict(result)
    record["seconds"] = round(result.seconds, 1)
    record["cpu_seconds"] = round(result.cpu_seconds, 1)
    record["final_loss"] = round(float(np.mean(result.losses[-20:])), 4) if result.losses else None
    return record
