"""One log line per request, and the request's ids in context for every line it causes."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import logs

_rng = random.Random()
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_log(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: sets request id and trace id, answers with `X-Request-Id`, logs the
    method, route, status and duration when the response is done."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = trace_header = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
            elif name == b"traceparent":
                trace_header = value.decode("latin-1")
        # Correlation ids, not secrets: a fast PRNG instead of two urandom syscalls a request.
        rid = given if given and _SAFE_ID.match(given) else f"{_rng.getrandbits(64):016x}"
        trace = logs.trace_from(trace_header)
        logs.request_id.set(rid)
        logs.trace_id.set(trace or f"{_rng.getrandbits(128):032x}")
        logs.app_id.set(None)
        logs.tryon_id.set(None)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            route: Any = scope.get("path_template") or scope.get("path")
            logs.access(method=scope.get("method"), route=route, status=status,
                        ms=logs.since(started))  # fmt: skip

    return middleware
