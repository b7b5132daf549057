"""What the sync and async clients share around httpx: settings, building a request from a
`Call`, reading its answer, mapping transport failures, and following an event stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from tryon_client import calls
from tryon_client.calls import Call
from tryon_client.errors import (
    ApiError,
    RequestTimeout,
    StreamError,
    TransportError,
    TryonError,
    api_error,
)
from tryon_client.models import TryOn
from tryon_client.retry import RetryPolicy
from tryon_client.sse import EventParser

T = TypeVar("T")

USER_AGENT = "tryon-gateway-client/0.1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    base_url: str
    secret_key: str
    timeout: float
    retry: RetryPolicy

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of httpx.Client / httpx.AsyncClient."""
        if not self.secret_key:
            raise ValueError("a secret key (sk_...) is required")
        return {
            "base_url": self.base_url.rstrip("/"),
            "headers": {"Authorization": f"Bearer {self.secret_key}", "User-Agent": USER_AGENT},
            # Every call has a timeout; connecting gets less of it than reading.
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
        }

    def request_options(self, call: Call[Any]) -> dict[str, Any]:
        """Keyword arguments of `build_request` for one attempt of `call`."""
        options: dict[str, Any] = {
            "params": call.params,
            "content": call.content(),
            "files": call.files,
            "data": call.data,
            "headers": call.request_headers(),
        }
        if call.read_timeout is not None:
            timeout = max(self.timeout, call.read_timeout)
            options["timeout"] = httpx.Timeout(timeout, connect=min(self.timeout, 10.0))
        return options

    def stream_options(self) -> dict[str, Any]:
        return {
            "headers": {"Accept": "text/event-stream"},
            "timeout": httpx.Timeout(calls.STREAM_READ_TIMEOUT, connect=min(self.timeout, 10.0)),
        }


def decode(call: Call[T], response: httpx.Response) -> T:
    if response.is_success:
        try:
            return msgspec.json.decode(response.content or b"null", type=call.answer)
        except msgspec.DecodeError as exc:
            raise TryonError(f"{call.method} {call.path}: unexpected answer ({exc})") from exc
    raise api_error(response.status_code, response.content, response.headers)


def transport_error(exc: httpx.TransportError) -> tuple[TransportError, bool]:
    """The client's error for an httpx failure, and whether the request may have been sent."""
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    kind = RequestTimeout if isinstance(exc, httpx.TimeoutException) else TransportError
    return kind(f"{type(exc).__name__}: {exc}"), sent


def wait_chunk(remaining: float) -> float:
    return min(remaining, calls.LONG_POLL_SECONDS)


class StreamReader:
    """Turns the lines of one or more connections to a try-on's event stream into its states:
    each status once, in order, ending with the terminal one. The gateway sends the current
    state first on every connection, so a reopened stream resumes where the last one broke."""

    _decoder = msgspec.json.Decoder(TryOn)

    def __init__(self) -> None:
        self.last: TryOn | None = None
        self._parser = EventParser()

    def connected(self) -> None:
        self._parser = EventParser()

    def feed(self, line: str) -> TryOn | None:
        """A new state of the try-on when `line` completes an event that brings one."""
        event = self._parser.feed(line)
        if event is None:
            return None
        try:
            tryon = self._decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise StreamError(f"an event was not a try-on ({exc})") from exc
        if self.last is not None and tryon.status == self.last.status:
            return None
        self.last = tryon
        return tryon

    @property
    def done(self) -> bool:
        return self.last is not None and self.last.is_terminal


def stream_failure(exc: Exception | None) -> TryonError:
    """What ended one connection of an event stream, for the retry policy: an error answer,
    a broken connection, or (None) a stream that closed before the try-on ended."""
    if isinstance(exc, TryonError):
        return exc
    if isinstance(exc, httpx.TransportError):
        return transport_error(exc)[0]
    return StreamError("the event stream ended before the try-on did")


def stream_given_up(error: TryonError) -> TryonError:
    """What `events()` raises once the policy stops reopening: an error answer as itself (a
    404 stays a NotFound), anything else as a StreamError."""
    if isinstance(error, ApiError | StreamError):
        return error
    return StreamError(f"the event stream broke: {error}")
