"""Error envelope -> exception mapping (pure logic, no I/O)."""

from __future__ import annotations

import email.utils

import msgspec
import pytest
from service.genlook import errors as E

CODE_TABLE: list[tuple[int, str, type[E.APIError]]] = [
    (401, "MISSING_API_KEY", E.AuthenticationError),
    (401, "INVALID_API_KEY", E.AuthenticationError),
    (403, "FORBIDDEN", E.PermissionDenied),
    (400, "VALIDATION_FAILED", E.ValidationFailed),
    (400, "EXTERNAL_ID_REQUIRED", E.ExternalIdRequired),
    (400, "PRODUCT_IMAGES_REQUIRED", E.ProductImagesRequired),
    (400, "CUSTOMER_IMAGE_REQUIRED", E.CustomerImageRequired),
    (400, "FILE_REQUIRED", E.FileRequired),
    (400, "MULTIPART_FILE_NOT_FOUND", E.MultipartFileNotFound),
    (400, "INVALID_IMAGE_INPUT", E.InvalidImageInput),
    (400, "INVALID_IMAGE", E.InvalidImage),
    (400, "CUSTOMER_IMAGE_FETCH_FAILED", E.CustomerImageFetchFailed),
    (404, "PRODUCT_NOT_FOUND", E.ProductNotFound),
    (404, "GENERATION_NOT_FOUND", E.GenerationNotFound),
    (404, "IMAGE_NOT_FOUND", E.ImageNotFound),
    (404, "CUSTOMER_IMAGE_NOT_FOUND", E.ImageNotFound),
    (409, "RESERVED_EXTERNAL_ID", E.ReservedExternalId),
    (402, "INSUFFICIENT_CREDITS", E.InsufficientCredits),
    (402, "QUOTA_EXCEEDED", E.InsufficientCredits),
    (429, "RATE_LIMITED", E.RateLimited),
    (500, "INTERNAL_ERROR", E.ServerError),
    # unknown codes fall back to the status class
    (400, "SOMETHING_NEW", E.BadRequest),
    (401, "SOMETHING_NEW", E.AuthenticationError),
    (402, "SOMETHING_NEW", E.InsufficientCredits),
    (403, "SOMETHING_NEW", E.PermissionDenied),
    (404, "SOMETHING_NEW", E.NotFound),
    (409, "SOMETHING_NEW", E.Conflict),
    (429, "SOMETHING_NEW", E.RateLimited),
    (500, "SOMETHING_NEW", E.ServerError),
    (502, "SOMETHING_NEW", E.ServerError),
    (503, "SOMETHING_NEW", E.ServerError),
    (413, "SOMETHING_NEW", E.APIError),
    (418, "SOMETHING_NEW", E.APIError),
]


def envelope(status: int, code: str | None, message: str = "msg", **extra: object) -> bytes:
    body: dict[str, object] = {"status": status, "message": message, **extra}
    if code is not None:
        body["code"] = code
    return msgspec.json.encode(body)


@pytest.mark.parametrize(("status", "code", "cls"), CODE_TABLE)
def test_mapping_by_code_then_status(status: int, code: str, cls: type[E.APIError]) -> None:
    err = E.api_error_from_response(
        status=status, body=envelope(status, code), headers={}, endpoint="get_product"
    )
    assert type(err) is cls
    assert err.status == status
    assert err.code == code
    assert err.message == "msg"
    assert err.endpoint == "get_product"
    assert isinstance(err, E.APIError)
    assert isinstance(err, E.GenlookError)


def test_code_wins_over_status() -> None:
    err = E.api_error_from_response(
        status=400, body=envelope(400, "PRODUCT_NOT_FOUND"), headers={}, endpoint="x"
    )
    assert isinstance(err, E.ProductNotFound)
    assert err.status == 400


def test_every_documented_code_is_mapped() -> None:
    documented = {c for _, c, _ in CODE_TABLE if c != "SOMETHING_NEW"}
    assert documented == set(E.CODE_TO_ERROR)


