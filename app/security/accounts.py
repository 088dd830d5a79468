"""Users, passwords and API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106). API tokens are random strings shown
once; only their SHA-256 is stored: they carry 256 bits of randomness, so a fast hash is enough and a lookup
stays one indexed query per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from ..domain.models import ApiToken, User, as_utc, utcnow

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,38}[a-z0-9]$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing a megabyte-long "password" would be a cheap way to burn CPU

_hasher = PasswordHasher()
# Verified when the user does not exist, so that a log-in takes as long either way (names do not leak).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A sign-up or password change that cannot be accepted; the message says why, for the form."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalize_name(name: str) -> str:
    return name.strip().lower()


def check_new_account(name: str, password: str, confirm: str | None = None) -> str:
    """The normalized user name, or AccountError naming the field at fault."""
    name = normalize_name(name)
    if not NAME_PATTERN.match(name):
        raise AccountError("name", "Use 3 to 40 characters: letters, digits, '.', '_' or '-', starting and "
                                   "ending with a letter or digit.")
    check_password(password, confirm)
    return name


def check_password(password: str, confirm: str | None = None) -> None:
    if not password.strip():
        raise AccountError("password", "A password cannot be blank or only spaces.")
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", f"Use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError("password", f"Use at most {MAX_PASSWORD} characters.")
    if confirm is not None and confirm != password:
        raise AccountError("confirm", "The two passwords differ.")


def create_account(session: Session, name: str, password: str, confirm: str | None = None) -> User:
    name = check_new_account(name, password, confirm)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError("name", f"The name {name!r} is taken; choose another.")
    user = User(name=name, password_hash=_hasher.hash(password))
    session.add(user)
    session.commit()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    check_password(password)
    user.password_hash = _hasher.hash(password)
    session.commit()


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user, if the password is theirs. Users without a password (token-only, local) cannot log in."""
    user = session.scalar(select(User).where(User.name == normalize_name(name)))
    if len(password) > MAX_PASSWORD:
        return None
    try:
        _hasher.verify(user.password_hash if user is not None and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(user.password_hash):  # parameters were raised since this hash was made
        user.password_hash = _hasher.hash(password)
        session.commit()
    return user


_USER_NAMED = select(User).where(User.name == bindparam("name"))


def get_or_create_user(session: Session, name: str) -> User:
    user = session.scalar(_USER_NAMED, {"name": name})
    if user is None:
        user = User(name=name)
        session.add(user)
        session.commit()
    return user


def issue_token(session: Session, user: User, token_name: str = "") -> str:
    """Create an API token for a user and return it; it cannot be shown again."""
    token = "sds_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), name=token_name.strip()[:100]))
    session.commit()
    return token


def create_token(session: Session, user_name: str, token_name: str = "") -> str:
    """An API token for the named user (created if missing): the admin command's path."""
    return issue_token(session, get_or_create_user(session, user_name), token_name)


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    """Delete one of the user's tokens; False if the user has no such token (another user's included)."""
    result = session.execute(delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    session.commit()
    return bool(result.rowcount)


_TOKEN_USER = (select(ApiToken, User).join(User, User.id == ApiToken.user_id)  # built once: see app/domain/feedback.py
               .where(ApiToken.token_hash == bindparam("token_hash")))


def user_for_token(session: Session, token: str, commit: bool = True) -> User | None:
    """The token's user, in one statement. The token's last use is recorded at most once a minute (busy
    clients do not queue on it); commit=False leaves that write to the caller's transaction."""
    found = session.execute(_TOKEN_USER, {"token_hash": hash_token(token)}).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
        row.last_used_at = now
        if commit:
            session.commit()
    return user
