"""GenlookClient logic over httpx.MockTransport: retries, classification, paths, bodies,
hooks, redaction. The contract tests (tests/contract) prove the same over real HTTP."""

from __future__ import annotations

import email.parser
import email.policy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from service.genlook import (
    ENDPOINTS,
    APIError,
    Backoff,
    FilePart,
    GenerationFailed,
    GenerationTimeout,
    GenlookClient,
    InvalidResponse,
    OutcomeUnknown,
    Output,
    Person,
    Priority,
    ProductImage,
    ProductInput,
    ProductNotFound,
    ProductUpsert,
    RateLimited,
    RequestNotSent,
    ServerError,
    TryOnRequest,
    classify_transport_error,
    encode_segment,
    should_retry,
)

KEY = "gk_unit_secret_key_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
BASE = "http://genlook.test/tryon/v1"
NOW = "2026-03-30T10:00:00.000Z"

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Hooks that record every call."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    async def before_request(self, endpoint: str, priority: Priority) -> None:
        self.events.append(("before", endpoint, priority))

    async def after_response(self, endpoint: str, status: int | None, elapsed: float) -> None:
        assert elapsed >= 0
        self.events.append(("after", endpoint, status))

    async def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        self.events.append(("rate_limited", endpoint, retry_after))


@dataclass
class Harness:
    client: GenlookClient
    requests: list[httpx.Request]
    sleeps: list[float]
    hooks: Recorder


def make(handler: Handler, **kw: Any) -> Harness:
    requests: list[httpx.Request] = []
    sleeps: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        requests.append(request)
        return handler(request)

    hooks = Recorder()
    client = GenlookClient(
        KEY,
        BASE,
        transport=httpx.MockTransport(record),
        hooks=hooks,
        backoff=kw.pop("backoff", Backoff(base=0.01, cap=0.02)),
        **kw,
    )

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client._sleep = fake_sleep
    return Harness(client, requests, sleeps, hooks)


def gen(status: str = "PENDING", **extra: Any) -> dict[str, Any]:
    return {"generationId": "gen_1", "status": status, "createdAt": NOW, "updatedAt": NOW, **extra}


def err(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        json={"code": code, "message": f"{code} happened", "status": status},
        headers=headers,
    )


def sequence(*items: httpx.Response | Exception) -> Handler:
    it = iter(items)

    def handler(request: httpx.Request) -> httpx.Response:
        item = next(it)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def req() -> TryOnRequest:
    return TryOnRequest(
        products=[ProductInput(external_id="shirt-42")], person=Person.from_image_id("img_1")
    )


# --- pure policy ------------------------------------------------------------------------------

R = httpx.Request("GET", "http://x")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused", request=R), RequestNotSent),
        (httpx.ConnectTimeout("t", request=R), RequestNotSent),
        (httpx.PoolTimeout("t", request=R), RequestNotSent),
        (httpx.ProxyError("p", request=R), RequestNotSent),
        (httpx.UnsupportedProtocol("u", request=R), RequestNotSent),
        (httpx.ReadTimeout("t", request=R), OutcomeUnknown),
        (httpx.WriteTimeout("t", request=R), OutcomeUnknown),
        (httpx.ReadError("r", request=R), OutcomeUnknown),
        (httpx.WriteError("w", request=R), OutcomeUnknown),
        (httpx.RemoteProtocolError("server disconnected", request=R), OutcomeUnknown),
        (httpx.LocalProtocolError("l", request=R), OutcomeUnknown),
        (httpx.CloseError("c", request=R), OutcomeUnknown),
    ],
)
def test_classify_transport_error(exc: httpx.TransportError, kind: type) -> None:
    assert classify_transport_error(exc) is kind


NOT_SENT = RequestNotSent("x", endpoint="e")
UNKNOWN = OutcomeUnknown("x", endpoint="e")
E429 = RateLimited(status=429, code="RATE_LIMITED", message="m", endpoint="e")
E500 = ServerError(status=500, code="INTERNAL_ERROR", message="m", endpoint="e")
E503 = ServerError(status=503, code=None, message="m", endpoint="e")
E404 = ProductNotFound(status=404, code="PRODUCT_NOT_FOUND", message="m", endpoint="e")
E400 = APIError(status=400, code=None, message="m", endpoint="e")

