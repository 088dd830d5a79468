"""A newcomer's first ten minutes, as README.md writes them: its commands are read from the README and run as
typed, from the repository's root (the first one on its default data folder), so a README that drifts from
what works fails here."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from app.infra.embedded_redis import free_port

from .conftest import png_bytes, stub_client, wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIRST_SECTION = "## The two commands"


def _commands(block: str) -> list[str]:
    """The commands of a bash block as a shell runs them: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not
            line.lstrip().startswith("#")]


def readme_blocks() -> list[list[str]]:
    """The bash blocks of the README's first section, each as its list of commands."""
    text = README.read_text()
    start = text.index(FIRST_SECTION)
    end = text.find("\n## ", start + len(FIRST_SECTION))
    section = text[start:end if end != -1 else None]
    return [_commands(block) for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def _clean_env(**extra: str) -> dict[str, str]:
    """What a newcomer's shell has: none of this project's settings (the test run's own are dropped)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STYLEDROP_") and k not in ("REDIS_URL", "DATABASE_URL", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _family(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(processes: list[psutil.Process]) -> list[str]:
    return [" ".join(p.cmdline()[:3]) for p in processes
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _until_serving(process: subprocess.Popen, log: Path) -> str:
    """The pages' address serve printed, once it answers (waits while serve is alive and starting)."""
    while True:
        assert process.poll() is None, log.read_text()
        lines = [line for line in log.read_text().splitlines() if line.startswith("StyleDrop Studio: http")]
        if lines:
            address = lines[0].split()[2]
            try:
                if httpx.get(address, timeout=5, follow_redirects=True).status_code == 200:
                    return address
            except httpx.HTTPError:
                pass
        time.sleep(0.3)


def _stop(process: subprocess.Popen, how: int, log: Path) -> None:
    """As a terminal's Ctrl-C (SIGINT to the foreground process group) or a service manager's SIGTERM."""
    family = _family(process)
    assert any("celery" in " ".join(p.cmdline()) for p in family), [p.cmdline() for p in family]
    assert any("redis-server" in (p.name() or "") for p in family), [p.cmdline() for p in family]
    os.killpg(process.pid, how)
    assert process.wait(120) == 0, log.read_text()
    deadline = time.monotonic() + 30  # the worker and Redis were asked to stop before serve returned
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(family), (_alive(family), log.read_text())


def _port_env(port: int) -> dict[str, str]:
    """The README's port when it is free; another run of this suite on this machine may hold it."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return {}
        except OSError:
            return {"STYLEDROP_PORT": str(free_port())}


def test_the_readme_starts_with_the_two_commands_ci_runs():
    blocks = readme_blocks()
    assert blocks[0] == ["./scripts/run", "./scripts/test"], blocks[0]
    assert "exec ./scripts/test" in (ROOT / ".ci" / "run").read_text()  # what CI runs is the README's command
    assert len(blocks) >= 2, "the quick start (a style offline, from the examples folder) is missing"


def test_the_first_command_serves_the_pages_and_ctrl_c_stops_everything(tmp_path):
    """`./scripts/run`, typed in the repository's root: the pages on its address, data in ./data, and Ctrl-C
    leaves no worker or Redis behind."""
    first = readme_blocks()[0][0]
    data = ROOT / "data"
    made_data = not data.exists()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen(["bash", "-c", first], cwd=ROOT, env=_clean_env(**_port_env(8000)),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address = _until_serving(process, log)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", address), address
        page = httpx.get(address, follow_redirects=True)
        assert "StyleDrop" in page.text and "<html" in page.text.lower()
        # offline, the default model is not here: the new-style page says so before anything is uploaded
        new_style = httpx.get(f"{address}styles/new")
        assert "not available on this machine" in new_style.text, new_style.text
        assert (data / "styledrop.db").is_file() and (data / "redis").is_dir()
        _stop(process, signal.SIGINT, log)
        assert "StyleDrop Studio: stopped." in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        if made_data:
            shutil.rmtree(data, ignore_errors=True)


def _serves(command: str) -> bool:
    """A line that starts the service (`./scripts/run` with no command, settings before it), not one that ends."""
    argv = shlex.split(command)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    return argv == ["./scripts/run"]


def _dressed_world(cache: Path, micro_world) -> None:
    """The newcomer's world cache holding the `shapes` world, already built. The standard world takes about 30 CPU
    minutes to build (tests/test_world.py builds the micro world and checks a stopped build resumes); here the
    session's micro world stands in its folder, its manifest naming the standard spec, so `world build` finds it
    built (it measures the base model again, on the micro weights) and every other line runs on a real world."""
    from styledrop.world.spec import MANIFEST, WORLDS

    folder, _ = micro_world
    target = cache / "styledrop" / "worlds" / "shapes"
    shutil.copytree(folder, target)
    manifest = json.loads((target / MANIFEST).read_text())
    manifest.update(name="shapes", spec=json.loads(json.dumps(WORLDS["shapes"].fingerprint())))
    (target / MANIFEST).write_text(json.dumps(manifest))


def test_the_offline_quick_start_serves_the_world_and_offers_its_build(tmp_path):
    """The quick start's service line on a fresh machine: the new-style page says the world is not built, offers
    its build (a worker job) and the world's examples."""
    serving = [c for b in readme_blocks()[1:] for c in b if _serves(c)]
    assert serving == ["STYLEDROP_MODEL=shapes ./scripts/run"], serving
    data = ROOT / "data"
    made_data = not data.exists()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen(["bash", "-c", serving[0]], cwd=ROOT,
                                   env=_clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), **_port_env(8000)),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address = _until_serving(process, log)
        page = httpx.get(f"{address}styles/new").text
        assert "Build the shapes world" in page, page
        assert "candy checkered on navy: a house" in page  # the held-out examples to try
        _stop(process, signal.SIGINT, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        if made_data:
            shutil.rmtree(data, ignore_errors=True)


def test_the_quick_start_runs_as_written(tmp_path, micro_world):
    """The README's command-line quick start, typed in the repository's root (or, where a developer's own outputs
    already stand there, in a folder that looks like it), with the reference image they name, on a world cache
    where the world is built (`_dressed_world`)."""
    blocks = [[c for c in b if not _serves(c)] for b in readme_blocks()[1:]]
    commands = [c for b in blocks for c in b]
    assert any("world build" in c for c in commands) and any("--model shapes" in c for c in commands), commands
    names = {Path(p).parts[0] for c in commands for p in re.findall(r"--out (\S+)", c)}
    where = ROOT
    if any((ROOT / name).exists() for name in names):
        where = tmp_path / "clone"
        where.mkdir()
        for entry in ("scripts", "examples"):
            (where / entry).symlink_to(ROOT / entry)
    cache = tmp_path / "cache"
    _dressed_world(cache, micro_world)
    try:
        for command in commands:
            run = subprocess.run(["bash", "-c", command], cwd=where, env=_clean_env(XDG_CACHE_HOME=str(cache)),
                                 capture_output=True, text=True)
            assert run.returncode == 0, f"{command}\n{run.stdout}\n{run.stderr}"
            # not a terminal: progress comes as lines, each count once, no carriage-return redraws
            progress = [line for line in run.stderr.splitlines() if re.match(r"\w[\w ]*: \d+/\d+ ", line)]
            assert "\r" not in run.stderr and len(progress) == len(set(progress)), run.stderr
        drawn = sorted((where / "out" / "candy").glob("*.png"))
        assert len(drawn) == 8, drawn  # two prompts, four images each
    finally:
        if where == ROOT:
            for name in names:
                shutil.rmtree(ROOT / name, ignore_errors=True)


def test_paths_are_the_callers_and_a_relative_data_folder_works_from_anywhere(tmp_path):
    """scripts/run keeps the caller's folder: an image named relative to it is found, outputs land in it, and
    `serve --data rel` keeps everything (database, Redis) under the caller's rel/."""
    home = tmp_path / "mine"
    home.mkdir()
    (home / "ref.png").write_bytes(png_bytes())
    run = subprocess.run([str(ROOT / "scripts" / "run"), "train", "--image", "ref.png", "--content", "a house",
                          "--descriptor", "oil painting", "--out", "styles/oil", "--model", "tiny", "--steps", "2",
                          "--batch-size", "1"], cwd=home, env=_clean_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (home / "styles" / "oil" / "adapter.safetensors").is_file()

    log = tmp_path / "serve.log"
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen([str(ROOT / "scripts" / "run"), "serve", "--port", str(port), "--data",
                                    "rel/data"], cwd=home, env=_clean_env(STYLEDROP_MODEL="tiny"), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _until_serving(process, log) == f"http://127.0.0.1:{port}/"
        assert (home / "rel" / "data" / "styledrop.db").is_file()
        _stop(process, signal.SIGTERM, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert (home / "rel" / "data" / "redis" / "redis.db").is_file()  # Redis saved where it was told, on stop


def test_a_taken_port_is_said_in_one_line_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([str(ROOT / "scripts" / "run"), "serve", "--port", str(port), "--data", "d"],
                             cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert run.returncode == 1
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"port {port}" in lines[0] and "--port" in lines[0], lines[0]
    assert not (tmp_path / "d").exists()  # nothing started: no database, no Redis


def test_offline_the_cli_names_its_flag(tmp_path):
    (tmp_path / "ref.png").write_bytes(png_bytes())
    run = subprocess.run([str(ROOT / "scripts" / "run"), "train", "--image", "ref.png", "--content", "a house",
                          "--descriptor", "oil painting", "--out", "s", "--steps", "2"], cwd=tmp_path,
                         env=_clean_env(HF_HOME=str(tmp_path / "hf")), capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "--model tiny" in run.stderr and "amused/amused-256" in run.stderr, run.stderr
    assert "STYLEDROP_MODEL" not in run.stderr


def test_offline_a_round_on_the_default_model_names_the_setting(live):
    style = live.post("/api/v1/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                      data={"content": "a house", "descriptor": "oil painting",
                            "base_model": "amused/amused-256"}).json()
    rnd = live.post(f"/api/v1/styles/{style['id']}/rounds", json={}).json()
    body = wait_for(live, f"/api/v1/rounds/{rnd['id']}")
    assert body["status"] == "failed", body
    error = body["error"]
    assert "STYLEDROP_MODEL" in error and "tiny" in error and "amused/amused-256" in error, error
    assert "--model" not in error and "[server path]" not in error and "~" not in error, error


def test_the_new_style_page_says_when_the_default_model_is_not_here(tmp_path, db):
    for model, missing in (("amused/amused-256", True), ("tiny", False)):
        with stub_client(tmp_path / model.replace("/", "-"), db, model=model) as client:
            page = client.get("/styles/new").text
        assert ("not available on this machine" in page) is missing, page
        if missing:
            assert "STYLEDROP_MODEL" in page and "<code>tiny</code>" in page


def test_the_examples_hold_the_image_the_quick_start_names():
    named = {p for b in readme_blocks()[1:] for c in b for p in re.findall(r"--image (\S+)", c)}
    assert named and all((ROOT / p).is_file() for p in named), named
