"""docker-compose.yml for teams: the structure is checked here (no Docker in CI); see README for the run."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_structure():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"web", "worker", "redis", "postgres", "migrate", "beat"} <= set(services)
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
