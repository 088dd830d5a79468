"""A whole round, timed by phase: train N steps, draw M candidates, CLIP-score them.

The candidate phase is timed three ways in the same run, interleaved so machine load hits them alike:

* one image per call — the unbatched reference: `generate_with_style` with `num_images=1` and the seed's CPU
  generator, in fp32 (parity mode);
* batched, fp32 — the engine's candidate pipeline (`styledrop.candidates.draw_candidates`, `--candidate-batch`
  images per call, each with its own generator on the device) held in fp32: what batching alone buys;
* batched — the same pipeline in its own precision (`SampleConfig.precision` auto: bf16 autocast on CUDA and
  on CPUs with native bf16, fp32 elsewhere): what the worker does.

Training runs through the engine's front door (`train_style`) with `--fast` (the launch-free step's switch);
scoring is the engine's `score_candidates` with the given CLIP scorer (`tiny`: random, offline). Each phase
is repeated; the table gives the median, the spread (min–max) and, for candidates, the ratio per repeat.

`--reference-candidates N` times the one-per-call path on the first N candidates only (it is slow on a GPU:
about one image a second) and compares per image.

    python bench/round.py --preset tiny --device cpu --steps 20 --candidates 16 --repeats 3
    python bench/round.py --preset amused-256-random --device cpu --steps 2 --candidates 8 --sample-steps 4
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from typing import Callable


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def _reference_image(side: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (side, side), (230, 200, 40))
    draw = ImageDraw.Draw(image)
    for x in range(0, side, max(1, side // 4)):
        draw.rectangle([x, 0, x + max(1, side // 8) - 1, side - 1], fill=(20, 40, 160))
    draw.ellipse([side // 4, side // 4, 3 * side // 4, 3 * side // 4], fill=(200, 30, 30))
    return image


REFERENCE = "one image per call"
BATCHED = "batched"
BATCHED_FP32 = "batched, fp32"
PATHS = (REFERENCE, BATCHED_FP32, BATCHED)


def candidate_paths(style, contents: list[str], config, batch: int, reference_count: int | None = None,
                    batched_fp32: bool = True) -> tuple[dict[str, Callable], str]:
    """The candidate paths (PATHS; without the batched fp32 one if not `batched_fp32`) as functions returning
    [(content, image)], and how the batched ones batch; the one-per-call path draws the first
    `reference_count` contents only (None: all)."""
    from dataclasses import replace

    from styledrop.candidates import draw_candidates
    from styledrop.sampling import sampling_precision
    from styledrop.styles import generate_with_style

    def one_per_call():
        out = []
        for i, content in enumerate(contents[:reference_count]):
            run = replace(config, num_images=1, seed=i, precision="fp32")
            out.append((content, generate_with_style(style, [content], run).images[0]))
        return out

    def batched(precision: str) -> Callable:
        def draw():
            made = draw_candidates(style, contents, 1, seed=0, config=replace(config, precision=precision),
                                   batch_size=batch)
            return [(c.content, c.image) for c in made]
        return draw

    own = sampling_precision(config.precision, style.components.device)
    how = f"styledrop.candidates.draw_candidates(batch_size={batch}); its own precision here: {own}"
    paths = {REFERENCE: one_per_call, BATCHED_FP32: batched("fp32"), BATCHED: batched(config.precision)}
    if not batched_fp32:
        del paths[BATCHED_FP32]
    return paths, how


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(args) -> dict:
    import torch

    from styledrop.adapters import AdapterConfig
    from styledrop.candidates import Candidate, default_prompts, score_candidates
    from styledrop.clip_scores import load_scorer
    from styledrop.models import load_components
    from styledrop.sampling import SampleConfig
    from styledrop.styles import load_style, train_style
    from styledrop.training import TrainConfig

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    components = load_components(args.preset, args.device)
    reference = _reference_image(components.resolution)
    scorer = load_scorer(args.scorer, args.device)
    prompts = default_prompts()
    contents = [prompts[i % len(prompts)] for i in range(args.candidates)]
    config = SampleConfig(steps=args.sample_steps, adapter_guidance=args.adapter_guidance, precision=args.precision)
    reference_count = min(args.reference_candidates or args.candidates, args.candidates)
    phases: dict[str, list[float]] = {"train": [], "score": []}  # and one per candidate path, as timed
    how = ""
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            folder = f"{tmp}/style-{repeat}"
            seconds, trained = _timed(lambda: train_style(
                [reference], "a house", "watercolor painting", folder, components=components,
                adapter_config=AdapterConfig(), resume=False,
                train_config=TrainConfig(steps=args.steps, batch_size=args.batch, checkpoint_every=0,
                                         fast=args.fast)), args.device)
            phases["train"].append(seconds)
            trained.adapter.detach()
            style = load_style(folder, components)  # as the worker does: the style read back from its folder
            paths, how = candidate_paths(style, contents, config, args.candidate_batch, reference_count,
                                         args.batched_fp32)
            order = list(paths)[repeat % len(paths):] + list(paths)[:repeat % len(paths)]  # rotate who goes first
            images = None
            for name in order:
                seconds, made = _timed(paths[name], args.device)
                phases.setdefault(name, []).append(seconds)
                if name == BATCHED:
                    images = made
            candidates = [Candidate(i, 1, content, style.prompt(content), i, 0, image=image)
                          for i, (content, image) in enumerate(images)]
            seconds, _ = _timed(lambda: score_candidates(scorer, candidates, reference), args.device)
            phases["score"].append(seconds)
            style.adapter.detach()
    # Per image: the reference may have drawn fewer candidates than the batched paths.
    speedups = {name: [(a / reference_count) / (b / args.candidates)
                       for a, b in zip(phases[REFERENCE], phases[name])] for name in PATHS[1:] if name in phases}
    rounds = [t + c + s for t, c, s in zip(phases["train"], phases[BATCHED], phases["score"])]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    result = {"args": vars(args), "environment": {"torch": torch.__version__, "device_name": name},
              "batched_path": how, "reference_candidates": reference_count,
              "phases": {k: _spread(v) | {"all": v} for k, v in phases.items()},
              "round_seconds": _spread(rounds) | {"all": rounds},
              "candidate_speedup": _spread(speedups[BATCHED]) | {"all": speedups[BATCHED]}}
    if BATCHED_FP32 in speedups:
        result["candidate_speedup_fp32"] = _spread(speedups[BATCHED_FP32]) | {"all": speedups[BATCHED_FP32]}
    return result


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="training steps")
    parser.add_argument("--batch", type=int, default=8, help="training batch")
    parser.add_argument("--fast", choices=("auto", "on", "off"), default="auto", help="TrainConfig.fast")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--candidate-batch", type=int, default=8, help="images per call on the batched paths")
    parser.add_argument("--batched-fp32", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the batched path held in fp32 (what batching alone buys)")
    parser.add_argument("--reference-candidates", type=int, default=None,
                        help="draw only this many on the one-per-call reference path (default: all)")
    parser.add_argument("--sample-steps", type=int, default=12)
    parser.add_argument("--adapter-guidance", type=float, default=0.0)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="the batched path's SampleConfig.precision (the others are fp32)")
    parser.add_argument("--scorer", default="tiny",
                        help="CLIP scorer (tiny: offline random CLIP; ViT-L-14/random: the default's size, random)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 keeps a shared machine's load from stalling both paths alike)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    result = run(args)
    env, phases = result["environment"], result["phases"]
    print(f"preset={args.preset} device={args.device} ({env['device_name']}) torch={env['torch']} "
          f"train {args.steps} steps x batch {args.batch} (fast={args.fast}); {args.candidates} candidates, "
          f"{args.sample_steps} sampling steps; scorer={args.scorer}; {args.repeats} repeats; "
          f"{torch_threads()} CPU threads")
    print(f"batched path: {result['batched_path']}")
    print(f"{'phase':<28} {'median s':>9} {'min s':>8} {'max s':>8}")
    ref_label = f"candidates, one per call ({result['reference_candidates']})"
    for phase, label in (("train", "train"), (REFERENCE, ref_label), (BATCHED_FP32, "candidates, batched fp32"),
                         (BATCHED, "candidates, batched"), ("score", "CLIP scoring")):
        if phase in phases:
            p = phases[phase]
            print(f"{label:<28} {p['median']:>9.3f} {p['min']:>8.3f} {p['max']:>8.3f}")
    r = result["round_seconds"]
    print(f"{'round (train+batched+score)':<28} {r['median']:>9.3f} {r['min']:>8.3f} {r['max']:>8.3f}")
    for key, label in (("candidate_speedup_fp32", "batched fp32"), ("candidate_speedup", "batched")):
        if key not in result:
            continue
        s = result[key]
        print(f"candidate phase, {label} vs one image per call (per image): {s['median']:.2f}x "
              f"(min {s['min']:.2f}x, max {s['max']:.2f}x over {args.repeats} repeats)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
