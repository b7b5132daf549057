"""Failover between upstream accounts under SIGKILLed workers (docs/accounts.md): the default
account runs out of credits mid-run, its try-ons go on through account `b` (a second emulator),
workers are killed and replaced; nothing is lost and no try-on is generated twice, in either
account, by the emulators' own records."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from service.accounts.crypto import new_master_key

from tests.conftest import SECOND_ACCOUNT_KEY, TEST_REDIS_URL, Emulator, run_emulator
from tests.e2e.conftest import put_product, start_gateway, tryon_doc, upload_photo, wait_terminal

pytestmark = pytest.mark.slow

MASTER_KEY = new_master_key()
# The default account's credits: about a third of the run's try-ons.
CREDITS = 25
N = 80


@pytest.fixture
def second() -> Iterator[Emulator]:
    with run_emulator(SECOND_ACCOUNT_KEY) as emulator:
        yield emulator


def accounts_cli(*args: str, stdin: str = "") -> None:
    subprocess.run(
        [sys.executable, "-m", "service.cli", "accounts", *args],
        input=stdin,
        env={**os.environ, "REDIS_URL": TEST_REDIS_URL, "GATEWAY_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


async def test_failover_under_killed_workers_loses_nothing_and_never_spends_twice(
    emulator: Emulator, second: Emulator, redis: Redis
) -> None:
    emulator.reset(credits=CREDITS)
    accounts_cli("create", "b", "--base-url", second.base_url, stdin=SECOND_ACCOUNT_KEY + "\n")
    accounts_cli("pool", "shop", "default", "b")
    gw = start_gateway(emulator, workers=3, GATEWAY_MASTER_KEY=MASTER_KEY, WORKER_JOB_TIMEOUT="8")
    try:
        async with gw.client() as api:
            await put_product(api, emulator)
            photos = await asyncio.gather(
                *(upload_photo(api, externalUserId=f"u{i}") for i in range(N))
            )
            created = []
            for i, image_id in enumerate(photos):
                body = {
                    "products": [{"externalId": "tee"}],
                    "person": {"image": {"source": {"id": image_id}}},
                    "externalUserId": f"u{i}",
                }
                r = await api.post("/v1/try-ons", json=body)
                assert r.status_code == 202, r.text
                created.append(r.json()["id"])
                if i == 20:
                    gw.stack.stop("worker0", signal.SIGKILL)
                if i == 45:
                    gw.stack.stop("worker1", signal.SIGKILL)
                    gw.add_worker("worker3")
                await asyncio.sleep(0.02)
            finals = await asyncio.gather(*(wait_terminal(api, t, within=120) for t in created))
    finally:
        gw.stack.stop_all()

    # Nothing lost: every try-on ended; a failure may only be the one window no one can close
    # (a worker killed while its create was in flight), never the account running out.
    codes = Counter((f.get("error") or {}).get("code") for f in finals if f["status"] == "failed")
    statuses = Counter(f["status"] for f in finals)
    assert set(statuses) <= {"completed", "failed"}, statuses
    assert set(codes) <= {"UPSTREAM_OUTCOME_UNKNOWN"}, codes
    records = [await tryon_doc(redis, tryon_id) for tryon_id in created]

    # No double spend: one generation at most per end user over both accounts, each in the
    # account its record names.
    generations: dict[str, list[dict[str, Any]]] = {
        "default": emulator.control("GET", "generations")["items"],
        "b": second.control("GET", "generations")["items"],
    }
    per_user = Counter(g["externalUserId"] for gens in generations.values() for g in gens)
    assert [u for u, count in per_user.items() if count > 1] == []
    where = {g["generationId"]: account for account, gens in generations.items() for g in gens}
    for rec in records:
        if rec.get("generation_id"):
            assert where[rec["generation_id"]] == rec["account"], rec
    # The default account ran out and `b` took over; every credit spent is a generation made.
    assert emulator.counters()["creditsSpent"] <= CREDITS
    assert second.counters()["generationsCreated"] > 0
    made = sum(len(g) for g in generations.values())
    assert (
        statuses["completed"] <= made <= statuses["completed"] + codes["UPSTREAM_OUTCOME_UNKNOWN"]
    )
