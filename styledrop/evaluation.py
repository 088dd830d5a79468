"""The paper's evaluation (§4, Table 2) on one style: CLIP text and style scores per round.

For a fixed prompt list, generate `per_prompt` images with the base model (no adapter, same prompt with the
descriptor — the paper's "Muse" row) and with each round's adapter, and report mean and standard deviation
of the text score (image vs. content prompt without descriptor) and the style score (image vs. reference).
The paper uses 190 Parti prompts × 8 images; our default list is the base model's held-out list
(styledrop.model_profiles: for aMUSEd the built-in styledrop.prompt_sets.EVAL_PROMPTS, never a candidate prompt,
since Parti is not shipped offline; for a world its evaluation shapes) — pass `--prompts FILE` for Parti or your
own. The report names the list it used. Outputs: eval.json, eval.md,
scores.png (scores per round) and contact_sheet.png (images with prompts and scores).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .adapter_files import ADAPTER_FILE, load_adapter
from .candidates import Candidate, draw_scored_candidates, score_candidates
from .errors import StyleDropError
from .models import Components
from .plan import sampling_recipe
from .rounds import latest_round, reference_images, round_dir
from .sampling import SampleConfig, sample_config
from .styles import LoadedStyle


@dataclass
class RowResult:
    name: str
    text_mean: float
    text_std: float
    style_mean: float
    style_std: float
    count: int
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    sampling: dict = field(default_factory=dict)  # what drew the row's images: steps, λB (guidance), λA, temperature

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "candidates"}


def _row(name: str, candidates: list[Candidate], config: SampleConfig) -> RowResult:
    text = [c.text_score for c in candidates]
    style = [c.style_score for c in candidates]
    spread = lambda xs: statistics.pstdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
    sampling = {"steps": config.steps, "guidance": config.guidance, "adapter_guidance": config.adapter_guidance,
                "temperature": list(config.temperature)}
    return RowResult(name, statistics.fmean(text), spread(text), statistics.fmean(style), spread(style),
                     len(candidates), candidates, sampling)


def evaluate_style(style_dir: str | Path, components: Components, scorer, prompts: list[str], per_prompt: int = 2,
                   seed: int = 0, config: SampleConfig | None = None) -> list[RowResult]:
    """Rows: "base" then "round 1", "round 2", … with the same prompts and seeds."""
    style_dir = Path(style_dir)
    rounds = [(number, round_dir(style_dir, number) / ADAPTER_FILE) for number in range(1, latest_round(style_dir) + 1)]
    return evaluate_adapter_files([(n, p) for n, p in rounds if p.is_file()], components, scorer,
                                  scorer.reference_embedding(reference_images(style_dir)), prompts, per_prompt, seed,
                                  config)


class EvaluationStopped(StyleDropError):
    """evaluate_adapter_files was told to stop (its `should_stop`)."""


def evaluate_adapter_files(rounds: list[tuple[int, Path]] | list[tuple[int, Path, Any]], components: Components,
                           scorer, reference, prompts: list[str], per_prompt: int = 2, seed: int = 0,
                           config: SampleConfig | None = None, precision: str | None = None,
                           steps: int | None = None, guidance: float | None = None,
                           adapter_guidance: float | None = None,
                           should_stop: Callable[[], bool] | None = None) -> list[RowResult]:
    """Rows "base", "round N"… for (round number, adapter file[, sampling defaults]) tuples: the CLI's style
    folders and the service's stored rounds alike. Each round samples with its own defaults (λA, λB, steps,
    temperature): the ones given (the service's round plan), else those its adapter file carries, else the
    per-round recipe of its base model (styledrop.model_profiles); `config` replaces them all, `steps`, `guidance` (λB) and `adapter_guidance` (λA) only
    that field of every round. `reference` is an image, a list of images or an embedding.
    The base row is the first adapter's model with the adapter switched off (the paper's "Muse" row: prompts
    keep the descriptor), drawn with the first round's λB, steps and temperature. `should_stop` is asked before
    each model is scored (the service's cancel): True raises EvaluationStopped."""
    if not prompts:
        raise StyleDropError("The evaluation needs at least one prompt.")
    if not rounds:
        raise StyleDropError("The evaluation needs at least one trained round.")
    if isinstance(reference, (Image.Image, list)):
        reference = scorer.reference_embedding(reference)
    rows = []
    first = rounds[0]
    for number, path, *given in [(0, *first[1:])] + list(rounds):
        if should_stop is not None and should_stop():
            raise EvaluationStopped("The evaluation was stopped before it scored every model.")
        adapter, meta = load_adapter(path, components)
        style = LoadedStyle(components, adapter, meta)
        defaults = (given[0] if given else None) or meta.extra.get("sample_defaults") \
            or sampling_recipe(max(number, first[0]), meta.base_model).model_dump()
        run = config or sample_config(defaults, precision=precision, steps=steps, guidance=guidance,
                                      adapter_guidance=adapter_guidance)
        if number == 0:  # the adapter is off: no adapter guidance
            run = replace(run, adapter_guidance=0.0)
        try:
            if number == 0:
                with adapter.disabled():
                    pool = draw_scored_candidates(style, prompts, per_prompt, seed, 0, run)
            else:
                pool = draw_scored_candidates(style, prompts, per_prompt, seed, number, run)
        finally:
            adapter.detach()
        score_candidates(scorer, pool, reference)
        rows.append(_row("base" if number == 0 else f"round {number}", pool, run))
    return rows


def write_report(rows: list[RowResult], out_dir: str | Path, scorer_name: str, prompts: list[str],
                 per_prompt: int, prompt_list: str = "given prompts") -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md", "plot": out / "scores.png",
             "contact_sheet": out / "contact_sheet.png"}
    paths["json"].write_text(json.dumps({"clip_model": scorer_name, "prompt_list": prompt_list, "prompts": prompts,
                                         "per_prompt": per_prompt, "rows": [r.summary() for r in rows]},
                                        indent=2) + "\n")
    lines = [f"CLIP model: {scorer_name}; prompts: {prompt_list}; {len(prompts)} prompts x {per_prompt} images", "",
             "| model | text score | style score | images |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.name} | {r.text_mean:.4f} ± {r.text_std:.4f} | {r.style_mean:.4f} ± {r.style_std:.4f} | "
              f"{r.count} |" for r in rows]
    paths["markdown"].write_text("\n".join(lines) + "\n")
    _plot(rows, paths["plot"], scorer_name)
    contact_sheet(rows, paths["contact_sheet"])
    return paths


