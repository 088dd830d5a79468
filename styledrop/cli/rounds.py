"""Iterative training with feedback: `styledrop candidates`, `select` and `train-round` (paper §3.3)."""

from __future__ import annotations

import argparse

from ..errors import StyleDropError
from ..plan import DEFAULT_CANDIDATE_PROMPTS, DEFAULT_CANDIDATES_PER_PROMPT
from ..progress import training_bar
from .options import (
    add_round_training_flags,
    add_sampling_flags,
    add_training_flags,
    prompt_list,
    sample_config_from_flags,
    training_values,
)

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    _add_candidates(sub)
    _add_select(sub)
    _add_train_round(sub)


def _add_candidates(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("candidates", help="generate and CLIP-score the latest round's candidate pool")
    p.add_argument("style")
    p.add_argument("--per-prompt", type=int, default=DEFAULT_CANDIDATES_PER_PROMPT, help="images per content prompt")
    p.add_argument("--prompts", default=None,
                   help="file with one content prompt per line (default: the base model's candidate prompts: the "
                        "built-in list across all 8 categories, or a world's candidate shapes)")
    p.add_argument("--limit", type=int, default=None,
                   help="pool size: the first N prompts (built-in prompts are interleaved across categories); "
                        f"default: all of a --prompts file, else the base model's pool (the first "
                        f"{DEFAULT_CANDIDATE_PROMPTS} built-in ones, two of each category, the service's default "
                        "too; a world's candidate shapes); 0: all of them")
    p.add_argument("--seed", type=int, default=0, help="round seed: candidate k's own seed is seed x 100003 + k")
    p.add_argument("--batch-size", type=int, default=8, help="candidates drawn per sampler call")
    p.add_argument("--scorer", default=None, help="CLIP scorer: default (ViT-L-14/openai), tiny, MODEL/PRETRAINED "
                   "(default: tiny for the offline presets, else default)")
    p.add_argument("--device", default=None)
    add_sampling_flags(p)
    p.set_defaults(func=cmd_candidates)


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="choose which candidates train the next round")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--clip", action="store_true", help="CLIP feedback by --rule")
    how.add_argument("--ratings", help="human feedback: CSV with columns candidate_id,rater,value")
    how.add_argument("--ids", help="human pick: comma-separated candidate ids")
    p.add_argument("style")
    p.add_argument("--rule", choices=["paper", "guarded", "random"], default="guarded",
                   help="CLIP rule: paper (best text score per prompt), guarded (ours, the default: first drops the "
                        "whole pool's lowest style-score quantile, then the paper's rule, so some prompts may get "
                        "no pick), random (the paper's random-selection baseline, no CLIP)")
    p.add_argument("--top", type=int, default=1, help="CLIP: images kept per prompt")
    p.add_argument("--text-threshold", type=float, default=None)
    p.add_argument("--style-quantile", type=float, default=0.25,
                   help="guarded rule: drop the lowest style-score quantile")
    p.add_argument("--seed", type=int, default=0, help="random rule: the draw's seed")
    p.add_argument("--scale", choices=["thumbs", "stars"], default="thumbs", help="ratings scale")
    p.add_argument("--max-images", type=int, default=None)
    p.set_defaults(func=cmd_select)


def _add_train_round(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-round", help="train the next round on the reference plus the selection")
    p.add_argument("style")
    add_round_training_flags(p)
    p.add_argument("--adapter", choices=["styledrop", "lora"], default=None,
                   help="adapter kind (default: the style's, i.e. its latest round's)")
    p.add_argument("--rank", type=int, default=None,
                   help="adapter size (default: the per-round recipe: StyleDrop H=32, LoRA r=16)")
    p.add_argument("--shared", action="store_true", help="StyleDrop: share the adapter's weights across layers")
    p.add_argument("--init", choices=["base", "previous"], default="base",
                   help="fresh adapter from the base model (paper) or continue the previous round's")
    p.add_argument("--seed", type=int, default=0)
    add_training_flags(p)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train_round)


def cmd_candidates(args: argparse.Namespace) -> int:
    from ..candidates import draw_scored_candidates, save_candidates
    from ..clip_scores import load_scorer
    from ..model_profiles import profile_for
    from ..presets import scorer_for
    from ..progress import Progress
    from ..rounds import CANDIDATES_DIR, latest_round, reference_images, round_dir, round_meta
    from ..styles import load_style

    number = latest_round(args.style)
    base_model = round_meta(args.style, number).base_model
    profile = profile_for(base_model)
    if args.limit is None and not args.prompts:
        args.limit = profile.candidate_count  # one candidate-count default per base model, as the service's
    prompts = prompt_list(args, base_model)
    if number > 1 and not args.prompts:  # a later round's pool: the model's prompts it did not train on
        from ..rounds import trained_contents

        prompts = profile.fresh_candidates(trained_contents(args.style), args.limit)
    warn_held_out(prompts, profile.eval_prompts())
    style = load_style(round_dir(args.style, number), device=args.device)
    scorer = load_scorer(scorer_for(style.meta.base_model, args.scorer), args.device)
    config = sample_config_from_flags(args, style.meta)
    bar = Progress(len(prompts) * args.per_prompt, f"round {number} candidates", unit="image")
    pool = draw_scored_candidates(style, prompts, args.per_prompt, args.seed, number, config, scorer,
                               reference_images(args.style), on_progress=lambda done, total: bar.update(1),
                               batch_size=args.batch_size)
    bar.close()
    folder = save_candidates(round_dir(args.style, number) / CANDIDATES_DIR, pool)
    print(f"{len(pool)} candidates ({len(prompts)} prompts x {args.per_prompt}) scored with {scorer.name} in {folder}")
    return 0


