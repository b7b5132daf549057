"""Everything that happens to a /tryon/v1 request before its handler: counting, 429 storms,
injected faults, authentication and the rate limit. None of these rejections has side effects.

Faults act on the connection itself (hang, close without a response, close mid-body), which
ASGI cannot express; uvicorn's `receive` is a bound method of its request cycle, which holds the
transport, and closing that transport is what a real network failure looks like to the client.
"""

from __future__ import annotations

import asyncio
import contextlib

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import ApiError
from emulator.faults import Fault
from emulator.ratelimit import format_retry_after
from emulator.runtime import Runtime

API_KEY_HEADER = b"x-api-key"


def rate_limited(retry_after: str) -> ApiError:
    return ApiError(
        429,
        "RATE_LIMITED",
        "Too many requests: the limit is per minute per account.",
        headers={"Retry-After": retry_after},
    )


async def respond(send: Send, error: ApiError) -> None:
    body = error.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _drain_body(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def drop_connection(receive: Receive) -> None:
    """Close the client's connection, flushing whatever was already sent."""
    cycle = getattr(receive, "__self__", None)
    # Duck-typed: uvloop's transports do not derive from asyncio.BaseTransport.
    close = getattr(getattr(cycle, "transport", None), "close", None)
    if not callable(close):
        raise RuntimeError("dropping connections needs uvicorn")
    close()
    # Once uvicorn sees the connection lost it neither logs nor answers for us.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), timeout=2.0)


class _Held:
    """Holds a response back so it can be sent truncated."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            self.headers = [(k, v) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def send_truncated(self, send: Send) -> None:
        if not self.started or not self.body:
            return
        headers = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})


class Guard(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        endpoint = scope["route_handler"].opt.get("endpoint")
        if not isinstance(endpoint, str):
            await next_app(scope, receive, send)
            return
        rt = self._rt
        rt.counters.requests[endpoint] += 1
        storm = rt.faults.storm_retry_after()
        if storm is not None:
            rt.counters.storm_rejected += 1
            await respond(send, rate_limited(format_retry_after(storm)))
            return
        fault = rt.faults.take(endpoint)
        if fault is not None:
            rt.counters.faults_injected += 1
            if fault.latency > 0:
                await asyncio.sleep(fault.latency)
            if await self._intercept(fault, receive, send):
                return
        error = None if scope["route_handler"].opt.get("public") else self._admit(scope)
        if error is not None:
            await respond(send, error)
            return
        if fault is not None and fault.mode == "drop_after":
            held = _Held()
            await next_app(scope, receive, held)
            if held.status < 400:
                rt.counters.processed[endpoint] += 1
            await held.send_truncated(send)
            await drop_connection(receive)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await next_app(scope, receive, watch)
        if status < 400:
            rt.counters.processed[endpoint] += 1

    async def _intercept(self, fault: Fault, receive: Receive, send: Send) -> bool:
        """Act out a fault that stops the request; True when the request must not go on."""
        if fault.mode == "error":
            headers = {"Retry-After": "1"} if fault.status == 429 else {}
            message = f"Injected fault ({fault.id})."
            await respond(send, ApiError(fault.status, fault.code, message, headers=headers))
            return True
        if fault.mode == "drop":
            # Read the body first: closing with unread data makes the kernel send a reset.
            await _drain_body(receive)
            await drop_connection(receive)
            return True
        if fault.mode == "timeout":
            await self._hang(receive)
            return True
        return False

    async def _hang(self, receive: Receive) -> None:
        """Never answer: wait for the client to give up, or for a reset to release us."""
        released = asyncio.ensure_future(self._rt.faults.release.wait())
        gone = asyncio.ensure_future(_until_disconnect(receive))
        done, _ = await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (released, gone):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if gone not in done:
            await drop_connection(receive)

    def _admit(self, scope: Scope) -> ApiError | None:
        rt = self._rt
        key = next((v for k, v in scope["headers"] if k == API_KEY_HEADER), None)
        if key is None:
            rt.counters.unauthorized += 1
            return ApiError(401, "MISSING_API_KEY", "Missing `x-api-key` header.")
        account = rt.store.accounts.get(key.decode("latin-1"))
        if account is None:
            rt.counters.unauthorized += 1
            return ApiError(401, "INVALID_API_KEY", "Invalid API key.")
        wait = rt.limiter.admit(account.api_key, account.rate_limit)
        if wait is not None:
            rt.counters.rate_limited += 1
            real = rt.clock.to_real(wait)
            return rate_limited(format_retry_after(real))
        return None
