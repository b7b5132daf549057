"""Structured logs: one JSON object per line, carrying the request, trace and try-on in context.

A request id and a trace id are set per request (from `X-Request-Id` / W3C `traceparent` when
the caller sends them); the trace id is stored on the try-on, so the worker's job lines and the
webhook attempts of that try-on carry it too (and the receiver gets it as `traceparent`).
Secrets and photo bytes are never logged: only ids, codes, counts and durations.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys
import time
from typing import Any

import msgspec

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
tryon_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tryon_id", default=None)
app_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("app", default=None)

_CONTEXT = (("requestId", request_id), ("traceId", trace_id), ("tryonId", tryon_id),
            ("app", app_id))  # fmt: skip
_encoder = msgspec.json.Encoder()


def new_trace_id() -> str:
    return secrets.token_hex(16)


def trace_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if valid."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
        except ValueError:
            return None
        return parts[1].lower()
    return None


def traceparent(trace: str) -> str:
    return f"00-{trace}-{secrets.token_hex(8)}-01"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                line[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; ours are logged with their outcome instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def event(logger: logging.Logger, msg: str, **fields: Any) -> None:
    logger.info(msg, extra={"fields": fields})


def since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
