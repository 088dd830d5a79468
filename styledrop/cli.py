"""`styledrop` command line: train a style, generate with it, inspect it — no web app needed."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import StyleDropError

EXIT_USER_ERROR = 1


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "image"


@contextlib.contextmanager
def training_bar(total: int, desc: str) -> Iterator[Callable]:
    """Progress fed by the trainer's callback (step, loss, seconds per step), with the time left."""
    from .progress import Progress

    with Progress(total, desc, unit="step") as bar:
        yield lambda p: bar.update_to(p.step, loss=f"{p.loss:.4f}", s_per_step=f"{p.seconds_per_step:.3f}")


def _add_train(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-5 StyleDrop, 4e-4 LoRA)")
    p.add_argument("--grad-accumulation", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--sample-every", type=int, default=0, metavar="N",
                   help="at step 0, every N steps and at the last one, draw two fixed prompts with the adapter so "
                        "far into OUT/samples/step-000250-a.png, ... (default 0: none)")
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
    _add_sampling_flags(p)
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


def _add_train_content(sub: argparse._SubParsersAction) -> None:
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


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a style folder holds")
    p.add_argument("style")
    p.set_defaults(func=cmd_info)


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Unset flags take the sampling defaults the adapter file carries (those of its round)."""
    p.add_argument("--steps", type=int, default=None, help="decoding steps (default: the adapter's, 12)")
    p.add_argument("--guidance", type=float, default=None,
                   help="λB, classifier-free guidance, diffusers' scale - 1 (default: the adapter's, 9)")
    p.add_argument("--adapter-guidance", type=float, default=None,
                   help="λA, adapter guidance, paper Eq. 4 (default: the adapter's round default, 0 or 2)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=None,
                   help="auto (default): bf16 autocast on CUDA and on CPUs with native bf16, else fp32; the same "
                   "seed draws another image in another precision")


def _add_candidates(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("candidates", help="generate and CLIP-score the latest round's candidate pool")
    p.add_argument("style")
    p.add_argument("--per-prompt", type=int, default=4, help="images per content prompt")
    p.add_argument("--prompts", default=None,
                   help="file with one content prompt per line (default: the built-in 64, across all 8 categories)")
    p.add_argument("--limit", type=int, default=None,
                   help="pool size: the first N prompts (built-in prompts are interleaved across categories)")
    p.add_argument("--seed", type=int, default=0, help="round seed: candidate k's own seed is seed x 100003 + k")
    p.add_argument("--batch-size", type=int, default=8, help="candidates drawn per sampler call")
    p.add_argument("--scorer", default=None, help="CLIP scorer: default (ViT-L-14/openai), tiny, MODEL/PRETRAINED "
                   "(default: tiny for the offline presets, else default)")
    p.add_argument("--device", default=None)
    _add_sampling_flags(p)
    p.set_defaults(func=cmd_candidates)


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="choose which candidates train the next round")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--clip", action="store_true", help="CLIP feedback by --rule")
    how.add_argument("--ratings", help="human feedback: CSV with columns candidate_id,rater,value")
    how.add_argument("--ids", help="human pick: comma-separated candidate ids")
    p.add_argument("style")
    p.add_argument("--rule", choices=["paper", "guarded", "random"], default="guarded",
                   help="CLIP rule: paper (best text score per prompt), guarded (ours: paper minus the lowest "
                        "style-score quantile), random (the paper's random-selection baseline)")
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
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--shared", action="store_true")
    p.add_argument("--init", choices=["base", "previous"], default="base",
                   help="fresh adapter from the base model (paper) or continue the previous round's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train_round)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="CLIP text/style scores of the base model and every round")
    p.add_argument("style")
    p.add_argument("--prompts", default=None, help="file with one content prompt per line (e.g. the Parti prompts "
                   "for the paper's protocol; default: the built-in held-out list, never used for candidates)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--allow-overlap", action="store_true",
                   help="score prompts that a round of this style was trained on (inflates its text score)")
    p.add_argument("--per-prompt", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer", default=None, help="CLIP scorer (default: tiny for the offline presets, else default)")
    p.add_argument("--out", default=None, help="report folder (default STYLE/eval)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_eval)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run StyleDrop Studio (API, worker, database, queue) on this machine",
                       description="Start the web API, one worker, SQLite and an embedded Redis; Ctrl-C stops.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default $STYLEDROP_PORT or 8000")
    p.add_argument("--data", default=None, help="data folder (default $STYLEDROP_DATA or ./data)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Hand over to the web app's launcher (app.runner, console script `styledrop-serve`) in this process's
    place: the engine never imports web code, and Ctrl-C/SIGTERM reach the launcher directly."""
    import importlib.util
    import os

    if importlib.util.find_spec("app") is None:
        raise StyleDropError("The web app (package `app`) is not installed next to the engine: install the whole "
                             "project (pip install -e .) to use `styledrop serve`.")
    command = [sys.executable, "-m", "app.runner", "--host", args.host]
    if args.port is not None:
        command += ["--port", str(args.port)]
    if args.data:
        command += ["--data", args.data]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="styledrop", description="StyleDrop on aMUSEd: styles from one picture.")
    sub = parser.add_subparsers(dest="command", required=True)
    from .world.cli import add_world_parser

    for add in (_add_train, _add_generate, _add_info, _add_candidates, _add_select, _add_train_round, _add_eval,
                _add_train_content, _add_serve, add_world_parser):
        add(sub)
    return parser


