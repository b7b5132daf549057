"""Results held by the gateway, end to end over real HTTP: served under its own signed links,
still loading after Genlook's URL died (a retried webhook's included), refused when tampered
with or expired, removed by an erase; the emulator's address never in an answer."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from redis.asyncio import Redis
from service.results.links import _digest

from tests.conftest import Emulator, assert_error, s3_env
from tests.e2e.conftest import (
    Gateway,
    fetch,
    put_product,
    running_stack,
    start_gateway,
    start_tryon,
    upload_photo,
    wait_terminal,
)
from tests.e2e.receiver import Received, Receiver, Reply

# Rotation in progress: the new key signs, the old one still verifies.
NEW_KEY = "results-key-2026-12"
OLD_KEY = "results-key-2026-11"


@pytest.fixture(scope="module")
def results_gateway(emulator_process: Emulator) -> Iterator[Gateway]:
    gw = start_gateway(
        emulator_process,
        WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
        WEBHOOK_TIME_SCALE="1000",  # retries after 5 ms, 0.3 s, 1.8 s, 7.2 s...
        WEBHOOK_ATTEMPT_TIMEOUT="2",
        RESULTS_SIGNING_KEYS=f"{NEW_KEY},{OLD_KEY}",
    )
    yield gw
    gw.stack.stop_all()


@pytest.fixture
async def api(
    results_gateway: Gateway, emulator: Emulator, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with results_gateway.client() as client:
        yield client


def stored_ids(gw: Gateway) -> set[str]:
    """Try-on ids whose result object is in the stack's store directory."""
    return {p.name for p in Path(gw.stack.env["RESULTS_STORE_URL"]).rglob("to_*") if p.is_file()}


async def completed(api: httpx.AsyncClient, emulator: Emulator, **extra: Any) -> dict[str, Any]:
    image_id = await upload_photo(api, **({"externalUserId": extra["externalUserId"]}
                                         if "externalUserId" in extra else {}))  # fmt: skip
    await put_product(api, emulator)
    created = await start_tryon(api, image_id, **extra)
    done = await wait_terminal(api, created["id"])
    assert done["status"] == "completed", done
    return done


