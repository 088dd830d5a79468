"""The FastAPI application: `create_app(settings)`; `app.main:app` for `uvicorn app.main:app`."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api import openapi as api_openapi
from .api.deps import LoginRequired
from .errors import ApiError
from .infra.db import session_factory
from .infra.task_queue import CeleryDispatcher, Dispatcher
from .security.middleware import BodyLimit, ResponseHeaders
from .security.throttle import LoginThrottle
from .settings import Settings, get_settings


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form"))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "The request is not valid."


FORM_FIELDS_BYTES = 1024 * 1024  # room for a form's other fields beside the largest upload


def is_page_request(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/static/", "/openapi.json", "/docs", "/redoc"))


def error_response(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """The one place an error becomes a response: an HTML error page for a page URL (a refused form post, a
    page's 404, /styles/abc, an unknown path), JSON `{"detail": ...}` for the API."""
    if is_page_request(request):
        from .pages.rendering import error_page

        return error_page(request, status, detail, headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="StyleDrop Studio", version="0.1.0", docs_url=None, redoc_url=None,  # /docs: app/pages/docs.py
                  description="Teach aMUSEd a visual style from one picture (StyleDrop), with human or CLIP "
                              "feedback. Errors are JSON `{\"detail\": \"message\"}`.")
    app.state.settings = settings
    app.state.sessions = session_factory(settings)
    app.state.login_throttle = LoginThrottle(settings.login_free_attempts, settings.login_free_attempts_per_address,
                                             settings.login_max_wait_seconds)

    @lru_cache(maxsize=1)
    def _dispatcher() -> Dispatcher:
        return dispatcher or CeleryDispatcher(settings)

    app.state.dispatcher = _dispatcher

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc.status, exc.detail, exc.headers)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = "/login?" + urlencode({"next": request.url.path + (f"?{request.url.query}" if request.url.query
                                                                     else "")})
        if request.headers.get("hx-request") == "true":  # htmx swaps fragments: make it load the whole page
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail), exc.headers)

    # Pure ASGI middleware (app/security/middleware.py); the last added runs first: the body limit before anything.
    app.add_middleware(ResponseHeaders, settings=settings)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_FIELDS_BYTES,
                       message_limit=settings.max_upload_bytes)

    from .api.evaluations import router as evaluations
    from .api.routes import router
    from .pages import routers as page_routers

    app.include_router(router)
    app.include_router(evaluations)
    api_openapi.install(app)  # operation ids, named bodies, file fields generators send as files
    for pages in page_routers:  # the HTML pages (app/pages/)
        app.include_router(pages)
    return app


def __getattr__(name: str):  # `uvicorn app.main:app` builds the app from the environment on first use
    if name == "app":
        return create_app()
    raise AttributeError(name)
