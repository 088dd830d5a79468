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
        "import app.main, app.api.routes, app.runner, app.services, app.selection, app.jobs, app.admin\n"
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
