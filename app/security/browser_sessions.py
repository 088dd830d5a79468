"""Browser sessions and CSRF tokens for the pages.

A session is a random cookie value; the database keeps only its SHA-256, the user and a CSRF token. The
cookie is HttpOnly (scripts cannot read it), SameSite=Lax (other sites' forms do not carry it on a POST)
and Secure over https. Every form post and htmx request must also carry the session's CSRF token (hidden
field `csrf_token` or header `X-CSRF-Token`): the synchronizer-token pattern, for browsers that ignore
SameSite. Sessions live in the database rather than in a signed cookie so that logging out, or deleting
a user, ends them at once, and there is no signing key to manage.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session, joinedload

from ..domain.models import WebSession, as_utc, utcnow
from ..settings import Settings
from .accounts import hash_token

COOKIE = "styledrop_session"
ANONYMOUS_CSRF_COOKIE = "styledrop_csrf"  # the log-in/sign-up forms' token before there is a session
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ANONYMOUS_LIFETIME = timedelta(hours=2)  # long enough to fill in the log-in form


def begin(request: Request, session: Session, settings: Settings, user_id: int | None) -> WebSession:
    """A new session for a user, or an anonymous one (user_id None), whose cookie the response will set.
    Expired sessions are dropped first, so abandoned forms and crawlers do not grow the table."""
    lifetime = timedelta(days=settings.session_days) if user_id is not None else ANONYMOUS_LIFETIME
    session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))
    token = secrets.token_urlsafe(32)
    row = WebSession(token_hash=hash_token(token), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
                     expires_at=utcnow() + lifetime)
    session.add(row)
    session.commit()
    request.state.session_cookie = (token, int(lifetime.total_seconds()))
    return row


# One statement, the user included; built once (see app/domain/feedback.py).
_SESSION_WITH_USER = (select(WebSession).options(joinedload(WebSession.user))
                      .where(WebSession.token_hash == bindparam("token_hash")))


def find(session: Session, token: str | None) -> WebSession | None:
    if not token or len(token) > 100:
        return None
    row = session.scalar(_SESSION_WITH_USER, {"token_hash": hash_token(token)})
    if row is None or as_utc(row.expires_at) <= utcnow():
        return None
    return row


def end(session: Session, row: WebSession | None) -> None:
    if row is not None:
        session.execute(delete(WebSession).where(WebSession.id == row.id))
        session.commit()


def csrf_ok(row: WebSession | None, supplied: str | None) -> bool:
    return bool(row is not None and supplied and hmac.compare_digest(row.csrf_token, supplied))


def anonymous_csrf(request: Request) -> str:
    """The CSRF token of a visitor without a session: a random value in a cookie of its own, repeated in the
    form (double submit). Another site can neither read the cookie nor set it (SameSite=Lax, HttpOnly), so a
    forged log-in cannot carry it. Writes nothing to the database."""
    token = request.cookies.get(ANONYMOUS_CSRF_COOKIE, "")
    if not (20 <= len(token) <= 100):
        token = secrets.token_urlsafe(32)
        request.state.csrf_cookie = token
    return token


def anonymous_csrf_ok(request: Request, supplied: str | None) -> bool:
    token = request.cookies.get(ANONYMOUS_CSRF_COOKIE, "")
    return bool(token and supplied and len(token) >= 20 and hmac.compare_digest(token, supplied))


# ---- the cookies ---------------------------------------------------------------------------------------------
# Dependencies cannot set cookies on the Response objects that page routes return, so begin(), forget() and
# anonymous_csrf() leave the wish in request.state and a middleware (app/security/middleware.py) applies it.

def forget(request: Request) -> None:
    request.state.session_cookie = (None, 0)


def cookie_headers(state: dict, https: bool, settings: Settings) -> list[tuple[bytes, bytes]]:
    """The Set-Cookie headers wished for in a request's state (scope["state"])."""
    secure = settings.secure_cookies == "always" or (settings.secure_cookies == "auto" and https)
    response = Response()
    wish = state.get("session_cookie")
    if wish is not None:
        token, max_age = wish
        if token is None:
            response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        else:
            response.set_cookie(COOKIE, token, max_age=max_age, path="/", secure=secure, httponly=True,
                                samesite="lax")
    if (csrf := state.get("csrf_cookie")) is not None:
        response.set_cookie(ANONYMOUS_CSRF_COOKIE, csrf, max_age=int(ANONYMOUS_LIFETIME.total_seconds()),
                            path="/", secure=secure, httponly=True, samesite="lax")
    return [(k, v) for k, v in response.raw_headers if k == b"set-cookie"]
