import numpy as np
import pytest
import torch
from diffusers import AmusedPipeline, AmusedScheduler

from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.conditioning import encode_prompts, micro_conds
from styledrop.errors import StyleDropError
from styledrop.sampling import SampleConfig, generate, guided_model

PROMPTS = ["A cat in watercolor painting style", "A bridge over a river"]


def _pipeline(components):
    pipe = AmusedPipeline(vqvae=components.vqvae, tokenizer=components.tokenizer,
                          text_encoder=components.text_encoder, transformer=components.transformer,
                          scheduler=AmusedScheduler(mask_token_id=components.mask_token_id))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("config", [
    SampleConfig(seed=3, num_images=2),
    SampleConfig(seed=1, guidance=0.0),
    SampleConfig(seed=7, steps=5, guidance=4.0, temperature=(4.5, 0.5)),
    SampleConfig(seed=11, steps=8, negative_prompt="blurry"),
], ids=["defaults-2-per-prompt", "no-guidance", "paper-temperature", "negative-prompt"])
def test_sampler_reproduces_amused_pipeline(tiny, config):
    ours = generate(tiny, PROMPTS, config)
    reference = _pipeline(tiny)(
        PROMPTS, num_images_per_prompt=config.num_images, guidance_scale=1.0 + config.guidance,
        num_inference_steps=config.steps, temperature=config.temperature,
        negative_prompt=[config.negative_prompt] * len(PROMPTS),
        generator=torch.Generator().manual_seed(config.seed), output_type="latent").images
    assert torch.equal(ours.tokens, reference)
    images = _pipeline(tiny)(
        PROMPTS, num_images_per_prompt=config.num_images, guidance_scale=1.0 + config.guidance,
        num_inference_steps=config.steps, temperature=config.temperature,
        negative_prompt=[config.negative_prompt] * len(PROMPTS),
        generator=torch.Generator().manual_seed(config.seed)).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours.images, images))


def test_guided_logits_follow_equation_4(tiny):
    adapter = create_adapter(AdapterConfig(kind="styledrop", rank=4, shared=False), tiny.transformer)
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.3)
    lam_a, lam_b = 1.5, 5.0
    config = SampleConfig(guidance=lam_b, adapter_guidance=lam_a)
    model = guided_model(tiny, PROMPTS, config, adapter)
    assert model.passes == 3  # Ĝ(t), G(t), G(n) in one batched forward
    tokens = torch.randint(0, 257, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    cond, null = encode_prompts(tiny, PROMPTS), encode_prompts(tiny, ["", ""])

    def forward(c):
        return tiny.transformer(tokens, encoder_hidden_states=c.hidden, pooled_text_emb=c.pooled,
                                micro_conds=micro_conds(64, 64, 2, tiny.device, torch.float32))

    with torch.no_grad():
        adapted_t = forward(cond)
        with adapter.disabled():
            base_t, base_n = forward(cond), forward(null)
        by_hand = adapted_t + lam_a * (adapted_t - base_t) + lam_b * (base_t - base_n)
        torch.testing.assert_close(model(tokens), by_hand, rtol=1e-4, atol=1e-4)


def test_each_step_exposes_its_logits_and_tokens(tiny):
    seen = []
    config = SampleConfig(steps=4, seed=0)
    result = generate(tiny, PROMPTS[:1], config,
                      on_step=lambda step, total, logits, tokens: seen.append((step, total, logits.shape,
                                                                               (tokens == tiny.mask_token_id).sum())))
    assert [s[0] for s in seen] == [0, 1, 2, 3] and all(s[1] == 4 for s in seen)
    assert seen[0][2] == (1, tiny.codebook_size, 8, 8)
    masked = [int(s[3]) for s in seen]
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0
    assert not (result.tokens == tiny.mask_token_id).any()


def test_same_seed_same_images_different_seed_different(tiny):
    a = generate(tiny, PROMPTS, SampleConfig(seed=5))
    b = generate(tiny, PROMPTS, SampleConfig(seed=5))
    c = generate(tiny, PROMPTS, SampleConfig(seed=6))
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)


def test_bad_sampling_settings_are_explained(tiny):
    with pytest.raises(StyleDropError, match="at least one step"):
        generate(tiny, PROMPTS, SampleConfig(steps=0))
    with pytest.raises(StyleDropError, match="at least one prompt"):
        generate(tiny, [], SampleConfig())


def test_an_image_does_not_depend_on_its_batchmates(tiny):
    """The seed contract: an image drawn alone equals the same prompt and seed drawn in a batch (exact, CPU)."""
    components, config = tiny, SampleConfig(guidance=3.0)
    prompts = ["A cat in watercolor painting style", "A bridge over a river", "A red bicycle"]
    batch = generate(components, prompts, config, seeds=[11, 5, 42])
    alone = generate(components, prompts[1:2], config, seeds=[5])
    assert torch.equal(batch.tokens[1:2], alone.tokens)
    assert batch.seeds == [11, 5, 42]
    other = generate(components, [prompts[0], prompts[1]], config, seeds=[99, 5])  # other batchmates, size 2
    assert torch.equal(other.tokens[1:2], alone.tokens)
    assert not torch.equal(batch.tokens[0], other.tokens[0])  # a different seed gives a different image


def test_per_image_seeds_are_checked(tiny):
    with pytest.raises(StyleDropError, match="one seed per image"):
        generate(tiny, PROMPTS, SampleConfig(num_images=2), seeds=[1, 2, 3])


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_text_side_cache_gives_the_transformers_own_logits_at_every_step(tiny, kind):
    """GuidedModel reuses encoder projection, AdaLN modulations and cross-attention K/V across decoding
    steps (styledrop/text_side.py): its row groups must equal the plain transformer's, bit for bit, step after
    step, with per-row adapter routing in force (LoRA's K/V differ by row)."""
    from styledrop.adapters.base import route_rows

    adapter = create_adapter(AdapterConfig(kind=kind, rank=4), tiny.transformer)
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p, generator=None) * 0.3)
    model = guided_model(tiny, PROMPTS, SampleConfig(guidance=3.0, adapter_guidance=1.0), adapter)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # the first step fills the cache, the later ones read it
        tokens = torch.randint(0, 257, (2, 8, 8), generator=generator)
        groups = model.forward_groups(tokens)
        with torch.no_grad(), route_rows(tiny.transformer, model._owners):
            plain = tiny.transformer(tokens.repeat(model.passes, 1, 1), micro_conds=model._micro,
                                     pooled_text_emb=model._cond.pooled, encoder_hidden_states=model._cond.hidden)
        assert torch.equal(torch.cat(list(groups.values())), plain)
