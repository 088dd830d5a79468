import pytest
import torch

from styledrop.adapters import AdapterConfig, create_adapter
from styledrop.errors import StyleDropError
from styledrop.sampling import SampleConfig, generate
from styledrop.training import Example, TrainConfig, encode_examples, mask_tokens, train

PROMPT = "A house in watercolor painting style"


def _quick(**overrides) -> TrainConfig:
    values = dict(steps=12, batch_size=2, learning_rate=1e-2, checkpoint_every=0)
    values.update(overrides)
    return TrainConfig(**values)


def _state(adapter):
    return {k: v.clone() for k, v in adapter.adapter_state_dict().items()}


def test_cosine_masking_masks_at_least_one_and_labels_only_masked():
    tokens = torch.randint(0, 256, (64, 64), generator=torch.Generator().manual_seed(0))
    inputs, labels = mask_tokens(tokens, 256, torch.Generator().manual_seed(1))
    masked = inputs == 256
    assert masked.sum(dim=1).min() >= 1
    assert torch.equal(labels[masked], tokens[masked])
    assert (labels[~masked] == -100).all()
    assert 0.4 < masked.float().mean() < 0.9  # E[cos(tπ/2)] = 2/π ≈ 0.64


def test_training_set_is_encoded_once_not_every_step(tiny, reference):
    calls = {"vq": 0, "text": 0}
    tiny.vqvae.encoder.register_forward_hook(lambda *a: calls.__setitem__("vq", calls["vq"] + 1))
    tiny.text_encoder.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1))
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    train(tiny, adapter, [Example(reference, PROMPT)], _quick(steps=15))
    assert calls == {"vq": 1, "text": 2}  # one batch of (image, flipped image); prompts + the empty prompt


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_same_seed_same_adapter(reference, kind):
    from styledrop.models import load_components

    states = []
    for _ in range(2):
        components = load_components("tiny")
        adapter = create_adapter(AdapterConfig(kind=kind, rank=4), components.transformer)
        train(components, adapter, [Example(reference, PROMPT)], _quick())
        states.append(_state(adapter))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, reference, kind):
    from styledrop.models import load_components

    config = _quick(steps=10, checkpoint_every=3, grad_accumulation=2)
    examples = [Example(reference, PROMPT)]

    whole = load_components("tiny")
    adapter = create_adapter(AdapterConfig(kind=kind, rank=4), whole.transformer)
    uninterrupted = train(whole, adapter, examples, config)
    expected = _state(adapter)

    first = load_components("tiny")
    adapter1 = create_adapter(AdapterConfig(kind=kind, rank=4), first.transformer)
    calls = iter(range(100))
    stopped = train(first, adapter1, examples, config, tmp_path / "ckpt", should_stop=lambda: next(calls) >= 7)
    assert stopped.stopped and stopped.steps_done == 7

    second = load_components("tiny")  # a fresh process would start like this
    adapter2 = create_adapter(AdapterConfig(kind=kind, rank=4), second.transformer)
    resumed = train(second, adapter2, examples, config, tmp_path / "ckpt")
    assert resumed.resumed_from == 7 and resumed.steps_done == 10
    assert resumed.losses == uninterrupted.losses
    state = _state(adapter2)
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_progress_reports_step_loss_and_eta(tiny, reference):
    seen = []
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    train(tiny, adapter, [Example(reference, PROMPT)], _quick(steps=5), on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5]
    assert all(p.total == 5 and p.loss > 0 and p.seconds_per_step > 0 for p in seen)
    # no ETA from the first step alone (it compiles, it follows the step-0 samples: styledrop/pace.py)
    assert seen[0].eta_seconds is None and seen[1].eta_seconds > 0 and seen[-1].eta_seconds == 0


def test_gradient_checkpointing_gives_the_same_gradients(reference):
    from styledrop.models import load_components

    states = []
    for flag in (False, True):
        components = load_components("tiny")
        adapter = create_adapter(AdapterConfig(rank=4, shared=False), components.transformer)
        train(components, adapter, [Example(reference, PROMPT)], _quick(steps=3, gradient_checkpointing=flag))
        states.append(_state(adapter))
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-5, atol=1e-6)


