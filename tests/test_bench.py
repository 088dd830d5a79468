"""The benchmark scripts still run (tiny preset, CPU, in-process): their numbers live in README.md."""

import json
import sys

import pytest

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


def test_sampling_matches_the_pipeline_and_writes_json(monkeypatch, capsys, tmp_path):
    out = _run(monkeypatch, capsys, sampling, "--preset", "tiny", "--steps", "2", "--batch", "2", "--repeats", "1",
               "--app-defaults", "--json", str(tmp_path / "s.json"))
    assert "identical to the pipeline's (base model, same seed): 2/2" in out
    rows = json.loads((tmp_path / "s.json").read_text())["results"]
    assert set(rows) == {"AmusedPipeline", "ours (base model)", "ours (adapter, λA=2)", "ours (fp32, CPU generator)"}


def test_train_run_summarises_a_run(monkeypatch, capsys, tmp_path):
    _run(monkeypatch, capsys, train_run, "--preset", "tiny", "--steps", "3", "--batch", "2",
         "--out", str(tmp_path / "style"), "--json", str(tmp_path / "r.json"))
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["steps"] == 3 and len(summary["losses"]) == 3
    assert 0 < summary["adapter_percent_of_transformer"] < 1
    assert (tmp_path / "style").is_dir()