IDEMPOTENT = [
    "upload_image",
    "get_generation",
    "upsert_product",
    "list_products",
    "get_product",
    "delete_product",
    "get_credits",
    "delete_customer",
]
CREATES = ["create_try_on", "create_try_on_sync"]


@pytest.mark.parametrize("endpoint", IDEMPOTENT + CREATES)
@pytest.mark.parametrize(
    ("error", "idempotent_retries", "create_retries"),
    [
        (NOT_SENT, True, True),
        (E429, True, True),
        (UNKNOWN, True, False),
        (E500, True, False),
        (E503, True, False),
        (E404, False, False),
        (E400, False, False),
    ],
)
def test_retry_table(
    endpoint: str, error: Exception, idempotent_retries: bool, create_retries: bool
) -> None:
    expected = create_retries if endpoint in CREATES else idempotent_retries
    assert should_retry(ENDPOINTS[endpoint], error) is expected  # type: ignore[arg-type]


def test_endpoint_table() -> None:
    assert set(ENDPOINTS) == set(IDEMPOTENT + CREATES)
    assert {n for n, e in ENDPOINTS.items() if e.priority is Priority.START} == {
        "upload_image",
        "create_try_on",
        "create_try_on_sync",
        "upsert_product",
    }
    assert ENDPOINTS["get_generation"].priority is Priority.POLL
    assert not ENDPOINTS["create_try_on"].idempotent


def test_backoff_full_jitter_bounds() -> None:
    import random

    b = Backoff(base=0.5, cap=8.0)
    rng = random.Random(1)
    for attempt in range(10):
        bound = min(8.0, 0.5 * 2**attempt)
        values = [b.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= v <= bound for v in values)
        assert max(values) > bound / 2  # actually jittered over the range


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("shirt-42", "shirt-42"),
        ("a/b", "a%2Fb"),
        (
            "ephemeral/customer/ttl-7d/x/20260512-1.jpeg",
            "ephemeral%2Fcustomer%2Fttl-7d%2Fx%2F20260512-1.jpeg",
        ),
        ("sp ace?#&%", "sp%20ace%3F%23%26%25"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("é", "%C3%A9"),
    ],
)
def test_encode_segment(raw: str, encoded: str) -> None:
    assert encode_segment(raw) == encoded


def test_encode_segment_rejects_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        encode_segment("")


# --- paths and bodies over MockTransport --------------------------------------------------------


async def test_paths_are_percent_encoded() -> None:
    h = make(
        lambda r: httpx.Response(
            200,
            json=gen()
            if "generations" in r.url.path
            else {"externalId": "a/b", "createdAt": NOW, "updatedAt": NOW},
        )
    )
    await h.client.get_generation("gen/with/slash")
    await h.client.get_product("a/b")
    await h.client.delete_product("..")
    await h.client.delete_customer("user 1/x")
    paths = [r.url.raw_path.decode() for r in h.requests]
    assert paths == [
        "/tryon/v1/generations/gen%2Fwith%2Fslash",
        "/tryon/v1/products/a%2Fb",
        "/tryon/v1/products/%2E%2E",
        "/tryon/v1/customers/user%201%2Fx",
    ]
    assert [r.method for r in h.requests] == ["GET", "GET", "DELETE", "DELETE"]


async def test_every_request_carries_the_key_header() -> None:
    h = make(lambda r: httpx.Response(200, json={"creditBalance": 5}))
    credits = await h.client.get_credits()
    assert credits.credit_balance == 5
    assert h.requests[0].headers["x-api-key"] == KEY
    assert "authorization" not in h.requests[0].headers
    assert h.requests[0].url.path == "/tryon/v1/account/credits"


