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
    config = SampleConfig(steps=3, adapter_guidance=2.0)  # Ĝ(t), G(t), G(n): rows routed per adapter
    for bf16 in (False, True):
        for generator in (None, torch.Generator("cuda").manual_seed(0)):  # the seed's CPU generator, a CUDA one
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                samples = generate(components, ["A cat in watercolor painting style"] * 2, config,
                                   adapter=adapter, generator=generator)
            assert samples.tokens.device.type == "cuda" and len(samples.images) == 2


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