def test_bad_training_settings_are_explained(tiny, reference):
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    with pytest.raises(StyleDropError, match="at least 1"):
        train(tiny, adapter, [Example(reference, PROMPT)], TrainConfig(steps=0))
    with pytest.raises(StyleDropError, match="empty"):
        encode_examples(tiny, [], augment=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind, lr", [("styledrop", 1e-2), ("lora", 3e-3)])
def test_adapter_learns_the_reference(tiny, reference, kind, lr):
    """A few hundred steps on one image: the masked-token loss falls well below its start, and sampling
    with the adapter reproduces the reference's tokens far more often than the base model does.

    Margins measured on the tiny preset (600 steps, batch 4; the reference encodes to 5 distinct codes):
    loss 4.76 -> 3.79 (StyleDrop H=16) and 4.79 -> 3.48 (LoRA r=16); position-wise token matches 0.000
    (base) vs 0.57 / 0.63 (adapted); share of generated tokens drawn from the reference's codes 0.002 vs
    0.87 / 0.99. The assertions keep about half of each margin.
    """
    examples = [Example(reference, PROMPT)]
    adapter = create_adapter(AdapterConfig(kind=kind, rank=16, shared=False, alpha=16.0), tiny.transformer)
    result = train(tiny, adapter, examples, TrainConfig(steps=600, batch_size=4, learning_rate=lr,
                                                        checkpoint_every=0, augment=False, max_grad_norm=None))
    start, end = sum(result.losses[:20]) / 20, sum(result.losses[-20:]) / 20
    assert end < start - 0.5

    target = encode_examples(tiny, examples, augment=False).tokens[0, 0]
    in_reference = torch.isin(torch.arange(tiny.codebook_size + 1), target.unique())
    config = SampleConfig(num_images=8, seed=0, guidance=3.0, adapter_guidance=2.0)
    adapted = generate(tiny, [PROMPT], config, adapter=adapter).tokens
    with adapter.disabled():
        base = generate(tiny, [PROMPT], config).tokens
    match_base, match_adapted = (base == target).float().mean(), (adapted == target).float().mean()
    share_base, share_adapted = in_reference[base].float().mean(), in_reference[adapted].float().mean()
    assert match_base < 0.05 and match_adapted > 0.3
    assert share_base < 0.1 and share_adapted > 0.5


def _has_compiler() -> bool:
    import os
    import shutil

    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


@pytest.mark.skipif(not _has_compiler(), reason="torch.compile on a CPU needs a C++ compiler (the eager "
                    "fallback is tested below)")
@pytest.mark.parametrize("kind", ["styledrop", pytest.param("lora", marks=pytest.mark.slow)])
def test_compiled_fast_step_agrees_with_the_eager_step(reference, kind):
    """fast="on" on a CPU: the step compiled by inductor, fused AdamW. Same draws, so the same masks and
    batches; only float rounding may differ (kernel fusion, fused optimizer): losses and weights agree to
    1e-4 relative / 1e-5 absolute after 4 steps at lr 1e-2 (measured: 3e-7 at most on the weights).
    Inductor compiles C++ kernels here: about two CPU-minutes per run (the LoRA case is marked slow)."""
    from styledrop.models import load_components

    runs = {}
    for fast in ("off", "on"):
        components = load_components("tiny")
        adapter = create_adapter(AdapterConfig(kind=kind, rank=4), components.transformer)
        result = train(components, adapter, [Example(reference, PROMPT)], _quick(steps=4, fast=fast))
        runs[fast] = (result, _state(adapter))
    (eager, eager_state), (fast, fast_state) = runs["off"], runs["on"]
    assert not eager.compiled and fast.compiled
    torch.testing.assert_close(torch.tensor(fast.losses), torch.tensor(eager.losses), rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(v, 0 * v) for v in fast_state.values())  # it trained
    for key in eager_state:
        torch.testing.assert_close(fast_state[key], eager_state[key], rtol=1e-4, atol=1e-5)


def test_fast_step_falls_back_to_eager_when_compiling_fails(reference, monkeypatch, tmp_path):
    """No C++ compiler (a real failure of inductor, not a stand-in): a warning, and the run trains eagerly."""
    import torch._inductor.config as inductor_config

    from styledrop.models import load_components

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no kernel built earlier
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, str(tmp_path / "no-such-g++")))
    runs = {}
    for fast in ("off", "on"):
        components = load_components("tiny")
        adapter = create_adapter(AdapterConfig(rank=4), components.transformer)
        if fast == "on":
            with pytest.warns(RuntimeWarning, match="continuing eagerly"):
                result = train(components, adapter, [Example(reference, PROMPT)], _quick(steps=3, fast=fast))
        else:
            result = train(components, adapter, [Example(reference, PROMPT)], _quick(steps=3, fast=fast))
        runs[fast] = (result, _state(adapter))
    assert not runs["on"][0].compiled and runs["on"][0].steps_done == 3
    # The same draws; the fast path's fused AdamW may round differently from the default one.
    torch.testing.assert_close(torch.tensor(runs["on"][0].losses), torch.tensor(runs["off"][0].losses),
                               rtol=1e-4, atol=1e-5)
    for key, value in runs["off"][1].items():
        torch.testing.assert_close(runs["on"][1][key], value, rtol=1e-4, atol=1e-5)


