import json
import subprocess
import sys

import pytest
from diffusers import AmusedScheduler
from PIL import Image

from styledrop.cli import main
from styledrop.models import build_preset
from styledrop.presets import PRESETS, Preset

TRAIN = ["train", "--content", "a house", "--descriptor", "watercolor painting", "--model", "tiny",
         "--steps", "20", "--batch-size", "2", "--checkpoint-every", "10"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("adapter", ["styledrop", "lora"])
def test_train_then_generate_writes_a_style_and_pngs(tmp_path, reference_file, capsys, adapter):
    style = tmp_path / "styles" / "watercolor"
    assert main(TRAIN + ["--image", reference_file, "--out", str(style), "--adapter", adapter]) == 0
    assert "parameters" in capsys.readouterr().out
    manifest = json.loads((style / "style.json").read_text())
    assert manifest["descriptor"] == "watercolor painting" and manifest["steps"] == 20
    assert manifest["prompts"] == ["A house in watercolor painting style"]
    assert not (style / "checkpoints").exists()  # finished runs leave no resume state behind

    out = tmp_path / "out"
    assert main(["generate", str(style), "a cat", "a bridge", "--num", "2", "--out", str(out), "--seed", "3",
                 "--steps", "4"]) == 0
    pngs = sorted(out.glob("*.png"))  # named as the app's zip names them: index, prompt, the image's own seed
    assert [p.name for p in pngs] == ["000-a-cat-seed3.png", "001-a-bridge-seed4.png", "002-a-cat-seed5.png",
                                      "003-a-bridge-seed6.png"]
    assert all(Image.open(p).size == (64, 64) for p in pngs)
    record = json.loads((out / "generations.json").read_text())
    assert record["images"][0]["prompt"] == "A cat in watercolor painting style"
    assert record["config"]["precision"] == "auto" and record["precision"] in ("bf16", "fp32")  # what auto meant
    assert "wrote 4 images" in capsys.readouterr().out
    fp32 = tmp_path / "fp32"  # the precision is a sampling setting like the others
    assert main(["generate", str(style), "a cat", "--out", str(fp32), "--steps", "2", "--precision", "fp32"]) == 0
    assert json.loads((fp32 / "generations.json").read_text())["precision"] == "fp32"
    capsys.readouterr()

    assert main(["info", str(style)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == adapter

    # the descriptor can be edited or left out when sampling (paper §4.4.2)
    for flags, prompt in ((["--descriptor", "ink wash painting"], "A cat in ink wash painting style"),
                          (["--no-descriptor"], "A cat")):
        edited = tmp_path / f"edited-{len(flags)}"
        assert main(["generate", str(style), "a cat", "--out", str(edited), "--steps", "2"] + flags) == 0
        assert json.loads((edited / "generations.json").read_text())["images"][0]["prompt"] == prompt


def test_missing_image_is_one_clear_line(tmp_path, capsys):
    code = main(TRAIN + ["--image", str(tmp_path / "nope.png"), "--out", str(tmp_path / "s")])
    assert code == 1
    assert "Image file not found" in _error_line(capsys)


def test_file_that_is_not_an_image_is_refused(tmp_path, capsys):
    fake = tmp_path / "fake.png"
    fake.write_text("definitely not a picture")
    assert main(TRAIN + ["--image", str(fake), "--out", str(tmp_path / "s")]) == 1
    assert "not an image" in _error_line(capsys)


def test_truncated_image_is_refused(tmp_path, reference_file, capsys):
    data = open(reference_file, "rb").read()
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 2])
    assert main(TRAIN + ["--image", str(broken), "--out", str(tmp_path / "s")]) == 1
    assert "damaged or truncated" in _error_line(capsys)


def test_empty_descriptor_is_refused(tmp_path, reference_file, capsys):
    args = TRAIN + ["--image", reference_file, "--out", str(tmp_path / "s")]
    args[args.index("watercolor painting")] = "   "
    assert main(args) == 1
    assert "style descriptor is empty" in _error_line(capsys)


def test_adapter_for_another_base_model_is_refused(tmp_path, reference_file, capsys):
    style = tmp_path / "style"
    assert main(TRAIN + ["--image", reference_file, "--out", str(style), "--steps", "2"]) == 0
    capsys.readouterr()
    other = build_preset(Preset(name="wide", transformer=dict(PRESETS["tiny"].transformer, hidden_size=96),
                                vqvae=PRESETS["tiny"].vqvae, text_encoder=PRESETS["tiny"].text_encoder))
    folder = tmp_path / "other-model"
    for name in ("transformer", "vqvae", "text_encoder", "tokenizer"):
        getattr(other, name).save_pretrained(folder / name)
    AmusedScheduler(mask_token_id=other.mask_token_id).save_pretrained(folder / "scheduler")
    capsys.readouterr()
    code = main(["generate", str(style), "a cat", "--model", str(folder), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "trained for base model 'tiny'" in _error_line(capsys)


def test_console_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "styledrop", "generate", str(tmp_path / "none"), "a cat"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("styledrop: error: No adapter found")


def test_train_with_sample_every_writes_samples_into_the_style_folder(tmp_path, reference_file):
    style = tmp_path / "style"
    assert main(["train", "--content", "a house", "--descriptor", "watercolor painting", "--model", "tiny",
                 "--steps", "5", "--batch-size", "1", "--checkpoint-every", "0", "--sample-every", "2",
                 "--image", reference_file, "--out", str(style)]) == 0
    names = sorted(p.name for p in (style / "samples").iterdir())
    assert names == [f"step-{s:06d}-{x}.png" for s in (0, 2, 4, 5) for x in "ab"]
    assert Image.open(style / "samples" / "step-000002-a.png").size == (64, 64)
    assert (style / "style.json").is_file()


def test_the_parser_is_built_from_the_command_group_modules(tmp_path, monkeypatch, capsys):
    """`styledrop.cli.build_parser` registers every module of the package that has `register` and `ORDER`, in
    ORDER: a new command group is one new module (here one placed on the package's path for the test)."""
    import styledrop.cli as cli

    def commands() -> list[str]:
        parser = cli.build_parser()
        return [a for a in parser._subparsers._group_actions[0].choices]

    assert commands() == ["train", "generate", "info", "candidates", "select", "train-round", "eval",
                          "train-content", "serve", "world"]
    (tmp_path / "hello.py").write_text(
        "ORDER = 35\n"
        "def register(sub):\n"
        "    p = sub.add_parser('hello', help='say hello')\n"
        "    p.add_argument('--name', default='world')\n"
        "    p.set_defaults(func=lambda args: print(f'hello {args.name}') or 0)\n")
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "styledrop.cli.hello", raising=False)
    try:
        assert commands()[2:5] == ["info", "hello", "candidates"]
        assert main(["hello", "--name", "StyleDrop"]) == 0
        assert capsys.readouterr().out == "hello StyleDrop\n"
    finally:
        sys.modules.pop("styledrop.cli.hello", None)
