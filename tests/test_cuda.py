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
