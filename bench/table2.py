"""StyleDrop's Table 2, measured in the shapes world (issue 24).

For each held-out style × seed: the base model prompted with the style's descriptor ("Muse" in the paper's
table), round 1 (trained on the one reference), and round 2 trained on the reference plus round 1's candidates
selected by (a) a simulated person (who likes what the oracles say is right: the prompt's shape in the
reference's style; each judgement flipped with probability --human-error), (b) CLIP feedback, the paper's rule
and our guarded rule, (c) random selection. Every row is scored on held-out evaluation prompts (shapes that no
round trains on or draws candidates for) with the world CLIP's text and style scores and the ground-truth
oracles (content accuracy, style match); the table gives the mean over style × seed runs with a 95% bootstrap
interval, and the paired difference of each row from round 1.

Everything runs through the engine's own paths: `train_style` and `train_next_round` (the round plan's
adapters: H=4 shared, then H=32; the world's sampling defaults, styledrop.model_profiles: λB 1, λA 0 in every
round; `--adapter-guidance plan` samples at the paper's λA, 0 then 2), `draw_scored_candidates`,
the selection rules of `styledrop.selection`, `RoundSelection` files, and `evaluate_adapter_files`.

    python bench/table2.py --quick                  # 4 held-out styles x 2 seeds
    python bench/table2.py --full                   # 8 held-out styles x 3 seeds
    python bench/table2.py --styles "dusk striped on black" my_reference.png --seeds 0

Writes table2.md, table2.json, table2.png and grid.png into --out (default bench/results/table2-<world>).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROWS = ("base", "round 1", "round 2: human", "round 2: CLIP (paper)", "round 2: CLIP (guarded)", "round 2: random")
FEEDBACK = {"round 2: human": "human", "round 2: CLIP (paper)": "paper", "round 2: CLIP (guarded)": "guarded",
            "round 2: random": "random"}
METRICS = ("text", "style", "content_accuracy", "style_match", "leak")
METRIC_NAMES = {"text": "CLIP text", "style": "CLIP style", "content_accuracy": "content accuracy (oracle)",
                "leak": "reference's shape (oracle)",
                "style_match": "style match (oracle)"}


@dataclass
class Settings:
    """The experiment's knobs (chosen on the development styles, styledrop.world.scene.DEV_STYLES)."""

    adapter: str = "styledrop"  # the paper's adapter (round plan: H=4 shared, then H=32), or "lora" (r=16)
    round1_steps: int = 150
    round2_steps: int = 150  # 0: base and round 1 only (for choosing round 1's settings)
    batch_size: int = 8
    learning_rate: float = 2e-3
    pool_per_prompt: int = 6  # round 1 candidates per candidate shape (5 shapes)
    eval_per_prompt: int = 4  # images per evaluation shape (5 shapes) and row
    human_error: float = 0.1  # the simulated person's judgement is flipped with this probability
    human_max: int = 10  # the paper: up to 10 images
    human_style_bar: float = 0.75  # "in the reference's style": oracle style match at least this
    bootstrap: int = 2000
    augment: bool = False  # the world's textures are anchored to the canvas: a mirrored picture is another style
    sample_steps: int | None = None  # decoding steps (None: the round plan's, 12)
    guidance: float | None = None  # λB (None: the world's own, styledrop.model_profiles from its WorldSpec)
    # λA of every row's sampling (None, `--adapter-guidance plan`: the paper's per-round recipe, 0 in round 1 and 2
    # from round 2, as aMUSEd's round plan). 0 here, as the world's own round plan: in the shapes world λA ≥ 1
    # scatters the style's colours over the whole canvas, no background and no shape (docs/world.md)
    adapter_guidance: float | None = 0.0


QUICK = dict(styles=4, seeds=(0, 1))
FULL = dict(styles=8, seeds=(0, 1, 2))


@dataclass
class StyleCase:
    """A style to run: its reference image, what it shows, its descriptor, where it came from."""

    name: str
    reference: Any  # PIL image
    content: str
    descriptor: str
    source: str  # "world" or a file path