def _model_default(value: str | None) -> str:
    import os

    from .models import DEFAULT_MODEL

    return value or os.environ.get("STYLEDROP_MODEL") or DEFAULT_MODEL


def cmd_train(args: argparse.Namespace) -> int:

    from .adapters import AdapterConfig
    from .images import load_image
    from .models import load_components
    from .prompts import check_prompt_text
    from .styles import default_adapter_config, train_style
    from .training import TrainConfig

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
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                               grad_accumulation=args.grad_accumulation, seed=args.seed,
                               checkpoint_every=args.checkpoint_every, augment=not args.no_augment,
                               gradient_checkpointing=args.gradient_checkpointing, sample_every=args.sample_every)
    train_config.validate()
    from .models import default_device

    components = load_components(_model_default(args.model), args.device or default_device())
    with training_bar(args.steps, "training") as on_progress:
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


def cmd_generate(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .prompts import check_prompt_text
    from .sampling import image_seeds
    from .styles import generate_with_style, load_style

    style = load_style(args.style, model=args.model, device=args.device)
    config = _sample_config(args, style.meta, num_images=args.num, seed=args.seed,
                            temperature=tuple(args.temperature) if args.temperature else None)
    bar = Progress(config.steps, "decoding", unit="step")
    tick = lambda step, total, logits, tokens: bar.update(1)  # noqa: E731
    seeds = image_seeds(args.seed, len(args.contents) * config.num_images)  # the seed contract (README)
    if args.content:
        from .composition import generate_composed

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


def cmd_train_content(args: argparse.Namespace) -> int:

    from .adapters import AdapterConfig
    from .composition import default_content_adapter, subject_phrase, train_content
    from .images import load_image
    from .models import default_device, load_components
    from .training import TrainConfig

    subject_phrase(args.identifier, args.class_noun)
    images = [load_image(path) for path in args.images]
    if args.adapter == "lora":
        config = AdapterConfig(kind="lora", rank=args.rank or 16, alpha=float(args.rank or 16))
    else:
        config = default_content_adapter()
        config.rank = args.rank or config.rank
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    train_config.validate()
    components = load_components(_model_default(args.model), args.device or default_device())
    with training_bar(args.steps, "content adapter") as on_progress:
        trained = train_content(images, args.identifier, args.class_noun, args.out, components, config,
                                train_config, args.prior_preservation, args.num_class_images, args.prior_loss_weight,
                                on_progress)
    print(f"content adapter for '{trained.meta.content}' ({trained.adapter.num_parameters():,} parameters) "
          f"written to {trained.folder}")
    return 0


def _sample_config(args: argparse.Namespace, meta, **values):
    """The adapter file's sampling defaults (its round's λA, λB, steps, temperature), overridden by flags."""
    from .sampling import sample_config

    config = sample_config(meta.extra.get("sample_defaults") or {}, steps=args.steps, guidance=args.guidance,
                           adapter_guidance=args.adapter_guidance, precision=args.precision, **values)
    config.validate()
    return config


def _prompt_list(args: argparse.Namespace, held_out: bool = False) -> list[str]:
    """The --prompts file, else the built-in candidate pool (diverse) or held-out evaluation list; --limit cuts."""
    from .prompt_sets import diverse_prompts, eval_prompts, read_prompt_file

    prompts = read_prompt_file(args.prompts) if args.prompts else eval_prompts() if held_out else diverse_prompts()
    return prompts[: args.limit] if args.limit else prompts


def cmd_candidates(args: argparse.Namespace) -> int:
    from .candidates import generate_candidates, save_candidates
    from .clip_scores import load_scorer
    from .presets import scorer_for
    from .progress import Progress
    from .rounds import CANDIDATES_DIR, latest_round, reference_images, round_dir
    from .styles import load_style

    number = latest_round(args.style)
    prompts = _prompt_list(args)
    style = load_style(round_dir(args.style, number), device=args.device)
    scorer = load_scorer(scorer_for(style.meta.base_model, args.scorer), args.device)
    config = _sample_config(args, style.meta)
    bar = Progress(len(prompts) * args.per_prompt, f"round {number} candidates", unit="image")
    pool = generate_candidates(style, prompts, args.per_prompt, args.seed, number, config, scorer,
                               reference_images(args.style), on_progress=lambda done, total: bar.update(1),
                               batch_size=args.batch_size)
    bar.close()
    folder = save_candidates(round_dir(args.style, number) / CANDIDATES_DIR, pool)
    print(f"{len(pool)} candidates ({len(prompts)} prompts x {args.per_prompt}) scored with {scorer.name} in {folder}")
    return 0


def _read_ratings(path: str) -> list[dict]:
    import csv

    from .errors import StyleDropError

    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [{"candidate_id": int(r["candidate_id"]), "rater": r["rater"], "value": float(r["value"])} for r in rows]
    except FileNotFoundError as exc:
        raise StyleDropError(f"Ratings file not found: {path}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise StyleDropError(f"{path} must be a CSV with columns candidate_id,rater,value ({exc}).") from exc


def cmd_select(args: argparse.Namespace) -> int:
    from .candidates import load_candidates
    from .errors import StyleDropError
    from .rounds import CANDIDATES_DIR, Selection, latest_round, round_dir
    from .selection import RANDOM, ClipRule, rule_named, select_by_clip, select_by_ratings, select_randomly

    number = latest_round(args.style)
    pool = load_candidates(round_dir(args.style, number) / CANDIDATES_DIR, with_images=False)
    if args.clip and args.rule == RANDOM:
        ids = select_randomly([c.record() for c in pool], args.top, args.seed, args.max_images)
        by, details = "clip", {"rule": RANDOM, "per_prompt": args.top, "seed": args.seed}
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
    path = Selection(number, ids, by, details).save(args.style)
    print(f"selected {len(ids)} of {len(pool)} round-{number} candidates by {by}: {ids} -> {path}")
    return 0


def cmd_train_round(args: argparse.Namespace) -> int:

    from .adapters import AdapterConfig
    from .models import default_device, load_components
    from .rounds import latest_round, round_meta, train_next_round
    from .training import TrainConfig

    number = latest_round(args.style)
    components = load_components(round_meta(args.style, number).base_model, args.device or default_device())
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    with training_bar(args.steps, f"round {number + 1}") as on_progress:
        trained = train_next_round(args.style, components,
                                   AdapterConfig(kind="styledrop", rank=args.rank, shared=args.shared), config,
                                   init=args.init, on_progress=on_progress)
    print(f"round {number + 1}: trained on {len(trained.meta.prompts)} images, "
          f"{trained.adapter.num_parameters():,} adapter parameters; {args.style} now uses it")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .clip_scores import load_scorer
    from .evaluation import evaluate_style, write_report
    from .models import default_device, load_components
    from .presets import scorer_for
    from .prompt_sets import eval_prompts, overlap
    from .rounds import latest_round, round_meta, trained_contents

    number = latest_round(args.style)
    prompts = _prompt_list(args, held_out=True)
    if not args.allow_overlap:
        trained = overlap(prompts, trained_contents(args.style))
        if trained:
            raise StyleDropError(
                f"{len(trained)} evaluation prompt(s) were trained on by a round of this style, which would inflate "
                f"its text score: {', '.join(repr(p) for p in trained[:5])}{' …' if len(trained) > 5 else ''}. "
                "Remove them from the list, or pass --allow-overlap.")
    base_model = round_meta(args.style, number).base_model
    components = load_components(base_model, args.device or default_device())
    scorer = load_scorer(scorer_for(base_model, args.scorer), args.device)
    rows = evaluate_style(args.style, components, scorer, prompts, args.per_prompt, args.seed)
    prompt_list = args.prompts or f"built-in held-out list ({len(eval_prompts())} prompts)"
    paths = write_report(rows, args.out or Path(args.style) / "eval", scorer.name, prompts, args.per_prompt,
                         prompt_list)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
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
