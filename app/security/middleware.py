"""Pure ASGI middleware: the request body limit, the security headers and the session cookies.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: that wraps every request in an extra task and
memory streams (measurable on a rating that costs a few milliseconds) and reads no body bytes itself, so
it could only check Content-Length. These count the body as it streams.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from . import browser_sessions

# Content-Security-Policy: scripts only from our own files (no inline script, no eval), nothing may frame
# the pages (clickjacking). Inline style attributes stay allowed: the progress bars and htmx's indicator
# style use them, and styles cannot run code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages are an inline script loading its assets from a CDN: they keep every
# header but a script policy (the application's own pages get the full one).
DOCS_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP 2
    (b"referrer-policy", b"same-origin"),
]


class BodyTooLarge(HTTPException):
    """Raised from receive() once a request body passes the limit; the middleware answers 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"The request is larger than {limit // (1024 * 1024)} MB.")


class BodyLimit:
    """413 for a request body over `limit` bytes, chunked or not, before any route, dependency or form
    parser sees more than `limit` bytes of it (so nothing beyond the limit reaches the disk): a declared
    Content-Length over the limit is refused at once; otherwise the bytes are counted as they arrive and the
    chunk that would pass the limit is never handed on."""

    def __init__(self, app: ASGIApp, limit: int, message_limit: int):
        self.app, self.limit, self.message_limit = app, limit, message_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _send_413(send, self.message_limit)
                return
        seen = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal seen, over
            if over:
                raise BodyTooLarge(self.message_limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise BodyTooLarge(self.message_limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the cut-off body (a parse error, a CSRF refusal): 413 instead
                if not started:
                    started = True
                    await _send_413(send, self.message_limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                started = True
                await _send_413(send, self.message_limit)


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"The request is larger than {limit // (1024 * 1024)} MB."}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class ResponseHeaders:
    """Adds the security headers to every response and the session cookies that dependencies wished for
    (request.state: see app/security/browser_sessions.py)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(("/docs", "/redoc"))
        csp = (DOCS_CSP if docs else CSP).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                state = scope.get("state") or {}
                if state:
                    headers += browser_sessions.cookie_headers(state, scope.get("scheme") == "https",
                                                               self.settings)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
