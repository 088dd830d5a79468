"""`styledrop world ...`: build a world's base model, show what is built, render and read world pictures.

    styledrop world build [shapes]          train the `shapes` base model from its seed (resumable)
    styledrop world info [shapes]           where it is, whether it is built, its measurements
    styledrop world render DESCRIPTOR ...   a world picture of a style (a reference to try StyleDrop on)
    styledrop world read IMAGE ...          what the oracles read off any image (shape, style factors)

The world itself is styledrop.world (docs/world.md); this module is its command group.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Callable, Iterator

from ..errors import StyleDropError

ORDER = 80
LOG_EVERY_SECONDS = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="the shapes world: build its base model, render and read its pictures",
                       description="A small world in which StyleDrop's effect can be seen and measured "
                                   "(styledrop.world; docs/world.md).")
    world_sub = p.add_subparsers(dest="world_command", required=True)

    b = world_sub.add_parser("build", help="train a world's base model and CLIP from its seed (resumable)")
    b.add_argument("name", nargs="?", default="shapes", help="shapes (the standard world) or shapes-micro")
    b.add_argument("--seed", type=int, default=None, help="another seed than the world's (0)")
    b.add_argument("--out", default=None, help="folder to build in (default: the cache folder that --model "
                   "shapes finds: $STYLEDROP_WORLD_DIR/<name> or ~/.cache/styledrop/worlds/<name>)")
    b.add_argument("--restart", action="store_true", help="delete what an earlier build left and start over")
    b.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32",
                   help="training arithmetic (default fp32: the same weights on every CPU; auto = bf16 autocast "
                        "where the CPU has native bf16)")
    b.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is much faster on a machine busy with other work)")
    b.set_defaults(func=cmd_build)

    i = world_sub.add_parser("info", help="where a world is, whether it is built, what it measured")
    i.add_argument("name", nargs="?", default="shapes")
    i.set_defaults(func=cmd_info)

    r = world_sub.add_parser("render", help="draw a world picture of a style (a reference image)")
    r.add_argument("descriptor", help='a world style, e.g. "dusk striped on black" (PALETTE TEXTURE [outlined] '
                   "on BACKGROUND)")
    r.add_argument("--shape", default="house", help="what it shows (default house)")
    r.add_argument("--size", type=int, default=12, help="the shape's box in cells (9-13 are the world's)")
    r.add_argument("--at", type=int, nargs=2, default=(2, 2), metavar=("TOP", "LEFT"), help="its top-left cell")
    r.add_argument("--scale", type=int, default=1, help="enlarge the 64-pixel picture this many times")
    r.add_argument("--out", required=True, help="PNG file to write")
    r.set_defaults(func=cmd_render)

    o = world_sub.add_parser("read", help="what the oracles read off images: shape, style factors, style match")
    o.add_argument("images", nargs="+")
    o.add_argument("--reference", default=None, help="a reference image to compute the style match against")
    o.set_defaults(func=cmd_read)


@contextlib.contextmanager
def build_progress(name: str, stream=None, interval: float = LOG_EVERY_SECONDS) -> Iterator[Callable]:
    """One progress bar per stage (styledrop.progress: a tqdm bar on a terminal, else a line per interval)."""
    from ..progress import Progress

    state: dict = {"bar": None, "stage": None}

    def on_progress(p) -> None:
        if state["stage"] != (p.stage, p.total):
            if state["bar"] is not None:
                state["bar"].close()
            desc = f"world {name} [{p.index}/{p.stages}] {p.stage}" + (f" ({p.note})" if p.note else "")
            state["bar"] = Progress(p.total, desc, unit="step", stream=stream or sys.stdout, interval=interval)
            state["stage"] = (p.stage, p.total)
        facts = {"loss": f"{p.loss:.4f}"} if p.loss is not None else {}
        state["bar"].update_to(p.step, **facts)

    try:
        yield on_progress
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def cmd_build(args: argparse.Namespace) -> int:
    from ..world.build import build_world
    from ..world.spec import MANIFEST

    with build_progress(args.name) as on_progress:
        folder = build_world(args.name, folder=args.out, seed=args.seed, restart=args.restart,
                             precision=args.precision, threads=args.threads, on_progress=on_progress)
    manifest = json.loads((folder / MANIFEST).read_text())
    _print_summary(manifest, folder)
    return 0


def _print_summary(manifest: dict, folder) -> None:
    stages = manifest.get("stages", {})
    measure = stages.get("measure", {})
    seen = measure.get("base_model_seen_styles", {})
    print(f"world {manifest.get('name')} built in {folder} (seed {manifest['spec']['seed']}, "
          f"{manifest.get('precision')} training, {manifest.get('seconds', 0):.0f} s of building)")
    for stage in ("clip", "transformer"):
        record = stages.get(stage, {})
        if record:
            print(f"  {stage}: {record.get('steps')} steps in {record.get('seconds', 0):.0f} s, "
                  f"final loss {record.get('final_loss')}")
    if seen:
        print(f"  base model on seen styles ({seen.get('images')} images): content accuracy "
              f"{seen.get('content_accuracy'):.1%}, style match {seen.get('style_match'):.3f}, its CLIP ranks the "
              f"right shape first {seen.get('clip_content_rank1', 0):.1%}")
    if "clip_content_rank1_on_renders" in measure:
        print(f"  the CLIP on world renders (every style): right shape first "
              f"{measure['clip_content_rank1_on_renders']:.1%}")


def cmd_info(args: argparse.Namespace) -> int:
    from ..world.spec import MANIFEST, WORLDS, world_dir

    if args.name not in WORLDS:
        raise StyleDropError(f"Unknown world '{args.name}': choose from {', '.join(WORLDS)}.")
    folder = world_dir(args.name)
    path = folder / MANIFEST
    if not path.is_file():
        print(f"world {args.name}: not built ({folder}); run `styledrop world build {args.name}`")
        return 0
    manifest = json.loads(path.read_text())
    if not manifest.get("complete"):
        done = ", ".join(manifest.get("stages", {})) or "nothing"
        print(f"world {args.name}: partly built in {folder} (done: {done}); `styledrop world build {args.name}` "
              "goes on from there")
        return 0
    _print_summary(manifest, folder)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from PIL import Image

    from ..world import scene

    try:
        style = scene.Style.parse(args.descriptor)
    except ValueError as exc:
        raise StyleDropError(str(exc)) from None
    if args.shape not in scene.SHAPES:
        raise StyleDropError(f"Unknown shape '{args.shape}': choose from {', '.join(scene.SHAPES)}.")
    top, left = args.at
    if not (1 <= args.size <= scene.GRID and 0 <= top <= scene.GRID - args.size and 0 <= left <= scene.GRID - args.size):
        raise StyleDropError(f"A {args.size}-cell shape at ({top}, {left}) does not fit the {scene.GRID}-cell grid.")
    image = scene.render(scene.Scene(args.shape, style, args.size, top, left))
    if args.scale > 1:
        image = image.resize((image.width * args.scale, image.height * args.scale), Image.Resampling.NEAREST)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    print(f"{out}: {scene.content_of(args.shape)} in {style.descriptor} style"
          f"{' (a held-out style)' if style not in scene.pretraining_styles() else ''}")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from ..images import load_image
    from ..world import oracle

    reference = load_image(args.reference) if args.reference else None
    for path in args.images:
        image = load_image(path)
        content = oracle.read_content(image)
        style = oracle.style_of(image)
        row = {"image": path, "shape": content.shape, "iou": round(content.iou, 3),
               "style": style.descriptor if style else None, "factors": oracle.read_style(image).factors()}
        if reference is not None:
            row["style_match"] = round(oracle.style_match(image, reference), 3)
        print(json.dumps(row))
    return 0
