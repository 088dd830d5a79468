"""The engine end to end on a GPU (tiny preset): skipped where CUDA is absent, as on CI."""

import pytest
import torch

from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.models import load_components
from styledrop.sampling import SampleConfig, generate
from styledrop.training import Example, TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_train_and_sample_with_adapter_guidance_on_cuda(kind, reference):
    components = load_components("tiny", "cuda")
    adapter = create_adapter(AdapterConfig(kind=kind, rank=4), components.transformer)
    result = train(components, adapter, [Example(reference, "A house in watercolor painting style")],
                   TrainConfig(steps=3, batch_size=2, checkpoint_every=0))
    assert result.steps_done == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    for precision in ("fp32", "bf16"):
        config = SampleConfig(steps=3, adapter_guidance=2.0, precision=precision)  # Ĝ(t), G(t), G(n) rows
        for generator in (None, torch.Generator("cuda").manual_seed(0)):  # the seed's CPU generator, a CUDA one
            samples = generate(components, ["A cat in watercolor painting style"] * 2, config,
                               adapter=adapter, generator=generator)
            assert samples.tokens.device.type == "cuda" and len(samples.images) == 2
            assert samples.precision == precision


def _tiny_style_adapter(components):
    adapter = create_adapter(AdapterConfig(rank=4), components.transformer)
    with torch.no_grad():  # a non-zero adapter, so the adapted rows differ from the base rows
        for p in adapter.trainable_parameters():
            p.normal_(0, 0.05, generator=torch.Generator(p.device.type).manual_seed(1))
    return adapter


@pytest.mark.parametrize("bf16", [False, True])
def test_graphed_decoding_steps_draw_the_eager_images(bf16):
    """A decoding step replayed from a CUDA graph runs the same kernels on the same inputs: the same tokens,
    with adapter guidance (rows routed per adapter) and per-image generators."""
    from styledrop.sampling import guided_model, image_generators, sample_tokens

    components = load_components("tiny", "cuda")
    adapter = _tiny_style_adapter(components)
    prompts = ["A cat in watercolor painting style", "A dog in watercolor painting style"]
    runs = {}
    for graphs in ("off", "on"):
        config = SampleConfig(steps=4, adapter_guidance=2.0, graphs=graphs)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            model = guided_model(components, prompts, config, adapter)
            tokens = sample_tokens(model, 2, components.token_grid, components.mask_token_id, config, components.device,
                                   image_generators([5, 6], components.device))
        runs[graphs] = (tokens, model)
    graphed = runs["on"][1]._graph
    assert runs["off"][1]._graph is None and graphed is not None
    assert not graphed.failed and graphed.calls == 4 and not graphed.captured  # captured, replayed, released
    assert torch.equal(runs["on"][0], runs["off"][0])
    # The held routing was released: a plain forward afterwards sees the adapter on every row again.
    assert adapter._sample_mask is None


def test_lora_rows_fall_back_to_eager_steps():
    """LoRA's per-row routing indexes rows from the host: no graph is attempted, the images are drawn eagerly."""
    from styledrop.sampling import guided_model

    components = load_components("tiny", "cuda")
    adapter = create_adapter(AdapterConfig(kind="lora", rank=4), components.transformer)
    config = SampleConfig(steps=2, adapter_guidance=2.0, graphs="on")
    assert guided_model(components, ["A cat"], config, adapter)._graph is None
    samples = generate(components, ["A cat"], config, adapter=adapter, seeds=[3])
    assert len(samples.images) == 1


def test_an_image_drawn_in_a_batch_on_cuda():
    """The seed contract on CUDA: each image has its own generator, so its draws are its own; the batched
    matmuls may still round differently at another batch size. Measured here, not assumed: the share of an
    image's tokens that equal the image drawn alone."""
    components = load_components("tiny", "cuda")
    adapter = _tiny_style_adapter(components)
    config = SampleConfig(steps=4)  # precision auto: bf16 on CUDA
    alone = generate(components, ["A cat"], config, adapter=adapter, seeds=[11]).tokens
    batch = generate(components, ["A dog", "A cat", "A fox"], config, adapter=adapter, seeds=[10, 11, 12]).tokens
    share = (alone[0] == batch[1]).float().mean().item()
    print(f"tokens equal to the image drawn alone: {share:.4f}")
    assert share > 0.9


