"""Flags and defaults several commands share: the base model, the sampling flags, the prompt list."""

from __future__ import annotations

import argparse


def model_default(value: str | None) -> str:
    import os

    from ..models import DEFAULT_MODEL

    return value or os.environ.get("STYLEDROP_MODEL") or DEFAULT_MODEL


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Unset flags take the sampling defaults the adapter file carries (those of its round)."""
    p.add_argument("--steps", type=int, default=None, help="decoding steps (default: the adapter's, 12)")
    p.add_argument("--guidance", type=float, default=None,
                   help="λB, classifier-free guidance, diffusers' scale - 1 (default: the adapter's, 9)")
    p.add_argument("--adapter-guidance", type=float, default=None,
                   help="λA, adapter guidance, paper Eq. 4 (default: the adapter's round default, 0 or 2)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=None,
                   help="auto (default): bf16 autocast on CUDA and on CPUs with native bf16, else fp32; the same "
                   "seed draws another image in another precision")


def sample_config_from_flags(args: argparse.Namespace, meta, **values):
    """The adapter file's sampling defaults (its round's λA, λB, steps, temperature), overridden by flags."""
    from ..sampling import sample_config

    config = sample_config(meta.extra.get("sample_defaults") or {}, steps=args.steps, guidance=args.guidance,
                           adapter_guidance=args.adapter_guidance, precision=args.precision, **values)
    config.validate()
    return config


def prompt_list(args: argparse.Namespace, held_out: bool = False) -> list[str]:
    """The --prompts file, else the built-in candidate pool (diverse) or held-out evaluation list; --limit cuts."""
    from ..prompt_sets import diverse_prompts, eval_prompts, read_prompt_file

    prompts = read_prompt_file(args.prompts) if args.prompts else eval_prompts() if held_out else diverse_prompts()
    return prompts[: args.limit] if args.limit else prompts
