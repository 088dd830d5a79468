"""Account pages: sign up, log in, log out, and the settings page with personal API tokens.

In the embedded single-user run (STYLEDROP_AUTH=local) there is nothing to log in to: the log-in and
sign-up pages lead home, and the settings page manages the local user's API tokens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..api.deps import PageIdentityDep, PageUserDep, SessionDep, SettingsDep, csrf_guard
from ..domain import webhooks
from ..errors import ApiError
from ..security import browser_sessions
from ..security.accounts import AccountError, authenticate, create_account, issue_token, normalize_name, revoke_token
from .rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site (never `//evil.example` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _log_in(request: Request, session, settings, identity, user_id: int, target: str) -> Response:
    """A fresh session for the user (the anonymous one is dropped: no session fixation)."""
    browser_sessions.end(session, identity.web_session)
    browser_sessions.begin(request, session, settings, user_id)
    return RedirectResponse(safe_next(target), status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, identity: PageIdentityDep, settings: SettingsDep, next: str = "/") -> Response:
    if not settings.accounts or identity.user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, settings, "", safe_next(next))


def _login_form(request: Request, settings, name: str, target: str, error: str | None = None,
                status_code: int | None = None, headers: dict[str, str] | None = None) -> Response:
    return render(request, "login.html", {"values": {"name": name}, "next": target, "error": error,
                                          "signup": settings.signup == "open"},
                  status_code=status_code or (400 if error else 200), headers=headers)


def _require_open_signup(settings) -> None:
    if settings.signup != "open":
        raise ApiError(404, "Sign-up is closed on this server; ask its administrator for an account.")


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, identity: PageIdentityDep, session: SessionDep,
                settings: SettingsDep) -> Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    if not settings.accounts:
        return RedirectResponse(target, status_code=303)
    name, password = form.get("name", ""), form.get("password", "")
    throttle, account = request.app.state.login_throttle, normalize_name(name)
    address = request.client.host if request.client else ""
    if wait := throttle.retry_after(session, account, address):  # before hashing: a flood of guesses costs little
        return _login_form(request, settings, name, target, status_code=429, headers={"Retry-After": str(wait)},
                           error=f"Too many wrong passwords; try again in {wait} seconds.")
    user = await run_in_threadpool(authenticate, session, name, password)  # argon2: keep the event loop free
    if user is None:
        throttle.failed(session, account, address)
        return _login_form(request, settings, name, target, error="Wrong name or password.")
    throttle.succeeded(session, account)
    return _log_in(request, session, settings, identity, user.id, target)


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, identity: PageIdentityDep, settings: SettingsDep) -> Response:
    if not settings.accounts or identity.user is not None:
        return RedirectResponse("/", status_code=303)
    _require_open_signup(settings)
    return render(request, "signup.html", {"values": {"name": ""}, "errors": {}})


@router.post("/signup", response_class=HTMLResponse)
async def signup(request: Request, identity: PageIdentityDep, session: SessionDep,
                 settings: SettingsDep) -> Response:
    if not settings.accounts:
        return RedirectResponse("/", status_code=303)
    _require_open_signup(settings)
    form = await _form(request)
    try:
        user = await run_in_threadpool(create_account, session, form.get("name", ""), form.get("password", ""),
                                       form.get("confirm", ""))
    except AccountError as exc:
        return render(request, "signup.html", {"values": {"name": form.get("name", "")},
                                               "errors": {exc.field: str(exc)}}, status_code=400)
    return _log_in(request, session, settings, identity, user.id, "/")


@router.post("/logout")
def logout(request: Request, identity: PageIdentityDep, session: SessionDep) -> Response:
    browser_sessions.end(session, identity.web_session)
    browser_sessions.forget(request)
    return RedirectResponse("/login", status_code=303)


def _settings_context(user, settings, new_token: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {"user": user, "tokens": list(user.tokens), "new_token": new_token, "token_error": error,
            "accounts": settings.accounts}


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: PageUserDep, settings: SettingsDep, session: SessionDep) -> Response:
    return render(request, "settings.html", _settings_context(user, settings)
                  | {"webhook_secret": webhooks.secret_for(session, user)})


@router.post("/settings/tokens", response_class=HTMLResponse)
async def create_token_page(request: Request, user: PageUserDep, session: SessionDep,
                            settings: SettingsDep) -> Response:
    name = (await _form(request)).get("name", "").strip()
    if not name or len(name) > 100:
        return render(request, "settings.html",
                      _settings_context(user, settings, error="Name the token (1 to 100 characters), e.g. the "
                                                              "script or machine that will use it."),
                      status_code=400)
    token = issue_token(session, user, name)
    session.refresh(user)
    # Shown once: only its hash is kept. no-store keeps it out of the browser's cache.
    return render(request, "settings.html", _settings_context(user, settings, new_token=token),
                  headers={"Cache-Control": "no-store"})


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token_page(token_id: int, user: PageUserDep, session: SessionDep) -> Response:
    if not (1 <= token_id <= 2**63 - 1) or not revoke_token(session, user, token_id):
        raise ApiError(404, f"Token {token_id} does not exist.")
    return RedirectResponse("/settings", status_code=303)
