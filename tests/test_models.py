import time

import open_clip
import pytest
import torch
from diffusers import AmusedScheduler

from styledrop.errors import StyleDropError
from styledrop.models import load_components
from styledrop.tokenizer import clip_tokenizer


def test_tiny_preset_builds_quickly_and_deterministically():
    load_components("tiny")  # imports and caches paid once
    start = time.perf_counter()
    a = load_components("tiny")
    elapsed = time.perf_counter() - start
    b = load_components("tiny")
    assert elapsed < 5.0
    assert a.resolution == 64 and a.token_grid == 8
    for (name, pa), pb in zip(a.transformer.named_parameters(), b.transformer.parameters()):
        assert torch.equal(pa, pb), name
    assert not any(p.requires_grad for p in a.transformer.parameters())


def test_preset_tokenizer_is_the_real_clip_vocabulary():
    ours = clip_tokenizer()
    reference = open_clip.get_tokenizer("ViT-B-32")
    text = "A melting golden 3d rendering of a chihuahua, in watercolor painting style!"
    ids = ours(text).input_ids
    assert len(ours) == 49408
    assert ids == [int(i) for i in reference([text])[0][: len(ids)]]


def test_unreachable_hub_id_fails_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(StyleDropError) as info:
        load_components("amused/amused-256")
    message = str(info.value)
    assert "download" in message and "amused/amused-256" in message and "\n" not in message


def test_unknown_model_name_is_explained():
    with pytest.raises(StyleDropError, match="Unknown model 'nonsense'"):
        load_components("nonsense")


def test_local_diffusers_folder_loads_the_same_weights(tmp_path, tiny):
    folder = tmp_path / "model"
    tiny.transformer.save_pretrained(folder / "transformer")
    tiny.vqvae.save_pretrained(folder / "vqvae")
    tiny.text_encoder.save_pretrained(folder / "text_encoder")
    tiny.tokenizer.save_pretrained(folder / "tokenizer")
    AmusedScheduler(mask_token_id=tiny.mask_token_id).save_pretrained(folder / "scheduler")
    loaded = load_components(str(folder))
    assert loaded.fingerprint() == tiny.fingerprint()
    assert loaded.mask_token_id == tiny.mask_token_id
    for pa, pb in zip(loaded.transformer.parameters(), tiny.transformer.parameters()):
        assert torch.equal(pa, pb)


def test_folder_that_is_not_a_model_is_explained(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(StyleDropError, match="not an aMUSEd model folder"):
        load_components(str(tmp_path / "junk"))
