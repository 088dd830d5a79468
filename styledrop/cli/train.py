"""`styledrop train`: a style adapter from one (or a few) reference images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..errors import StyleDropError
from ..progress import training_bar
from .options import add_round_training_flags, add_training_flags, model_default, training_values

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a style adapter on a reference image",
                       description="Train a StyleDrop adapter on one (or a few) reference images.")
    p.add_argument("--image", action="append", required=True, help="reference image (repeat for a few)")
    p.add_argument("--content", action="append", required=True,
                   help='what the reference shows, e.g. "a house" (once for all images, or once per --image)')
    p.add_argument("--descriptor", required=True, help='the style in words, e.g. "watercolor painting"')
    p.add_argument("--out", required=True, help="style folder to write")
    p.add_argument("--model", default=None, help="hub id, local folder, preset (tiny, amused-256-random, "
                   "amused-512-random) or a built world (shapes); default $STYLEDROP_MODEL or amused/amused-256")
    p.add_argument("--adapter", choices=["styledrop", "lora"], default="styledrop")
    p.add_argument("--rank", type=int, default=None, help="bottleneck width H / LoRA rank (default 4 / 16)")
    p.add_argument("--not-shared", action="store_true", help="StyleDrop adapter: per-layer weights (round 2)")
    add_round_training_flags(p)
    p.add_argument("--grad-accumulation", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--sample-every", type=int, default=0, metavar="N",
                   help="at step 0, every N steps and at the last one, draw two fixed prompts with the adapter so "
                        "far into OUT/samples/step-000250-a.png, ... (default 0: none)")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints of an earlier interrupted run")
    add_training_flags(p)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..adapters import AdapterConfig
    from ..images import load_image
    from ..models import default_device, load_components
    from ..prompts import check_prompt_text
    from ..styles import default_adapter_config, train_style
    from ..training import TrainConfig

    check_prompt_text(args.descriptor, "style descriptor")
    contents = [check_prompt_text(c, "content") for c in args.content]
    if len(contents) not in (1, len(args.image)):
        raise StyleDropError(f"{len(args.image)} images but {len(contents)} --content values: give one for all "
                             "images or one per image.")
    images = [load_image(path) for path in args.image]
    config = default_adapter_config(args.adapter)
    if args.rank is not None:
        config.rank = args.rank
        config.alpha = float(args.rank) if config.kind == "lora" else None
    config.shared = config.kind == "styledrop" and not args.not_shared
    model = model_default(args.model)
    # unset flags: the base model's defaults (styledrop.model_profiles); its sampling defaults go into the adapter
    train_config = TrainConfig(grad_accumulation=args.grad_accumulation, seed=args.seed,
                               checkpoint_every=args.checkpoint_every, **training_values(args, model),
                               gradient_checkpointing=args.gradient_checkpointing, sample_every=args.sample_every)
    train_config.validate()
    components = load_components(model, args.device or default_device())
    with training_bar(train_config.steps, "training") as on_progress:
        style = train_style(images, contents if len(contents) > 1 else contents[0], args.descriptor, args.out,
                            components=components,
                            adapter_config=AdapterConfig(**config.to_dict()), train_config=train_config,
                            on_progress=on_progress, resume=not args.restart,
                            on_samples=_sample_writer(Path(args.out) / "samples") if args.sample_every else None)
    if style.result.resumed_from:
        print(f"resumed from the checkpoint at step {style.result.resumed_from}")
    share = 100 * style.adapter.num_parameters() / components.num_parameters()
    print(f"trained {style.adapter.kind} adapter: {style.adapter.num_parameters():,} parameters "
          f"({share:.3f}% of the transformer), final loss {style.meta.extra.get('final_loss')}")
    print(f"style written to {style.folder}")
    return 0


def _sample_writer(folder: Path) -> Callable[[int, list], None]:
    """`styledrop train --sample-every N`: each step's samples as OUT/samples/step-000250-a.png, ..."""
    def write(step: int, samples: list) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            sample.image.save(folder / sample.name)

    return write
