"""The whole run, scanned for the Genlook key: every HTTP response the tests receive (status
line aside: headers and body, streamed bodies included), every log record of in-process apps,
and every log file the gateways and workers started by the tests wrote.

The key is a credit card: no response of ours and no log line may ever carry it. Responses
from the emulator itself (it *is* Genlook, talking to its account holder) are not ours and are
skipped. Findings fail the run at its end (tests/conftest.py `pytest_sessionfinish`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from service import logs


class KeyScan:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(s.encode() for s in secrets if s)
        self.findings: list[str] = []
        self.scanned = {"responses": 0, "log records": 0, "log files": 0}
        self._skip_origins: list[str] = []
        # Where processes started by the tests log: pytest's base temp directory once the run
        # has one (kept after the run, for debugging), a temp directory before.
        self.log_root: Callable[[], Path] = lambda: Path(tempfile.mkdtemp(prefix="tryon-logs-"))
        self._undo: list[tuple[Any, str, Any]] = []

    def skip_origin(self, origin: str) -> None:
        self._skip_origins.append(origin.rstrip("/"))

    def new_log_dir(self) -> str:
        return tempfile.mkdtemp(prefix="stack-", dir=self.log_root())

    def check(self, where: str, data: bytes) -> None:
        for secret in self.secrets:
            if secret in data:
                self.findings.append(f"{where}: contains the Genlook key")

    # --- responses ------------------------------------------------------------------------------
    def _ours(self, response: httpx.Response) -> bool:
        url = str(response.request.url)
        return not any(url.startswith(origin) for origin in self._skip_origins)

    def check_response(self, response: httpx.Response) -> None:
        if not self._ours(response):
            return
        self.scanned["responses"] += 1
        where = f"{response.request.method} {response.request.url}"
        self.check(f"{where} headers", b"\n".join(k + b": " + v for k, v in response.headers.raw))
        if hasattr(response, "_content"):  # read inside send() (not a streamed request)
            self.check(f"{where} body", response.content)
        elif isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _ScanningAsyncStream(response.stream, self, where)
        elif isinstance(response.stream, httpx.SyncByteStream):
            response.stream = _ScanningSyncStream(response.stream, self, where)

    def install(self) -> None:
        scan = self

        original_async = httpx.AsyncClient.send
        original_sync = httpx.Client.send

        async def async_send(client: httpx.AsyncClient, *args: Any, **kwargs: Any) -> Any:
            response = await original_async(client, *args, **kwargs)
            scan.check_response(response)
            return response

        def sync_send(client: httpx.Client, *args: Any, **kwargs: Any) -> Any:
            response = original_sync(client, *args, **kwargs)
            scan.check_response(response)
            return response

        self._undo += [
            (httpx.AsyncClient, "send", original_async),
            (httpx.Client, "send", original_sync),
        ]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        # In-process apps write every line (logging records and access lines) through the one
        # LineWriter of service/logs.py; the logging handler sees records logged before an app
        # configured logging (configure() then replaces the root handlers).
        original_write = logs.LineWriter.write

        def write(writer: logs.LineWriter, line: bytes) -> None:
            scan.scanned["log records"] += 1
            scan.check("in-process log line", line)
            original_write(writer, line)

        self._undo.append((logs.LineWriter, "write", original_write))
        logs.LineWriter.write = write  # type: ignore[method-assign]
        handler = _ScanningHandler(self)
        logging.getLogger().addHandler(handler)
        self._undo.append((logging.getLogger(), "removeHandler", handler))

    def uninstall(self) -> None:
        for target, name, value in reversed(self._undo):
            if name == "removeHandler":
                target.removeHandler(value)
            else:
                setattr(target, name, value)
        self._undo.clear()

    # --- log files ------------------------------------------------------------------------------
    def scan_files(self, roots: Iterable[Path]) -> None:
        for root in roots:
            if not root.exists():
                continue
            for path in root.rglob("*.log"):
                self.scanned["log files"] += 1
                self.check(str(path), path.read_bytes())

    def finish(self, roots: Iterable[Path]) -> list[str]:
        self.uninstall()
        self.scan_files(roots)
        return self.findings


class _ScanningHandler(logging.Handler):
    def __init__(self, scan: KeyScan) -> None:
        super().__init__(level=logging.DEBUG)
        self.scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        self.scan.scanned["log records"] += 1
        text = [record.getMessage(), repr(getattr(record, "fields", ""))]
        if record.exc_info:
            text.append(logging.Formatter().formatException(record.exc_info))
        self.scan.check(f"log record {record.name}", "\n".join(text).encode())


class _Tail:
    """Chunks joined with the end of the previous one, so a key split across chunks is seen."""

    def __init__(self, scan: KeyScan, where: str) -> None:
        self.scan = scan
        self.where = where
        self.keep = max((len(s) for s in scan.secrets), default=1)
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        joined = self.tail + chunk
        self.scan.check(f"{self.where} body", joined)
        self.tail = joined[-self.keep :]


class _ScanningAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, scan: KeyScan, where: str) -> None:
        self.inner = inner
        self.tail = _Tail(scan, where)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.tail.feed(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _ScanningSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, scan: KeyScan, where: str) -> None:
        self.inner = inner
        self.tail = _Tail(scan, where)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.tail.feed(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()
