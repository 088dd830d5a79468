"""The benchmark scripts still run (tiny preset, CPU, in-process): their numbers live in docs/benchmarks.md."""

import json
import sys

import numpy as np
import pytest

from bench import round as round_bench
from bench import sampling, train_run, train_step


def _run(monkeypatch, capsys, module, *argv):
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    module.main()
    return capsys.readouterr().out


@pytest.mark.parametrize("variant", train_step.VARIANTS)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_variants(monkeypatch, capsys, variant, precision):
    out = _run(monkeypatch, capsys, train_step, "--preset", "tiny", "--steps", "1", "--batch", "2",
               "--precision", precision, "--variant", variant)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["variant"] == variant and result["median_s_per_step"] > 0
    assert result["flops_per_step"] > 0  # counted by torch.utils.flop_counter, for the MFU column


def test_peak_flops_table_names_the_card():
    assert train_step.peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert train_step.peak_flops("x86_64", "fp32") is None  # a CPU: FLOP/s achieved only


def test_sampling_matches_the_pipeline_and_writes_json(monkeypatch, capsys, tmp_path):
    out = _run(monkeypatch, capsys, sampling, "--preset", "tiny", "--steps", "2", "--batch", "2", "--repeats", "1",
               "--app-defaults", "--candidate-path", "--json", str(tmp_path / "s.json"))
    assert "identical to the pipeline's (base model, same seed): 2/2" in out
    rows = json.loads((tmp_path / "s.json").read_text())["results"]
    assert set(rows) == {"AmusedPipeline", "ours (base model)", "ours (adapter, λA=2)", "ours (fp32, CPU generator)",
                         "candidates, 1 per call", "candidates, worker path"}
    assert all(len(row["all_s"]) == 1 and row["images_per_s"] > 0 for row in rows.values())


def test_train_run_summarises_a_run(monkeypatch, capsys, tmp_path):
    _run(monkeypatch, capsys, train_run, "--preset", "tiny", "--steps", "3", "--batch", "2",
         "--out", str(tmp_path / "style"), "--json", str(tmp_path / "r.json"))
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["steps"] == 3 and len(summary["losses"]) == 3
    assert 0 < summary["adapter_percent_of_transformer"] < 1
    assert (tmp_path / "style").is_dir()


def test_round_times_each_phase_and_both_candidate_paths(monkeypatch, capsys, tmp_path):
    out = _run(monkeypatch, capsys, round_bench, "--preset", "tiny", "--steps", "2", "--batch", "2",
               "--candidates", "3", "--candidate-batch", "2", "--sample-steps", "2", "--repeats", "2",
               "--json", str(tmp_path / "round.json"))
    assert "candidate phase, batched vs one image per call" in out
    assert "candidate phase, batched fp32 vs one image per call" in out
    result = json.loads((tmp_path / "round.json").read_text())
    phases = result["phases"]
    assert set(phases) == {"train", "one image per call", "batched, fp32", "batched", "score"}
    assert all(len(p["all"]) == 2 and p["min"] <= p["median"] <= p["max"] for p in phases.values())
    assert len(result["candidate_speedup"]["all"]) == len(result["candidate_speedup_fp32"]["all"]) == 2


def test_round_paths_draw_one_image_per_content(tmp_path, reference):
    """Every candidate path of the round bench makes one image for each content prompt, in order; the batched
    path in fp32 draws what draw_candidates draws in fp32 (the one-per-call path is parity mode: other images)."""
    from styledrop.candidates import draw_candidates
    from styledrop.models import load_components
    from styledrop.sampling import SampleConfig
    from styledrop.styles import load_style, train_style
    from styledrop.training import TrainConfig

    components = load_components("tiny")
    trained = train_style([reference], "a house", "watercolor painting", tmp_path / "style", components=components,
                          train_config=TrainConfig(steps=1, batch_size=1, checkpoint_every=0), resume=False)
    trained.adapter.detach()
    style = load_style(tmp_path / "style", components)
    contents = ["a cat", "a dog", "a fox"]
    paths, _ = round_bench.candidate_paths(style, contents, SampleConfig(steps=2), batch=2)
    assert list(paths) == ["one image per call", "batched, fp32", "batched"]
    for made in (path() for path in paths.values()):
        assert [c for c, _ in made] == contents
        assert all(image.size == (64, 64) for _, image in made)
    fp32 = draw_candidates(style, contents, 1, config=SampleConfig(steps=2, precision="fp32"), batch_size=3)
    bench_fp32 = paths["batched, fp32"]()  # batches of 2: the seed contract makes them the same images
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b)) for a, (_, b) in zip(fp32, bench_fp32))