def _plot(rows: list[RowResult], path: Path, scorer_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for label, mean, std in (("text score", "text_mean", "text_std"), ("style score", "style_mean", "style_std")):
        ax.errorbar(names, [getattr(r, mean) for r in rows], yerr=[getattr(r, std) for r in rows],
                    marker="o", capsize=3, label=label)
    ax.set_ylabel("CLIP cosine similarity")
    ax.set_title(f"StyleDrop evaluation ({scorer_name})", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def contact_sheet(rows: list[RowResult], path: Path, thumb: int = 128, per_row: int = 8) -> Path:
    """One band per model: its images with prompt, text score (T) and style score (S) under each."""
    label_h = 30
    bands = []
    for row in rows:
        shown = row.candidates[:per_row]
        band = Image.new("RGB", (per_row * thumb, 18 + thumb + label_h), "white")
        draw = ImageDraw.Draw(band)
        draw.text((4, 3), f"{row.name}: text {row.text_mean:.3f}  style {row.style_mean:.3f}", fill="black")
        for i, c in enumerate(shown):
            band.paste(c.image.resize((thumb, thumb)), (i * thumb, 18))
            draw.text((i * thumb + 2, 18 + thumb + 2), c.content[:22], fill="black")
            draw.text((i * thumb + 2, 18 + thumb + 15), f"T {c.text_score:.2f} S {c.style_score:.2f}", fill="gray")
        bands.append(band)
    sheet = Image.new("RGB", (per_row * thumb, sum(b.height for b in bands)), "white")
    y = 0
    for band in bands:
        sheet.paste(band, (0, y))
        y += band.height
    sheet.save(path)
    return path
