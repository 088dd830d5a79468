"""`styledrop eval`: the paper's CLIP text and style scores for the base model and every round (§4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StyleDropError
from .options import prompt_list

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="CLIP text/style scores of the base model and every round")
    p.add_argument("style")
    p.add_argument("--prompts", default=None, help="file with one content prompt per line (e.g. the Parti prompts "
                   "for the paper's protocol; default: the base model's held-out list, never used for candidates: "
                   "the built-in one, or a world's evaluation shapes)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--allow-overlap", action="store_true",
                   help="score prompts that a round of this style was trained on (inflates its text score)")
    p.add_argument("--per-prompt", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer", default=None, help="CLIP scorer (default: tiny for the offline presets, else default)")
    p.add_argument("--out", default=None, help="report folder (default STYLE/eval)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..clip_scores import load_scorer
    from ..evaluation import evaluate_style, write_report
    from ..model_profiles import profile_for
    from ..models import default_device, load_components
    from ..presets import scorer_for
    from ..prompt_sets import overlap
    from ..rounds import latest_round, round_meta, trained_contents

    number = latest_round(args.style)
    base_model = round_meta(args.style, number).base_model
    profile = profile_for(base_model)
    prompts = prompt_list(args, base_model, held_out=True)
    if not args.allow_overlap:
        trained = overlap(prompts, trained_contents(args.style))
        if trained:
            raise StyleDropError(
                f"{len(trained)} evaluation prompt(s) were trained on by a round of this style, which would inflate "
                f"its text score: {', '.join(repr(p) for p in trained[:5])}{' …' if len(trained) > 5 else ''}. "
                "Remove them from the list, or pass --allow-overlap.")
    components = load_components(base_model, args.device or default_device())
    scorer = load_scorer(scorer_for(base_model, args.scorer), args.device)
    rows = evaluate_style(args.style, components, scorer, prompts, args.per_prompt, args.seed)
    source = args.prompts or f"{profile.held_out_name} ({len(profile.eval_prompts())} prompts)"
    paths = write_report(rows, args.out or Path(args.style) / "eval", scorer.name, prompts, args.per_prompt, source)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
