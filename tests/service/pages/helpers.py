"""What the page tests share: the new-style form's fields, creating a style through the page, and reading the
database the app writes."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from app.domain.models import Candidate, Round
from app.infra.db import session_factory

from ..conftest import png_bytes

ROOT = Path(__file__).resolve().parents[3]
FORM = {"content": "a house", "descriptor": "watercolor painting", "base_model": "tiny", "adapter": "styledrop",
        "steps": "10", "seed": "1"}


def create_style(client, **fields) -> int:
    """A style made through the new-style page (round 1 queued with the stub dispatcher); returns its id."""
    response = client.post("/styles/new", data=FORM | fields, files={"image": ("ref.png", png_bytes(), "image/png")},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1].split("?")[0])


def text_of(html: str) -> str:
    """The words of an HTML fragment, tags taken out (a label may be split by a span the phone hides)."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def session_of(client):
    return session_factory(client.settings)()


def latest_round(client, style_id: int) -> int:
    with session_of(client) as session:
        return session.scalar(select(Round.id).where(Round.style_id == style_id).order_by(Round.number.desc()))


def candidate_ids(client, round_id: int) -> list[int]:
    with session_of(client) as session:
        return list(session.scalars(select(Candidate.id).where(Candidate.round_id == round_id)
                                    .order_by(Candidate.id)))
