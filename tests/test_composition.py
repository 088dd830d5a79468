"""Composition (paper §3.4): a content adapter, and sampling from a style and a content adapter at once."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from styledrop.adapter_files import describe
from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.cli import main
from styledrop.composition import generate_composed, mixed_model, train_content
from styledrop.conditioning import encode_prompts
from styledrop.errors import StyleDropError
from styledrop.guidance import GuidedModel, Term
from styledrop.models import build_preset
from styledrop.presets import PRESETS, Preset
from styledrop.sampling import SampleConfig, generate
from styledrop.styles import LoadedStyle
from styledrop.training import Example, TrainConfig, encode_examples

PROMPT = "a [V] dog on a beach"
CONFIG = SampleConfig(seed=3, num_images=2, steps=6, guidance=4.0, adapter_guidance=1.0)


def _perturbed(adapter, scale=0.3):
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p) * scale)
    return adapter


@pytest.fixture(params=["styledrop", "lora"])
def pair(request, tiny):
    kind = request.param
    style_adapter = _perturbed(create_adapter(AdapterConfig(kind=kind, rank=4, shared=False), tiny.transformer))
    content_adapter = _perturbed(create_adapter(AdapterConfig(kind=kind, rank=4, shared=False), tiny.transformer, seed=1))
    style = LoadedStyle(tiny, style_adapter, describe(tiny, style_adapter, content="a house", descriptor="sticker"))
    content = LoadedStyle(tiny, content_adapter, describe(tiny, content_adapter, content="sks dog",
                                                          extra={"role": "content", "identifier": "sks"}))
    return style, content


def test_mix_zero_is_style_only_and_one_is_content_only(tiny, pair):
    style, content = pair
    composed = generate_composed(style, content, [PROMPT], 0.0, CONFIG)
    style_only = generate(tiny, ["A sks dog on a beach in sticker style"], CONFIG, adapter=style.adapter)
    assert torch.equal(composed.tokens, style_only.tokens)
    composed = generate_composed(style, content, [PROMPT], 1.0, CONFIG)
    content_only = generate(tiny, ["A sks dog on a beach"], CONFIG, adapter=content.adapter)
    assert torch.equal(composed.tokens, content_only.tokens)
    between = generate_composed(style, content, [PROMPT], 0.5, CONFIG)
    assert not torch.equal(between.tokens, style_only.tokens)


def test_mixed_logits_follow_the_papers_equation(tiny, pair):
    style, content = pair
    gamma, config = 0.6, SampleConfig(num_images=1, guidance=5.0, adapter_guidance=1.5)
    model = mixed_model(style, content, [PROMPT], gamma, config)
    assert model.passes == 5  # G(n), G(t), Ĝs(t), G(c), Ĝc(c) in one forward pass
    tokens = torch.randint(0, 257, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    null = encode_prompts(tiny, [""])

    def eq4(prompt, adapter):  # each model's Eq. 4 logits, computed on its own
        cond = encode_prompts(tiny, [prompt])
        return GuidedModel(tiny, [Term(cond, adapter)], null, config.guidance, config.adapter_guidance)(tokens)

    with torch.no_grad():
        l_s = eq4("A sks dog on a beach in sticker style", style.adapter)
        l_c = eq4("A sks dog on a beach", content.adapter)
        torch.testing.assert_close(model(tokens), (1 - gamma) * l_s + gamma * l_c, rtol=1e-4, atol=1e-4)


def test_lora_weight_merging_is_selectable_and_differs(tiny):
    adapters = [_perturbed(create_adapter(AdapterConfig(kind="lora", rank=4), tiny.transformer, seed=s)) for s in (0, 1)]
    style = LoadedStyle(tiny, adapters[0], describe(tiny, adapters[0], descriptor="sticker"))
    content = LoadedStyle(tiny, adapters[1], describe(tiny, adapters[1], content="sks dog",
                                                      extra={"role": "content", "identifier": "sks"}))
    merged = generate_composed(style, content, [PROMPT], 0.0, CONFIG, method="merge")
    style_only = generate(tiny, ["A sks dog on a beach in sticker style"], CONFIG, adapter=style.adapter)
    assert torch.equal(merged.tokens, style_only.tokens)  # weight 0 on the content LoRA: the style alone
    merged = generate_composed(style, content, [PROMPT], 0.5, CONFIG, method="merge")
    mixed = generate_composed(style, content, [PROMPT], 0.5, CONFIG, method="mix")
    assert not torch.equal(merged.tokens, mixed.tokens)


def test_bad_combinations_are_refused(tiny, pair):
    style, content = pair
    other = build_preset(Preset(name="tiny-wide", transformer=dict(PRESETS["tiny"].transformer, hidden_size=96),
                                vqvae=PRESETS["tiny"].vqvae, text_encoder=PRESETS["tiny"].text_encoder))
    alien = create_adapter(AdapterConfig(), other.transformer)
    foreign = LoadedStyle(tiny, content.adapter, describe(other, alien, extra={"role": "content", "identifier": "x"}))
    with pytest.raises(StyleDropError, match="differ"):
        generate_composed(style, foreign, [PROMPT], 0.5, CONFIG)
    with pytest.raises(StyleDropError, match="not a content adapter"):
        generate_composed(style, style, [PROMPT], 0.5, CONFIG)
    with pytest.raises(StyleDropError, match=r"\[0, 1\]"):
        generate_composed(style, content, [PROMPT], 1.5, CONFIG)
    if style.adapter.kind == "styledrop":
        with pytest.raises(StyleDropError, match="two LoRA adapters"):
            generate_composed(style, content, [PROMPT], 0.5, CONFIG, method="merge")


def _subject(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (40, 160, 60))
    ImageDraw.Draw(image).polygon([(8, 56), (32, 6), (56, 56)], fill=(250, 250, 250))
    return image


@pytest.mark.slow
def test_content_adapter_learns_its_subject(tmp_path, tiny):
    trained = train_content([_subject()], "sks", "dog", tmp_path / "dog", tiny,
                            AdapterConfig(kind="styledrop", rank=16, shared=False),
                            TrainConfig(steps=500, batch_size=4, learning_rate=1e-2, checkpoint_every=0,
                                        augment=False, max_grad_norm=None))
    losses = trained.result.losses
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 - 0.5
    assert trained.meta.prompts == ["A sks dog"] and trained.meta.extra["role"] == "content"
    target = encode_examples(tiny, [Example(_subject(), "A sks dog")], augment=False).tokens[0, 0]
    config = SampleConfig(num_images=8, seed=0, guidance=3.0, adapter_guidance=2.0)
    adapted = generate(tiny, ["A sks dog"], config, adapter=trained.adapter).tokens
    with trained.adapter.disabled():
        base = generate(tiny, ["A sks dog"], config).tokens
    assert (adapted == target).float().mean() > max(0.2, 5 * (base == target).float().mean())


def test_prior_preservation_adds_weighted_class_images(tmp_path, tiny):
    trained = train_content([_subject()], "sks", "dog", tmp_path / "dog", tiny, train_config=TrainConfig(
        steps=3, batch_size=2, checkpoint_every=0), prior_preservation=True, num_class_images=3, prior_loss_weight=0.5)
    assert trained.meta.prompts == ["A sks dog"] + ["A dog"] * 3
    assert trained.meta.extra["prior_preservation"] is True


def test_cli_trains_a_subject_and_composes_it_with_a_style(tmp_path, reference_file, capsys):
    subject_file = tmp_path / "dog.png"
    _subject().save(subject_file)
    style_dir, subject_dir, out = tmp_path / "style", tmp_path / "dog", tmp_path / "out"
    assert main(["train", "--image", reference_file, "--content", "a house", "--descriptor", "watercolor painting",
                 "--model", "tiny", "--steps", "4", "--batch-size", "2", "--out", str(style_dir)]) == 0
    assert main(["train-content", "--images", str(subject_file), "--identifier", "sks", "--class-noun", "dog",
                 "--model", "tiny", "--steps", "4", "--batch-size", "2", "--out", str(subject_dir)]) == 0
    assert main(["generate", str(style_dir), PROMPT, "--content", str(subject_dir), "--mix", "0.6",
                 "--num", "2", "--steps", "4", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
    record = json.loads((out / "generations.json").read_text())
    assert record["images"][0]["prompt"] == "A sks dog on a beach in watercolor painting style"
    assert [image["seed"] for image in record["images"]] == [0, 1]  # each image its own seed (--seed 0, + index)
    capsys.readouterr()
    assert main(["train-content", "--images", str(subject_file), "--identifier", "two words", "--class-noun", "dog",
                 "--model", "tiny", "--out", str(tmp_path / "x")]) == 1
    assert "one rare word" in capsys.readouterr().err


def test_composed_images_keep_the_seed_contract(tiny, pair):
    """With per-image seeds (what `styledrop generate --content` passes) a composed image does not depend on
    its batch: drawn alone or beside another prompt, the same tokens and pixels."""
    style, content = pair
    config = SampleConfig(steps=3, guidance=2.0)
    batch = generate_composed(style, content, ["A [V] on a boat", PROMPT], 0.5, config, seeds=[8, 9])
    alone = generate_composed(style, content, [PROMPT], 0.5, config, seeds=[9])
    assert batch.seeds == [8, 9]
    assert torch.equal(batch.tokens[1], alone.tokens[0])
    assert np.array_equal(np.asarray(batch.images[1]), np.asarray(alone.images[0]))
    with pytest.raises(StyleDropError, match="one seed per image"):
        generate_composed(style, content, [PROMPT], 0.5, config, seeds=[1, 2])
