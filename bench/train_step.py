"""Seconds per training step and peak memory: our trainer vs. diffusers' aMUSEd LoRA recipe, same preset.

The reference loop follows diffusers' examples/amused/train_amused.py for a single instance image: LoRA
(r=16, alpha=32, to_q/to_k/to_v) added with `add_adapter`, the prompt encoded once, the image VQ-encoded
every step, cosine masking, cross-entropy on masked tokens, AdamW. Ours precomputes VQ tokens, and is run
with its default StyleDrop adapter and with the same LoRA to separate the adapter from the loop.

Each variant runs in its own process so peak memory (max RSS on CPU, max allocated on CUDA) is its own.

    python bench/train_step.py --preset amused-256-random --device cpu --batch 1 --steps 3
    python bench/train_step.py --preset amused-512-random --device cuda --batch 8 --steps 20   # bf16

`--precision` is bf16 autocast (the default on CUDA; train_amused.py's `--mixed_precision bf16`, which also
casts the frozen text encoder to bf16) or fp32 (the default on CPU); both loops use the same one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

VARIANTS = ("reference-lora", "ours-lora", "ours-styledrop")
# Dense peak FLOP/s by device name and precision, for model FLOP utilisation (vendor data sheets, no sparsity).
PEAK_FLOPS = {
    ("H100", "bf16"): 989e12, ("H100", "fp32"): 67e12,
    ("H200", "bf16"): 989e12, ("H200", "fp32"): 67e12,
    ("A100", "bf16"): 312e12, ("A100", "fp32"): 19.5e12,
}


def peak_flops(device_name: str, precision: str) -> float | None:
    """The table entry whose card name appears in the device's name; None (a CPU, an unlisted card)."""
    for (card, prec), value in PEAK_FLOPS.items():
        if card in device_name and prec == precision:
            return value
    return None


def _counting():
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False)


