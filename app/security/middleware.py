"""Pure ASGI middleware: the request body limit, the security and cache headers, and the session cookies.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: that wraps every request in an extra task and
memory streams (measurable on a rating that costs a few milliseconds) and reads no body bytes itself, so
it could only check Content-Length. These count the body as it streams.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from . import browser_sessions

log = logging.getLogger(__name__)

# Content-Security-Policy, on every response (the API docs at /docs too: their Swagger UI is served from
# static/ and started by static/docs.js, app/pages/docs.py): scripts only from our own files (no inline
# script, no eval), nothing may frame the pages (clickjacking). Inline style attributes stay allowed: the
# progress bars and htmx's indicator style use them, and styles cannot run code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP 2
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
]
# Pages and JSON are made for one user (a webhook secret, a new API token, a CSRF token): no cache keeps them
# unless the response says otherwise (OWASP: restrictive cache directives). Static files and images say
# their own.
NO_STORE = (b"cache-control", b"no-store")
DOCUMENTS = (b"text/html", b"application/json")
INTERNAL_ERROR = "Something went wrong on the server; it is logged. Try again, or tell the server's admin."


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
    """Adds the security headers (and no-store to pages and JSON that set no cache policy) to every response,
    and the session cookies that dependencies wished for (request.state: see app/security/browser_sessions.py).

    The outermost of the application's middleware: an error that escapes everything else (a bug, a database
    that refuses a statement) would reach Starlette's ServerErrorMiddleware, whose plain 500 carries no
    header of ours. Here it becomes a 500 with the headers and a message without details (the traceback goes
    to the log), and is raised on, so servers and tests still see it."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers: list[Any] = list(message.get("headers", []))
                present = {name.lower(): value for name, value in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"cache-control" not in present and \
                        present.get(b"content-type", b"").split(b";")[0].strip() in DOCUMENTS:
                    headers.append(NO_STORE)
                state = scope.get("state") or {}
                if state:
                    headers += browser_sessions.cookie_headers(state, scope.get("scheme") == "https",
                                                               self.settings)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await _send_500(scope, send_with_headers)
            raise


async def _send_500(scope: Scope, send: Send) -> None:
    """The answer to an unhandled error: JSON for the API, a short page for the pages; no details."""
    if scope["path"].startswith(("/api/", "/openapi.json")):
        body, media = json.dumps({"detail": INTERNAL_ERROR}).encode(), b"application/json"
    else:
        body = (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Server error · StyleDrop Studio"
                f"</title><h1>Server error</h1><p>{INTERNAL_ERROR}</p><p><a href=\"/\">Your styles</a></p>"
                f"</html>").encode()
        media = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