def test_hierarchy() -> None:
    assert issubclass(E.RequestNotSent, E.TransportError)
    assert issubclass(E.OutcomeUnknown, E.TransportError)
    assert issubclass(E.TransportError, E.GenlookError)
    bad_requests: tuple[type[E.APIError], ...] = (
        E.ValidationFailed,
        E.ExternalIdRequired,
        E.ProductImagesRequired,
        E.CustomerImageRequired,
        E.FileRequired,
        E.MultipartFileNotFound,
        E.InvalidImageInput,
        E.InvalidImage,
        E.CustomerImageFetchFailed,
    )
    for cls in bad_requests:
        assert issubclass(cls, E.BadRequest)
    for cls in (E.ProductNotFound, E.GenerationNotFound, E.ImageNotFound):
        assert issubclass(cls, E.NotFound)
    assert issubclass(E.ReservedExternalId, E.Conflict)
    for cls in (
        E.AuthenticationError,
        E.PermissionDenied,
        E.BadRequest,
        E.NotFound,
        E.Conflict,
        E.InsufficientCredits,
        E.RateLimited,
        E.ServerError,
    ):
        assert issubclass(cls, E.APIError)


@pytest.mark.parametrize(
    ("body", "status", "cls"),
    [
        (b"<html>Bad Gateway</html>", 502, E.ServerError),
        (b"", 503, E.ServerError),
        (b"[1, 2]", 400, E.BadRequest),
        (b'"just a string"', 404, E.NotFound),
        (b'{"code": 42, "message": null}', 409, E.Conflict),
        (b"not json", 429, E.RateLimited),
    ],
)
def test_tolerant_of_non_json_and_odd_bodies(
    body: bytes, status: int, cls: type[E.APIError]
) -> None:
    err = E.api_error_from_response(
        status=status, body=body, headers={}, endpoint="get_credits", reason="Reason"
    )
    assert type(err) is cls
    assert err.code is None
    assert err.message.startswith("Reason")
    assert "get_credits" in str(err)


def test_validation_details_are_field_errors() -> None:
    body = envelope(
        400,
        "VALIDATION_FAILED",
        details=[
            {"path": "product.images.0.url", "message": "Required"},
            {"path": ["products", 0, "externalId"], "message": "Expected string"},
            "garbage",
        ],
    )
    err = E.api_error_from_response(status=400, body=body, headers={}, endpoint="create_try_on")
    assert isinstance(err, E.ValidationFailed)
    assert err.details == [
        E.FieldError(path="product.images.0.url", message="Required"),
        E.FieldError(path="products.0.externalId", message="Expected string"),
    ]


def test_validation_without_details() -> None:
    err = E.api_error_from_response(
        status=400, body=envelope(400, "VALIDATION_FAILED"), headers={}, endpoint="x"
    )
    assert isinstance(err, E.ValidationFailed)
    assert err.details == []


def test_rate_limited_reads_retry_after() -> None:
    err = E.api_error_from_response(
        status=429,
        body=envelope(429, "RATE_LIMITED"),
        headers={"retry-after": "0.35"},
        endpoint="get_generation",
    )
    assert isinstance(err, E.RateLimited)
    assert err.retry_after == pytest.approx(0.35)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("2", 2.0),
        ("0.35", 0.35),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert E.parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    value = email.utils.formatdate(now + 30, usegmt=True)
    assert E.parse_retry_after(value, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert E.parse_retry_after(past, now=now) == 0.0


def test_str_and_repr_are_informative() -> None:
    err = E.api_error_from_response(
        status=404,
        body=envelope(404, "PRODUCT_NOT_FOUND", "Product 'a' not found."),
        headers={},
        endpoint="get_product",
    )
    assert str(err) == "get_product: HTTP 404 PRODUCT_NOT_FOUND: Product 'a' not found."
    assert "ProductNotFound" in repr(err)
    t = E.OutcomeUnknown("ReadTimeout: timed out", endpoint="create_try_on")
    assert str(t) == "create_try_on: ReadTimeout: timed out"
    assert t.endpoint == "create_try_on"