async def test_create_json_body_is_camel_case_without_defaults() -> None:
    h = make(
        lambda r: httpx.Response(
            200, json={"generationId": "g", "status": "PENDING", "productExternalId": "shirt-42"}
        )
    )
    body = TryOnRequest(
        products=[ProductInput(external_id="shirt-42")],
        person=Person.from_image_id("img/1"),
        external_user_id="u1",
        output=Output(watermark=False, keep_for_days=3),
    )
    created = await h.client.create_try_on(body)
    assert created.generation_id == "g"
    r = h.requests[0]
    assert r.method == "POST"
    assert r.url.path == "/tryon/v1/try-on"
    assert r.headers["content-type"] == "application/json"
    assert msgspec.json.decode(r.content) == {
        "products": [{"externalId": "shirt-42"}],
        "person": {"image": {"source": {"id": "img/1"}}},
        "externalUserId": "u1",
        "output": {"watermark": False, "keepForDays": 3},
    }


def parse_multipart(request: httpx.Request) -> list[tuple[Any, ...]]:
    """(name, filename, content-type, payload) of each part, in order."""
    raw = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw + request.content)
    parts = []
    for part in msg.iter_parts():
        disposition = part.get("content-disposition")
        params = dict(disposition.params)  # type: ignore[union-attr]
        payload = part.get_payload(decode=True)
        parts.append((params["name"], params.get("filename"), part.get("content-type"), payload))
    return parts


async def test_create_multipart_layout() -> None:
    h = make(
        lambda r: httpx.Response(
            201, json={"generationId": "g", "status": "PENDING", "productExternalId": "_anon_x"}
        )
    )
    body = TryOnRequest(
        products=[ProductInput(title="Tee", images=[ProductImage.from_file_key("product")])],
        person=Person.from_file_key("person"),
    )
    files = {
        "person": FilePart(b"\xff\xd8person", "me.jpg", "image/jpeg"),
        "product": FilePart(b"\x89PNGproduct", "tee.png", "image/png"),
    }
    created = await h.client.create_try_on(body, files=files)  # any 2xx is success
    assert created.product_external_id == "_anon_x"
    r = h.requests[0]
    assert r.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = parse_multipart(r)
    assert [p[0] for p in parts] == ["data", "person", "product"]
    _, filename, _, payload = parts[0]
    assert filename is None
    assert msgspec.json.decode(payload) == {
        "products": [{"title": "Tee", "images": [{"source": {"fileKey": "product"}}]}],
        "person": {"image": {"source": {"fileKey": "person"}}},
    }
    assert parts[1][1:] == ("me.jpg", "image/jpeg", b"\xff\xd8person")
    assert parts[2][1:] == ("tee.png", "image/png", b"\x89PNGproduct")


async def test_upload_multipart_layout() -> None:
    h = make(lambda r: httpx.Response(200, json={"imageId": "a/b", "imageUrl": "http://x/a"}))
    up = await h.client.upload_image(
        b"\xff\xd8data",
        filename="p.jpg",
        content_type="image/jpeg",
        crop=False,
        external_user_id="u1",
        keep_for_days=3,
    )
    assert up.image_id == "a/b"
    r = h.requests[0]
    assert r.url.path == "/tryon/v1/images/upload"
    parts = {p[0]: p for p in parse_multipart(r)}
    assert parts["crop"][3] == b"false"
    assert parts["externalUserId"][3] == b"u1"
    assert parts["keepForDays"][3] == b"3"
    assert parts["file"][1:] == ("p.jpg", "image/jpeg", b"\xff\xd8data")


async def test_upload_defaults_send_crop_true_only() -> None:
    h = make(lambda r: httpx.Response(200, json={"imageId": "i", "imageUrl": "u"}))
    await h.client.upload_image(b"x", filename="p.png", content_type="image/png")
    names = [p[0] for p in parse_multipart(h.requests[0])]
    assert sorted(names) == ["crop", "file"]


