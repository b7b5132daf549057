"""A request's ids, in context for every line it causes, and its access line when it is done.
Called by the outermost layer (service/api/edge.py)."""

from __future__ import annotations

import random
import re

from litestar.types import HTTPScope

from service import logs

_rng = random.Random()
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def correlate(given: bytes | None, traceparent: bytes | None) -> tuple[str, str]:
    """(request id, trace id): the caller's `X-Request-Id` when it is a safe token and the trace
    of its W3C `traceparent`, else fresh ones; both set in the logging context."""
    # Correlation ids, not secrets: a fast PRNG instead of urandom syscalls, and one draw for
    # both (16 hex digits of request id, 32 of trace id).
    ids = f"{_rng.getrandbits(192):048x}"
    rid = ids[:16]
    if given:
        text = given.decode("latin-1")
        if _SAFE_ID.match(text):
            rid = text
    trace = (traceparent and logs.trace_from(traceparent.decode("latin-1"))) or ids[16:]
    logs.request_id.set(rid)
    logs.trace_id.set(trace)
    # Usually unset already (a server runs each request in a fresh context); a set costs more
    # than a get.
    if logs.app_id.get() is not None:
        logs.app_id.set(None)
    if logs.tryon_id.get() is not None:
        logs.tryon_id.set(None)
    return rid, trace


def access(scope: HTTPScope, rid: str, trace: str, status: int, started: float) -> None:
    """The access line: method, route (its template when a route matched), status, duration."""
    logs.access(request=rid, trace=trace, method=scope["method"],
                route=scope.get("path_template") or scope.get("path"), status=status,
                ms=logs.since(started))  # fmt: skip
