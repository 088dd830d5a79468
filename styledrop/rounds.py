"""Iterative training with feedback (paper §3.3): rounds of a style folder.

    STYLE_DIR/adapter.safetensors, style.json, reference.png   the latest round (what `generate` uses)
    STYLE_DIR/rounds/round-001/                              each round's adapter and manifest
    STYLE_DIR/rounds/round-001/candidates/                   its candidate pool (PNGs + candidates.json)
    STYLE_DIR/rounds/round-001/selection.json                which candidates feed round 2, chosen by whom

Round N+1 trains on the reference plus the selected images, each with its own content prompt. Following
the paper, it trains a *fresh* adapter from the base model — larger than round 1's (H=32, not shared,
Table S3) — rather than continuing round N's; `init="previous"` continues round N's adapter instead.
Sampling from round ≥ 2 uses adapter guidance λA = 2 (paper §4.1); round 1 uses λA = 0 by default (a world's
base model has its own: styledrop.model_profiles).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from .adapter_files import (
    ADAPTER_FILE,
    DIFFUSERS_LORA_DIR,
    MANIFEST_FILE,
    REFERENCE_FILE,
    AdapterMeta,
    read_adapter_file,
    reference_file,
    reference_files,
)
from .adapters import AdapterConfig
from .candidates import Candidate, load_candidates
from .errors import StyleDropError
from .models import Components
from .plan import adapter_recipe, sampling_recipe
from .sampling import SampleConfig, sample_config
from .styles import TrainedStyle, train_style
from .training import ProgressFn, TrainConfig

ROUNDS_DIR = "rounds"
CANDIDATES_DIR = "candidates"
SELECTION_FILE = "selection.json"
INIT_CHOICES = ("base", "previous")


def round_dir(style_dir: str | Path, number: int) -> Path:
    return Path(style_dir) / ROUNDS_DIR / f"round-{number:03d}"


def round_adapter_config(number: int, kind: str = "styledrop") -> AdapterConfig:
    """The round's adapter by the per-round recipe (styledrop.plan.adapter_recipe)."""
    return AdapterConfig.from_dict(adapter_recipe(number, kind).config_dict())


def round_sample_config(number: int, model: str | None = None, **overrides) -> SampleConfig:
    """The round's sampling defaults for a base model (styledrop.plan.sampling_recipe) as a SampleConfig."""
    return sample_config(sampling_recipe(number, model), **overrides)


def latest_round(style_dir: str | Path) -> int:
    """The newest round with an adapter; a folder written by `styledrop train` alone is round 1."""
    style_dir = Path(style_dir)
    if not (style_dir / ADAPTER_FILE).is_file():
        raise StyleDropError(f"{style_dir} holds no trained style: run `styledrop train ... --out {style_dir}` first.")
    numbers = sorted(int(p.name.split("-")[1]) for p in (style_dir / ROUNDS_DIR).glob("round-*")
                     if (p / ADAPTER_FILE).is_file())
    if not numbers:
        record_round(style_dir, 1)
        return 1
    return numbers[-1]


