"""Alembic migrations: upgrade from an empty database, downgrade back to empty, and match the models."""

from __future__ import annotations

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.domain.models import Base
from app.infra.migrate import downgrade, upgrade

from . import postgres
from .conftest import make_settings

TABLES = {"users", "api_tokens", "styles", "rounds", "candidates", "ratings", "selections", "generations",
          "evaluations", "idempotency_keys"}


def test_upgrade_from_empty_and_downgrade_back(tmp_path):
    settings = make_settings(tmp_path / "data")
    upgrade(settings)
    engine = create_engine(settings.sqlalchemy_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("rounds")}
    assert {"status", "step", "total_steps", "loss", "eta_seconds", "cancel_requested", "heartbeat_at",
            "attempts", "celery_task_id", "adapter_path", "metrics", "parameters", "error"} <= columns
    with engine.connect() as connection:  # the schema the migrations build is the one the models describe
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    downgrade(settings, "base")
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
    upgrade(settings)  # and up again
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_url():
    """STYLEDROP_TEST_POSTGRES_URL, or a throwaway local server; missing PostgreSQL fails in CI."""
    if os.environ.get("STYLEDROP_TEST_POSTGRES_URL"):
        yield os.environ["STYLEDROP_TEST_POSTGRES_URL"]
        return
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: scripts/system-deps installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres.temporary_server() as url:
        yield url


def test_postgresql_migrations_and_api(tmp_path, postgres_url):
    from fastapi.testclient import TestClient

    from app.main import create_app

    from .conftest import StubDispatcher, png_bytes

    settings = make_settings(tmp_path / "data", database_url=postgres_url)
    downgrade(settings, "base")
    upgrade(settings)
    engine = create_engine(settings.sqlalchemy_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    client = TestClient(create_app(settings, StubDispatcher()))
    style = client.post("/api/v1/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                        data={"content": "a house", "descriptor": "sticker", "steps": "7"}).json()
    rnd = client.post(f"/api/v1/styles/{style['id']}/rounds", json={"prompts": ["a cat"]}).json()
    assert rnd["parameters"]["train"]["steps"] == 7 and rnd["created_at"].endswith(("Z", "+00:00"))
    assert client.post(f"/api/v1/rounds/{rnd['id']}/cancel").json()["status"] == "cancelled"
    assert client.delete(f"/api/v1/styles/{style['id']}").status_code == 204
    engine.dispose()
    downgrade(settings, "base")
    assert set(inspect(create_engine(settings.sqlalchemy_url)).get_table_names()) - {"alembic_version"} == set()