def style_cases(specs: list[str]) -> list[StyleCase]:
    from styledrop.images import load_image
    from styledrop.world import oracle
    from styledrop.world import scene as world

    cases = []
    for i, spec in enumerate(specs):
        if os.path.isfile(spec):
            image = load_image(spec)
            read = oracle.style_of(image)
            descriptor = read.descriptor if read else Path(spec).stem.replace("-", " ").replace("_", " ")
            shape = oracle.read_content(image).shape
            content = world.content_of(shape) if shape else "a picture"
            cases.append(StyleCase(Path(spec).name, image, content, descriptor, spec))
            continue
        try:
            style = world.Style.parse(spec)
        except ValueError as exc:
            raise SystemExit(f"table2: {exc}") from None
        if style in world.pretraining_styles():
            raise SystemExit(f"table2: '{spec}' is a style the base model was trained on; StyleDrop is measured on "
                             "held-out styles (styledrop.world.scene.EVAL_STYLES, or any unseen combination).")
        scene = world.reference_scene(style, i)
        cases.append(StyleCase(style.descriptor, world.render(scene), scene.content, style.descriptor, "world"))
    return cases


def bootstrap_interval(values: list[float], samples: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile bootstrap interval over the runs (style × seed units)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(data) == 1:
        return float(data[0]), float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(1)
    return float(data.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ---- one style x seed -----------------------------------------------------------------------------------------

def simulated_human(candidates, reference, error: float, max_images: int, style_bar: float, seed: int) -> dict:
    """A person who likes a candidate when it shows its prompt's shape in the reference's style (the oracles),
    each judgement flipped with probability `error`; they pick up to `max_images` liked ones, going round the
    prompts so that every prompt gets its turn."""
    from styledrop.world import oracle
    from styledrop.world import scene as world

    rng = random.Random(seed)
    readings = oracle.read_contents([c.image for c in candidates])
    matches = oracle.style_matches([c.image for c in candidates], reference)
    right = [r.shows(world.shape_of(c.content) or "") and m >= style_bar
             for c, r, m in zip(candidates, readings, matches)]
    liked = [ok != (rng.random() < error) for ok in right]
    by_prompt: dict[str, list] = {}
    for c, like in zip(candidates, liked):
        if like:
            by_prompt.setdefault(c.content, []).append(c)
    picks: list[int] = []
    queues = list(by_prompt.values())
    while len(picks) < max_images and any(queues):
        for queue in queues:
            if queue and len(picks) < max_images:
                picks.append(queue.pop(0).id)
    return {"ids": picks, "pool_right": int(sum(right)), "liked": int(sum(liked)),
            "picked_right": int(sum(right[[c.id for c in candidates].index(i)] for i in picks))}


def run_unit(case: StyleCase, seed: int, settings: Settings, components, scorer, work: Path,
             log=print) -> dict[str, Any]:
    """Round 1, its pool, the four selections, four round-2 models, and every row's evaluation."""
    from styledrop.candidates import draw_scored_candidates, save_candidates
    from styledrop.evaluation import evaluate_adapter_files
    from styledrop.plan import sampling_recipe
    from styledrop.rounds import (
        CANDIDATES_DIR,
        RoundSelection,
        latest_round,
        round_adapter_config,
        round_dir,
        round_sample_config,
        train_next_round,
    )
    from styledrop.selection import select_by_rule
    from styledrop.styles import load_style, train_style
    from styledrop.training import TrainConfig
    from styledrop.world import oracle
    from styledrop.world import scene as world

    timings: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 2)
        return out

    def train_config(steps: int) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                           seed=seed, augment=settings.augment, checkpoint_every=0, sample_every=0)

    folder = work / f"{_slug(case.name)}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    trained = timed("round 1 training", lambda: train_style(
        [case.reference], case.content, case.descriptor, folder, components=components,
        adapter_config=round_adapter_config(1, settings.adapter), train_config=train_config(settings.round1_steps)))
    trained.adapter.detach()  # the model is shared by every run (as the worker's cached model)
    latest_round(folder)  # records round 1
    style = load_style(folder, components)
    sampling = round_sample_config(1, steps=settings.sample_steps, guidance=settings.guidance)
    contents = [world.content_of(s) for s in world.CANDIDATE_SHAPES]
    pool = timed("candidates", lambda: draw_scored_candidates(style, contents, settings.pool_per_prompt, seed=seed,
                                                              round_number=1, config=sampling, scorer=scorer,
                                                              reference=case.reference))
    style.adapter.detach()
    save_candidates(round_dir(folder, 1) / CANDIDATES_DIR, pool)

    selections = {}
    for row, rule in (FEEDBACK.items() if settings.round2_steps else ()):
        if rule == "human":
            human = simulated_human(pool, case.reference, settings.human_error, settings.human_max,
                                    settings.human_style_bar, seed)
            selections[row] = (human["ids"], "human (simulated)", human)
        else:
            ids = select_by_rule(pool, rule, seed=seed)
            selections[row] = (ids, "clip" if rule != "random" else "random", {"rule": rule})
    adapters = [(1, round_dir(folder, 1) / "adapter.safetensors")]
    selection_record = {}
    for row, (ids, by, details) in selections.items():
        copy = work / f"{folder.name}-{FEEDBACK[row]}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
        RoundSelection(1, ids, by, details).save(copy)
        trained = timed("round 2 training", lambda: train_next_round(
            copy, components, adapter_config=round_adapter_config(2, settings.adapter),
            train_config=train_config(settings.round2_steps)))
        trained.adapter.detach()
        adapters.append((2, round_dir(copy, 2) / "adapter.safetensors"))
        chosen = [c for c in pool if c.id in set(ids)]
        selection_record[row] = {"count": len(ids), "right_content": int(sum(
            r.shows(world.shape_of(c.content) or "") for r, c in zip(oracle.read_contents([c.image for c in chosen]),
                                                                     chosen))) if chosen else 0, **details}

    eval_contents = [world.content_of(s) for s in world.EVAL_SHAPES]
    if settings.adapter_guidance is None:  # the paper's λA per round (the adapter files carry the world's, 0)
        adapters = [(n, path, sampling_recipe(n, None, guidance=settings.guidance).model_dump())
                    for n, path in adapters]
    rows = timed("evaluation", lambda: evaluate_adapter_files(adapters, components, scorer, case.reference,
                                                              eval_contents, settings.eval_per_prompt, seed=1000,
                                                              steps=settings.sample_steps, guidance=settings.guidance,
                                                              adapter_guidance=settings.adapter_guidance))
    result = {"style": case.name, "descriptor": case.descriptor, "content": case.content, "seed": seed,
              "selections": selection_record, "pool": len(pool), "timings": timings, "rows": {}}
    images = {}
    for name, row in zip([r for r in ROWS if r in ("base", "round 1") or settings.round2_steps], rows):
        pictures = [c.image for c in row.candidates]
        readings = oracle.read_contents(pictures)
        content_ok = [r.shows(world.shape_of(c.content) or "") for r, c in zip(readings, row.candidates)]
        style_ok = oracle.style_matches(pictures, case.reference)
        result["rows"][name] = {"text": row.text_mean, "style": row.style_mean,
                                "content_accuracy": float(np.mean(content_ok)), "style_match": float(np.mean(style_ok)),
                                # content leakage: held-out prompts drawn as the reference's shape (house, tree)
                                "leak": float(np.mean([r.shape is not None and r.shape == world.shape_of(case.content)
                                                       for r in readings])),
                                "images": row.count,
                                "shapes_read": {k: sum(r.shape == k for r in readings)  # what the pictures show
                                                for k in sorted({r.shape for r in readings if r.shape})}}
        images[name] = pictures
    log(f"  {case.name} seed {seed}: " + "; ".join(
        f"{n}: content {r['content_accuracy']:.2f} style {r['style_match']:.2f} leak {r['leak']:.2f}"
        for n, r in result["rows"].items())
        + f" ({sum(timings.values()):.0f} s)")
    return result, images


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")[:48]


