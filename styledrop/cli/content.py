"""`styledrop train-content`: a content (subject) adapter, to compose with styles (paper §3.4)."""

from __future__ import annotations

import argparse

from ..progress import training_bar
from .options import model_default

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-content", help="train a content (subject) adapter DreamBooth-style",
                       description="Train a content adapter on 1-10 photos of a subject, to compose with styles.")
    p.add_argument("--images", nargs="+", required=True, help="1 to 10 photos of the subject")
    p.add_argument("--identifier", default="sks", help="rare token naming the subject (default sks)")
    p.add_argument("--class-noun", required=True, help='what the subject is, e.g. "dog"')
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--adapter", choices=["styledrop", "lora"], default="styledrop")
    p.add_argument("--rank", type=int, default=None, help="default 32 (StyleDrop, not shared) / 16 (LoRA)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior-preservation", action="store_true",
                   help="also train on base-model images of the class noun (off by default)")
    p.add_argument("--num-class-images", type=int, default=8)
    p.add_argument("--prior-loss-weight", type=float, default=1.0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train_content)


def cmd_train_content(args: argparse.Namespace) -> int:
    from ..adapters import AdapterConfig
    from ..composition import default_content_adapter, subject_phrase, train_content
    from ..images import load_image
    from ..models import default_device, load_components
    from ..training import TrainConfig

    subject_phrase(args.identifier, args.class_noun)
    images = [load_image(path) for path in args.images]
    if args.adapter == "lora":
        config = AdapterConfig(kind="lora", rank=args.rank or 16, alpha=float(args.rank or 16))
    else:
        config = default_content_adapter()
        config.rank = args.rank or config.rank
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    train_config.validate()
    components = load_components(model_default(args.model), args.device or default_device())
    with training_bar(args.steps, "content adapter") as on_progress:
        trained = train_content(images, args.identifier, args.class_noun, args.out, components, config,
                                train_config, args.prior_preservation, args.num_class_images, args.prior_loss_weight,
                                on_progress)
    print(f"content adapter for '{trained.meta.content}' ({trained.adapter.num_parameters():,} parameters) "
          f"written to {trained.folder}")
    return 0
