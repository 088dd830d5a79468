"""The three rooms: the web app never imports torch; the engine never imports web code; imports run one way
(engine <- app <- worker), and inside the app too (no cycle; infra <- domain <- security <- api <- pages)."""

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
        "import app.main, app.api.routes, app.runner, app.domain.rounds, app.domain.clip_rules, app.admin\n"
        "import app.infra.task_queue\n"
        "import worker.celery_app, worker.scoring, worker.tasks, worker.rounds  # the engine only inside tasks\n"
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


# ---- inside app/: no import cycle, and the rooms import one way ----------------------------------------------

# A room imports only rooms below it: infrastructure knows nothing of the domain, the domain nothing of HTTP,
# and only the entry points (main, admin, runner) see everything. settings and errors serve every room.
ROOMS = {"settings": 0, "errors": 0, "infra": 1, "domain": 2, "security": 3, "api": 4, "pages": 5, "main": 6,
         "admin": 6, "runner": 7}


def _app_modules() -> dict[str, Path]:
    modules = {}
    for path in (ROOT / "app").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _app_import_graph() -> dict[str, set[str]]:
    """Which modules of app/ each module of app/ imports: every import statement, lazy ones inside functions
    too, relative ones resolved (`from . import x` counts as importing the module x)."""
    import ast

    modules = _app_modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def _room(module: str) -> str:
    return module.split(".")[1]


def test_no_import_cycle_inside_the_app():
    graph = _app_import_graph()
    assert len(graph) > 40 and "app.domain.lifecycle" in graph["app.domain.rounds"]  # the graph is read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    graph = _app_import_graph()
    graph["app.domain.models"] = graph["app.domain.models"] | {"app.domain.rounds"}
    assert ["app.domain.models", "app.domain.rounds"] == [m for m in sum(_cycles(graph), []) if m in (
        "app.domain.models", "app.domain.rounds")]


def test_the_rooms_of_the_app_import_one_way():
    """infra <- domain <- security <- api <- pages <- main, admin <- runner: no import runs back up."""
    graph = _app_import_graph()
    assert {_room(m) for m in graph if m != "app"} == set(ROOMS)  # every module is in a room
    back = sorted(f"{m} -> {other}" for m, imported in graph.items() if m != "app" for other in imported
                  if other != "app" and ROOMS[_room(other)] > ROOMS[_room(m)])
    assert back == []


def test_task_names_are_written_once():
    """The app sends tasks by the names in app/infra/task_queue.py; the workers register their tasks under those
    very constants (no name written again as a literal), and every routed name is a registered task: the job
    worker's (worker.tasks) or the webhook worker's (worker.webhooks, its own Celery app and queue)."""
    import ast

    for path in (ROOT / "worker").rglob("*.py"):
        literals = [node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.startswith(("worker.tasks.", "worker.webhooks."))]
        assert literals == [], f"{path.name} writes task names again: {literals}"
    result = _run(
        "from app.infra import task_queue\n"
        "from worker.celery_app import celery_app\n"
        "import worker.tasks, worker.webhooks\n"
        "jobs = {task_queue.TRAIN_ROUND, task_queue.GENERATE_IMAGES, task_queue.EVALUATE, task_queue.REAP,\n"
        "        task_queue.BUILD_WORLD}\n"
        "assert jobs <= set(celery_app.tasks), jobs - set(celery_app.tasks)\n"
        "assert task_queue.DELIVER_WEBHOOK in worker.webhooks.celery_app.tasks\n"
        "assert celery_app.conf.task_routes[task_queue.DELIVER_WEBHOOK] == {'queue': task_queue.WEBHOOK_QUEUE}\n"
        "names = jobs | {task_queue.DELIVER_WEBHOOK}\n"
        "assert set(celery_app.conf.task_routes) == names, celery_app.conf.task_routes\n"
        "print('ok')\n")
    assert result.returncode == 0, result.stderr
