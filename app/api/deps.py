"""Dependency injection: settings, database session, current user, job dispatcher."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ..auth import get_or_create_user, user_for_token
from ..errors import ApiError
from ..jobs import Dispatcher
from ..models import User
from ..settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def current_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    """`Authorization: Bearer <token>` names the user. Without it, in auth mode "local" (the embedded
    single-user run) the request acts as the one local user; in auth mode "token" it is refused."""
    user = _identify(request, session, settings)
    # End the transaction now: the connection goes back to the pool while the request waits for a thread
    # to run its endpoint (otherwise many waiting requests hold every pooled connection: a deadlock).
    session.commit()
    return user


def _identify(request: Request, session: Session, settings: Settings) -> User:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Use 'Authorization: Bearer <token>'.")
        user = user_for_token(session, token.strip())
        if user is None:
            raise ApiError(401, "Unknown or revoked API token.")
        return user
    if settings.auth == "local":
        return get_or_create_user(session, settings.local_user)
    raise ApiError(401, "This server needs an API token: send 'Authorization: Bearer <token>' "
                        "(create one with `python -m app.admin token NAME`).")


UserDep = Annotated[User, Depends(current_user)]
