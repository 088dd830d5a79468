"""A style's rounds by state, as the services, the API's JSON and the pages ask for them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .lifecycle import ACTIVE, JobStatus
from .models import Round, Style


def active_round(session: Session, style_id: int) -> Round | None:
    return session.scalar(select(Round).where(Round.style_id == style_id, Round.status.in_(ACTIVE)))


def latest_succeeded(session: Session, style_id: int) -> Round | None:
    return session.scalar(select(Round).where(Round.style_id == style_id,
                                              Round.status == JobStatus.succeeded.value)
                          .order_by(Round.number.desc()).limit(1))


def latest_adapter_round(style: Style) -> Round | None:
    """The style's latest finished round with an adapter: what generations and downloads use by default."""
    done = [r for r in style.rounds if r.status == JobStatus.succeeded.value and r.adapter_path]
    return max(done, key=lambda r: r.number) if done else None