def record_round(style_dir: str | Path, number: int) -> Path:
    """Keep a copy of the folder's current adapter as round `number`."""
    target = round_dir(style_dir, number)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(style_dir) / ADAPTER_FILE, target / ADAPTER_FILE)
    if (Path(style_dir) / MANIFEST_FILE).is_file():
        shutil.copy2(Path(style_dir) / MANIFEST_FILE, target / MANIFEST_FILE)
    else:  # a folder made around a downloaded adapter file: its metadata is the manifest
        meta = read_adapter_file(target / ADAPTER_FILE)[1]
        (target / MANIFEST_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    return target


def round_meta(style_dir: str | Path, number: int) -> AdapterMeta:
    return read_adapter_file(round_dir(style_dir, number) / ADAPTER_FILE)[1]


@dataclass
class RoundSelection:
    """A round's selection.json: which of its candidates train the next round, and who chose them."""

    round: int
    ids: list[int]
    by: str  # "human" (ids or ratings), "clip" (a CLIP rule, named in details) or "random" (the random baseline)
    details: dict

    def save(self, style_dir: str | Path) -> Path:
        path = round_dir(style_dir, self.round) / SELECTION_FILE
        path.write_text(json.dumps({"round": self.round, "ids": self.ids, "by": self.by, "details": self.details},
                                   indent=2) + "\n")
        return path


def load_selection(style_dir: str | Path, number: int) -> RoundSelection:
    path = round_dir(style_dir, number) / SELECTION_FILE
    if not path.is_file():
        raise StyleDropError(f"Round {number} has no selection yet: run `styledrop select` first.")
    data = json.loads(path.read_text())
    return RoundSelection(data["round"], data["ids"], data["by"], data.get("details", {}))


def reference_images(style_dir: str | Path) -> list[Image.Image]:
    """Every reference image of the style (a style made from several keeps all of them)."""
    paths = reference_files(style_dir)
    if not paths:
        raise StyleDropError(f"{style_dir} has no {REFERENCE_FILE}; it is needed to train the next round.")
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    return images


def reference_image(style_dir: str | Path) -> Image.Image:
    """The first reference image."""
    return reference_images(style_dir)[0]


def reference_contents(style_dir: str | Path) -> list[str]:
    """The content of each reference image, in order (round 1's record; older folders knew only the first)."""
    first = round_dir(style_dir, 1) / ADAPTER_FILE
    meta = read_adapter_file(first if first.is_file() else Path(style_dir))[1]  # before `candidates`: the folder's
    count = len(reference_files(style_dir))
    contents = list(meta.extra.get("reference_contents") or [meta.content or "an image"])
    return (contents + [contents[-1]] * count)[:count]


def trained_contents(style_dir: str | Path) -> list[str]:
    """Every content prompt some round of this style was trained on, as each round's adapter file recorded it
    (extra.training_contents), not the selection files, which `select` can rewrite after a round trained.
    Evaluation must not score a style on these. Rounds trained before the record: their selection file."""
    style_dir = Path(style_dir)
    contents = reference_contents(style_dir)
    for number in range(1, latest_round(style_dir) + 1):
        recorded = round_meta(style_dir, number).extra.get("training_contents")
        if recorded is not None:
            contents += list(recorded)
        elif number > 1:
            selection = load_selection(style_dir, number - 1)
            pool = {c.id: c for c in load_candidates(round_dir(style_dir, number - 1) / CANDIDATES_DIR,
                                                     with_images=False)}
            contents += [pool[i].content for i in selection.ids if i in pool]
    return [c for c in dict.fromkeys(contents) if c]


def next_round_training_set(style_dir: str | Path, number: int) -> tuple[list[Image.Image], list[str]]:
    """Round number+1's training set: every reference image with its content, plus round `number`'s selection."""
    selection = load_selection(style_dir, number)
    pool = {c.id: c for c in load_candidates(round_dir(style_dir, number) / CANDIDATES_DIR)}
    missing = [i for i in selection.ids if i not in pool]
    if missing:
        raise StyleDropError(f"Selected candidates {missing} are not in round {number}'s pool.")
    chosen: list[Candidate] = [pool[i] for i in selection.ids]
    images = reference_images(style_dir) + [c.image for c in chosen]
    contents = reference_contents(style_dir) + [c.content for c in chosen]
    return images, contents


def train_next_round(style_dir: str | Path, components: Components | None = None,
                     adapter_config: AdapterConfig | None = None, train_config: TrainConfig | None = None,
                     init: str = "base", on_progress: ProgressFn | None = None,
                     should_stop: Callable[[], bool] | None = None) -> TrainedStyle:
    """Train round N+1 from round N's selection and make it the folder's current style."""
    if init not in INIT_CHOICES:
        raise StyleDropError(f"Unknown round initialisation '{init}' (base or previous).")
    style_dir = Path(style_dir)
    number = latest_round(style_dir)
    images, contents = next_round_training_set(style_dir, number)
    references = len(reference_files(style_dir))
    previous_tensors, previous = read_adapter_file(round_dir(style_dir, number) / ADAPTER_FILE)
    if init == "previous":
        adapter_config = previous.adapter_config()
    adapter_config = adapter_config or round_adapter_config(number + 1)
    work = round_dir(style_dir, number + 1)
    trained = train_style(images, contents, previous.descriptor or "", work, components=components,
                          model=previous.base_model, adapter_config=adapter_config, train_config=train_config,
                          on_progress=on_progress, should_stop=should_stop,
                          init_state=previous_tensors if init == "previous" else None, references=references,
                          extra_meta={"round": number + 1, "init": init, "selection": load_selection(style_dir, number).by,
                                      }, sample_defaults=sampling_recipe(number + 1, previous.base_model).model_dump())
    if not trained.result.stopped:
        for index in range(references):  # the references stay once, at the top of the folder
            (work / reference_file(index)).unlink(missing_ok=True)
        for name in (ADAPTER_FILE, MANIFEST_FILE):
            shutil.copy2(work / name, style_dir / name)
        shutil.rmtree(style_dir / DIFFUSERS_LORA_DIR, ignore_errors=True)
        if (work / DIFFUSERS_LORA_DIR).is_dir():
            shutil.copytree(work / DIFFUSERS_LORA_DIR, style_dir / DIFFUSERS_LORA_DIR)
    return trained
