import pytest
import torch
from diffusers import UVit2DModel

from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.conditioning import encode_prompts, micro_conds
from styledrop.errors import StyleDropError
from styledrop.presets import PRESETS
from styledrop.styles import default_adapter_config

CONFIGS = [
    AdapterConfig(kind="styledrop", rank=4, shared=True),
    AdapterConfig(kind="styledrop", rank=8, shared=False),
    AdapterConfig(kind="lora", rank=4, alpha=8.0),
]


def _forward(components, tokens):
    cond = encode_prompts(components, ["A cat in watercolor painting style", "A bridge"])
    micro = micro_conds(64, 64, 2, components.device, torch.float32)
    with torch.no_grad():
        return components.transformer(tokens, encoder_hidden_states=cond.hidden, pooled_text_emb=cond.pooled,
                                      micro_conds=micro)


def _tokens():
    return torch.randint(0, 257, (2, 8, 8), generator=torch.Generator().manual_seed(1))


def _perturb(adapter):
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.3)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.kind}-r{c.rank}-{'shared' if c.shared else 'full'}")
def test_untrained_adapter_is_an_exact_no_op(tiny, config):
    tokens = _tokens()
    base = _forward(tiny, tokens)
    create_adapter(config, tiny.transformer)
    assert torch.equal(_forward(tiny, tokens), base)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.kind}-r{c.rank}")
def test_switches_off_and_routes_per_sample(tiny, config):
    tokens = _tokens()
    base = _forward(tiny, tokens)
    adapter = create_adapter(config, tiny.transformer)
    _perturb(adapter)
    adapted = _forward(tiny, tokens)
    assert not torch.allclose(adapted, base, atol=1e-4)
    with adapter.disabled():
        assert torch.equal(_forward(tiny, tokens), base)
    with adapter.per_sample(torch.tensor([True, False])):
        mixed = _forward(tiny, tokens)
    torch.testing.assert_close(mixed[0], adapted[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[1], base[1], rtol=1e-5, atol=1e-5)
    adapter.detach()
    assert torch.equal(_forward(tiny, tokens), base)


def test_per_sample_mask_follows_the_adapter_to_its_device():
    """route_rows builds row masks on the CPU; a CUDA adapter must not mix them with its activations."""
    from styledrop.adapters.bottleneck import StyleDropAdapter

    adapter = StyleDropAdapter(AdapterConfig(), dim=16, layers=2).to("meta")  # a device other than the CPU
    with adapter.per_sample(torch.tensor([True, False])):
        assert adapter._row_scale.device.type == "meta"
    assert adapter._row_scale is None


def test_shared_weights_are_generated_from_one_table(tiny):
    adapter = create_adapter(AdapterConfig(kind="styledrop", rank=4, shared=True), tiny.transformer)
    layers, dim = len(tiny.transformer.transformer_layers), tiny.transformer.config.hidden_size
    # per site: D×H + H×D shared tables, an H- and a D-vector per layer
    assert adapter.num_parameters() == 2 * (2 * dim * 4 + layers * (4 + dim))
    down0, _ = adapter.sites["attn2"].weights(0)
    down1, _ = adapter.sites["attn2"].weights(1)
    assert not torch.equal(down0, down1)


def test_default_adapters_are_under_one_percent_of_amused_256():
    with torch.device("meta"):
        transformer = UVit2DModel(**PRESETS["amused-256-random"].transformer)
    total = sum(p.numel() for p in transformer.parameters())
    assert total > 500_000_000  # the real architecture, not a toy
    fractions = {}
    for kind in ("styledrop", "lora"):
        adapter = create_adapter(default_adapter_config(kind), transformer)
        fractions[kind] = adapter.num_parameters() / total
        adapter.detach()
    round2 = create_adapter(AdapterConfig(kind="styledrop", rank=32, shared=False), transformer)
    fractions["round2"] = round2.num_parameters() / total
    print(fractions)
    assert fractions["styledrop"] < 0.001  # H=4 shared: tens of thousands of parameters
    assert fractions["lora"] < 0.01
    assert fractions["round2"] < 0.01


def test_bad_adapter_settings_are_explained(tiny):
    with pytest.raises(StyleDropError, match="Unknown adapter kind"):
        create_adapter(AdapterConfig(kind="hypernet"), tiny.transformer)
    with pytest.raises(StyleDropError, match="rank"):
        create_adapter(AdapterConfig(kind="styledrop", rank=0), tiny.transformer)


@pytest.mark.parametrize("shared", [True, False])
def test_all_layer_weights_at_once_equal_the_per_layer_ones(tiny, shared):
    adapter = create_adapter(AdapterConfig(rank=4, shared=shared), tiny.transformer)
    _perturb(adapter)
    for site in adapter.sites.values():
        down, up = site.all_weights()
        for layer in range(adapter.layers):
            assert torch.equal(down[layer], site.weights(layer)[0]) and torch.equal(up[layer], site.weights(layer)[1])


def test_weights_kept_between_sampling_passes_follow_a_changed_adapter(tiny):
    """Without gradients the generated weights are reused across forward passes; a load or an update must
    still show (parameter versions), or sampling after a training step would use stale weights."""
    adapter = create_adapter(AdapterConfig(rank=4), tiny.transformer)
    tokens = _tokens()
    _perturb(adapter)
    first = _forward(tiny, tokens)
    assert torch.equal(_forward(tiny, tokens), first)
    state = {k: v.clone() for k, v in adapter.adapter_state_dict().items()}
    _perturb(adapter)
    changed = _forward(tiny, tokens)
    assert not torch.equal(changed, first)
    adapter.load_adapter_state_dict(state)
    assert torch.equal(_forward(tiny, tokens), first)
