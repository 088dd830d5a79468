"""The engine's front door: train a style folder from a reference image, load it, generate with it.

The CLI and the web worker both call these functions, so a style trained in one is usable in the other.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .adapter_files import AdapterMeta, describe, load_adapter, read_adapter_file, save_style
from .adapters import Adapter, AdapterConfig, create_adapter
from .errors import StyleDropError
from .model_profiles import profile_for
from .models import DEFAULT_MODEL, Components, default_device, load_components
from .plan import adapter_recipe, sampling_recipe
from .prompts import check_prompt_text, style_prompt
from .sampling import SampleConfig, Samples, StepCallback, generate, sample_config
from .training import Example, ProgressFn, TrainConfig, TrainResult, train
from .training_samples import SamplesFn, TrainingSampler, sample_callback

CHECKPOINT_DIR = "checkpoints"


def default_adapter_config(kind: str = "styledrop") -> AdapterConfig:
    """Round-1 defaults (styledrop.plan.adapter_recipe): the paper's H=4 shared adapter; LoRA as diffusers'
    aMUSEd recipe (r=16)."""
    return AdapterConfig.from_dict(adapter_recipe(1, kind).config_dict())


@dataclass
class TrainedStyle:
    folder: Path
    meta: AdapterMeta
    result: TrainResult
    adapter: Adapter
    components: Components


def train_style(images: list[Image.Image], content: str | list[str], descriptor: str, out_dir: str | os.PathLike,
                components: Components | None = None, model: str = DEFAULT_MODEL,
                adapter_config: AdapterConfig | None = None, train_config: TrainConfig | None = None,
                on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                resume: bool = True, extra_meta: dict | None = None,
                init_state: dict[str, torch.Tensor] | None = None, references: int | None = None,
                sample_defaults: dict | None = None, on_samples: SamplesFn | None = None,
                sample_contents: list[str] | None = None) -> TrainedStyle:
    """Train a style adapter on one or a few images, each described by its content ("a house").

    Progress is checkpointed under out_dir/checkpoints; a later call with resume=True continues there.
    The style folder is written only when training finishes (not when it is stopped). `init_state` starts
    the adapter from earlier weights (a previous round's) instead of its untrained, no-op initialisation.
    The first `references` images (default: all) are the style's reference images: every one is kept in the
    folder with its content, so later rounds train on all of them and style scores compare with all of them.
    `sample_defaults` (λA, λB, steps, temperature: styledrop.plan.SamplingDefaults) go into the adapter file,
    so whoever loads it samples as its round meant; default: round 1's for the base model
    (styledrop.model_profiles: λB 1, λA 0 on the shapes world).
    `on_samples(step, samples)` receives the fixed training samples (styledrop.training_samples) every
    train_config.sample_every steps, drawn in the style's prompt form with those sampling defaults, of
    `sample_contents` (default: the base model's, styledrop.model_profiles).
    """
    if not images:
        raise StyleDropError("Give at least one reference image.")
    contents = content if isinstance(content, list) else [content] * len(images)
    if len(contents) != len(images):
        raise StyleDropError(f"{len(images)} images but {len(contents)} content descriptions.")
    descriptor = check_prompt_text(descriptor, "style descriptor")
    examples = [Example(img, style_prompt(c, descriptor)) for img, c in zip(images, contents)]
    count = len(images) if references is None else references
    # every image's content as trained, so an evaluation can refuse them later whatever the selections become
    extra = {"reference_contents": contents[:count], "training_contents": contents} | dict(extra_meta or {})
    components = components or load_components(model, default_device())
    return train_adapter_folder(examples, out_dir, components,
                                adapter_config or default_adapter_config(), train_config or TrainConfig(),
                                dict(content=contents[0], descriptor=descriptor),
                                extra | {"sample_defaults": sample_defaults
                                         or sampling_recipe(1, components.source).model_dump()},
                                on_progress, should_stop, resume, init_state, references=count,
                                on_samples=on_samples, sample_descriptor=descriptor, sample_contents=sample_contents)


def train_adapter_folder(examples: list[Example], out_dir: str | os.PathLike, components: Components,
                         adapter_config: AdapterConfig, train_config: TrainConfig, meta_fields: dict,
                         extra_meta: dict | None = None, on_progress: ProgressFn | None = None,
                         should_stop: Callable[[], bool] | None = None, resume: bool = True,
                         init_state: dict[str, torch.Tensor] | None = None, references: int = 1,
                         on_samples: SamplesFn | None = None, sample_descriptor: str | None = None,
                         sample_contents: list[str] | None = None) -> TrainedStyle:
    """Train a fresh adapter on examples and write it as a folder (styles and content subjects alike), with
    the first `references` examples' images as its reference images. With `on_samples`, the fixed training
    samples in `sample_descriptor`'s prompt form, drawn with extra_meta's sample_defaults."""
    out_dir = Path(out_dir)
    checkpoints = out_dir / CHECKPOINT_DIR
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    adapter = create_adapter(adapter_config, components.transformer, seed=train_config.seed)
    if init_state is not None:
        adapter.load_adapter_state_dict({k: v.to(components.device) for k, v in init_state.items()})
    on_sample = None
    if on_samples is not None and train_config.sample_every:
        config = sample_config((extra_meta or {}).get("sample_defaults") or {})
        sampler = TrainingSampler(components, adapter, sample_descriptor, config,
                                  contents=sample_contents or profile_for(components.source).sample_contents)
        on_sample = sample_callback(sampler, on_samples)
    result = train(components, adapter, examples, train_config, checkpoints, on_progress, should_stop, on_sample)
    meta = describe(components, adapter, prompts=[e.prompt for e in examples], steps=result.steps_done,
                    training=train_config.to_dict() | {"seconds": round(result.seconds, 2)},
                    extra=dict(extra_meta or {}, final_loss=_mean_tail(result.losses)), **meta_fields)
    if not result.stopped:
        save_style(out_dir, adapter, meta, references=[e.image for e in examples[:references]])
        shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainedStyle(out_dir, meta, result, adapter, components)


def _mean_tail(losses: list[float], n: int = 20) -> float | None:
    tail = losses[-n:]
    return round(sum(tail) / len(tail), 5) if tail else None


@dataclass
class LoadedStyle:
    components: Components
    adapter: Adapter
    meta: AdapterMeta
    folder: Path | None = None
    extra: dict = field(default_factory=dict)

    def prompt(self, content: str, with_descriptor: bool = True, descriptor: str | None = None) -> str:
        """The sampling prompt: the stored descriptor, another one (the paper edits descriptors at sampling,
        §4.4.2: "melting golden 3d rendering" → "golden 3d rendering"), or none."""
        if not with_descriptor:
            return style_prompt(content, None)
        return style_prompt(content, descriptor if descriptor is not None else self.meta.descriptor)


def load_style(path: str | os.PathLike, components: Components | None = None, model: str | None = None,
               device: str | torch.device | None = None) -> LoadedStyle:
    """Load a style folder or adapter file onto its base model (the one recorded in it, unless given)."""
    if components is None:
        _, meta = read_adapter_file(path)
        components = load_components(model or meta.base_model, device or default_device())
    adapter, meta = load_adapter(path, components)
    folder = Path(path) if Path(path).is_dir() else None
    return LoadedStyle(components, adapter, meta, folder)


def generate_with_style(style: LoadedStyle, contents: list[str], config: SampleConfig | None = None,
                        with_descriptor: bool = True, on_step: StepCallback | None = None,
                        seeds: list[int] | None = None, descriptor: str | None = None) -> Samples:
    """Generate images of the given contents ("a cat") in the style ("A cat in watercolor painting style").
    `seeds`: one per image, each drawn from its own generator (styledrop.sampling.generate). `descriptor`:
    another descriptor than the style's (with_descriptor=False: none)."""
    prompts = [style.prompt(c, with_descriptor, descriptor) for c in contents]
    return generate(style.components, prompts, config, adapter=style.adapter, on_step=on_step, seeds=seeds)
