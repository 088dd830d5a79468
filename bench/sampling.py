"""Images per second: our MaskGIT sampler vs. diffusers' AmusedPipeline on the same weights and seed.

Both decode the same prompts with the same settings (12 steps, guidance 10 = λB 9) to tokens and images.
Ours is also timed with a StyleDrop adapter and adapter guidance (λA > 0: three row groups per step), the
configuration StyleDrop actually samples with, next to the plain base-model case that the pipeline covers.
`--app-defaults` adds a row timing our sampler in parity mode: fp32 and the seed's CPU generator (the
probabilities go to the CPU for every draw, as AmusedScheduler does).
`--candidate-path` adds the candidate path with the style adapter on (λA = 0, its default): one image per call
in parity mode (fp32, the seed's CPU generator), the unbatched reference, and the worker's and CLI's path
(`draw_candidates`: `--batch` images per call, each with its own generator on the device, in `--precision`,
graphed steps on CUDA).
On CUDA, `ours` rows also run without CUDA graphs (`SampleConfig.graphs="off"`), and the graphed and
eager images are compared.

    python bench/sampling.py --preset amused-256-random --device cpu --batch 2 --repeats 2
    python bench/sampling.py --preset amused-256-random --device cuda --batch 8 --repeats 5

`--precision` bf16 (autocast; the default on CUDA) or fp32 (the default on CPU) applies to all samplers alike
(ours through `SampleConfig.precision`, the pipeline under the same autocast).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace

import torch


def _timed(fns: dict, repeats: int, device: str, spread: dict | None = None) -> dict[str, float]:
    """Best wall time of each function (all times into `spread`); repeats interleave the functions."""
    for fn in fns.values():
        fn()  # warm-up
    best = {name: float("inf") for name in fns}
    spread = {} if spread is None else spread
    for _ in range(repeats):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            best[name] = min(best[name], seconds)
            spread.setdefault(name, []).append(seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="amused-256-random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2, help="images per call")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                        help="bf16 autocast or fp32 (default: bf16 on cuda, fp32 on cpu)")
    parser.add_argument("--app-defaults", action="store_true",
                        help="also time ours in parity mode (fp32, CPU generator; slow on CUDA)")
    parser.add_argument("--candidate-path", action="store_true",
                        help="also time the candidate path: one image per call and the worker's draw_candidates")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.precision is None:
        args.precision = "bf16" if args.device.startswith("cuda") else "fp32"
    device_type = "cuda" if args.device.startswith("cuda") else "cpu"

    from diffusers import AmusedPipeline, AmusedScheduler

    from styledrop.adapters import AdapterConfig, create_adapter
    from styledrop.models import load_components
    from styledrop.sampling import SampleConfig, generate

    components = load_components(args.preset, args.device)
    prompts = ["A cat in watercolor painting style"] * args.batch
    config = SampleConfig(steps=args.steps, seed=0, precision=args.precision)  # the pipeline's precision
    pipe = AmusedPipeline(vqvae=components.vqvae, tokenizer=components.tokenizer,
                          text_encoder=components.text_encoder, transformer=components.transformer,
                          scheduler=AmusedScheduler(mask_token_id=components.mask_token_id))
    pipe.set_progress_bar_config(disable=True)
    dtype_ctx = torch.autocast(device_type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def reference():
        with torch.no_grad(), dtype_ctx:
            return pipe(prompts, num_inference_steps=args.steps, guidance_scale=1 + config.guidance,
                        generator=torch.Generator(args.device).manual_seed(0)).images

    def ours(graphs: str = "auto"):
        with dtype_ctx:
            return generate(components, prompts, replace(config, graphs=graphs),
                            generator=torch.Generator(args.device).manual_seed(0)).images

    adapter = create_adapter(AdapterConfig(), components.transformer)
    adapted = SampleConfig(steps=args.steps, seed=0, adapter_guidance=2.0, precision=args.precision)

    def ours_adapter(graphs: str = "auto"):
        with dtype_ctx:
            return generate(components, prompts, replace(adapted, graphs=graphs), adapter=adapter,
                            generator=torch.Generator(args.device).manual_seed(0)).images

    def reference_plain():
        with adapter.disabled():
            return reference()

    def ours_plain(graphs: str = "auto"):
        with adapter.disabled():
            return ours(graphs)

    def ours_app_defaults():  # parity mode: fp32, the seed's CPU generator
        with adapter.disabled():
            return generate(components, prompts, replace(config, precision="fp32")).images

    # The worker's settings for a round-1 style (λA 0, λB 9), in the table's precision.
    candidate = SampleConfig(steps=args.steps, precision=args.precision)

    def worker_one_per_call():  # the unbatched reference: one image per call, fp32, the seed's CPU generator
        return [generate(components, [p], replace(candidate, seed=i, precision="fp32"), adapter=adapter).images[0]
                for i, p in enumerate(prompts)]

    from styledrop.adapter_files import AdapterMeta
    from styledrop.candidates import draw_candidates
    from styledrop.styles import LoadedStyle

    style = LoadedStyle(components, adapter, AdapterMeta(adapter={}, base_model=args.preset, fingerprint={},
                                                         descriptor="watercolor painting"))

    def worker_path():  # the worker's and the CLI's candidate path: per-image device generators, batched
        return [c.image for c in draw_candidates(style, ["A cat"] * args.batch, 1, config=candidate,
                                                 batch_size=args.batch)]

    samplers = {"AmusedPipeline": reference_plain, "ours (base model)": ours_plain,
                "ours (adapter, λA=2)": ours_adapter}
    if device_type == "cuda":  # the same two without CUDA graphs: what the graphs buy
        samplers["ours (base, no graphs)"] = lambda: ours_plain("off")
        samplers["ours (λA=2, no graphs)"] = lambda: ours_adapter("off")
    if args.app_defaults:
        samplers["ours (fp32, CPU generator)"] = ours_app_defaults
    if args.candidate_path:
        samplers["candidates, 1 per call"] = worker_one_per_call
        samplers["candidates, worker path"] = worker_path
    spread: dict[str, list[float]] = {}
    results = _timed(samplers, args.repeats, args.device, spread)
    import numpy as np

    same = sum(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(reference_plain(), ours_plain()))
    ref = results["AmusedPipeline"]
    name = torch.cuda.get_device_name() if device_type == "cuda" else platform.processor() or "cpu"
    print(f"preset={args.preset} device={args.device} ({name}) precision={args.precision} batch={args.batch} "
          f"steps={args.steps} torch={torch.__version__} (best of {args.repeats})")
    print(f"{'sampler':<27} {'s/call':>8} {'max s':>8} {'images/s':>9} {'vs pipeline':>12}")
    for sampler, seconds in results.items():
        print(f"{sampler:<27} {seconds:>8.3f} {max(spread[sampler]):>8.3f} {args.batch / seconds:>9.3f} "
              f"{ref / seconds:>11.2f}x")
    print(f"images identical to the pipeline's (base model, same seed): {same}/{args.batch}")
    if device_type == "cuda":
        graphed, eager = ours_adapter(), ours_adapter("off")
        same_graph = sum(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(graphed, eager))
        print(f"images identical with and without CUDA graphs (adapter, λA=2): {same_graph}/{args.batch}")
    if device_type == "cuda":
        print(f"peak GPU memory (all samplers, one process): {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
    if args.json:
        rows = {k: {"s_per_call": v, "all_s": spread[k], "images_per_s": args.batch / v, "speed_vs_pipeline": ref / v}
                for k, v in results.items()}
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "environment": {"torch": torch.__version__, "device_name": name},
                       "results": rows, "identical_to_pipeline": f"{same}/{args.batch}"}, fh, indent=2)


if __name__ == "__main__":
    main()
