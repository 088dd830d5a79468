"""Many people rating at once against a real server: every rating recorded exactly once, none lost."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bench.rating_load import run_load, start, value_for

CLIENTS, RATINGS = 50, 20


def test_fifty_clients_rating_twenty_each_are_all_recorded_exactly_once(tmp_path, database_url):
    fixture = start(CLIENTS, RATINGS, tmp_path, database_url=database_url)
    try:
        latencies, statuses = asyncio.run(run_load(fixture, RATINGS))
    finally:
        fixture.stop()
    assert len(statuses) == CLIENTS * (RATINGS + 1)  # + one double-clicked rating per client
    assert set(statuses) == {200}

    from app.domain.models import Rating, User
    from app.infra.db import session_factory
    from app.settings import Settings

    settings = Settings(data_dir=fixture.data_dir, database_url=database_url)
    with session_factory(settings)() as session:
        assert session.scalar(select(func.count()).select_from(Rating)) == CLIENTS * RATINGS
        rows = session.execute(select(User.name, Rating.candidate_id, Rating.value).join(User)).all()
    assert len({(name, cid) for name, cid, _ in rows}) == CLIENTS * RATINGS
    for name, cid, value in rows:
        client = int(name.removeprefix("user"))
        assert value == value_for(client, fixture.candidate_ids[client].index(cid))
