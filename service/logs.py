"""Structured logs: one JSON object per line, carrying the request, trace and try-on in context.

A request id and a trace id are set per request (from `X-Request-Id` / W3C `traceparent` when
the caller sends them); the trace id is stored on the try-on, so the worker's job lines and the
webhook attempts of that try-on carry it too (and the receiver gets it as `traceparent`).
Secrets and photo bytes are never logged: only ids, codes, counts and durations.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import secrets
import sys
import threading
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


class LineWriter:
    """Whole lines to stderr, batched: one write call per flush instead of one per line.

    Every line of the process goes through here (the logging handler and the access log), so
    lines never interleave mid-line. A daemon thread flushes every `interval`; so does exit.
    A killed process loses at most that interval of lines."""

    def __init__(self, fd: int, interval: float = 0.1) -> None:
        self._fd = fd
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="log-flush", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def write(self, line: bytes) -> None:
        self._lines.append(line)  # list.append is atomic under the GIL

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            data = b"".join(lines)
            while data:
                try:
                    written = os.write(self._fd, data)
                except OSError:
                    return
                data = data[written:]

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            self.flush()


class _Handler(logging.Handler):
    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write(self.format(record).encode() + b"\n")
        except Exception:  # a log line must never break the caller
            self.handleError(record)


_writer: LineWriter | None = None


class _AccessLine(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """The per-request line: the same keys, in the same order, as a JsonFormatter line with
    the request's context; a None context field is left out, as there."""

    ts: float
    level: str
    logger: str
    msg: str
    request_id: str | None = None
    trace_id: str | None = None
    tryon_id: str | None = None
    app: str | None = None
    method: str | None = None
    route: str | None = None
    status: int
    ms: float


def access(
    *, request: str, trace: str, method: str | None, route: str | None, status: int, ms: float
) -> None:
    """The per-request line, without the logging module's per-record cost: one Struct encoded
    by msgspec in one call (a dict filled field by field cost ~1 µs more)."""
    if _writer is None:
        return
    line = _AccessLine(
        ts=round(time.time() * 1000) / 1000,  # round(t, 3) formats and parses a string
        level="info",
        logger="service.request",
        msg="request",
        request_id=request,
        trace_id=trace,
        tryon_id=tryon_id.get(),
        app=app_id.get(),
        method=method,
        route=route,
        status=status,
        ms=ms,
    )
    _writer.write(_encoder.encode(line) + b"\n")


def configure(level: int = logging.INFO) -> None:
    global _writer  # noqa: PLW0603 - one writer per process, made once
    if _writer is None:
        _writer = LineWriter(sys.stderr.fileno())
    handler = _Handler(_writer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; ours are logged with their outcome instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def event(logger: logging.Logger, msg: str, **fields: Any) -> None:
    logger.info(msg, extra={"fields": fields})


def since(started: float) -> float:
    """Milliseconds since `started` (perf_counter), to 2 decimals."""
    return round((time.perf_counter() - started) * 100_000) / 100