def test_bf16_hold_keeps_the_adapter_fp32_and_restores_the_weights_exactly(tiny):
    from diffusers.models.normalization import RMSNorm

    from styledrop.fast_training import fused_rms_norms, held_in_bf16

    adapter = create_adapter(AdapterConfig(kind="lora", rank=4), tiny.transformer)
    params = adapter.trainable_parameters()
    before = {k: v.clone() for k, v in tiny.transformer.state_dict().items()}
    with held_in_bf16(tiny.transformer, params):
        trainable = {id(p) for p in params}
        frozen = [p for p in tiny.transformer.parameters() if id(p) not in trainable]
        assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
        assert all(p.dtype == torch.float32 for p in params)
        norm = next(m for m in tiny.transformer.modules() if isinstance(m, RMSNorm) and m.weight is not None)
        x = torch.randn(2, 5, norm.weight.shape[0], generator=torch.Generator().manual_seed(0)).bfloat16()
        expected = norm(x)  # diffusers: fp32 statistics, then back to bf16
        with fused_rms_norms(tiny.transformer):
            fused = norm(x)
        assert fused.dtype == torch.bfloat16 == expected.dtype
        torch.testing.assert_close(fused, expected, rtol=1.6e-2, atol=1e-2)  # bf16 rounding
    after = tiny.transformer.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_unknown_fast_setting_is_explained(tiny, reference):
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    with pytest.raises(StyleDropError, match="fast-step"):
        train(tiny, adapter, [Example(reference, PROMPT)], TrainConfig(fast="turbo"))


# ---- sample images while training (styledrop.training_samples) ------------------------------------------------

def test_samples_come_at_n_2n_and_the_last_step_between_steps_without_touching_training(reference):
    """on_sample fires at 0 (before training), N, 2N, ... and at the last step, in eval mode without gradients; train mode comes back
    and the run trains exactly as one without samples (sampling has its own generators)."""
    from styledrop.models import load_components
    from styledrop.training_samples import TrainingSampler

    runs = {}
    for sampling in (False, True):
        components = load_components("tiny")
        adapter = create_adapter(AdapterConfig(rank=4), components.transformer)
        seen, images = [], []
        sampler = TrainingSampler(components, adapter, "watercolor painting", SampleConfig(steps=2))

        def on_sample(step, transformer=components.transformer, sampler=sampler, seen=seen, images=images):
            seen.append((step, transformer.training, torch.is_grad_enabled()))
            images.append(sampler(step))

        result = train(components, adapter, [Example(reference, PROMPT)], _quick(steps=7, sample_every=3),
                       on_sample=on_sample if sampling else None)
        assert components.transformer.training is False  # as it was before training (load_components: eval)
        runs[sampling] = (result, _state(adapter), seen, images)
    (plain, plain_state, _, _), (sampled, sampled_state, seen, images) = runs[False], runs[True]
    assert seen == [(0, False, False), (3, False, False), (6, False, False), (7, False, False)]
    assert sampled.losses == plain.losses
    assert all(torch.equal(sampled_state[k], plain_state[k]) for k in plain_state)
    first = images[1]
    assert [s.name for s in first] == ["step-000003-a.png", "step-000003-b.png"]
    assert [s.prompt for s in first] == ["A cat sleeping on a sofa in watercolor painting style",
                                         "A lighthouse on a cliff in watercolor painting style"]
    assert [s.seed for s in images[0]] == [s.seed for s in images[-1]]  # fixed seeds: steps are comparable
    assert all(s.image.size == (64, 64) for step in images for s in step)


def test_sampling_is_deterministic_and_needs_no_training_generator(tiny):
    from styledrop.training_samples import TrainingSampler

    adapter = create_adapter(AdapterConfig(rank=4), tiny.transformer)
    sampler = TrainingSampler(tiny, adapter, "oil painting", SampleConfig(steps=2, guidance=4.0))
    assert (sampler.config.steps, sampler.config.guidance, sampler.config.num_images) == (2, 4.0, 1)
    assert sampler.config.graphs == "off"  # never a CUDA graph beside the compiled training step's
    with torch.no_grad():
        a, b = sampler(1), sampler(1)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]


