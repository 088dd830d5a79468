"""The world build, timed (issue 24's numbers): each stage's wall-clock and CPU seconds, the learning curves,
and what the base model learned (content accuracy and style match on seen styles, its CLIP's ranking).

    python bench/world_build.py                           # the standard world, built in a temporary folder
    python bench/world_build.py --world shapes-micro      # the tests' micro world
    python bench/world_build.py --threads 1 --report bench/results/world-shapes

Builds from scratch (never the cache the CLI uses, unless --out names it), prints one line per stage and a JSON
summary, and writes world.json (the build's own record, curves included) and curves.png into --report. The
machine's load average is printed beside the times: on a machine shared with other work they are not the
machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def summary(manifest: dict) -> dict:
    stages = manifest["stages"]
    out = {"world": manifest["name"], "seed": manifest["spec"]["seed"], "precision": manifest["precision"],
           "stages": {}, "total_seconds": manifest.get("seconds")}
    for name, record in stages.items():
        row = {k: record.get(k) for k in ("steps", "seconds", "cpu_seconds", "final_loss") if k in record}
        if record.get("curve"):
            row["last_eval"] = record["curve"][-1]
        out["stages"][name] = row
    measure = stages.get("measure", {})
    out["base_model_seen_styles"] = measure.get("base_model_seen_styles")
    out["clip_content_rank1_on_renders"] = measure.get("clip_content_rank1_on_renders")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="shapes")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="build folder (default: a temporary one, deleted after)")
    parser.add_argument("--report", default=None, help="where world.json and curves.png go "
                        "(default bench/results/world-<world>)")
    args = parser.parse_args(argv)

    from styledrop.cli.world import build_progress
    from styledrop.world.build import build_world

    report = Path(args.report or Path(__file__).resolve().parent / "results" / f"world-{args.world}")
    report.mkdir(parents=True, exist_ok=True)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="world-")) / args.world
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        with build_progress(args.world) as on_progress:
            build_world(args.world, folder=folder, seed=args.seed, threads=args.threads, on_progress=on_progress)
        wall = time.perf_counter() - started
        manifest = json.loads((folder / "world.json").read_text())
        shutil.copy2(folder / "world.json", report / "world.json")
        if (folder / "curves.png").is_file():
            shutil.copy2(folder / "curves.png", report / "curves.png")
    finally:
        if not args.out:
            shutil.rmtree(folder.parent, ignore_errors=True)
    result = summary(manifest) | {"wall_seconds": round(wall, 1), "threads": args.threads or "torch default",
                                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                                  "load_average_before": [round(x, 2) for x in load_before],
                                  "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    for name, row in result["stages"].items():
        print(f"{name:12s} {row.get('steps', '-')!s:>6} steps  {row.get('seconds', 0):8.1f} s wall  "
              f"{row.get('cpu_seconds', 0):8.1f} s CPU  {json.dumps(row.get('last_eval', {}))}")
    print(f"whole build: {wall:.0f} s wall; load average before {result['load_average_before']}, after "
          f"{result['load_average_after']} on {result['machine']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
