"""What every response carries at the public edge: CORS for the apps' origins, and the
security headers a public endpoint should send.

Origins are per app, but a preflight carries no key, so it is answered for any origin some app
allows; the request itself is then checked against its own app's list (service/auth.py). Only
the browser-safe API (`/v1/`) is open to CORS; ops and docs pages are same-origin only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from service.auth import Authenticator

_ALLOW_HEADERS = b"authorization, content-type, x-tryon-token, idempotency-key, x-request-id"
_EXPOSE_HEADERS = b"retry-after, x-request-id, location, idempotent-replayed"
_PREFLIGHT_MAX_AGE = b"600"
# On every answer.
_SECURITY = (
    (b"x-content-type-options", b"nosniff"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
)
# Only documents (pages, docs) can be framed, open windows or send a Referer: API answers get
# the CSP's frame-ancestors instead, and each header costs uvicorn a per-request encode.
_DOCUMENT = (
    *_SECURITY,
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# API answers are data, never documents: nothing in them may load or run.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_API_TYPES = (b"application/json", b"text/event-stream")
_NO_STORE = (b"cache-control", b"no-store")


def browser_edge(auth: Callable[[], Authenticator]) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory; `auth` gives the app's Authenticator once it started."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            origin = None
            for name, value in scope["headers"]:
                if name == b"origin":
                    origin = value
                    break
            if not scope["path"].startswith("/v1/"):
                await app(scope, receive, _adding(send, _DOCUMENT))
                return
            granted = None  # the caller's origin, when some app allows it
            if origin is not None:
                if origin.decode("latin-1") in await auth().ring.allowed_origins():
                    granted = origin
                if scope["method"] == "OPTIONS":
                    await _preflight(send, granted)
                    return
            extra = _SECURITY if granted is None else _SECURITY + _cors(granted)

            async def send_api(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = message.get("headers", ())
                    # no-store and the CSP unless the route set its own (SSE sets no-store).
                    names = {name.lower() for name, _ in headers}
                    added = list(extra)
                    if b"cache-control" not in names:
                        added.append(_NO_STORE)
                    if b"content-security-policy" not in names and _is_data(headers):
                        added.append(_API_CSP)
                    message["headers"] = [*headers, *added]
                await send(message)

            await app(scope, receive, send_api)

        return middleware

    return wrap


def _adding(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    async def send_with(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return send_with


def _cors(origin: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", _EXPOSE_HEADERS),
        (b"vary", b"Origin"),
    )


def _is_data(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.startswith(_API_TYPES)
    return False


async def _preflight(send: Send, origin: bytes | None) -> None:
    """204 with the CORS grant for an allowed origin; 403 without one (the browser then
    refuses to send the request)."""
    headers = [*_SECURITY, (b"vary", b"Origin"), (b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", b"GET, POST, DELETE"),
            (b"access-control-allow-headers", _ALLOW_HEADERS),
            (b"access-control-max-age", _PREFLIGHT_MAX_AGE),
        ]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 204 if origin else 403,
        "headers": headers,
    }
    await send(start)
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(body)
