"""Control characters in a client-chosen id (`externalId`, `externalUserId`) are refused with
400 VALIDATION_FAILED on every path that takes one, and nothing is written: the gateway app in
process on the test Redis database."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from service.identifiers import identifier_problem

# NUL, CR/LF, ESC, DEL, a C1 control (NEL), the RTL override, an isolate.
BAD = ["a\x00b", "a\r\nX-Injected: 1", "a\x1b[31m", "a\x7f", "a\x85b", "gpj.\u202eexe", "\u2066a"]
PRODUCT = {"title": "tee", "images": [{"source": {"url": "https://example.com/t.png"}}]}
PERSON = {"image": {"source": {"url": "https://example.com/p.jpg"}}}


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 40), (200, 150, 120)).save(buf, "JPEG")
    return buf.getvalue()


def _refused(r: Any, path: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "VALIDATION_FAILED", body
    assert [d["path"] for d in body["details"]] == [path], body


@pytest.mark.parametrize("bad", BAD, ids=repr)
async def test_every_path_refuses_control_characters(
    client: AsyncTestClient[Any], redis: Any, bad: str
) -> None:
    assert (await client.put("/v1/products/tee", json=PRODUCT)).status_code in (200, 201)
    before = sorted(await redis.keys("*"))

    r = await client.post(
        "/v1/try-ons",
        json={"products": [{"externalId": "tee"}], "person": PERSON, "externalUserId": bad},
    )
    _refused(r, "externalUserId")
    r = await client.post("/v1/try-ons", json={"products": [{"externalId": bad}], "person": PERSON})
    _refused(r, "products.0.externalId")
    r = await client.post(
        "/v1/try-ons",
        files={
            "data": (None, json.dumps({"products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"fileKey": "me"}}}, "externalUserId": bad})),
            "me": ("me.jpg", _jpeg(), "image/jpeg"),
        },
    )  # fmt: skip
    _refused(r, "externalUserId")
    _refused(await client.put(f"/v1/products/{quote(bad, safe='')}", json=PRODUCT), "externalId")
    _refused(await client.post("/v1/sessions", json={"externalUserId": bad}), "externalUserId")
    r = await client.post("/v1/sessions", json={"externalUserId": "bob", "products": ["tee", bad]})
    _refused(r, "products.1")
    r = await client.post(
        "/v1/images",
        files={"file": ("me.jpg", _jpeg(), "image/jpeg")},
        data={"externalUserId": bad},
    )
    _refused(r, "externalUserId")
    _refused(await client.delete(f"/v1/customers/{quote(bad, safe='')}"), "externalUserId")

    assert sorted(await redis.keys("*")) == before  # nothing written by any of them


def test_ordinary_ids_pass() -> None:
    for good in ["tee", "user@example.com", "José", "商品-42", "a b", "x" * 256]:
        assert identifier_problem(good) is None, good
    assert identifier_problem("") is not None
    assert identifier_problem("x" * 257) is not None
