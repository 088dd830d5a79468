import json

import numpy as np
import pytest
import torch
from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel

from styledrop.adapter_files import (
    ADAPTER_FILE,
    MANIFEST_FILE,
    describe,
    export_diffusers_lora,
    load_adapter,
    read_adapter_file,
    save_adapter_file,
    save_style,
)
from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.errors import StyleDropError
from styledrop.models import build_preset, load_components
from styledrop.presets import PRESETS, Preset
from styledrop.sampling import SampleConfig, generate


def _trained_like(adapter):
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return adapter


@pytest.mark.parametrize("config", [AdapterConfig(kind="styledrop", rank=4, shared=True),
                                    AdapterConfig(kind="lora", rank=4, alpha=8.0)], ids=["styledrop", "lora"])
def test_save_and_load_round_trip_is_bit_exact(tmp_path, tiny, config):
    adapter = _trained_like(create_adapter(config, tiny.transformer))
    meta = describe(tiny, adapter, content="a house", descriptor="watercolor painting",
                    prompts=["A house in watercolor painting style"], steps=123, training={"lr": 0.01})
    path = save_adapter_file(tmp_path / "a.safetensors", adapter, meta)

    fresh = load_components("tiny")
    loaded, loaded_meta = load_adapter(path, fresh)
    original = adapter.adapter_state_dict()
    restored = loaded.adapter_state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded_meta.kind == config.kind and loaded_meta.adapter["rank"] == config.rank
    assert loaded_meta.descriptor == "watercolor painting" and loaded_meta.steps == 123
    assert loaded_meta.prompts == ["A house in watercolor painting style"]
    assert loaded_meta.base_model == "tiny" and loaded_meta.training == {"lr": 0.01}
    same = SampleConfig(seed=2, guidance=2.0, adapter_guidance=1.0)
    assert torch.equal(generate(tiny, ["A cat"], same, adapter).tokens,
                       generate(fresh, ["A cat"], same, loaded).tokens)


def test_adapter_for_another_base_model_is_refused(tmp_path, tiny):
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    path = save_adapter_file(tmp_path / "a.safetensors", adapter, describe(tiny, adapter))
    other = Preset(name="tiny-wide", transformer=dict(PRESETS["tiny"].transformer, hidden_size=96),
                   vqvae=PRESETS["tiny"].vqvae, text_encoder=PRESETS["tiny"].text_encoder)
    with pytest.raises(StyleDropError, match="trained for base model 'tiny'"):
        load_adapter(path, build_preset(other))


def test_unreadable_adapter_files_are_explained(tmp_path, tiny):
    with pytest.raises(StyleDropError, match="No adapter found"):
        read_adapter_file(tmp_path / "missing")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file")
    with pytest.raises(StyleDropError, match="not a readable safetensors"):
        read_adapter_file(junk)


def test_style_folder_holds_adapter_manifest_reference_and_diffusers_lora(tmp_path, tiny, reference):
    adapter = _trained_like(create_adapter(AdapterConfig(kind="lora", rank=4, alpha=8.0), tiny.transformer))
    folder = save_style(tmp_path / "style", adapter, describe(tiny, adapter, descriptor="sticker"), reference)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["adapter"]["kind"] == "lora" and manifest["descriptor"] == "sticker"
    assert manifest["num_parameters"] == adapter.num_parameters()
    for entry in manifest["files"].values():  # "references" lists every reference image
        for relative in entry if isinstance(entry, list) else [entry]:
            assert (folder / relative).is_file()
    assert manifest["files"]["references"] == ["reference.png"] and (folder / ADAPTER_FILE).is_file()


def test_lora_export_loads_into_diffusers_and_matches_our_sampler(tmp_path, tiny):
    adapter = _trained_like(create_adapter(AdapterConfig(kind="lora", rank=4, alpha=8.0), tiny.transformer))
    export = export_diffusers_lora(adapter, tmp_path / "lora")
    prompts = ["A cat in sticker style"]
    # λA = λB = 0: the plain adapted model, as diffusers samples it (in fp32, the pipeline's precision here)
    config = SampleConfig(seed=4, guidance=0.0, precision="fp32")
    ours = generate(tiny, prompts, config, adapter)
    with adapter.disabled():
        plain = generate(tiny, prompts, config)
    assert not np.array_equal(np.asarray(ours.images[0]), np.asarray(plain.images[0]))  # the LoRA matters

    base = load_components("tiny")  # a diffusers user's own pipeline: plain UVit2DModel, no styledrop code
    transformer = UVit2DModel.from_config(base.transformer.config)
    transformer.load_state_dict(base.transformer.state_dict())
    transformer.load_lora_adapter(str(export.parent), prefix="transformer", weight_name=export.name)
    pipe = AmusedPipeline(vqvae=base.vqvae, tokenizer=base.tokenizer, text_encoder=base.text_encoder,
                          transformer=transformer.eval(), scheduler=AmusedScheduler(mask_token_id=base.mask_token_id))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompts, guidance_scale=1.0, num_inference_steps=config.steps, temperature=config.temperature,
                  generator=torch.Generator().manual_seed(4))
    assert np.array_equal(np.asarray(ours.images[0]), np.asarray(theirs.images[0]))

    # The same file through diffusers' aMUSEd LoRA loader mixin (lora_state_dict + load_lora_into_transformer).
    from diffusers.loaders.lora_pipeline import AmusedLoraLoaderMixin

    other = load_components("tiny").transformer
    state, alphas = AmusedLoraLoaderMixin.lora_state_dict(str(export.parent), weight_name=export.name)
    AmusedLoraLoaderMixin.load_lora_into_transformer(state, network_alphas=alphas, transformer=other)
    pipe.transformer = other.eval()
    again = pipe(prompts, guidance_scale=1.0, num_inference_steps=config.steps, temperature=config.temperature,
                 generator=torch.Generator().manual_seed(4))
    assert np.array_equal(np.asarray(ours.images[0]), np.asarray(again.images[0]))
