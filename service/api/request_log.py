"""One log line per request, and the request's ids in context for every line it causes."""

from __future__ import annotations

import random
import re
import time

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
        # Correlation ids, not secrets: a fast PRNG instead of urandom syscalls, and one draw
        # for both (16 hex digits of request id, 32 of trace id).
        ids = f"{_rng.getrandbits(192):048x}"
        rid = given if given and _SAFE_ID.match(given) else ids[:16]
        trace = logs.trace_from(trace_header) or ids[16:]
        logs.request_id.set(rid)
        logs.trace_id.set(trace)
        # Usually unset already (a server runs each request in a fresh context); a set costs
        # more than a get.
        if logs.app_id.get() is not None:
            logs.app_id.set(None)
        if logs.tryon_id.get() is not None:
            logs.tryon_id.set(None)
        rid_header = (b"x-request-id", rid.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            logs.access(request=rid, trace=trace, method=scope["method"],
                        route=scope.get("path_template") or scope.get("path"), status=status,
                        ms=logs.since(started))  # fmt: skip

    return middleware
