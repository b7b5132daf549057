"""Hostile and broken input: always a documented 4xx, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Emulator, assert_error

BODIES: list[tuple[str, bytes, str]] = [
    ("application/json", b"{not json", "VALIDATION_FAILED"),
    ("application/json", b"", "VALIDATION_FAILED"),
    ("application/json", b"[1, 2]", "VALIDATION_FAILED"),
    ("application/json", b'"text"', "VALIDATION_FAILED"),
    ("application/json", b"null", "VALIDATION_FAILED"),
    ("text/plain", b"hello", "VALIDATION_FAILED"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken", "VALIDATION_FAILED"),
    ("multipart/form-data", b"no boundary", "VALIDATION_FAILED"),
]


@pytest.mark.parametrize("path", ["/try-on", "/try-on/sync", "/products"])
@pytest.mark.parametrize(("content_type", "raw", "code"), BODIES)
def test_malformed_bodies(
    api: httpx.Client, path: str, content_type: str, raw: bytes, code: str
) -> None:
    r = api.post(path, content=raw, headers={"content-type": content_type})
    assert_error(r, 400, code)


def test_multipart_without_data_field(api: httpx.Client) -> None:
    r = api.post("/try-on", files={"x": ("x.png", b"abc")})
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"] == [{"path": "data", "message": "Required"}]
    r = api.post("/products", data={"data": "{broken"}, files={"x": ("x.png", b"a")})
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "data"


def test_binary_part_without_filename(api: httpx.Client) -> None:
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n\xff\xd8\xff\xfe\x80\x81'
        b"\r\n--b--\r\n"
    )
    r = api.post(
        "/images/upload", content=raw, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 400


def test_wrong_types_everywhere(api: httpx.Client) -> None:
    body = {"products": "shirt", "person": {"image": {"source": 7}}, "externalUserId": 1}
    details = assert_error(api.post("/try-on", json=body), 400, "VALIDATION_FAILED")["details"]
    assert {"path": "products", "message": "Expected array, received string"} in details
    assert {"path": "person.image.source", "message": "Expected object, received number"} in details
    assert {"path": "externalUserId", "message": "Expected string, received number"} in details
    body = {"person": {}, "products": [{"externalId": "x"}]}
    details = assert_error(api.post("/try-on", json=body), 400, "VALIDATION_FAILED")["details"]
    assert details == [{"path": "person.image", "message": "Required"}]
    body = {"person": {"image": {"source": {"id": "x"}}}}
    details = assert_error(api.post("/try-on", json=body), 400, "VALIDATION_FAILED")["details"]
    assert details == [{"path": "products", "message": "Required"}]
    body = {"externalId": "p", "title": 3, "images": "x", "autoDetectImageRoles": "yes"}
    details = assert_error(api.post("/products", json=body), 400, "VALIDATION_FAILED")["details"]
    assert [d["path"] for d in details] == ["title", "images", "autoDetectImageRoles"]
    assert_error(api.post("/products", json={"externalId": 3}), 400, "VALIDATION_FAILED")


def test_oversize_bodies(api: httpx.Client) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024)
    r = api.post(
        "/try-on",
        data={"data": '{"products":[{"title":"x","images":[{"fileKey":"f"}]}],'
              '"person":{"image":{"source":{"fileKey":"f"}}}}'},
        files={"f": ("f.jpg", big, "image/jpeg")},
    )  # fmt: skip
    assert_error(r, 400, "INVALID_IMAGE")
    r = api.post("/products", content=b"[" + b"1," * 600_000 + b"1]",
                 headers={"content-type": "application/json"})  # fmt: skip
    assert_error(r, 400, "VALIDATION_FAILED")


def test_unknown_routes_and_methods_use_the_envelope(api: httpx.Client, emulator: Emulator) -> None:
    assert_error(api.get("/nope"), 404, "NOT_FOUND")
    assert_error(api.put("/account/credits"), 405, "METHOD_NOT_ALLOWED")
    # File URLs are signed: an unsigned one is refused before anything is looked up.
    unsigned = httpx.get(f"{emulator.root}/_emulator/files/results/none.jpeg")
    assert_error(unsigned, 403, "URL_SIGNATURE_INVALID")
