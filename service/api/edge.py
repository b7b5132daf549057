"""The gateway's outermost layer: what every response carries at the public edge (CORS for the
apps' origins, the security headers a public endpoint should send, `X-Request-Id`) and the
access line when it is done.

It wraps Litestar's own ASGI handler, where Litestar puts its CORS middleware, so it also sees
requests no route matched. One layer with one `send` wrapper on purpose: each ASGI layer costs a
coroutine and a closure per request on the hottest paths (docs/benchmarks.md §3).

Origins are per app, but a preflight carries no key, so it is answered for any origin some app
allows; the request itself is then checked against its own app's list (service/auth.py). Only
the browser-safe API (`/v1/`) is open to CORS; ops and docs pages are same-origin only.
"""

from __future__ import annotations

import time
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

from service.access.keyring import KeyRing
from service.api import request_log

Header = tuple[bytes, bytes]

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


def edge(app: ASGIApp, ring: Callable[[], KeyRing], *, access_log: bool) -> ASGIApp:
    """Wrap `app` (Litestar's ASGI handler); `ring` gives the app's key ring once it started."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        origin = given = trace_header = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"x-request-id":
                given = value
            elif name == b"traceparent":
                trace_header = value
        rid, trace = request_log.correlate(given, trace_header)
        added: tuple[Header, ...] = ((b"x-request-id", rid.encode()),)
        status = 500
        started = time.perf_counter()
        try:
            api = scope["path"].startswith("/v1/")
            if not api:
                added += _DOCUMENT
            else:
                added += _SECURITY
                granted = None  # the caller's origin, when some app allows it
                if origin is not None:
                    if origin.decode("latin-1") in await ring().allowed_origins():
                        granted = origin
                    if scope["method"] == "OPTIONS":
                        status = await _preflight(send, granted, added)
                        return
                if granted is not None:
                    added += _cors(granted)

            async def send_with(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = message.get("headers", ())
                    extra = _api_defaults(headers) if api else ()
                    message["headers"] = [*headers, *added, *extra]
                await send(message)

            await app(scope, receive, send_with)
        finally:
            if access_log:
                request_log.access(scope, rid, trace, status, started)

    return layer


def _api_defaults(headers: Iterable[Header]) -> tuple[Header, ...]:
    """no-store, and the CSP on data, unless the route set its own (SSE sets no-store)."""
    cache = csp = False
    data = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-type":
            data = value.startswith(_API_TYPES)
        elif lowered == b"cache-control":
            cache = True
        elif lowered == b"content-security-policy":
            csp = True
    if data and not csp:
        return (_API_CSP,) if cache else (_NO_STORE, _API_CSP)
    return () if cache else (_NO_STORE,)


def _cors(origin: bytes) -> tuple[Header, ...]:
    return (
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", _EXPOSE_HEADERS),
        (b"vary", b"Origin"),
    )


async def _preflight(send: Send, origin: bytes | None, added: tuple[Header, ...]) -> int:
    """204 with the CORS grant for an allowed origin; 403 without one (the browser then
    refuses to send the request). Returns the status."""
    headers = [*added, (b"vary", b"Origin"), (b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", b"GET, POST, DELETE"),
            (b"access-control-allow-headers", _ALLOW_HEADERS),
            (b"access-control-max-age", _PREFLIGHT_MAX_AGE),
        ]
    status = 204 if origin else 403
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(body)
    return status
