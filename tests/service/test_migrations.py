"""Alembic migrations: upgrade from an empty database, downgrade back to empty, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.migrate import downgrade, upgrade
from app.models import Base

from .conftest import make_settings

TABLES = {"users", "api_tokens", "styles", "rounds", "candidates", "ratings", "selections", "generations"}


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
