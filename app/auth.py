"""Users and API tokens. Tokens are random strings shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiToken, User, utcnow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def get_or_create_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name)
        session.add(user)
        session.commit()
    return user


def create_token(session: Session, user_name: str, token_name: str = "") -> str:
    """Create an API token for a user (created if missing) and return it; it cannot be shown again."""
    user = get_or_create_user(session, user_name)
    token = "sds_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), name=token_name))
    session.commit()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        return None
    row.last_used_at = utcnow()
    session.commit()
    return row.user