async def test_result_is_served_under_the_gateways_signed_link(
    api: httpx.AsyncClient, emulator: Emulator, results_gateway: Gateway
) -> None:
    done = await completed(api, emulator)
    link = done["result"]["imageUrl"]
    assert link.startswith(f"{results_gateway.url}/v1/results/{done['id']}?exp=")
    async with httpx.AsyncClient() as plain:  # no credential: a plain <img src>
        got = await plain.get(link)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"  # the photo was a JPEG
        assert int(got.headers["content-length"]) == len(got.content)
        assert Image.open(io.BytesIO(got.content)).size[0] > 0
        etag = got.headers["etag"]
        assert etag.startswith('"')
        assert got.headers["cache-control"].startswith("private")
        head = await plain.head(link)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["etag"] == etag
        again = await plain.get(link, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
    assert done["id"] in stored_ids(results_gateway)
    # Every answer that carries the result carries this link, never the emulator's host.
    host = urlsplit(emulator.root).netloc
    answers = [
        (await api.get(f"/v1/try-ons/{done['id']}")).text,
        (await api.get(f"/v1/try-ons/{done['id']}", params={"wait": 1})).text,
        (await api.get(f"/v1/try-ons/{done['id']}/events")).text,
    ]
    for text in answers:
        assert link in text
        assert host not in text


async def test_tampered_or_expired_links_are_refused(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    done = await completed(api, emulator)
    link = done["result"]["imageUrl"]
    base, _, query = link.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    flipped = params["sig"][:-2] + ("AA" if params["sig"][-2:] != "AA" else "BB")
    other = await completed(api, emulator)
    forged = [
        f"{base}?exp={params['exp']}&sig={flipped}",  # signature changed
        f"{base}?exp={int(params['exp']) + 1}&sig={params['sig']}",  # expiry pushed back
        f"{base.rsplit('/', 1)[0]}/{other['id']}?{query}",  # another try-on's picture
        base,  # no signature at all
    ]
    for url in forged:
        assert_error(await fetch(url), 403, "RESULT_LINK_INVALID")
    # Signed with the current key, but its time is up.
    past = int(time.time()) - 5
    expired = f"{base}?exp={past}&sig={_digest(NEW_KEY.encode(), done['id'], past)}"
    assert_error(await fetch(expired), 403, "RESULT_LINK_EXPIRED")
    assert (await fetch(link)).status_code == 200  # the genuine one still loads
    # Rotation: a link signed before it, with the previous key, still loads; one signed with
    # a key the gateway does not hold does not.
    exp = params["exp"]
    old = f"{base}?exp={exp}&sig={_digest(OLD_KEY.encode(), done['id'], int(exp))}"
    assert (await fetch(old)).status_code == 200
    foreign = f"{base}?exp={exp}&sig={_digest(b'someone-else', done['id'], int(exp))}"
    assert_error(await fetch(foreign), 403, "RESULT_LINK_INVALID")


async def test_erase_removes_the_stored_result(
    api: httpx.AsyncClient, emulator: Emulator, results_gateway: Gateway
) -> None:
    done = await completed(api, emulator, externalUserId="user-r")
    keep = await completed(api, emulator, externalUserId="user-other")
    assert {done["id"], keep["id"]} <= stored_ids(results_gateway)
    metrics = (await api.get("/metrics")).text
    assert "tryon_gateway_results_stored_objects 2.0" in metrics
    assert (await api.delete("/v1/customers/user-r")).status_code == 204
    assert done["id"] not in stored_ids(results_gateway)
    assert keep["id"] in stored_ids(results_gateway)
    assert_error(await fetch(done["result"]["imageUrl"]), 404, "RESULT_NOT_FOUND")
    assert (await fetch(keep["result"]["imageUrl"])).status_code == 200
    assert "tryon_gateway_results_stored_objects 1.0" in (await api.get("/metrics")).text


async def test_a_webhook_retried_after_genlooks_url_expired_carries_a_link_that_loads(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    accepting = asyncio.Event()

    def reply(_: Received) -> Reply:
        return Reply(status=200 if accepting.is_set() else 503)

    receiver = await Receiver(reply=reply).start()
    try:
        r = await api.post("/v1/webhook-endpoints", json={"url": receiver.url + "/hooks"})
        assert r.status_code == 201, r.text
        done = await completed(api, emulator)
        first = (await receiver.wait_for(1))[0]  # its retries follow within milliseconds
        # Genlook's URL for this result, then an emulator hour and more: it no longer loads.
        generation = emulator.control("GET", "generations")["items"][-1]["generationId"]
        upstream = emulator.control("GET", f"generations/{generation}")["resultImageUrl"]
        assert (await fetch(upstream)).status_code == 200
        emulator.control("POST", "clock/advance", json={"seconds": 2 * 3600})
        assert (await fetch(upstream)).status_code == 403
        before = len(receiver.received)
        accepting.set()
        (*_, last) = await receiver.wait_for(before + 1, within=30)
        assert last.headers["webhook-id"] == first.headers["webhook-id"]  # the same event
        retried = json.loads(last.body)
        assert retried["type"] == "tryon.completed"
        link = retried["data"]["result"]["imageUrl"]
        assert link == done["result"]["imageUrl"]
        got = await fetch(link)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"
        assert urlsplit(emulator.root).netloc not in last.body.decode()
    finally:
        await receiver.stop()


async def test_a_worker_killed_between_genlooks_completion_and_the_copy_resumes_the_copy(
    emulator: Emulator, redis: Redis
) -> None:
    gw = start_gateway(emulator)
    try:
        async with gw.client() as api:
            # The first read of the result's file hangs, so the worker is caught in `storing`.
            emulator.control(
                "POST", "faults", json={"endpoint": "files", "latency": 60, "count": 1}
            )
            image_id = await upload_photo(api)
            await put_product(api, emulator)
            tryon_id = (await start_tryon(api, image_id))["id"]
            deadline = time.monotonic() + 30
            while await redis.hget(f"tryon:t:{tryon_id}", "status") != b"storing":
                assert time.monotonic() < deadline, "never reached storing"
                await asyncio.sleep(0.05)
            gw.stack.stop("worker0", signal.SIGKILL)
            gw.add_worker("worker1")
            # arq hands the killed job over when its lease ends (WORKER_JOB_TIMEOUT + 10 s).
            done = await wait_terminal(api, tryon_id, within=90)
            assert done["status"] == "completed", done
            assert len(emulator.control("GET", "generations")["items"]) == 1
            assert emulator.counters()["creditsSpent"] == 1
            got = await fetch(done["result"]["imageUrl"])
            assert got.status_code == 200
    finally:
        gw.stack.stop_all()


async def test_results_in_an_s3_bucket_are_served_end_to_end(
    emulator: Emulator, redis: Redis, s3_server: str
) -> None:
    """The S3 backend over real HTTP: a gateway and a worker (processes) storing in a bucket of
    a real S3 API server on loopback; the link loads through the gateway."""
    bucket = f"e2e-{time.time_ns()}"
    async with httpx.AsyncClient(base_url=s3_server) as s3:
        assert (await s3.put(f"/{bucket}")).status_code == 200
        store = {"RESULTS_STORE_URL": f"s3://{bucket}", **s3_env(s3_server)}
        with running_stack(emulator, **store) as gw:
            async with gw.client() as api:
                done = await completed(api, emulator)
                got = await fetch(done["result"]["imageUrl"])
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"
        # The bytes served are the object in the bucket (not a local file).
        listed = (await s3.get(f"/{bucket}", params={"list-type": "2"})).text
    assert done["id"] in listed
