"""docker-compose.yml for teams: the structure is checked here (no Docker in CI); see README for the run."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_structure():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"web", "worker", "webhooks", "redis", "postgres", "migrate", "beat"} <= set(services)
    assert {"pgdata", "files"} <= set(spec["volumes"])
    for name in ("web", "worker"):  # a shared volume for the files
        assert "files:/data" in services[name]["volumes"]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql")
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis")
    assert services["migrate"]["command"][-2:] == ["app.admin", "migrate"]
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    device = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]  # scalable
    assert services["worker"]["build"]["target"] == "worker" and services["web"]["build"]["target"] == "web"


def test_dockerfile_targets():
    text = (ROOT / "Dockerfile").read_text()
    assert "AS web" in text and "AS worker" in text
    assert 'pip install -e ".[engine]"' in text  # only the worker image carries torch
    assert "worker.celery_app" in text and "app.main:app" in text


def test_compose_config_validates_when_compose_is_installed():
    import shutil
    import subprocess

    import pytest

    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", "docker-compose.yml", "config", "-q"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose", "-f", "docker-compose.yml", "config", "-q"]
    elif os.environ.get("CI"):
        pytest.fail("docker-compose is missing: scripts/system-deps installs it")
    else:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr



def test_images_run_the_commands_compose_and_the_process_topology_run(tmp_path):
    """The web and worker images' CMDs are the commands docker-compose.yml gives those services, and
    scripts/cluster (scripts/topology.py) runs exactly those, changing only what a container provides: a port
    and a host name of its own, this Python for `python`/`celery`/`uvicorn`, a local beat schedule file."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import topology

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = topology.dockerfile_commands()
    assert spec["services"]["web"]["command"] == images["web"]
    assert spec["services"]["worker"]["command"] == images["worker"]

    cluster = topology.Cluster(tmp_path)  # builds the commands; nothing is started
    python = [sys.executable, "-m"]
    web = list(images["web"])
    web[web.index("--port") + 1], web[web.index("--host") + 1] = "8123", "127.0.0.1"
    assert cluster.web_command(8123) == python + web
    assert cluster.worker_command("worker1") == python + images["worker"] + ["-n", "worker1@%h"]
    assert cluster.webhooks_command() == python + spec["services"]["webhooks"]["command"] + ["-n", "webhooks@%h"]
    beat = spec["services"]["beat"]["command"]
    assert cluster.beat_command() == python + beat[:-1] + [str(tmp_path / "celerybeat-schedule")]
    assert topology.local_command(spec["services"]["migrate"]["command"]) == [sys.executable, "-m", "app.admin",
                                                                              "migrate"]
    env = topology.service_environment("worker", spec, {"STYLEDROP_MODEL": "tiny"})
    assert env["STYLEDROP_MODEL"] == "tiny" and env["STYLEDROP_AUTH"] == "accounts"
    assert topology.service_environment("worker", spec, {})["STYLEDROP_MODEL"] == "amused/amused-256"
    for name in ("web", "worker", "webhooks", "beat", "migrate"):  # every app process: the same environment
        assert topology.service_environment(name, spec, {}) == topology.service_environment("web", spec, {})


def test_webhook_deliveries_run_in_a_worker_of_their_own_everywhere():
    """Issue 29: deliveries ran on the solo-pool worker that trains everyone's jobs (a receiver sending a byte
    every 5 s held another user's generation for 120 s). They have a queue of their own, and every way of running
    the product starts a worker for it, the same one: `styledrop serve` (app/runner.py) and the compose file
    (whose `webhooks` service runs from the web image, without torch); the GPU workers do not take that queue."""
    import sys

    from app.infra.task_queue import DELIVER_WEBHOOK, WEBHOOK_QUEUE, make_celery
    from app.runner import webhook_worker_command, worker_command
    from app.settings import Settings

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert make_celery(Settings()).conf.task_routes[DELIVER_WEBHOOK] == {"queue": WEBHOOK_QUEUE}

    def queues(command: list[str]) -> set[str]:
        return set(command[command.index("--queues") + 1].split(","))

    hooks = services["webhooks"]
    assert queues(hooks["command"]) == {WEBHOOK_QUEUE} and "worker.webhooks" in hooks["command"]
    assert hooks["build" if "build" in hooks else "image"] in ({"context": ".", "target": "web"}, "styledrop-web")
    assert WEBHOOK_QUEUE not in queues(services["worker"]["command"]) | queues(worker_command())
    embedded = webhook_worker_command()
    assert embedded[:3] == [sys.executable, "-m", "celery"]
    without_name = embedded[3:embedded.index("--hostname")] + embedded[embedded.index("--hostname") + 2:]
    compose = hooks["command"][1:]  # the same options, whatever their order
    assert sorted(without_name) == sorted(compose), (without_name, compose)
    assert compose[compose.index("--pool") + 1] == "prefork"  # where Celery enforces task time limits
