"""A subject and a style, trained apart and combined at sampling time (StyleDrop §3.4).

Content adapter: DreamBooth-style training on 1–10 photos of a subject with prompts "A {identifier}
{class noun}" ("A sks dog"). Prior preservation (class images from the base model, trained with weight
λ_prior so the class noun keeps its meaning) is off by default, as in diffusers' LoRA DreamBooth recipes:
with small adapters and few steps, drift of the class is small and the extra images cost time.

Sampling from two θ's: at each decoding step the logits are mixed

    l = (1 − γ)·l_s + γ·l_c

where l_s is Eq. 4 with the style adapter θs and the full prompt t ("A sks dog on a beach in watercolor
painting style") and l_c is Eq. 4 with the content adapter θc and the prompt without the descriptor
("A sks dog on a beach"), with the same λA and λB; γ = 0.5–0.7 in the paper. Both models' passes run as one
batched forward (G(n) shared, then G(t), Ĝs(t), G(c), Ĝc(c)). γ = 0 is exactly style-only sampling and
γ = 1 content-only. For comparison, `method="merge"` merges two LoRA adapters in weight space with
peft/diffusers `set_adapters(..., weights=[1 − γ, γ])` and samples once (the common community recipe).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

import torch
from PIL import Image

from .adapters import AdapterConfig, LoraAdapter
from .conditioning import encode_prompts, micro_conds
from .errors import StyleDropError
from .guidance import GuidedModel, Term, guided_logits
from .models import Components
from .plan import large_adapter
from .prompts import check_prompt_text, style_prompt
from .sampling import SampleConfig, Samples, StepCallback, draw
from .styles import LoadedStyle, TrainedStyle, train_adapter_folder
from .training import Example, ProgressFn, TrainConfig

PLACEHOLDER = "[V]"
METHODS = ("mix", "merge")


def default_content_adapter() -> AdapterConfig:
    """A subject's identity needs more capacity than a style: the paper's larger adapter size (H=32)."""
    return AdapterConfig.from_dict(large_adapter().config_dict())


def subject_phrase(identifier: str, class_noun: str) -> str:
    identifier = check_prompt_text(identifier, "identifier")
    class_noun = check_prompt_text(class_noun, "class noun")
    if len(identifier.split()) != 1:
        raise StyleDropError(f"The identifier must be one rare word such as 'sks', got '{identifier}'.")
    return f"{identifier} {class_noun}"


def class_images(components: Components, class_noun: str, count: int, seed: int = 0) -> list[Image.Image]:
    """Prior-preservation images: what the base model draws for "A {class noun}"."""
    from .sampling import generate

    samples = generate(components, [style_prompt(class_noun, None)], SampleConfig(num_images=count, seed=seed))
    return samples.images


def train_content(images: list[Image.Image], identifier: str, class_noun: str, out_dir: str | os.PathLike,
                  components: Components, adapter_config: AdapterConfig | None = None,
                  train_config: TrainConfig | None = None, prior_preservation: bool = False,
                  num_class_images: int = 8, prior_loss_weight: float = 1.0,
                  on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                  resume: bool = True) -> TrainedStyle:
    """Train a content (subject) adapter DreamBooth-style and write it as a folder like a style's."""
    if not 1 <= len(images) <= 10:
        raise StyleDropError(f"A subject needs 1 to 10 photos, got {len(images)}.")
    subject = subject_phrase(identifier, class_noun)
    examples = [Example(img, style_prompt(subject, None)) for img in images]
    if prior_preservation:
        if prior_loss_weight <= 0:
            raise StyleDropError("The prior-preservation loss weight must be positive.")
        prior_prompt = style_prompt(class_noun, None)
        examples += [Example(img, prior_prompt, prior_loss_weight)
                     for img in class_images(components, class_noun, num_class_images)]
    meta = dict(content=subject, descriptor=None)
    extra = {"role": "content", "identifier": identifier.strip(), "class_noun": class_noun.strip(),
             "prior_preservation": prior_preservation}
    return train_adapter_folder(examples, out_dir, components, adapter_config or default_content_adapter(),
                                train_config or TrainConfig(), meta, extra, on_progress, should_stop, resume)


def check_pair(style: LoadedStyle, content: LoadedStyle) -> None:
    if style.components is not content.components:
        raise StyleDropError("Load the style and the content adapter onto the same base model instance.")
    if style.meta.fingerprint != content.meta.fingerprint:
        raise StyleDropError(
            f"The style was trained for base model '{style.meta.base_model}' and the content adapter for "
            f"'{content.meta.base_model}', which differ: retrain one of them on the other's base model.")
    if content.meta.extra.get("role") != "content":
        raise StyleDropError("The second adapter is not a content adapter: train one with `styledrop train-content`.")


