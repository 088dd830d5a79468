"""Images per second: our MaskGIT sampler vs. diffusers' AmusedPipeline on the same weights and seed.

Both decode the same prompts with the same settings (12 steps, guidance 10 = λB 9) to tokens and images.
Ours is also timed with a StyleDrop adapter and adapter guidance (λA > 0: three row groups per step), the
configuration StyleDrop actually samples with, next to the plain base-model case that the pipeline covers.

    python bench/sampling.py --preset amused-256-random --device cpu --batch 2 --repeats 2
    python bench/sampling.py --preset amused-256-random --device cuda --batch 16 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import torch


def _timed(fns: dict, repeats: int, device: str) -> dict[str, float]:
    """Best wall time of each function; repeats interleave the functions so load affects all alike."""
    for fn in fns.values():
        fn()  # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="amused-256-random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2, help="images per call")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from diffusers import AmusedPipeline, AmusedScheduler

    from styledrop.adapters import AdapterConfig, create_adapter
    from styledrop.models import load_components
    from styledrop.sampling import SampleConfig, generate

    components = load_components(args.preset, args.device)
    prompts = ["A cat in watercolor painting style"] * args.batch
    config = SampleConfig(steps=args.steps, seed=0)
    pipe = AmusedPipeline(vqvae=components.vqvae, tokenizer=components.tokenizer,
                          text_encoder=components.text_encoder, transformer=components.transformer,
                          scheduler=AmusedScheduler(mask_token_id=components.mask_token_id))
    pipe.set_progress_bar_config(disable=True)
    dtype_ctx = torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda" else torch.autocast("cpu", enabled=False)

    def reference():
        with torch.no_grad(), dtype_ctx:
            return pipe(prompts, num_inference_steps=args.steps, guidance_scale=1 + config.guidance,
                        generator=torch.Generator(args.device).manual_seed(0)).images

    def ours():
        with dtype_ctx:
            return generate(components, prompts, config, generator=torch.Generator(args.device).manual_seed(0)).images

    adapter = create_adapter(AdapterConfig(), components.transformer)
    adapted = SampleConfig(steps=args.steps, seed=0, adapter_guidance=2.0)

    def ours_adapter():
        with dtype_ctx:
            return generate(components, prompts, adapted, adapter=adapter,
                            generator=torch.Generator(args.device).manual_seed(0)).images

    def reference_plain():
        with adapter.disabled():
            return reference()

    def ours_plain():
        with adapter.disabled():
            return ours()

    results = _timed({"AmusedPipeline": reference_plain, "ours (base model)": ours_plain,
                      "ours (adapter, λA=2)": ours_adapter}, args.repeats, args.device)
    ref = results["AmusedPipeline"]
    print(f"preset={args.preset} device={args.device} batch={args.batch} steps={args.steps} (best of {args.repeats})")
    print(f"{'sampler':<24} {'s/call':>8} {'images/s':>9} {'vs pipeline':>12}")
    for name, seconds in results.items():
        print(f"{name:<24} {seconds:>8.2f} {args.batch / seconds:>9.3f} {ref / seconds:>11.2f}x")


if __name__ == "__main__":
    main()
