"""Typed async client for Genlook's Try-On API v1.

One shared ``httpx.AsyncClient`` with explicit timeouts and connection limits. Every call goes
through `GenlookClient._call`, which awaits the hooks, retries by the policy in `should_retry`
(idempotent calls on 429/5xx/transport errors; credit-spending creates only when the request
provably never reached the server or was rate limited) and maps failures to `errors`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from service.genlook.errors import (
    APIError,
    GenerationFailed,
    GenerationTimeout,
    GenlookError,
    InvalidResponse,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
    TransportError,
    api_error_from_response,
)
from service.genlook.models import (
    Credits,
    FilePart,
    Generation,
    Product,
    ProductPage,
    ProductUpsert,
    TryOnCreated,
    TryOnRequest,
    UploadedImage,
)

logger = logging.getLogger("service.genlook")

DEFAULT_BASE_URL: Final = "https://api.genlook.app/tryon/v1"
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0, pool=10.0)
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=50, max_keepalive_connections=20, keepalive_expiry=15.0
)
USER_AGENT: Final = "tryon-gateway-genlook/1"

T = TypeVar("T")


# --- hooks ------------------------------------------------------------------------------------


class Priority(IntEnum):
    """What an attempt is for, so a shared rate budget can favour starting work."""

    START = 0  # uploads, creates, upserts
    POLL = 1  # status reads
    OTHER = 2


class ClientHooks(Protocol):
    """Plug points for a fleet-wide rate budget and metrics. Awaited inline: keep them fast."""

    async def before_request(self, endpoint: str, priority: Priority) -> None:
        """Awaited before every attempt, retries included (e.g. take a budget token)."""

    async def after_response(self, endpoint: str, status: int | None, elapsed: float) -> None:
        """After every attempt; ``status`` is None when no HTTP answer came back."""

    async def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        """On every 429 (e.g. pause the whole fleet for ``retry_after``)."""


class NoopHooks:
    """The default hooks: do nothing."""

    async def before_request(self, endpoint: str, priority: Priority) -> None:
        return None

    async def after_response(self, endpoint: str, status: int | None, elapsed: float) -> None:
        return None

    async def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        return None


# --- endpoints and retry policy ---------------------------------------------------------------

Method = Literal["GET", "POST", "DELETE"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: Method
    priority: Priority
    idempotent: bool  # safe to send twice: retried on 5xx and on an unknown outcome


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    e.name: e
    for e in (
        Endpoint("upload_image", "POST", Priority.START, idempotent=True),
        Endpoint("create_try_on", "POST", Priority.START, idempotent=False),
        Endpoint("create_try_on_sync", "POST", Priority.START, idempotent=False),
        Endpoint("get_generation", "GET", Priority.POLL, idempotent=True),
        Endpoint("upsert_product", "POST", Priority.START, idempotent=True),
        Endpoint("list_products", "GET", Priority.OTHER, idempotent=True),
        Endpoint("get_product", "GET", Priority.OTHER, idempotent=True),
        Endpoint("delete_product", "DELETE", Priority.OTHER, idempotent=True),
        Endpoint("get_credits", "GET", Priority.OTHER, idempotent=True),
        Endpoint("delete_customer", "DELETE", Priority.OTHER, idempotent=True),
    )
}

# httpx failures that happen before a single byte of the request can have been sent.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)


def classify_transport_error(exc: httpx.TransportError) -> type[TransportError]:
    """`RequestNotSent` when the request provably never left; otherwise `OutcomeUnknown`
    (read/write timeouts and errors, protocol errors, dropped connections: the server may
    have received the request and acted on it)."""
    if isinstance(exc, _NOT_SENT):
        return RequestNotSent
    return OutcomeUnknown


def should_retry(endpoint: Endpoint, error: GenlookError) -> bool:
    """Whether a failed attempt may be sent again (attempt budget aside).

    Anything may be resent when the server provably did not act: the request was never sent,
    or it was refused by the rate limiter (429). Beyond that only idempotent calls are resent:
    on 5xx and on an unknown outcome. A create (it spends a credit) never is.
    """
    if isinstance(error, RequestNotSent):
        return True
    if isinstance(error, APIError) and error.status == 429:
        return True
    if not endpoint.idempotent:
        return False
    if isinstance(error, OutcomeUnknown):
        return True
    return isinstance(error, APIError) and error.status >= 500


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2**attempt))``."""

    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class _Secret:
    """Holds the API key; never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def encode_segment(value: str) -> str:
    """Percent-encode one path segment (``/`` becomes ``%2F``; ``.``/``..`` are escaped too,
    so no URL normaliser can treat them as dot segments)."""
    if not value:
        raise ValueError("an id must be a non-empty string")
    encoded = quote(value, safe="")
    if encoded in {".", ".."}:
        encoded = encoded.replace(".", "%2E")
    return encoded


# --- the client -------------------------------------------------------------------------------


class GenlookClient:
    """Async client for ``https://api.genlook.app/tryon/v1``.

    Use as ``async with GenlookClient(key) as gl: ...`` or call `aclose`.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        hooks: ClientHooks | None = None,
        sync_timeout: float = 100.0,
        backoff: Backoff | None = None,
        max_retry_wait: float = 60.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._key = _Secret(api_key)
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._sync_timeout = httpx.Timeout(
            connect=timeout.connect, read=sync_timeout, write=timeout.write, pool=timeout.pool
        )
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.max_retry_wait = max_retry_wait
        self._hooks: ClientHooks = hooks or NoopHooks()
        self._rng = random.Random()
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"x-api-key": api_key, "user-agent": USER_AGENT, "accept": "application/json"},
            timeout=timeout,
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"GenlookClient(base_url={self._base_url!r}, api_key='***')"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def __aenter__(self) -> GenlookClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- images -------------------------------------------------------------------------------

    async def upload_image(
        self,
        data: bytes,
        *,
        filename: str,
        content_type: str,
        crop: bool = True,
        external_user_id: str | None = None,
        keep_for_days: int | None = None,
    ) -> UploadedImage:
        """``POST /images/upload``: a person photo (multipart) -> ``imageId``."""
        form: dict[str, str] = {"crop": "true" if crop else "false"}
        if external_user_id is not None:
            form["externalUserId"] = external_user_id
        if keep_for_days is not None:
            form["keepForDays"] = str(keep_for_days)
        response = await self._call(
            "upload_image",
            "/images/upload",
            data=form,
            files={"file": (filename, data, content_type)},
        )
        return self._decode(response, "upload_image", UploadedImage)

    # --- try-ons ------------------------------------------------------------------------------

    async def create_try_on(
        self, req: TryOnRequest, *, files: Mapping[str, FilePart] | None = None
    ) -> TryOnCreated:
        """``POST /try-on``: start a generation (spends a credit). Never resent once it may have
        reached the server: a lost answer raises `OutcomeUnknown`."""
        response = await self._call("create_try_on", "/try-on", **self._body(req, files))
        return self._decode(response, "create_try_on", TryOnCreated)

    async def create_try_on_sync(
        self, req: TryOnRequest, *, files: Mapping[str, FilePart] | None = None
    ) -> Generation:
        """``POST /try-on/sync``: the generation as it stands when the server answers (200 with
        a terminal status, or 202 still running). Same retry rules as `create_try_on`."""
        response = await self._call(
            "create_try_on_sync",
            "/try-on/sync",
            request_timeout=self._sync_timeout,
            **self._body(req, files),
        )
        return self._decode(response, "create_try_on_sync", Generation)

    async def get_generation(self, generation_id: str) -> Generation:
        """``GET /generations/:id``."""
        response = await self._call(
            "get_generation", f"/generations/{encode_segment(generation_id)}"
        )
        return self._decode(response, "get_generation", Generation)

    async def wait_for_generation(
        self,
        generation_id: str,
        *,
        timeout: float = 180.0,  # noqa: ASYNC109 - a deadline over many calls, not one
        poll_interval: float = 2.0,
    ) -> Generation:
        """Poll until COMPLETED (returned) or FAILED (`GenerationFailed`); `GenerationTimeout`
        when neither happens within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: Generation | None = None
        while True:
            last = await self.get_generation(generation_id)
            if last.status == "COMPLETED":
                return last
            if last.status == "FAILED":
                raise GenerationFailed(last)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenerationTimeout(generation_id, timeout, last)
            await self._sleep(min(poll_interval, remaining))

    # --- products -----------------------------------------------------------------------------

    async def upsert_product(
        self, product: ProductUpsert, *, files: Mapping[str, FilePart] | None = None
    ) -> Product:
        """``POST /products``: create or update (JSON, or multipart when files are given)."""
        response = await self._call("upsert_product", "/products", **self._body(product, files))
        return self._decode(response, "upsert_product", Product)

    async def list_products(self, limit: int = 50, cursor: str | None = None) -> ProductPage:
        """``GET /products``: one page (``limit`` 1-200)."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._call("list_products", "/products", params=params)
        return self._decode(response, "list_products", ProductPage)

    async def iter_products(self, *, page_size: int = 50) -> AsyncIterator[Product]:
        """Every listed product, following ``nextCursor`` across pages."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_products(limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            if page.next_cursor in seen:
                raise InvalidResponse(
                    "pagination cursor repeated", endpoint="list_products", status=200
                )
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def get_product(self, external_id: str) -> Product:
        """``GET /products/:externalId``."""
        response = await self._call("get_product", f"/products/{encode_segment(external_id)}")
        return self._decode(response, "get_product", Product)

    async def delete_product(self, external_id: str) -> None:
        """``DELETE /products/:externalId``."""
        await self._call("delete_product", f"/products/{encode_segment(external_id)}")

    # --- account and customers ----------------------------------------------------------------

    async def get_credits(self) -> Credits:
        """``GET /account/credits``."""
        response = await self._call("get_credits", "/account/credits")
        return self._decode(response, "get_credits", Credits)

    async def delete_customer(self, external_user_id: str) -> None:
        """``DELETE /customers/:customerId``: GDPR erase (idempotent)."""
        await self._call("delete_customer", f"/customers/{encode_segment(external_user_id)}")

    # --- low level ----------------------------------------------------------------------------

    async def request_raw(
        self,
        endpoint: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        files: Mapping[str, FilePart] | None = None,
    ) -> Any:
        """Send a raw body to ``path`` under the rules (method, retries, hooks) of ``endpoint``:
        JSON, or with ``files`` multipart (``body`` then goes in form field ``data``). Returns
        the decoded JSON (None for an empty body). For shapes the typed methods do not produce,
        e.g. the deprecated singular ``product``."""
        if files:
            response = await self._call(
                endpoint,
                path,
                params=params,
                data=None if body is None else {"data": msgspec.json.encode(body).decode()},
                files={key: (f.filename, f.data, f.content_type) for key, f in files.items()},
            )
        else:
            content = None if body is None else msgspec.json.encode(body)
            response = await self._call(endpoint, path, content=content, params=params)
        if not response.content:
            return None
        try:
            return msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise InvalidResponse(
                "body is not JSON", endpoint=endpoint, status=response.status_code
            ) from exc

    # --- internals ----------------------------------------------------------------------------

    @staticmethod
    def _body(payload: msgspec.Struct, files: Mapping[str, FilePart] | None) -> dict[str, Any]:
        """JSON body, or multipart with the JSON in form field ``data`` plus one part per file."""
        encoded = msgspec.json.encode(payload)
        if not files:
            return {"content": encoded}
        return {
            "data": {"data": encoded.decode()},
            "files": {key: (f.filename, f.data, f.content_type) for key, f in files.items()},
        }

    def _decode(self, response: httpx.Response, endpoint: str, type_: type[T]) -> T:
        try:
            return msgspec.json.decode(response.content, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidResponse(
                self._scrub(f"unexpected body: {exc}"),
                endpoint=endpoint,
                status=response.status_code,
            ) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.get(), "***")

    async def _call(
        self,
        endpoint: str,
        path: str,
        *,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        params: Mapping[str, str | int] | None = None,
        request_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One logical call: attempts, hooks, logging, retries, error mapping."""
        spec = ENDPOINTS[endpoint]
        headers = {"content-type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            await self._hooks.before_request(endpoint, spec.priority)
            started = time.monotonic()
            error: GenlookError
            try:
                response = await self._http.request(
                    spec.method,
                    path,
                    content=content,
                    data=data,
                    files=files,
                    params=params,
                    headers=headers,
                    timeout=request_timeout if request_timeout is not None else self._timeout,
                )
            except httpx.TransportError as exc:
                elapsed = time.monotonic() - started
                await self._hooks.after_response(endpoint, None, elapsed)
                kind = classify_transport_error(exc)
                error = kind(self._scrub(f"{type(exc).__name__}: {exc}"), endpoint=endpoint)
                logger.debug(
                    "genlook %s attempt=%d status=- elapsed=%.3fs error=%s",
                    endpoint,
                    attempt + 1,
                    elapsed,
                    kind.__name__,
                )
                cause: BaseException | None = exc
            else:
                elapsed = time.monotonic() - started
                status = response.status_code
                await self._hooks.after_response(endpoint, status, elapsed)
                logger.debug(
                    "genlook %s attempt=%d status=%d elapsed=%.3fs",
                    endpoint,
                    attempt + 1,
                    status,
                    elapsed,
                )
                if response.is_success:
                    return response
                error = api_error_from_response(
                    status=status,
                    body=response.content.replace(self._key.get().encode(), b"***"),
                    headers=response.headers,
                    endpoint=endpoint,
                    reason=response.reason_phrase,
                )
                cause = None
                if status == 429:
                    retry_after = error.retry_after if isinstance(error, RateLimited) else None
                    await self._hooks.on_rate_limited(endpoint, retry_after)

            if attempt >= self.max_retries or not should_retry(spec, error):
                raise error from cause
            delay = self.backoff.delay(attempt, self._rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                if error.retry_after > self.max_retry_wait:
                    raise error
                delay = max(delay, error.retry_after)
            attempt += 1
            await self._sleep(delay)


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "ENDPOINTS",
    "Backoff",
    "ClientHooks",
    "Endpoint",
    "GenlookClient",
    "NoopHooks",
    "Priority",
    "classify_transport_error",
    "encode_segment",
    "should_retry",
]