def warn_held_out(prompts: list[str], held_out: list[str]) -> None:
    """Name the candidate prompts that are on the base model's held-out evaluation list: a round trained on them
    would be scored on what it trained on (`styledrop eval` refuses them unless --allow-overlap)."""
    import sys

    from ..prompt_sets import overlap

    held = overlap(prompts, held_out)
    if held:
        print(f"warning: {len(held)} candidate prompt(s) are on the held-out evaluation list: "
              f"{', '.join(repr(p) for p in held)}; a later round trained on them could not be evaluated on them",
              file=sys.stderr)


def _read_ratings(path: str) -> list[dict]:
    import csv

    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [{"candidate_id": int(r["candidate_id"]), "rater": r["rater"], "value": float(r["value"])} for r in rows]
    except FileNotFoundError as exc:
        raise StyleDropError(f"Ratings file not found: {path}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise StyleDropError(f"{path} must be a CSV with columns candidate_id,rater,value ({exc}).") from exc


def cmd_select(args: argparse.Namespace) -> int:
    from ..candidates import load_candidates
    from ..rounds import CANDIDATES_DIR, RoundSelection, latest_round, round_dir
    from ..selection import RANDOM, ClipRule, rule_named, select_by_clip, select_by_ratings, select_randomly

    number = latest_round(args.style)
    pool = load_candidates(round_dir(args.style, number) / CANDIDATES_DIR, with_images=False)
    if args.clip and args.rule == RANDOM:
        ids = select_randomly([c.record() for c in pool], args.top, args.seed, args.max_images)
        by, details = RANDOM, {"rule": RANDOM, "per_prompt": args.top, "seed": args.seed}
    elif args.clip:
        rule = ClipRule(**{**vars(rule_named(args.rule, args.top, args.max_images)),
                           "text_threshold": args.text_threshold,
                           "style_quantile": args.style_quantile if args.rule == "guarded" else 0.0})
        ids, by, details = select_by_clip([c.record() for c in pool], rule), "clip", {"rule": args.rule, **vars(rule)}
    elif args.ratings:
        ids = select_by_ratings(_read_ratings(args.ratings), args.scale, args.max_images or 10)
        by, details = "human", {"ratings": args.ratings, "scale": args.scale}
    else:
        try:
            ids = [int(x) for x in args.ids.split(",") if x.strip()]
        except ValueError as exc:
            raise StyleDropError(f"--ids takes comma-separated candidate numbers, got '{args.ids}'.") from exc
        by, details = "human", {}
    known = {c.id for c in pool}
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        raise StyleDropError(f"Unknown candidate ids {unknown} for round {number}." if unknown else "Select at least one candidate.")
    path = RoundSelection(number, ids, by, details).save(args.style)
    print(f"selected {len(ids)} of {len(pool)} round-{number} candidates by {by}: {ids} -> {path}")
    return 0


def cmd_train_round(args: argparse.Namespace) -> int:
    from ..adapters import AdapterConfig
    from ..models import default_device, load_components
    from ..plan import adapter_recipe
    from ..rounds import latest_round, round_meta, train_next_round
    from ..training import TrainConfig

    number = latest_round(args.style)
    previous = round_meta(args.style, number)
    components = load_components(previous.base_model, args.device or default_device())
    config = TrainConfig(seed=args.seed, **training_values(args, previous.base_model))  # unset: the model's
    # The style's adapter kind stays (a LoRA style stays LoRA) unless --adapter says otherwise; the size is the
    # per-round recipe's unless --rank says otherwise.
    kind = args.adapter or previous.adapter_config().kind
    plan = adapter_recipe(number + 1, kind, args.rank)
    if args.shared and kind == "styledrop":
        plan = plan.model_copy(update={"shared": True})
    adapter_config = AdapterConfig.from_dict(plan.config_dict())
    with training_bar(config.steps, f"round {number + 1}") as on_progress:
        trained = train_next_round(args.style, components, adapter_config, config,
                                   init=args.init, on_progress=on_progress)
    print(f"round {number + 1}: trained a {adapter_config.kind} adapter (rank {adapter_config.rank}) on "
          f"{len(trained.meta.prompts)} images, {trained.adapter.num_parameters():,} adapter parameters; "
          f"{args.style} now uses it")
    return 0