async def test_upsert_tristate_valid_for_days() -> None:
    product = {"externalId": "p1", "createdAt": NOW, "updatedAt": NOW, "validForDays": None}
    h = make(lambda r: httpx.Response(200, json=product))
    await h.client.upsert_product(ProductUpsert(external_id="p1", title="T"))
    await h.client.upsert_product(ProductUpsert(external_id="p1", valid_for_days=None))
    await h.client.upsert_product(ProductUpsert(external_id="p1", valid_for_days=30))
    bodies = [msgspec.json.decode(r.content) for r in h.requests]
    assert bodies == [
        {"externalId": "p1", "title": "T"},
        {"externalId": "p1", "validForDays": None},
        {"externalId": "p1", "validForDays": 30},
    ]


async def test_list_products_query_and_iter_pages() -> None:
    def product(i: int) -> dict[str, Any]:
        return {"externalId": f"p{i}", "createdAt": NOW, "updatedAt": NOW, "unknown": 1}

    pages = {
        None: {"items": [product(1), product(2)], "nextCursor": "c/1", "hasMore": True, "count": 2},
        "c/1": {"items": [product(3)], "nextCursor": None, "hasMore": False, "count": 1},
    }
    h = make(lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]))
    ids = [p.external_id async for p in h.client.iter_products(page_size=2)]
    assert ids == ["p1", "p2", "p3"]
    assert [dict(r.url.params) for r in h.requests] == [
        {"limit": "2"},
        {"limit": "2", "cursor": "c/1"},
    ]


async def test_iter_products_detects_a_cursor_loop() -> None:
    page = {"items": [], "nextCursor": "same", "hasMore": True, "count": 0}
    h = make(lambda r: httpx.Response(200, json=page))
    with pytest.raises(InvalidResponse, match="cursor"):
        _ = [p async for p in h.client.iter_products()]


async def test_any_2xx_is_success_and_204_has_no_body() -> None:
    h = make(
        sequence(
            httpx.Response(204), httpx.Response(200, json={"deleted": True}), httpx.Response(202)
        )
    )
    await h.client.delete_product("p")
    await h.client.delete_product("p")
    await h.client.delete_customer("u")


async def test_sync_returns_body_for_200_and_202_and_uses_sync_timeout() -> None:
    h = make(
        sequence(
            httpx.Response(
                200, json=gen("COMPLETED", resultImageUrl="http://r", productExternalId="s")
            ),
            httpx.Response(202, json=gen("PROCESSING", productExternalId="s")),
        ),
        sync_timeout=123.0,
    )
    done = await h.client.create_try_on_sync(req())
    assert done.status == "COMPLETED"
    assert done.result_image_url == "http://r"
    assert done.product_external_id == "s"
    running = await h.client.create_try_on_sync(req())
    assert running.status == "PROCESSING"
    assert h.requests[0].url.path == "/tryon/v1/try-on/sync"
    assert h.requests[0].extensions["timeout"]["read"] == 123.0


async def test_tolerant_decoding_nulls_and_unknown_fields() -> None:
    body = gen("FAILED", resultImageUrl=None, errorCode=None, errorMessage="boom", extra={"a": 1})
    h = make(lambda r: httpx.Response(200, json=body))
    g = await h.client.get_generation("gen_1")
    assert g.status == "FAILED"
    assert g.error_code is None
    assert g.error_message == "boom"
    assert g.is_terminal


