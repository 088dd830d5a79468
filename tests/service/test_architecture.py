"""The three rooms: the web app never imports torch; the engine never imports web code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "STYLEDROP_DATA": "/nonexistent-not-used",
                               "HF_HUB_OFFLINE": "1"})


def test_app_never_imports_torch():
    result = _run(
        "import sys\n"
        "import app.main, app.api.routes, app.runner, app.domain.rounds, app.domain.clip_rules, app.infra.task_queue, app.admin\n"
        "import worker.celery_app, worker.scoring, worker.tasks, worker.jobs  # the engine only inside tasks\n"
        "from app.main import create_app\n"
        "from app.settings import Settings\n"
        "create_app(Settings(data_dir='/tmp/styledrop-arch-test'))\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_engine_cli_does_not_import_web_code():
    result = _run(
        "import sys\n"
        "import styledrop.cli\n"
        "styledrop.cli.build_parser()\n"
        "web = [m for m in ('app', 'fastapi', 'sqlalchemy', 'celery', 'uvicorn') if m in sys.modules]\n"
        "assert not web, web\n"
        "print('ok')\n")
    assert result.returncode == 0, result.stderr


def test_the_round_plan_is_torch_free():
    result = _run(
        "import sys\n"
        "from styledrop.plan import RoundPlan, plan_round\n"
        "plan = RoundPlan.from_stored(plan_round(2, model='tiny').stored())\n"
        "assert plan.sampling.adapter_guidance == 2.0 and plan.adapter.rank == 32\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n")
    assert result.returncode == 0, result.stderr


def test_the_app_never_imports_the_worker():
    """Imports run one way (engine <- app <- worker): the app sends tasks by name."""
    result = _run(
        "import sys\n"
        "import app.main, app.api.routes, app.runner, app.domain.rounds, app.infra.task_queue, app.pages.styles\n"
        "from app.main import create_app\n"
        "from app.settings import Settings\n"
        "create_app(Settings(data_dir='/tmp/styledrop-arch-test'))\n"
        "back = [m for m in sys.modules if m == 'worker' or m.startswith('worker.')]\n"
        "assert not back, back\n"
        "print('ok')\n")
    assert result.returncode == 0, result.stderr


def _imports(folder: str) -> set[str]:
    """Top-level packages each module of a folder imports (static: every import statement, lazy ones too)."""
    import ast

    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_import_directions_in_the_source():
    """Not even a lazy import runs back: the engine imports neither app nor worker, the app not the worker."""
    assert not _imports("styledrop") & {"app", "worker"}
    assert "worker" not in _imports("app")
