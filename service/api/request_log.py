"""One log line per request, and the request's ids in context for every line it causes."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import logs

_log = logging.getLogger("service.request")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_log(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: sets request id and trace id, answers with `X-Request-Id`, logs the
    method, route, status and duration when the response is done."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else secrets.token_hex(8)
        trace = logs.trace_from(headers.get(b"traceparent", b"").decode("latin-1"))
        logs.request_id.set(rid)
        logs.trace_id.set(trace or logs.new_trace_id())
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
            logs.event(_log, "request", method=scope.get("method"), route=route, status=status,
                       ms=logs.since(started))  # fmt: skip

    return middleware
