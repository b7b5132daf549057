"""The exact result cache over real HTTP: a served gateway, a worker process, the emulator."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Emulator
from tests.e2e.conftest import fetch, put_product, start_tryon, upload_photo, wait_terminal


async def test_twenty_identical_concurrent_tryons_make_one_generation(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    # ~1.5 s generations at speed 100: the twenty are all in flight together.
    emulator.reset(durationMedian=150.0, durationSigma=0.01)
    image_id = await upload_photo(api)
    await put_product(api, emulator)

    created = await asyncio.gather(*(start_tryon(api, image_id) for _ in range(20)))
    done = await asyncio.gather(*(wait_terminal(api, c["id"]) for c in created))

    assert [d["status"] for d in done] == ["completed"] * 20, done
    counters = emulator.counters()
    assert counters["generationsCreated"] == 1
    assert counters["creditsSpent"] == 1
    leaders = [d for d in done if "reusedFrom" not in d]
    assert len(leaders) == 1
    assert {d["reusedFrom"] for d in done if d is not leaders[0]} == {leaders[0]["id"]}
    # Each completion carries its own link to the one stored object.
    images = await asyncio.gather(*(fetch(d["result"]["imageUrl"]) for d in done))
    assert {(i.status_code, i.content) for i in images} == {(200, images[0].content)}