def _peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference_loop(components, image, prompt, args) -> list[float]:
    """diffusers' train_amused.py, single-image path, without accelerate's wrappers."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig

    from styledrop.conditioning import encode_prompts
    from styledrop.images import prepare_image

    device = torch.device(args.device)
    bf16 = args.precision == "bf16"
    if bf16:  # train_amused.py: text_encoder.to(device, dtype=weight_dtype); the VQ model stays fp32
        components.text_encoder.to(dtype=torch.bfloat16)
    model = components.transformer
    model.add_adapter(LoraConfig(r=16, lora_alpha=32, target_modules=["to_q", "to_k", "to_v"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=4e-4, weight_decay=1e-2)
    cond = encode_prompts(components, [prompt])
    hidden, pooled = cond.hidden.repeat(args.batch, 1, 1), cond.pooled.repeat(args.batch, 1)
    prepared = prepare_image(image, components.resolution)
    pixels = prepared.pixels.unsqueeze(0).repeat(args.batch, 1, 1, 1).to(device)
    micro = torch.tensor([[*prepared.original_size, 0, 0, 6.0]], device=device).repeat(args.batch, 1)
    vq, mask_id, codebook = components.vqvae, components.mask_token_id, components.codebook_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    times = []
    counter = _counting()
    for step in range(args.warmup + args.steps + 1):  # the extra last step counts FLOPs, untimed
        counting = step == args.warmup + args.steps
        if counting:
            counter.__enter__()
        start = time.perf_counter()
        with torch.no_grad():
            tokens = vq.quantize(vq.encode(pixels).latents)[2][2].reshape(args.batch, -1)
            batch, seq_len = tokens.shape
            mask_prob = torch.cos(torch.rand(batch, device=device) * math.pi * 0.5)
            num_masked = (seq_len * mask_prob).round().clamp(min=1)
            mask = torch.rand(batch, seq_len, device=device).argsort(dim=-1) < num_masked.unsqueeze(-1)
            input_ids = torch.where(mask, mask_id, tokens)
            labels = torch.where(mask, tokens, -100)
            grid = components.token_grid
            input_ids = input_ids.reshape(batch, grid, grid)
        with autocast:
            logits = model(input_ids=input_ids, encoder_hidden_states=hidden, micro_conds=micro, pooled_text_emb=pooled)
        logits = logits.reshape(batch, codebook, -1).permute(0, 2, 1).reshape(-1, codebook)
        loss = F.cross_entropy(logits, labels.view(-1), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if counting:
            counter.__exit__(None, None, None)
        elif step >= args.warmup:
            times.append(time.perf_counter() - start)
    args.flops_per_step = counter.get_total_flops()
    return times


def _our_loop(components, image, prompt, args, kind: str) -> list[float]:
    import torch

    from styledrop.adapters import AdapterConfig, create_adapter
    from styledrop.training import Example, TrainConfig, encode_examples, train

    config = AdapterConfig(kind="lora", rank=16, alpha=32.0) if kind == "lora" else AdapterConfig()
    adapter = create_adapter(config, components.transformer)
    data = encode_examples(components, [Example(image, prompt)], augment=True)
    if args.device == "cuda":  # frozen encoders are not needed once the training set is encoded
        components.vqvae.to("cpu")
        components.text_encoder.to("cpu")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    precision = "bf16" if args.precision == "bf16" else "no"

    stamps: dict[int, float] = {}

    def on_progress(p) -> None:  # called after steps whose loss was read (then the device has caught up)
        stamps[p.step] = time.perf_counter()

    # The loss is read on the host about once a second, not every step, but always after the first and the
    # last step: time the steps between those two (the first one carries the warm-up and any compile).
    total = 1 + args.steps
    train(components, adapter, data, TrainConfig(steps=total, batch_size=args.batch, checkpoint_every=0,
                                                 mixed_precision=precision, fast=args.fast), on_progress=on_progress)
    per_step = [(stamps[total] - stamps[1]) / args.steps]
    if all(step in stamps for step in range(1, total + 1)):  # every step read (a CPU): each step's own time
        per_step = [stamps[step + 1] - stamps[step] for step in range(1, total)]
    with _counting() as counter:  # FLOPs of one step, counted on the eager step (the same arithmetic)
        train(components, adapter, data, TrainConfig(steps=1, batch_size=args.batch, checkpoint_every=0,
                                                     mixed_precision=precision, fast="off"))
    args.flops_per_step = counter.get_total_flops()
    return per_step


def _environment(device: str) -> dict:
    import platform

    import torch

    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    return {"torch": torch.__version__, "device_name": name}


def run_variant(args) -> dict:
    import torch
    from PIL import Image, ImageDraw

    from styledrop.models import load_components

    torch.manual_seed(0)
    components = load_components(args.preset, args.device)
    image = Image.new("RGB", (components.resolution,) * 2, (230, 200, 40))
    ImageDraw.Draw(image).ellipse([40, 40, 200, 200], fill=(200, 30, 30))
    prompt = "A house in watercolor painting style"
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.variant == "reference-lora":
        times = _reference_loop(components, image, prompt, args)
    else:
        times = _our_loop(components, image, prompt, args, args.variant.split("-")[1])
    times.sort()
    return {"variant": args.variant, "median_s_per_step": times[len(times) // 2], "min_s_per_step": times[0],
            "peak_mb": round(_peak_mb(args.device), 1), "flops_per_step": args.flops_per_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="amused-256-random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                        help="bf16 autocast or fp32 (default: bf16 on cuda, fp32 on cpu)")
    parser.add_argument("--fast", choices=("auto", "on", "off"), default="auto",
                        help="our trainer's launch-free step switch (TrainConfig.fast)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.precision is None:
        args.precision = "bf16" if args.device.startswith("cuda") else "fp32"
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    results = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", variant] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("variant", "json") and v is not None]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if out.returncode != 0:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = results["reference-lora"]
    env = _environment(args.device)
    print(f"preset={args.preset} device={args.device} ({env['device_name']}) precision={args.precision} "
          f"batch={args.batch} timed steps={args.steps} torch={env['torch']}")
    peak = peak_flops(env["device_name"], args.precision)
    print(f"fast={args.fast}; FLOPs counted with torch.utils.flop_counter on one step; MFU against "
          + (f"{peak / 1e12:.0f} TFLOP/s ({args.precision} dense peak)" if peak else "no peak (CPU: achieved only)"))
    print(f"{'variant':<16} {'s/step':>9} {'peak MB':>10} {'speed vs ref':>13} {'memory vs ref':>14} "
          f"{'GFLOP/step':>11} {'GFLOP/s':>9} {'MFU':>7}")
    for variant, r in results.items():
        achieved = r["flops_per_step"] / r["median_s_per_step"]
        r["flops_per_s"] = achieved
        r["mfu"] = achieved / peak if peak else None
        mfu = f"{100 * r['mfu']:.1f}%" if peak else "n/a"
        print(f"{variant:<16} {r['median_s_per_step']:>9.3f} {r['peak_mb']:>10.0f} "
              f"{ref['median_s_per_step'] / r['median_s_per_step']:>12.2f}x {r['peak_mb'] / ref['peak_mb']:>13.2f}x "
              f"{r['flops_per_step'] / 1e9:>11.2f} {achieved / 1e9:>9.2f} {mfu:>7}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "variant"}, "environment": env,
                       "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