def test_a_candidate_is_remade_by_the_playground_on_cuda():
    """Candidates and the playground (`generate_with_style` with the image's seed, the worker's generation job)
    take their precision from one place, so the playground remakes a candidate's seed in the candidate's own
    precision (bf16 on CUDA), not as another image."""
    import numpy as np

    from styledrop.adapter_files import describe
    from styledrop.candidates import draw_candidates
    from styledrop.styles import LoadedStyle, generate_with_style

    components = load_components("tiny", "cuda")
    adapter = _tiny_style_adapter(components)
    style = LoadedStyle(components, adapter, describe(components, adapter, content="a house", descriptor="ink"))
    config = SampleConfig(steps=4, adapter_guidance=2.0)
    made = draw_candidates(style, ["a cat", "a bridge"], 2, seed=5, config=config, batch_size=4)
    again = generate_with_style(style, [made[1].content], config, seeds=[made[1].seed])
    assert again.precision == "bf16"
    share = (np.asarray(again.images[0]) == np.asarray(made[1].image)).mean()
    print(f"pixels equal to the candidate: {share:.4f}")  # alone vs in a batch of 4: see the test above
    assert share > 0.9


def test_compiled_fast_step_agrees_with_the_eager_step_on_cuda(reference):
    """fast="on" on CUDA: bf16-held frozen weights, fused RMSNorm, torch.compile with CUDA graphs, fused
    AdamW. Same draws, so the same masks; bf16 rounding differs from eager bf16 autocast, hence a loose
    tolerance on the losses (both start near ln 8192 on random weights)."""
    runs = {}
    for fast in ("off", "on"):
        components = load_components("tiny", "cuda")
        adapter = create_adapter(AdapterConfig(rank=4), components.transformer)
        result = train(components, adapter, [Example(reference, "A house in watercolor painting style")],
                       TrainConfig(steps=6, batch_size=2, checkpoint_every=0, fast=fast))
        runs[fast] = result
    assert runs["on"].compiled and not runs["off"].compiled
    torch.testing.assert_close(torch.tensor(runs["on"].losses), torch.tensor(runs["off"].losses), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_samples_between_compiled_bf16_steps_leave_training_unchanged_on_cuda(kind, reference):
    """The fast step on CUDA (compiled with CUDA graphs, frozen weights held in bf16): samples drawn between
    steps under its autocast, and the run trains as one without them (own generators; train mode restored)."""
    from styledrop.training_samples import TrainingSampler, sample_callback

    runs = {}
    for sampling in (False, True):
        components = load_components("tiny", "cuda")
        adapter = create_adapter(AdapterConfig(kind=kind, rank=4), components.transformer)
        drawn = []
        sampler = TrainingSampler(components, adapter, "watercolor painting", SampleConfig(steps=3, adapter_guidance=2))
        result = train(components, adapter, [Example(reference, "A house in watercolor painting style")],
                       TrainConfig(steps=6, batch_size=2, checkpoint_every=0, sample_every=2, fast="on"),
                       on_sample=sample_callback(sampler, lambda step, s: drawn.append((step, s))) if sampling else None)
        runs[sampling] = (result, {k: v.clone() for k, v in adapter.adapter_state_dict().items()}, drawn)
        assert all(p.dtype == torch.float32 for p in components.transformer.parameters())  # bf16 hold undone
    (plain, plain_state, _), (sampled, state, drawn) = runs[False], runs[True]
    assert sampled.compiled and [step for step, _ in drawn] == [0, 2, 4, 6]
    assert all(s.image.size == (64, 64) for _, samples in drawn for s in samples)
    # the same draws; only CUDA's own run-to-run rounding (atomics in the backward pass) may differ
    torch.testing.assert_close(torch.tensor(sampled.losses), torch.tensor(plain.losses), rtol=1e-4, atol=1e-5)
    for key, value in plain_state.items():
        torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5)
