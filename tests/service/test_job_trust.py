"""The job side of trust: what a style's deletion does to its jobs and files, evaluations under the same
limits as every other job, and rounds started at once. Real databases (SQLite and PostgreSQL), the real app."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .test_api import API, create_style


def test_rounds_started_at_once_on_one_style_give_one_201_and_409s(stub_app):
    """The next round's number used to be read before the user's lock: of six requests at once, five lost the
    insert to the unique (style, number) and answered 500."""
    style = create_style(stub_app)
    start = threading.Barrier(6)

    def post() -> int:
        start.wait()
        try:
            return stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"train_steps": 5}).status_code
        except Exception:  # noqa: BLE001  the test client raises what the server did not answer
            return 500

    for _ in range(3):
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(lambda _: post(), range(6)))
        assert statuses == [201, 409, 409, 409, 409, 409], statuses
        rounds = stub_app.get(f"{API}/styles/{style['id']}/rounds").json()["items"]
        queued = [r for r in rounds if r["status"] == "queued"]
        assert len(queued) == 1
        assert stub_app.post(f"{API}/rounds/{queued[0]['id']}/cancel").status_code == 202