async def test_malformed_success_body_is_invalid_response() -> None:
    h = make(lambda r: httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(InvalidResponse) as info:
        await h.client.get_credits()
    assert info.value.endpoint == "get_credits"
    assert len(h.requests) == 1


# --- retries --------------------------------------------------------------------------------


async def test_idempotent_get_retries_5xx_then_succeeds() -> None:
    h = make(sequence(err(503, "X"), err(500, "INTERNAL_ERROR"), httpx.Response(200, json=gen())))
    g = await h.client.get_generation("gen_1")
    assert g.generation_id == "gen_1"
    assert len(h.requests) == 3
    assert len(h.sleeps) == 2
    assert h.hooks.events == [
        ("before", "get_generation", Priority.POLL),
        ("after", "get_generation", 503),
        ("before", "get_generation", Priority.POLL),
        ("after", "get_generation", 500),
        ("before", "get_generation", Priority.POLL),
        ("after", "get_generation", 200),
    ]


async def test_retries_are_bounded_by_max_retries() -> None:
    h = make(lambda r: err(502, "X"), max_retries=3)
    with pytest.raises(ServerError) as info:
        await h.client.get_credits()
    assert info.value.status == 502
    assert len(h.requests) == 4


async def test_max_retries_zero_means_one_attempt() -> None:
    h = make(lambda r: err(502, "X"), max_retries=0)
    with pytest.raises(ServerError):
        await h.client.get_credits()
    assert len(h.requests) == 1


async def test_4xx_is_never_retried() -> None:
    h = make(lambda r: err(404, "PRODUCT_NOT_FOUND"))
    with pytest.raises(ProductNotFound):
        await h.client.get_product("nope")
    assert len(h.requests) == 1


@pytest.mark.parametrize("method", ["create_try_on", "create_try_on_sync"])
async def test_create_5xx_is_raised_not_retried(method: str) -> None:
    h = make(lambda r: err(500, "INTERNAL_ERROR"))
    with pytest.raises(ServerError):
        await getattr(h.client, method)(req())
    assert len(h.requests) == 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out", request=R),
        httpx.ReadError("reset", request=R),
        httpx.WriteError("broken pipe", request=R),
        httpx.WriteTimeout("timed out", request=R),
        httpx.RemoteProtocolError("Server disconnected without sending a response.", request=R),
    ],
)
@pytest.mark.parametrize("method", ["create_try_on", "create_try_on_sync"])
async def test_create_unknown_outcome_is_never_retried(method: str, exc: Exception) -> None:
    h = make(sequence(exc, httpx.Response(200, json=gen())))
    with pytest.raises(OutcomeUnknown) as info:
        await getattr(h.client, method)(req())
    assert info.value.endpoint == method
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert len(h.requests) == 1
    assert h.hooks.events[-1] == ("after", method, None)


async def test_create_retries_when_request_not_sent() -> None:
    created = {"generationId": "g", "status": "PENDING", "productExternalId": "p"}
    h = make(
        sequence(
            httpx.ConnectError("refused", request=R),
            httpx.ConnectTimeout("t", request=R),
            httpx.Response(200, json=created),
        )
    )
    out = await h.client.create_try_on(req())
    assert out.generation_id == "g"
    assert len(h.requests) == 3


async def test_create_not_sent_exhausted_raises_request_not_sent() -> None:
    h = make(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)))
    with pytest.raises(RequestNotSent):
        await h.client.create_try_on(req())
    assert len(h.requests) == 3


async def test_create_retries_through_429_honouring_retry_after() -> None:
    created = {"generationId": "g", "status": "PENDING", "productExternalId": "p"}
    h = make(
        sequence(
            err(429, "RATE_LIMITED", {"Retry-After": "0.35"}), httpx.Response(200, json=created)
        )
    )
    out = await h.client.create_try_on(req())
    assert out.generation_id == "g"
    assert len(h.requests) == 2
    assert h.sleeps[0] >= 0.35
    assert ("rate_limited", "create_try_on", 0.35) in h.hooks.events
    assert [e[2] for e in h.hooks.events if e[0] == "before"] == [Priority.START, Priority.START]


async def test_429_sleep_is_max_of_retry_after_and_backoff() -> None:
    h = make(
        sequence(err(429, "RATE_LIMITED", {"Retry-After": "0"}), httpx.Response(200, json=gen())),
        backoff=Backoff(base=5.0, cap=5.0),
    )
    h.client._rng.seed(0)
    await h.client.get_generation("g")
    assert 0 < h.sleeps[0] <= 5.0


async def test_429_without_retry_after_is_retried_with_backoff() -> None:
    h = make(sequence(err(429, "RATE_LIMITED"), httpx.Response(200, json=gen())))
    await h.client.get_generation("g")
    assert ("rate_limited", "get_generation", None) in h.hooks.events
    assert len(h.requests) == 2


async def test_429_with_too_long_retry_after_is_raised_at_once() -> None:
    h = make(lambda r: err(429, "RATE_LIMITED", {"Retry-After": "120"}), max_retry_wait=30.0)
    with pytest.raises(RateLimited) as info:
        await h.client.get_generation("g")
    assert info.value.retry_after == 120.0
    assert len(h.requests) == 1
    assert h.sleeps == []