def composed_prompts(style: LoadedStyle, content: LoadedStyle, prompt: str) -> tuple[str, str]:
    """"a [V] dog on a beach" -> (full prompt with the style descriptor, content prompt without it)."""
    identifier = content.meta.extra.get("identifier", "")
    text = check_prompt_text(prompt, "prompt").replace(PLACEHOLDER, identifier)
    return style_prompt(text, style.meta.descriptor), style_prompt(text, None)


def mixed_model(style: LoadedStyle, content: LoadedStyle, prompts: list[str], mix: float,
                config: SampleConfig) -> GuidedModel:
    """Eq. 4 for each adapter with its own prompt, mixed (1 − γ)·l_s + γ·l_c in one batched forward."""
    check_pair(style, content)
    if not 0.0 <= mix <= 1.0:
        raise StyleDropError(f"The mixing weight γ must lie in [0, 1], got {mix}.")
    components = style.components
    pairs = [composed_prompts(style, content, p) for p in prompts]
    full = encode_prompts(components, [f for f, _ in pairs]).repeat(config.num_images)
    plain = encode_prompts(components, [c for _, c in pairs]).repeat(config.num_images)
    negative = encode_prompts(components, [config.negative_prompt] * len(prompts)).repeat(config.num_images)
    terms = [Term(full, style.adapter, 1.0 - mix), Term(plain, content.adapter, mix)]
    return GuidedModel(components, terms, negative, config.guidance, config.adapter_guidance, config.aesthetic_score)


class MergedLoraModel:
    """The common alternative: both LoRAs merged in weight space (set_adapters with weights), sampled once.

    Eq. 4 (`guided_logits`) with the merged model as Ĝ: G(n), G(t) run with every adapter off, Ĝ(t) with the
    merge, in a forward of its own (set_adapters applies to every row).
    """

    def __init__(self, style: LoadedStyle, content: LoadedStyle, prompts: list[str], mix: float,
                 config: SampleConfig):
        check_pair(style, content)
        if not (isinstance(style.adapter, LoraAdapter) and isinstance(content.adapter, LoraAdapter)):
            raise StyleDropError("Weight merging needs two LoRA adapters (train both with --adapter lora); "
                                 "use --composition mix for StyleDrop adapters.")
        self.style, self.content, self.mix = style, content, mix
        components = style.components
        full = encode_prompts(components, [composed_prompts(style, content, p)[0] for p in prompts])
        negative = encode_prompts(components, [config.negative_prompt] * len(prompts))
        self.base = GuidedModel(components, [Term(full.repeat(config.num_images))],
                                negative.repeat(config.num_images), config.guidance, 0.0, config.aesthetic_score)
        self.full = full.repeat(config.num_images)
        self.config = config

    @contextlib.contextmanager
    def _merged(self) -> Iterator[None]:
        transformer = self.style.components.transformer
        previous = list(transformer.active_adapters())
        transformer.set_adapters([self.style.adapter.name, self.content.adapter.name],
                                 weights=[1.0 - self.mix, self.mix])
        try:
            yield
        finally:
            transformer.set_adapters(previous)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        components = self.style.components
        plain = self.base.forward_passes(tokens)[0]  # G(t), G(n) with no adapter on any row
        side = components.resolution
        micro = micro_conds(side, side, tokens.shape[0], tokens.device, self.full.hidden.dtype,
                            aesthetic=self.config.aesthetic_score)
        with self._merged():
            merged = components.transformer(tokens, micro_conds=micro, pooled_text_emb=self.full.pooled,
                                            encoder_hidden_states=self.full.hidden)
        return guided_logits(merged, plain.base, plain.null, self.config.guidance, self.config.adapter_guidance)


def generate_composed(style: LoadedStyle, content: LoadedStyle, prompts: list[str], mix: float = 0.5,
                      config: SampleConfig | None = None, method: str = "mix",
                      on_step: StepCallback | None = None, seeds: list[int] | None = None) -> Samples:
    """Images of the subject in the style. Prompts may use "[V]" for the subject's identifier.

    `seeds` (one per image, prompts tiled num_images times) gives every image its own generator, as
    `generate` does (the seed contract); without them one generator draws the whole call (parity mode)."""
    config = config or SampleConfig()
    if method not in METHODS:
        raise StyleDropError(f"Unknown composition method '{method}' (mix or merge).")

    def build_model() -> GuidedModel | MergedLoraModel:
        if method == "mix":
            return mixed_model(style, content, prompts, mix, config)
        return MergedLoraModel(style, content, prompts, mix, config)

    drawn = draw(style.components, build_model, prompts, config, on_step, seeds=seeds)
    drawn.prompts = [composed_prompts(style, content, p)[0] for p in prompts] * config.num_images
    return drawn


__all__ = ["METHODS", "MergedLoraModel", "PLACEHOLDER", "check_pair", "class_images", "composed_prompts",
           "generate_composed", "mixed_model", "train_content"]
