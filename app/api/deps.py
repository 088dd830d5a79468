"""Dependency injection: settings, database session, who is asking, job dispatcher, CSRF checks.

Who is asking, in this order: an `Authorization: Bearer <token>` header (programs); else the browser's
session cookie (people on the pages; see app/security/browser_sessions.py); else, in the embedded single-user run
(STYLEDROP_AUTH=local), the one local user. Cookie-borne credentials are sent by browsers on their own, so
a request that changes something with them must also prove it came from our pages (the CSRF token); a
bearer token is never sent by a browser on its own, so it needs no such proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ..domain.models import User, WebSession
from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..security import browser_sessions
from ..security.accounts import get_or_create_user, user_for_token
from ..settings import Settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# Dependencies that do no I/O are `async def`: FastAPI runs them on the event loop, where a plain `def`
# would cost a hop to the thread pool and back (a rating is one hop: its endpoint).

async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher()


async def _dispatcher_dep(request: Request) -> Dispatcher:
    return get_dispatcher(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher_dep)]


@dataclass
class Identity:
    user: User | None
    via: Literal["token", "cookie", "local", "anonymous"]
    web_session: WebSession | None = None


def identify(request: Request, session: SessionDep, settings: SettingsDep) -> Identity:
    identity = identify_request(request, session, settings)
    # End the transaction now: the connection goes back to the pool while the request waits for threads to
    # run its other dependencies and its endpoint (otherwise many waiting requests hold every pooled
    # connection: a deadlock under load, seen with 50 concurrent raters).
    session.commit()
    return identity


def identify_request(request: Request, session: Session, settings: Settings) -> Identity:
    """Who is asking: one SQL statement (the token or browser session with its user), plus a
    get-or-create of the local user in the embedded run; commits nothing (a token's last-use time, at most
    once a minute, is left for the caller's commit)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Use 'Authorization: Bearer <token>'.")
        user = user_for_token(session, token.strip(), commit=False)
        if user is None:
            raise ApiError(401, "Unknown or revoked API token.")
        return Identity(user, "token")
    row = browser_sessions.find(session, request.cookies.get(browser_sessions.COOKIE))
    if row is not None and row.user is not None and (settings.accounts or row.user.name == settings.local_user):
        return Identity(row.user, "cookie", row)
    if not settings.accounts:
        return Identity(get_or_create_user(session, settings.local_user), "local", row)
    return Identity(None, "anonymous", row)


IdentityDep = Annotated[Identity, Depends(identify)]


async def current_user(request: Request, identity: IdentityDep) -> User:
    """The API's user. Refuses anonymous requests (401) and cross-site writes (403)."""
    return authorize(request, identity)


def authorize(request: Request, identity: Identity) -> User:
    """current_user's checks, for endpoints that identify the user in their own thread (the rating)."""
    if identity.user is None:
        raise ApiError(401, "Send 'Authorization: Bearer <token>' (make a token on the settings page, "
                            "/settings, or with `python -m app.admin token NAME`).")
    if request.method not in SAFE_METHODS:
        if identity.via == "cookie" and not browser_sessions.csrf_ok(
                identity.web_session, request.headers.get(browser_sessions.CSRF_HEADER)):
            raise ApiError(403, "A request with the browser's session cookie must send the page's CSRF token "
                                "in the X-CSRF-Token header; programs should use an API token instead.")
        if identity.via == "local" and cross_site(request):
            raise ApiError(403, "Refused a request from another web site.")
    return identity.user


def cross_site(request: Request) -> bool:
    """Browsers say where a request came from; scripts and programs send neither header."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


UserDep = Annotated[User, Depends(current_user)]


# ---- pages --------------------------------------------------------------------------------------------------

class LoginRequired(Exception):
    """Raised by page dependencies; app/main.py answers with a redirect to the log-in page."""


def page_identity(request: Request, identity: IdentityDep, session: SessionDep,
                  settings: SettingsDep) -> Identity:
    """The identity of a page request. The embedded run's local user gets a browser session on a page view
    if there is none yet (it carries the CSRF token). An anonymous visitor (accounts mode) gets no session
    row: the log-in and sign-up forms' CSRF token is a cookie of its own (double submit), so crawlers and
    cookieless visitors write nothing to the database."""
    if identity.via == "local" and identity.web_session is None and request.method in SAFE_METHODS:
        row = browser_sessions.begin(request, session, settings, identity.user.id)
        identity = Identity(identity.user, "cookie", row)
    if identity.web_session is not None:
        request.state.csrf_token = identity.web_session.csrf_token
    elif identity.via == "anonymous":
        request.state.csrf_token = browser_sessions.anonymous_csrf(request)
    else:
        request.state.csrf_token = ""
    request.state.user = identity.user
    return identity


PageIdentityDep = Annotated[Identity, Depends(page_identity)]


async def csrf_guard(request: Request, identity: PageIdentityDep) -> None:
    """Every page request that changes something carries the session's CSRF token (hidden form field or,
    from htmx, a header); bearer-token requests come from programs and need none."""
    if request.method in SAFE_METHODS or identity.via == "token":
        return
    supplied = request.headers.get(browser_sessions.CSRF_HEADER)
    if not supplied and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(browser_sessions.CSRF_FIELD)
        supplied = value if isinstance(value, str) else None
    if identity.web_session is None and identity.via == "anonymous":
        ok = browser_sessions.anonymous_csrf_ok(request, supplied)
    else:
        ok = browser_sessions.csrf_ok(identity.web_session, supplied)
    if not ok:
        raise ApiError(403, "This form has expired or came from another site. Reload the page and try again.")


async def page_user(identity: PageIdentityDep) -> User:
    if identity.user is None:
        raise LoginRequired()
    return identity.user


PageUserDep = Annotated[User, Depends(page_user)]