async def test_idempotent_unknown_outcome_is_retried() -> None:
    h = make(
        sequence(
            httpx.RemoteProtocolError("dropped", request=R),
            httpx.ReadTimeout("t", request=R),
            httpx.Response(200, json={"imageId": "i", "imageUrl": "u"}),
        )
    )
    out = await h.client.upload_image(b"x", filename="a.png", content_type="image/png")
    assert out.image_id == "i"
    assert len(h.requests) == 3
    # the multipart body is re-sent whole on every attempt
    assert parse_multipart(h.requests[0]) == parse_multipart(h.requests[2])


# --- waiting ------------------------------------------------------------------------------------


async def test_wait_for_generation_polls_until_completed() -> None:
    h = make(
        sequence(
            httpx.Response(200, json=gen("PENDING")),
            httpx.Response(200, json=gen("PROCESSING")),
            httpx.Response(200, json=gen("COMPLETED", resultImageUrl="http://r")),
        )
    )
    g = await h.client.wait_for_generation("gen_1", poll_interval=0.5)
    assert g.result_image_url == "http://r"
    assert h.sleeps == [0.5, 0.5]


async def test_wait_for_generation_raises_on_failed() -> None:
    h = make(
        lambda r: httpx.Response(
            200,
            json=gen("FAILED", errorCode="PRODUCT_IMAGE_FETCH_FAILED", errorMessage="no fetch"),
        )
    )
    with pytest.raises(GenerationFailed) as info:
        await h.client.wait_for_generation("gen_1")
    assert info.value.error_code == "PRODUCT_IMAGE_FETCH_FAILED"
    assert info.value.generation.status == "FAILED"


async def test_wait_for_generation_times_out() -> None:
    h = make(lambda r: httpx.Response(200, json=gen("PROCESSING")))
    h.client._sleep = __import__("asyncio").sleep
    with pytest.raises(GenerationTimeout) as info:
        await h.client.wait_for_generation("gen_1", timeout=0.05, poll_interval=0.01)
    assert info.value.last is not None
    assert info.value.last.status == "PROCESSING"


# --- the key never leaks ------------------------------------------------------------------------


async def test_key_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo_key(request: httpx.Request) -> httpx.Response:
        # a hostile or careless server echoing the key back in its error
        key = request.headers["x-api-key"]
        return httpx.Response(
            401,
            json={
                "code": "INVALID_API_KEY",
                "message": f"key {key} rejected",
                "status": 401,
                "details": [{"path": key, "message": key}],
            },
        )

    h = make(echo_key)
    assert KEY not in repr(h.client)
    assert KEY not in str(h.client)
    assert KEY not in repr(vars(h.client))
    with pytest.raises(APIError) as info:
        await h.client.get_credits()
    e = info.value
    assert e.code == "INVALID_API_KEY"
    for text in (str(e), repr(e), e.message, repr(e.details), repr(e.args)):
        assert KEY not in text

    h2 = make(sequence(httpx.ReadTimeout(f"timed out {KEY}", request=R)))
    with pytest.raises(OutcomeUnknown) as info2:
        await h2.client.create_try_on(req())
    assert KEY not in str(info2.value)
    assert KEY not in repr(info2.value)

    h3 = make(sequence(err(503, "X"), httpx.Response(200, json={"creditBalance": 1})))
    await h3.client.get_credits()

    records = [r for r in caplog.records if r.name == "service.genlook"]
    assert len(records) >= 4  # one per attempt
    assert "get_credits" in records[-1].getMessage()
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert KEY not in caplog.text


async def test_context_manager_closes() -> None:
    h = make(lambda r: httpx.Response(200, json={"creditBalance": 1}))
    async with h.client as c:
        await c.get_credits()
    assert h.client._http.is_closed


def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="api_key"):
        GenlookClient("")
    with pytest.raises(ValueError, match="max_retries"):
        GenlookClient(KEY, max_retries=-1)