# ---- reports --------------------------------------------------------------------------------------------------

def summarise(units: list[dict], samples: int) -> dict[str, Any]:
    """Per row and metric: mean and 95% bootstrap interval over units, and the paired difference from round 1."""
    table: dict[str, Any] = {}
    for row in [r for r in ROWS if all(r in u["rows"] for u in units)]:
        table[row] = {}
        for metric in METRICS:
            values = [u["rows"][row][metric] for u in units]
            mean, lo, hi = bootstrap_interval(values, samples)
            base = [u["rows"]["round 1"][metric] for u in units]
            dmean, dlo, dhi = bootstrap_interval([v - b for v, b in zip(values, base)], samples, seed=1)
            table[row][metric] = {"mean": mean, "lo": lo, "hi": hi, "vs_round1": {"mean": dmean, "lo": dlo, "hi": dhi}}
    return table


def markdown(table: dict, meta: dict) -> str:
    lines = [f"World `{meta['world']}`, CLIP: {meta['clip']}; {meta['units']} runs ({meta['styles']} held-out styles "
             f"× seeds {meta['seeds']}); {meta['eval_images_per_row']} images per row and run on the held-out "
             f"shapes {', '.join(meta['eval_shapes'])}. Mean [95% bootstrap interval over runs].", "",
             "| model | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |",
             "| --- |" + " --- |" * len(METRICS)]
    for row in table:
        cells = [f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]" for v in (table[row][m] for m in METRICS)]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Difference from round 1 (paired by run), mean [95% bootstrap interval]:", "",
              "| model | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |", "| --- |" + " --- |" * len(METRICS)]
    for row in table:
        if row == "round 1":
            continue
        cells = [f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
                 for d in (table[row][m]["vs_round1"] for m in METRICS)]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(table: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.3 * len(METRICS), 3.6), dpi=90)
    rows = list(table)
    labels = [r.replace("round 2: ", "r2 ").replace("round 1", "r1") for r in rows]
    for ax, metric in zip(axes, METRICS):
        means = [table[r][metric]["mean"] for r in rows]
        errors = [[m - table[r][metric]["lo"] for r, m in zip(rows, means)],
                  [table[r][metric]["hi"] - m for r, m in zip(rows, means)]]
        ax.errorbar(range(len(rows)), means, yerr=errors, fmt="o", capsize=3)
        ax.set_xticks(range(len(rows)), labels, rotation=55, ha="right", fontsize=7)
        ax.set_title(METRIC_NAMES[metric], fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def picture_grid(cases: list[tuple[StyleCase, dict]], path: Path,
                 rows=("base", "round 1", "round 2: human", "round 2: CLIP (guarded)")) -> None:
    """Per style: the reference, then for each row the first image of each evaluation shape."""
    from PIL import Image, ImageDraw

    from styledrop.world import scene as world

    thumb, label_w, pad, head = 80, 150, 6, 16
    shapes = list(world.EVAL_SHAPES)
    width = label_w + (thumb + pad) * len(shapes)
    bands = []
    rows = [r for r in rows if all(r in images for _, images in cases)]
    for case, images in cases:
        per_shape = max(1, len(images["base"]) // len(shapes))
        band = Image.new("RGB", (width, head + (thumb + pad) * (len(rows) + 1) + head), "white")
        draw = ImageDraw.Draw(band)
        draw.text((4, 2), f"{case.descriptor}  (reference: {case.content})", fill="black")
        y = head
        band.paste(case.reference.resize((thumb, thumb), Image.Resampling.NEAREST), (label_w, y))
        draw.text((4, y + thumb // 2 - 6), "reference", fill="black")
        y += thumb + pad
        for j, shape in enumerate(shapes):
            draw.text((label_w + j * (thumb + pad) + 2, y - 2), world.content_of(shape), fill="gray")
        y += head - pad
        for row in rows:
            draw.text((4, y + thumb // 2 - 6), row, fill="black")
            for j in range(len(shapes)):
                image = images[row][j * per_shape]
                band.paste(image.resize((thumb, thumb), Image.Resampling.NEAREST), (label_w + j * (thumb + pad), y))
            y += thumb + pad
        bands.append(band.crop((0, 0, width, y)))
    sheet = Image.new("RGB", (width, sum(b.height + pad for b in bands)), "white")
    y = 0
    for band in bands:
        sheet.paste(band, (0, y))
        y += band.height + pad
    small_png(sheet, path)


def small_png(image, path: Path) -> None:
    """A palette PNG: world pictures have 15 colours, so a sheet of them stays a few kilobytes (docs/world.md
    shows one)."""
    from PIL import Image

    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path, optimize=True)


# ---- main -----------------------------------------------------------------------------------------------------

def run(world_name: str, specs: list[str], seeds: list[int], settings: Settings, out: Path, grid_styles: int = 2,
        keep: Path | None = None, log=print) -> dict[str, Any]:
    import torch

    from styledrop.clip_scores import load_scorer
    from styledrop.model_profiles import profile_for
    from styledrop.models import load_components
    from styledrop.presets import scorer_for
    from styledrop.world import scene as world

    torch.set_flush_denormal(True)
    if settings.guidance is None:
        settings = replace(settings, guidance=profile_for(world_name).guidance)
    started = time.perf_counter()
    components = load_components(world_name, "cpu")
    scorer = load_scorer(scorer_for(world_name), "cpu")
    cases = style_cases(specs)
    out.mkdir(parents=True, exist_ok=True)
    work = keep or Path(tempfile.mkdtemp(prefix="table2-"))
    units, grids = [], []
    try:
        for case in cases:
            for seed in seeds:
                unit, images = run_unit(case, seed, settings, components, scorer, work, log)
                units.append(unit)
                if seed == seeds[0] and len(grids) < grid_styles:
                    grids.append((case, images))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    table = summarise(units, settings.bootstrap)
    meta = {"world": world_name, "clip": scorer.name, "styles": len(cases), "seeds": list(seeds), "units": len(units),
            "eval_shapes": list(world.EVAL_SHAPES), "candidate_shapes": list(world.CANDIDATE_SHAPES),
            "eval_images_per_row": settings.eval_per_prompt * len(world.EVAL_SHAPES),
            "settings": asdict(settings), "seconds": round(time.perf_counter() - started, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    text = markdown(table, meta)
    (out / "table2.md").write_text(text)
    (out / "table2.json").write_text(json.dumps({"meta": meta, "table": table, "units": units}, indent=1) + "\n")
    plot(table, out / "table2.png", f"StyleDrop Table 2 in the {world_name} world ({len(units)} runs, 95% bootstrap)")
    if grids:
        picture_grid(grids, out / "grid.png")
    return {"meta": meta, "table": table, "units": units, "markdown": text}


def _plan_or_float(value: str) -> float | None:
    return None if value == "plan" else float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="shapes", help="a built world (styledrop world build)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="4 held-out styles x seeds 0 1 (the default)")
    mode.add_argument("--full", action="store_true", help="8 held-out styles x seeds 0 1 2")
    parser.add_argument("--styles", nargs="+", default=None,
                        help="held-out style descriptors or reference image files (default: the first evaluation "
                             "styles, styledrop.world.scene.EVAL_STYLES)")
    parser.add_argument("--dev", action="store_true", help="run on the development styles (for choosing settings)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--out", default=None, help="report folder (default bench/results/table2-<world>)")
    parser.add_argument("--keep", default=None, help="keep the style folders here (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is much faster on a machine busy with other work)")
    for name, value in asdict(Settings()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            kind = {"sample_steps": int, "guidance": float, "adapter_guidance": _plan_or_float}.get(name, type(value))
            parser.add_argument(flag, type=kind, default=value,
                                choices=("styledrop", "lora") if name == "adapter" else None)
    args = parser.parse_args(argv)
    from styledrop.world import scene as world

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    preset = FULL if args.full else QUICK
    pool = world.DEV_STYLES if args.dev else world.EVAL_STYLES
    specs = args.styles or [s.descriptor for s in pool[:preset["styles"]]]
    seeds = args.seeds if args.seeds is not None else list(preset["seeds"])
    settings = Settings(**{k: getattr(args, k) for k in asdict(Settings())})
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"table2-{args.world}")
    print(f"table2: world {args.world}, {len(specs)} styles x seeds {seeds}; settings {asdict(settings)}", flush=True)
    result = run(args.world, specs, seeds, settings, out, keep=Path(args.keep) if args.keep else None,
                 log=lambda s: print(s, flush=True))
    print(result["markdown"])
    print(f"table2: {result['meta']['units']} runs in {result['meta']['seconds']:.0f} s; wrote {out}/table2.md, "
          "table2.json, table2.png, grid.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
