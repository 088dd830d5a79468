"""What a rating costs. A rating or a selection is one thread hop, at most 5 SQL statements and
one commit; the rating grid of a round asks the database a bounded number of times, however many
candidates it shows. Counted on the real engine (SQLAlchemy event listeners) and the real thread pool."""

from __future__ import annotations

from contextlib import contextmanager

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.domain import lifecycle
from app.domain.models import Candidate, Rating, Round, Selection, Style, User
from app.infra.db import engine_for, session_factory
from app.infra.migrate import upgrade
from app.main import create_app
from app.security.accounts import create_account, issue_token

from .conftest import StubDispatcher, make_settings
from .factories import finish_round

API = "/api/v1"


@contextmanager
def counted(settings, monkeypatch):
    """Counts SQL statements, commits and hops to the thread pool while the block runs."""
    engine = engine_for(settings)
    seen = {"statements": [], "commits": 0, "hops": 0}

    def statement(conn, cursor, text, parameters, context, executemany):  # noqa: ANN001
        seen["statements"].append(text.split()[0].upper())

    def commit(conn):  # noqa: ANN001
        seen["commits"] += 1

    original = anyio.to_thread.run_sync

    async def hop(*args, **kwargs):  # delegates to the real thread pool; only counts
        seen["hops"] += 1
        return await original(*args, **kwargs)

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    monkeypatch.setattr(anyio.to_thread, "run_sync", hop)
    try:
        yield seen
    finally:
        monkeypatch.setattr(anyio.to_thread, "run_sync", original)
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


def add_round(settings, user_name: str, candidates: int, raters: int = 0) -> tuple[int, list[int]]:
    """A finished round of `candidates` candidates owned by `user_name`, each rated by `raters` other users
    and every other one selected: the rows the worker and other raters would have written."""
    with session_factory(settings)() as session:
        owner = session.query(User).filter_by(name=user_name).one()
        others = []
        for i in range(raters):
            other = session.query(User).filter_by(name=f"rater{i}").one_or_none() or User(name=f"rater{i}")
            session.add(other)
            others.append(other)
        style = Style(user_id=owner.id, reference_path="", content="a house", descriptor="sticker",
                      base_model="tiny", adapter_kind="styledrop", settings={})
        session.add(style)
        session.flush()
        round_id = lifecycle.enqueue(session, Round(style_id=style.id, number=1, parameters={}, total_steps=1)).id
        style_id, other_ids = style.id, [other.id for other in others]
    finish_round(settings, round_id, candidates=0)  # as the worker ends it
    with session_factory(settings)() as session:
        ids = []
        for j in range(candidates):
            c = Candidate(round_id=round_id, content=("a cat", "a dog")[j % 2], prompt="A cat in sticker style", seed=j,
                          image_path=f"styles/{style_id}/rounds/1/candidates/{j:04d}.png", clip_text_score=0.2,
                          clip_style_score=0.5)
            session.add(c)
            session.flush()
            ids.append(c.id)
            for other_id in other_ids:
                session.add(Rating(candidate_id=c.id, user_id=other_id, value=1))
            if j % 2:
                session.add(Selection(candidate_id=c.id, round_id=round_id, by="clip"))
        session.commit()
        return round_id, ids


@pytest.fixture
def accounts(tmp_path):
    settings = make_settings(tmp_path / "data", auth="accounts")
    upgrade(settings)
    with session_factory(settings)() as session:
        user = create_account(session, "ann", "correct horse battery")
        token = issue_token(session, user, "script")
    with TestClient(create_app(settings, StubDispatcher())) as client:
        client.settings, client.token = settings, token
        yield client


