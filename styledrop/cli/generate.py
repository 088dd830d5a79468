"""`styledrop generate`: images with a trained style, alone or composed with a content adapter."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .options import add_sampling_flags, sample_config_from_flags

ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate images with a trained style",
                       description='Generate images of each content ("a cat") in the style of STYLE_DIR.')
    p.add_argument("style", help="style folder (or adapter .safetensors file)")
    p.add_argument("contents", nargs="+", help='what to draw, e.g. "a cat" "a bridge"')
    p.add_argument("--num", type=int, default=1, help="images per prompt")
    p.add_argument("--out", default="out", help="folder for the PNG files")
    p.add_argument("--seed", type=int, default=0)
    add_sampling_flags(p)
    p.add_argument("--temperature", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="default: the adapter's round default (2 0)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--no-descriptor", action="store_true", help="leave the style descriptor out of the prompt")
    which.add_argument("--descriptor", default=None,
                       help='another style descriptor for these images (e.g. "golden 3d rendering" for a style '
                            'trained as "melting golden 3d rendering")')
    p.add_argument("--content", default=None, help="content (subject) adapter folder to compose with the style; "
                   'prompts may say "[V]" for its identifier')
    p.add_argument("--mix", type=float, default=0.5, help="γ: weight of the content model's logits (paper: 0.5-0.7)")
    p.add_argument("--composition", choices=["mix", "merge"], default="mix",
                   help="mix: per-step logit mixing (paper); merge: LoRA weight merging (set_adapters)")
    p.add_argument("--model", default=None, help="base model (default: the one the style was trained on)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from ..progress import Progress
    from ..prompts import check_prompt_text
    from ..sampling import image_seeds
    from ..styles import generate_with_style, load_style

    style = load_style(args.style, model=args.model, device=args.device)
    config = sample_config_from_flags(args, style.meta, num_images=args.num, seed=args.seed,
                                      temperature=tuple(args.temperature) if args.temperature else None)
    bar = Progress(config.steps, "decoding", unit="step")
    tick = lambda step, total, logits, tokens: bar.update(1)  # noqa: E731
    seeds = image_seeds(args.seed, len(args.contents) * config.num_images)  # the seed contract (docs/method.md)
    if args.content:
        from ..composition import generate_composed

        subject = load_style(args.content, components=style.components)
        samples = generate_composed(style, subject, args.contents, args.mix, config, args.composition, on_step=tick,
                                    seeds=seeds)
    else:
        samples = generate_with_style(style, args.contents, config, with_descriptor=not args.no_descriptor,
                                      descriptor=check_prompt_text(args.descriptor, "descriptor") if args.descriptor else None,
                                      on_step=tick, seeds=seeds)
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (prompt, image) in enumerate(zip(samples.prompts, samples.images)):
        path = out / f"{index:03d}-{_slug(prompt)}.png"
        image.save(path)
        records.append({"file": path.name, "prompt": prompt, "index": index,
                        "seed": samples.seeds[index] if samples.seeds else args.seed})
    (out / "generations.json").write_text(json.dumps({"style": str(args.style), "config": vars(config),
                                                      "precision": samples.precision, "images": records},
                                                     indent=2, default=list) + "\n")
    print(f"wrote {len(records)} images to {out}")
    return 0


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "image"
