"""Ids are never handed out twice, on either database: a deleted row's id (the highest, which SQLite without
AUTOINCREMENT gives to the next row) never becomes a new row's. Old links, scripts, webhook consumers and a
still-running worker of a deleted job would otherwise reach another user's data."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete

from app.domain.models import (
    ApiToken,
    Candidate,
    Evaluation,
    Generation,
    IdempotencyKey,
    Rating,
    Round,
    Selection,
    Style,
    User,
    WebSession,
    utcnow,
)
from app.infra.db import session_factory
from app.infra.migrate import upgrade

from .conftest import make_settings
from .test_api import API, create_style


def _rows(session, user: User) -> dict[type, object]:
    """One new row of every table with an integer id, each the latest of its table."""
    style = Style(user_id=user.id, reference_path="", content="a house", descriptor="sticker", base_model="tiny",
                  adapter_kind="styledrop", settings={})
    session.add(style)
    session.flush()
    rnd = Round(style_id=style.id, number=1, status="succeeded", parameters={}, total_steps=10)
    session.add(rnd)
    session.flush()
    candidate = Candidate(round_id=rnd.id, prompt="A cat in sticker style", content="a cat", seed=1,
                          image_path="x.png")
    session.add(candidate)
    session.flush()
    rows = {
        Style: style, Round: rnd, Candidate: candidate,
        Rating: Rating(candidate_id=candidate.id, user_id=user.id, value=1),
        Selection: Selection(candidate_id=candidate.id, round_id=rnd.id, user_id=user.id, by="human"),
        Generation: Generation(style_id=style.id, user_id=user.id, status="succeeded", request={}),
        Evaluation: Evaluation(style_id=style.id, user_id=user.id, status="succeeded", request={}),
        ApiToken: ApiToken(user_id=user.id, token_hash=uuid.uuid4().hex, name="t"),
        WebSession: WebSession(token_hash=uuid.uuid4().hex, csrf_token="c", expires_at=utcnow()),
        IdempotencyKey: IdempotencyKey(user_id=user.id, key=uuid.uuid4().hex, fingerprint="f"),
    }
    session.add_all([row for model, row in rows.items() if model not in (Style, Round, Candidate)])
    session.flush()
    return rows


@pytest.fixture
def sessions(tmp_path, database_url):
    settings = make_settings(tmp_path / "data", database_url=database_url)
    upgrade(settings)
    return session_factory(settings)


def test_a_deleted_rows_id_is_never_given_again(sessions):
    with sessions() as session:
        user = User(name="ann")
        session.add(user)
        session.commit()
        first = {model: row.id for model, row in _rows(session, user).items()}
        session.commit()
        for model in reversed(list(first)):  # children first: each table's newest row goes
            session.execute(delete(model).where(model.id == first[model]))
        session.commit()
        again = {model: row.id for model, row in _rows(session, user).items()}
        session.commit()
        doomed = User(name="bob")
        session.add(doomed)
        session.commit()
        doomed_id = doomed.id
        session.delete(doomed)
        session.commit()
        newcomer = User(name="cat")
        session.add(newcomer)
        session.commit()
    reused = {model.__tablename__: first[model] for model in first if again[model] <= first[model]}
    assert reused == {}
    assert newcomer.id > doomed_id


def test_a_deleted_styles_id_and_link_never_come_back(stub_app):
    first = create_style(stub_app)
    assert stub_app.delete(f"{API}/styles/{first['id']}").status_code == 204
    second = create_style(stub_app)
    assert second["id"] > first["id"]
    assert stub_app.get(f"{API}/styles/{first['id']}").status_code == 404
