"""A full-size StyleDrop training run through the engine's front door (`train_style`), timed and summarised.

Trains a style adapter on one reference image for the paper's budget (1,000 steps, batch 8) and reports wall
time, seconds per step, the loss at the start and end (means of the first and last 50 steps), peak memory and
the adapter's size as a fraction of the transformer. The style folder goes to --out (keep it out of git).

    python bench/train_run.py --preset amused-256-random --device cuda --steps 1000 --batch 8 --out /tmp/style
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="amused-256-random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--adapter", choices=("styledrop", "lora"), default="styledrop")
    parser.add_argument("--out", required=True, help="style folder to write")
    parser.add_argument("--json", help="also write the summary (and the loss curve) to this file")
    args = parser.parse_args()

    import torch

    from styledrop.models import load_components
    from styledrop.styles import default_adapter_config, train_style
    from styledrop.training import TrainConfig

    started = time.perf_counter()
    components = load_components(args.preset, args.device)
    loaded = time.perf_counter()
    cuda = components.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    side = components.resolution
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (side, side), (230, 200, 40))  # the tests' reference: stripes and a disc
    draw = ImageDraw.Draw(image)
    for x in range(0, side, side // 4):
        draw.rectangle([x, 0, x + side // 8 - 1, side - 1], fill=(20, 40, 160))
    draw.ellipse([side // 4, side // 4, 3 * side // 4, 3 * side // 4], fill=(200, 30, 30))
    style = train_style([image], "a house", "watercolor painting", args.out, components=components,
                        adapter_config=default_adapter_config(args.adapter),
                        train_config=TrainConfig(steps=args.steps, batch_size=args.batch), resume=False)
    finished = time.perf_counter()
    losses = style.result.losses
    head, tail = losses[: min(50, len(losses))], losses[-min(50, len(losses)):]
    summary = {
        "preset": args.preset, "device": args.device, "steps": style.result.steps_done, "batch": args.batch,
        "adapter": args.adapter, "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "load_s": round(loaded - started, 1), "train_s": round(style.result.seconds, 1),
        "wall_s": round(finished - loaded, 1), "s_per_step": style.result.seconds / max(1, style.result.steps_done),
        "loss_first": losses[0], "loss_last": losses[-1],
        "loss_first50_mean": sum(head) / len(head), "loss_last50_mean": sum(tail) / len(tail),
        "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20 if cuda
                         else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adapter_parameters": style.adapter.num_parameters(),
        "transformer_parameters": components.num_parameters(),
        "adapter_percent_of_transformer": 100 * style.adapter.num_parameters() / components.num_parameters(),
        "style_folder": str(style.folder),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary | {"losses": losses}, fh)


if __name__ == "__main__":
    main()
