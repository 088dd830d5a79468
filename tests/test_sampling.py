from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import AmusedPipeline, AmusedScheduler

from styledrop import sampling
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


# The pipeline runs in the caller's precision (fp32 here); ours would use bf16 on a CPU that computes it natively.
@pytest.mark.parametrize("config", [
    SampleConfig(seed=3, num_images=2, precision="fp32"),
    SampleConfig(seed=1, guidance=0.0, precision="fp32"),
    SampleConfig(seed=7, steps=5, guidance=4.0, temperature=(4.5, 0.5), precision="fp32"),
    SampleConfig(seed=11, steps=8, negative_prompt="blurry", precision="fp32"),
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
    """GuidedModel's batched passes reuse encoder projection, AdaLN modulations and cross-attention K/V across
    decoding steps (styledrop/text_side.py): its row groups must equal the plain transformer's, bit for bit, step
    after step, with per-row adapter routing in force (LoRA's K/V differ by row)."""
    from styledrop.adapters.base import route_rows

    adapter = create_adapter(AdapterConfig(kind=kind, rank=4), tiny.transformer)
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p, generator=None) * 0.3)
    model = guided_model(tiny, PROMPTS, SampleConfig(guidance=3.0, adapter_guidance=1.0), adapter)
    batch = model.batch  # styledrop/batched_passes.py
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # the first step fills the cache, the later ones read it
        tokens = torch.randint(0, 257, (2, 8, 8), generator=generator)
        groups = batch(tokens)
        with torch.no_grad(), route_rows(tiny.transformer, batch.owners):
            plain = tiny.transformer(tokens.repeat(model.passes, 1, 1), micro_conds=batch.micro,
                                     pooled_text_emb=batch.cond.pooled, encoder_hidden_states=batch.cond.hidden)
        assert torch.equal(torch.cat(groups), plain)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_seed_contract_holds_in_each_precision(tiny, precision):
    """Every image of a batch of 8 is, token for token and pixel for pixel, the image its seed draws alone, in
    fp32 and in bf16 autocast (the default on CUDA and on CPUs with native bf16). Pixels too: the VQ decoder's
    fp32 convolutions round differently at another batch size on a CPU, so images are decoded one by one."""
    config = SampleConfig(steps=4, guidance=3.0, precision=precision)
    prompts = [f"A {animal} in watercolor painting style" for animal in ("cat", "dog", "fox", "owl")] * 2
    seeds = list(range(20, 28))
    batch = generate(tiny, prompts, config, seeds=seeds)
    assert batch.precision == precision
    for i, (prompt, seed) in enumerate(zip(prompts, seeds)):
        alone = generate(tiny, [prompt], config, seeds=[seed])
        assert torch.equal(batch.tokens[i], alone.tokens[0]), f"image {i}: tokens"
        assert np.array_equal(np.asarray(batch.images[i]), np.asarray(alone.images[0])), f"image {i}: pixels"


def test_precision_covers_the_whole_call(tiny):
    """bf16 is autocast over every decoding step (and the text encoder and VQ decoder around them); fp32 adds no
    autocast of its own; auto is bf16 exactly where the device computes bf16 natively."""
    seen: dict[str, list[bool]] = {"bf16": [], "fp32": []}
    for precision, record in seen.items():
        generate(tiny, ["A cat"], SampleConfig(steps=3, precision=precision), seeds=[1],
                 on_step=lambda *_, record=record: record.append(torch.is_autocast_enabled("cpu")))
    assert seen == {"bf16": [True] * 3, "fp32": [False] * 3}
    auto = generate(tiny, ["A cat"], SampleConfig(steps=2), seeds=[1])
    assert auto.precision == ("bf16" if sampling.native_bf16("cpu") else "fp32")
    with pytest.raises(StyleDropError, match="precision must be one of auto, bf16, fp32"):
        generate(tiny, ["A cat"], SampleConfig(precision="fp16"), seeds=[1])


def test_candidates_and_the_playground_draw_one_image_per_seed_in_bf16(tiny, monkeypatch):
    """The worker's candidates and its playground (or `styledrop generate`) apply the sampling precision in the
    same place, so a candidate's seed remakes it where auto means bf16 (CUDA, or a CPU like this one may be)."""
    from styledrop.adapter_files import describe
    from styledrop.candidates import draw_candidates
    from styledrop.styles import LoadedStyle, generate_with_style

    monkeypatch.setattr(sampling, "native_bf16", lambda device: True)  # whatever this machine's CPU offers
    adapter = create_adapter(AdapterConfig(kind="styledrop", rank=4), tiny.transformer)
    style = LoadedStyle(tiny, adapter, describe(tiny, adapter, content="a house", descriptor="sticker"))
    config = SampleConfig(steps=3, adapter_guidance=1.0)
    made = draw_candidates(style, ["a cat", "a bridge"], 2, seed=3, config=config, batch_size=3)
    again = generate_with_style(style, [made[2].content], config, seeds=[made[2].seed])
    assert again.precision == "bf16"
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(made[2].image))
    fp32 = generate_with_style(style, [made[2].content], replace(config, precision="fp32"), seeds=[made[2].seed])
    assert not np.array_equal(np.asarray(fp32.images[0]), np.asarray(made[2].image))  # bf16 was really used
