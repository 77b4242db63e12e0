"""What keeps a local web console safe from the other pages of the operator's browser.

- The Host header must name the console itself (127.0.0.1 or localhost): a page whose own name resolves to
  127.0.0.1 (DNS rebinding) is refused before any route runs.
- A write (POST) needs a same-origin request (Origin, else Referer, naming this console) and the session's
  CSRF token; the session cookie is SameSite=Strict, so another site's form arrives without it anyway.
- Every answer carries a Content-Security-Policy that allows only the console's own stylesheet and forms,
  and is never framed or cached.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_HOSTS = ("127.0.0.1", "localhost")
CSRF_FIELD = "csrf_token"
_SESSION_KEY = "csrf"
# No script at all: the console works without JavaScript, so a policy can forbid every script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Same-origin requests keep their Referer (the fallback of the same-origin check); others get none.
    "referrer-policy": "same-origin",
    # The pages hold customer addresses: nothing is kept in a shared cache or the browser's.
    "cache-control": "no-store",
}

Endpoint = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP answer (ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def csrf_token(request: Request) -> str:
    """This session's token, made on its first page."""
    token = request.session.get(_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_KEY] = token
    return token


class WriteRefused(HTTPException):
    """A write this console will not do: read-only, from another origin, or without the session's token."""


def writes(endpoint: Endpoint) -> Endpoint:
    """Wraps a route that changes something: it runs only for a same-origin request carrying the session's token."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        if request.app.state.read_only:
            raise WriteRefused(403, "This console was started with --read-only: it changes nothing.")
        if not same_origin(request):
            raise WriteRefused(403, "Refused: the request did not come from a page of this console.")
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        expected = request.session.get(_SESSION_KEY)
        if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            raise WriteRefused(403, "Refused: the form's token is missing or stale. Reload the page and try again.")
        return await endpoint(request)

    return guarded


def same_origin(request: Request) -> bool:
    """Origin (or, when a browser sends none, Referer) names this console's own scheme, host and port."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == own
    referer = request.headers.get("referer")
    return referer is not None and (referer == own or referer.startswith(own + "/"))
