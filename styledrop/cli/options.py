"""Flags and defaults several commands share: the base model, the sampling flags, the prompt list.

A flag left unset takes the base model's default (styledrop.model_profiles: aMUSEd's, or a world's own, e.g. 150
steps, learning rate 2e-3, no flips, λB 1 and λA 0 on `shapes`); a flag given always wins."""

from __future__ import annotations

import argparse


def model_default(value: str | None) -> str:
    import os

    from ..models import DEFAULT_MODEL

    return value or os.environ.get("STYLEDROP_MODEL") or DEFAULT_MODEL


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Unset flags take the sampling defaults the adapter file carries (those of its round and base model)."""
    p.add_argument("--steps", type=int, default=None, help="decoding steps (default: the adapter's, 12)")
    p.add_argument("--guidance", type=float, default=None,
                   help="λB, classifier-free guidance, diffusers' scale - 1 (default: the adapter's: 9 on aMUSEd, "
                        "1 on the shapes world)")
    p.add_argument("--adapter-guidance", type=float, default=None,
                   help="λA, adapter guidance, paper Eq. 4 (default: the adapter's round default: 0 or 2 on "
                        "aMUSEd, 0 on the shapes world)")
    p.add_argument("--temperature", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="Gumbel temperature, annealed linearly (default: the adapter's, 2 0 = aMUSEd's; the "
                        "paper's Muse: 4.5)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=None,
                   help="auto (default): bf16 autocast on CUDA and on CPUs with native bf16, else fp32; the same "
                   "seed draws another image in another precision")


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """Our departures from the paper's training, each an option (defaults in styledrop.plan; docs/method.md)."""
    from ..plan import DEFAULT_MAX_GRAD_NORM, DEFAULT_TEXT_DROPOUT, DEFAULT_WEIGHT_DECAY

    p.add_argument("--flips", "--augment", dest="flips", action=argparse.BooleanOptionalAction, default=None,
                   help="horizontal flips of the training images (ours; default: the base model's, on for aMUSEd, "
                        "off for the shapes world, whose textures are anchored to the canvas; they mirror "
                        "lettering)")
    p.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY,
                   help=f"AdamW weight decay (default {DEFAULT_WEIGHT_DECAY}, ours; 0 is the paper's Adam)")
    p.add_argument("--max-grad-norm", type=float, default=DEFAULT_MAX_GRAD_NORM,
                   help=f"gradient clipping by global norm (default {DEFAULT_MAX_GRAD_NORM}, ours; 0: none)")
    p.add_argument("--text-dropout", type=float, default=DEFAULT_TEXT_DROPOUT,
                   help="share of steps trained on the empty prompt (default 0: Eq. 4 takes G(n) from the base "
                        "model)")


def add_round_training_flags(p: argparse.ArgumentParser) -> None:
    """Steps, batch and learning rate of a round; unset, the base model's (styledrop.model_profiles)."""
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the base model's, 1000 on aMUSEd, 150 on the shapes world)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default: the base model's, 8)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the base model's: on aMUSEd 3e-5 StyleDrop, 4e-4 LoRA; 2e-3 on the "
                        "shapes world)")


def training_values(args: argparse.Namespace, model: str | None) -> dict:
    """TrainConfig's keyword arguments from add_round_training_flags' and add_training_flags' flags, the base
    model's defaults (styledrop.model_profiles) where a flag is unset."""
    from ..model_profiles import profile_for

    profile = profile_for(model)
    return {"steps": args.steps or profile.train_steps, "batch_size": args.batch_size or profile.batch_size,
            "learning_rate": args.lr if args.lr is not None else profile.learning_rate,
            "augment": profile.flips if args.flips is None else args.flips, "weight_decay": args.weight_decay,
            "max_grad_norm": args.max_grad_norm or None, "cond_dropout": args.text_dropout}


def sample_config_from_flags(args: argparse.Namespace, meta, **values):
    """The adapter file's sampling defaults (its round's λA, λB, steps, temperature), overridden by flags; a file
    without them: its round's recipe for its base model."""
    from ..plan import sampling_recipe
    from ..sampling import sample_config

    temperature = tuple(args.temperature) if getattr(args, "temperature", None) else None
    defaults = meta.extra.get("sample_defaults") or sampling_recipe(int(meta.extra.get("round") or 1),
                                                                    meta.base_model).model_dump()
    config = sample_config(defaults, steps=args.steps, guidance=args.guidance,
                           adapter_guidance=args.adapter_guidance, temperature=temperature,
                           precision=args.precision, **values)
    config.validate()
    return config


def prompt_list(args: argparse.Namespace, model: str | None, held_out: bool = False) -> list[str]:
    """The --prompts file, else the base model's candidate prompts (aMUSEd: the built-in ones, across every
    category) or held-out evaluation list (styledrop.model_profiles); --limit cuts."""
    from ..model_profiles import profile_for
    from ..prompt_sets import read_prompt_file

    profile = profile_for(model)
    if args.prompts:
        prompts = read_prompt_file(args.prompts)
    else:
        prompts = profile.eval_prompts() if held_out else list(profile.candidates)
    return prompts[: args.limit] if args.limit else prompts
