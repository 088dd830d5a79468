"""Schema-driven fuzzing of the whole REST API (schemathesis strategies + hypothesis): whatever a client
sends to any documented operation, the API answers without a 5xx, and its errors carry a message."""

from __future__ import annotations

import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import StubDispatcher, make_settings


def _schema(tmp_path):
    from app.infra.migrate import upgrade
    from app.main import create_app

    app_settings = make_settings(tmp_path / "data", max_upload_bytes=200_000)
    upgrade(app_settings)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings, StubDispatcher()))


@pytest.fixture
def subnormal_floats():
    """Hypothesis draws subnormal floats and refuses to run when the CPU flushes them to zero, which the engine
    turns on (styledrop.models.load_components) in a test process that loaded a model in an earlier test."""
    torch = sys.modules.get("torch")
    flushing = torch is not None and torch.set_flush_denormal(False)
    yield
    if flushing:
        torch.set_flush_denormal(True)


def test_no_request_makes_the_api_fail(tmp_path, subnormal_floats):
    schema = _schema(tmp_path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                assert isinstance(response.json().get("detail"), str) and response.json()["detail"]

        fuzz()
    assert failures == []
