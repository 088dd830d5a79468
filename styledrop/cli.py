"""`styledrop` command line: train a style, generate with it, inspect it — no web app needed."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Sequence

from .errors import StyleDropError

EXIT_USER_ERROR = 1


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "image"


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a style adapter on a reference image",
                       description="Train a StyleDrop adapter on one (or a few) reference images.")
    p.add_argument("--image", action="append", required=True, help="reference image (repeat for a few)")
    p.add_argument("--content", required=True, help='what the reference shows, e.g. "a house"')
    p.add_argument("--descriptor", required=True, help='the style in words, e.g. "watercolor painting"')
    p.add_argument("--out", required=True, help="style folder to write")
    p.add_argument("--model", default=None, help="hub id, local folder, or preset (tiny, amused-256-random, "
                   "amused-512-random); default $STYLEDROP_MODEL or amused/amused-256")
    p.add_argument("--adapter", choices=["styledrop", "lora"], default="styledrop")
    p.add_argument("--rank", type=int, default=None, help="bottleneck width H / LoRA rank (default 4 / 16)")
    p.add_argument("--not-shared", action="store_true", help="StyleDrop adapter: per-layer weights (round 2)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-5 StyleDrop, 4e-4 LoRA)")
    p.add_argument("--grad-accumulation", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--restart", action="store_true", help="ignore checkpoints of an earlier interrupted run")
    p.add_argument("--no-augment", action="store_true", help="do not add horizontally flipped copies")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_train)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate images with a trained style",
                       description='Generate images of each content ("a cat") in the style of STYLE_DIR.')
    p.add_argument("style", help="style folder (or adapter .safetensors file)")
    p.add_argument("contents", nargs="+", help='what to draw, e.g. "a cat" "a bridge"')
    p.add_argument("--num", type=int, default=1, help="images per prompt")
    p.add_argument("--out", default="out", help="folder for the PNG files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=12, help="decoding steps")
    p.add_argument("--guidance", type=float, default=9.0, help="λB, classifier-free guidance (diffusers scale - 1)")
    p.add_argument("--adapter-guidance", type=float, default=0.0, help="λA, adapter guidance (paper Eq. 4)")
    p.add_argument("--temperature", type=float, nargs=2, default=(2.0, 0.0), metavar=("START", "END"))
    p.add_argument("--no-descriptor", action="store_true", help="leave the style descriptor out of the prompt")
    p.add_argument("--model", default=None, help="base model (default: the one the style was trained on)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_generate)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a style folder holds")
    p.add_argument("style")
    p.set_defaults(func=cmd_info)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run StyleDrop Studio (API, worker, database, queue) on this machine",
                       description="Start the web API, one worker, SQLite and an embedded Redis; Ctrl-C stops.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data", default=None, help="data folder (default $STYLEDROP_DATA or ./data)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.runner import serve  # the web app lives outside the engine and is imported only here

    return serve(args.host, args.port, args.data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="styledrop", description="StyleDrop on aMUSEd: styles from one picture.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_info(sub)
    _add_serve(sub)
    return parser


def _model_default(value: str | None) -> str:
    import os

    from .models import DEFAULT_MODEL

    return value or os.environ.get("STYLEDROP_MODEL") or DEFAULT_MODEL


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .adapters import AdapterConfig
    from .images import load_image
    from .models import load_components
    from .prompts import clean_text
    from .styles import default_adapter_config, train_style
    from .training import TrainConfig

    clean_text(args.descriptor, "style descriptor")
    clean_text(args.content, "content")
    images = [load_image(path) for path in args.image]
    config = default_adapter_config(args.adapter)
    if args.rank is not None:
        config.rank = args.rank
        config.alpha = float(args.rank) if config.kind == "lora" else None
    config.shared = config.kind == "styledrop" and not args.not_shared
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                               grad_accumulation=args.grad_accumulation, seed=args.seed,
                               checkpoint_every=args.checkpoint_every, augment=not args.no_augment,
                               gradient_checkpointing=args.gradient_checkpointing)
    train_config.validate()
    from .models import default_device

    components = load_components(_model_default(args.model), args.device or default_device())
    bar = tqdm(total=args.steps, desc="training", unit="step")

    def on_progress(p) -> None:
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.4f}", s_per_step=f"{p.seconds_per_step:.3f}")
        bar.refresh()

    style = train_style(images, args.content, args.descriptor, args.out, components=components,
                        adapter_config=AdapterConfig(**config.to_dict()), train_config=train_config,
                        on_progress=on_progress, resume=not args.restart)
    bar.close()
    if style.result.resumed_from:
        print(f"resumed from the checkpoint at step {style.result.resumed_from}")
    share = 100 * style.adapter.num_parameters() / components.num_parameters()
    print(f"trained {style.adapter.kind} adapter: {style.adapter.num_parameters():,} parameters "
          f"({share:.3f}% of the transformer), final loss {style.meta.extra.get('final_loss')}")
    print(f"style written to {style.folder}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .sampling import SampleConfig
    from .styles import generate_with_style, load_style

    config = SampleConfig(steps=args.steps, guidance=args.guidance, adapter_guidance=args.adapter_guidance,
                          temperature=tuple(args.temperature), num_images=args.num, seed=args.seed)
    config.validate()
    style = load_style(args.style, model=args.model, device=args.device)
    bar = tqdm(total=config.steps, desc="decoding", unit="step")
    samples = generate_with_style(style, args.contents, config, with_descriptor=not args.no_descriptor,
                                  on_step=lambda step, total, logits, tokens: bar.update(1))
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (prompt, image) in enumerate(zip(samples.prompts, samples.images)):
        path = out / f"{index:03d}-{_slug(prompt)}.png"
        image.save(path)
        records.append({"file": path.name, "prompt": prompt, "index": index, "seed": args.seed})
    (out / "generations.json").write_text(json.dumps({"style": str(args.style), "config": vars(config),
                                                      "images": records}, indent=2, default=list) + "\n")
    print(f"wrote {len(records)} images to {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .adapter_files import read_adapter_file

    tensors, meta = read_adapter_file(args.style)
    count = sum(t.numel() for t in tensors.values())
    print(json.dumps({"kind": meta.kind, "parameters": count, "base_model": meta.base_model,
                      "content": meta.content, "descriptor": meta.descriptor, "steps": meta.steps,
                      "adapter": meta.adapter, "created": meta.created}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StyleDropError as exc:
        print(f"styledrop: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("styledrop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