@pytest.mark.parametrize("path, body, first, again", [
    ("rating", "value", 1, -1),
    ("selected", "selected", True, False),
])
def test_a_rating_or_selection_is_one_hop_five_statements_and_one_commit(accounts, monkeypatch, path, body,
                                                                         first, again):
    _, ids = add_round(accounts.settings, "ann", 4, raters=3)
    headers = {"Authorization": f"Bearer {accounts.token}"}
    for value in (first, again, first):  # the first use of the token also records its last use
        with counted(accounts.settings, monkeypatch) as seen:
            response = accounts.put(f"{API}/candidates/{ids[0]}/{path}", json={body: value}, headers=headers)
        assert response.status_code == 200, response.text
        assert len(seen["statements"]) <= 5, seen["statements"]
        assert seen["commits"] == 1 and seen["hops"] == 1, seen
    out = response.json()
    if path == "rating":
        assert out["my_rating"] == 1 and len(out["ratings"]) == 4  # ann's and the three raters'
        assert sorted(r["user"] for r in out["ratings"]) == ["ann", "rater0", "rater1", "rater2"]
    else:
        assert out["selected"] is True and out["selected_by"] == "human"


def test_the_fast_path_still_refuses_what_the_slow_one_did(accounts):
    """Another user's candidate is a 404 like a missing one (and an id past the database's integers too);
    no token or another scheme is a 401; nothing is written by any of them."""
    with session_factory(accounts.settings)() as session:
        bob = issue_token(session, create_account(session, "bob", "correct horse battery"), "bob's")
    _, ids = add_round(accounts.settings, "ann", 2)
    for cid in (ids[0], 10**9, 2**64):
        refused = accounts.put(f"{API}/candidates/{cid}/rating", json={"value": 1},
                               headers={"Authorization": f"Bearer {bob}"})
        assert refused.status_code == 404 and refused.json()["detail"] == f"Candidate {cid} does not exist."
    assert accounts.put(f"{API}/candidates/{ids[0]}/rating", json={"value": 1}).status_code == 401
    assert accounts.put(f"{API}/candidates/{ids[0]}/selected", json={"selected": True},
                        headers={"Authorization": "Basic x"}).status_code == 401
    with session_factory(accounts.settings)() as session:
        assert session.query(Rating).count() == 0 and session.query(Selection).filter_by(by="human").count() == 0


def test_a_cookie_rating_from_the_pages_needs_the_csrf_token_and_costs_the_same(tmp_path, monkeypatch):
    from .conftest import stub_client

    with stub_client(tmp_path / "data") as client:  # the embedded run: the local user's browser session
        _, ids = add_round(client.settings, "local", 2)
        with counted(client.settings, monkeypatch) as seen:
            response = client.put(f"{API}/candidates/{ids[1]}/rating", json={"value": 5})
        assert response.status_code == 200 and response.json()["my_rating"] == 5
        assert len(seen["statements"]) <= 5 and seen["commits"] == 1 and seen["hops"] == 1, seen
        del client.headers["X-CSRF-Token"]
        assert client.put(f"{API}/candidates/{ids[1]}/rating", json={"value": 1}).status_code == 403


@pytest.mark.parametrize("page", ["grid", "style"])
def test_the_rating_grid_asks_the_database_a_bounded_number_of_times(tmp_path, monkeypatch, page):
    """The grid of a round of 64 candidates (each rated by 3 people, half of them selected) costs as many
    statements as the grid of 8: no query per card."""
    from .conftest import stub_client

    with stub_client(tmp_path / "data") as client:
        counts = {}
        for size in (8, 64):
            round_id, _ = add_round(client.settings, "local", size, raters=3)
            with session_factory(client.settings)() as session:
                style_id = session.get(Round, round_id).style_id
            url = f"/rounds/{round_id}/grid" if page == "grid" else f"/styles/{style_id}"
            client.get(url)  # warm: the first request of a kind may load things once
            with counted(client.settings, monkeypatch) as seen:
                response = client.get(url)
            assert response.status_code == 200
            assert response.text.count('data-action="select"') == size
            counts[size] = len(seen["statements"])
        assert counts[64] == counts[8], counts
        assert counts[64] <= 20, counts