@pytest.mark.parametrize("kind", ["styledrop", "lora"])
def test_resume_with_samples_equals_an_uninterrupted_run_without_them(tmp_path, reference, kind):
    """Real samples drawn at 0, 2, 4, 6 before the stop and 8, 10 after it (no second step 0): the resumed run still ends on the
    uninterrupted run's losses and weights, bit for bit."""
    from styledrop.models import load_components
    from styledrop.training_samples import TrainingSampler, sample_callback

    config = _quick(steps=10, checkpoint_every=3, sample_every=2)
    examples = [Example(reference, PROMPT)]
    whole = load_components("tiny")
    adapter = create_adapter(AdapterConfig(kind=kind, rank=4), whole.transformer)
    uninterrupted = train(whole, adapter, examples, config)
    expected = _state(adapter)

    steps: list[int] = []

    def sampling(components, adapter):
        return sample_callback(TrainingSampler(components, adapter, "watercolor painting", SampleConfig(steps=2)),
                               lambda step, samples: steps.append(step))

    first = load_components("tiny")
    adapter1 = create_adapter(AdapterConfig(kind=kind, rank=4), first.transformer)
    calls = iter(range(100))
    stopped = train(first, adapter1, examples, config, tmp_path / "ckpt", should_stop=lambda: next(calls) >= 7,
                    on_sample=sampling(first, adapter1))
    assert stopped.steps_done == 7 and steps == [0, 2, 4, 6]
    second = load_components("tiny")
    adapter2 = create_adapter(AdapterConfig(kind=kind, rank=4), second.transformer)
    resumed = train(second, adapter2, examples, config, tmp_path / "ckpt", on_sample=sampling(second, adapter2))
    assert resumed.resumed_from == 7 and steps == [0, 2, 4, 6, 8, 10]
    assert resumed.losses == uninterrupted.losses
    state = _state(adapter2)
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_samples_between_fast_steps_run_with_the_frozen_weights_held_in_bf16(tiny):
    """The fast step holds the frozen weights in bf16 (adapter fp32): sampling between steps runs under the
    step's autocast, so it draws there as it does in fp32, and the model comes back in train mode."""
    from styledrop.fast_training import fused_rms_norms, held_in_bf16
    from styledrop.training import _between_steps
    from styledrop.training_samples import TrainingSampler

    adapter = create_adapter(AdapterConfig(kind="lora", rank=4), tiny.transformer)
    sampler = TrainingSampler(tiny, adapter, "watercolor painting", SampleConfig(steps=2))
    drawn = {}
    tiny.transformer.train()
    with held_in_bf16(tiny.transformer, adapter.trainable_parameters()), fused_rms_norms(tiny.transformer):
        _between_steps(tiny.transformer, tiny.device, "bf16", lambda: drawn.setdefault("bf16", sampler(5)))
        assert tiny.transformer.training
    _between_steps(tiny.transformer, tiny.device, "no", lambda: drawn.setdefault("fp32", sampler(5)))
    assert [s.image.size for s in drawn["bf16"]] == [s.image.size for s in drawn["fp32"]] == [(64, 64)] * 2


def test_negative_sample_every_is_explained(tiny, reference):
    adapter = create_adapter(AdapterConfig(), tiny.transformer)
    with pytest.raises(StyleDropError, match="Sample every"):
        train(tiny, adapter, [Example(reference, PROMPT)], TrainConfig(sample_every=-1))


def test_live_samples_draw_the_contents_a_round_asks_for(tiny, reference, tmp_path):
    """A round's own live sample prompts (RoundCreate.sample_prompts, through the worker) replace the two
    defaults, in the style's prompt form."""
    from styledrop.styles import train_style

    seen: list[tuple[int, list[str], list[str]]] = []
    train_style([reference], "a house", "watercolor painting", tmp_path / "style", components=tiny,
                train_config=_quick(steps=2, batch_size=1, sample_every=2),
                on_samples=lambda step, samples: seen.append((step, [s.content for s in samples],
                                                              [s.prompt for s in samples])),
                sample_contents=["a red fox"], sample_defaults={"steps": 2})
    assert seen == [(0, ["a red fox"], ["A red fox in watercolor painting style"]),
                    (2, ["a red fox"], ["A red fox in watercolor painting style"])]
