"""A known workload, then exactly those numbers from /metrics."""

from __future__ import annotations

import asyncio
import json

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import put_product, start_gateway, upload_photo, wait_terminal
from tests.e2e.receiver import Received, Receiver, Reply


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_a_known_workload_exactly(emulator: Emulator, redis: Redis) -> None:
    first_tries: set[str] = set()

    def reply(r: Received) -> Reply:
        # every event fails once, then succeeds: one retry per delivery
        event_id = json.loads(r.body)["data"]["id"]
        if event_id in first_tries:
            return Reply()
        first_tries.add(event_id)
        return Reply(500)

    receiver = await Receiver(reply=reply).start()
    gw = start_gateway(emulator, WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1", WEBHOOK_TIME_SCALE="1000")
    try:
        async with gw.client() as api:
            await api.post("/v1/webhook-endpoints", json={"url": receiver.url})
            await put_product(api, emulator)
            image_id = await upload_photo(api)
            broken = {"externalId": "broken", "title": "x",
                      "images": [{"source": {"url": "http://127.0.0.1:9/nope.png"}}]}  # fmt: skip
            finals = []
            # one after the other, so the product cache sees a first use, then repeats (each
            # generated: not from the result cache)
            for product in [{"externalId": "tee"}] * 3 + [broken] * 2:
                person = {"image": {"source": {"id": image_id}}}
                body = {"products": [product], "person": person, "reuse": False}
                r = await api.post("/v1/try-ons", json=body)
                finals.append(await wait_terminal(api, r.json()["id"]))
            assert [f["status"] for f in finals] == ["completed"] * 3 + ["failed"] * 2
            await receiver.wait_for(10)
            for _ in range(100):
                m = samples((await api.get("/metrics")).text)
                if (
                    m.get(("tryon_gateway_webhook_deliveries_total", (("outcome", "succeeded"),)))
                    == 5
                ):
                    break
                await asyncio.sleep(0.05)
            assert m[("tryon_gateway_tryon_accepted_total", ())] == 5
            assert m[("tryon_gateway_tryon_finished_total", (("status", "completed"),))] == 3
            assert m[("tryon_gateway_tryon_finished_total", (("status", "failed"),))] == 2
            assert m[("tryon_gateway_credits_spent_total", ())] == 3
            assert m[("tryon_gateway_webhook_deliveries_total", (("outcome", "succeeded"),))] == 5
            assert m[("tryon_gateway_webhook_deliveries_total", (("outcome", "retrying"),))] == 5
            sync_2xx = (("endpoint", "create_try_on_sync"), ("status", "2xx"))
            assert m[("tryon_gateway_upstream_requests_total", sync_2xx)] == 5
            assert m[("tryon_gateway_upstream_budget_grants_total", ())] >= 6  # 5 creates + upload
            assert m[("tryon_gateway_photo_uploads_total", (("result", "uploaded"),))] == 1
            assert m[("tryon_gateway_photo_uploads_total", (("result", "hit"),))] == 5
            # each product: a miss on first use, then hits (Genlook has it after one create)
            assert m[("tryon_gateway_product_cache_total", (("result", "miss"),))] == 2
            assert m[("tryon_gateway_product_cache_total", (("result", "hit"),))] == 3
            assert m[("tryon_gateway_tryon_stage_seconds_count", (("stage", "end_to_end"),))] == 5
            assert m[("tryon_gateway_tryon_stage_seconds_count", (("stage", "queue_wait"),))] == 5
            assert m[("tryon_gateway_tryons_active", ())] == 0
            assert m[("tryon_gateway_webhook_backlog", ())] == 0
            assert m[("tryon_gateway_queue_oldest_ready_age_seconds", ())] >= 0
    finally:
        gw.stack.stop_all()
        await receiver.stop()
