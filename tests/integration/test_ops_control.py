"""service/ops/* and workers/ops.py against a real Redis: pause flags, the intake
gate's one-second cache, heartbeats, the queue snapshot in arq's layout, failed lists, retry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from service import jobs
from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.admin_tokens import parse_admin_tokens, token_digest
from service.keys import Keys
from service.ops.control import OpsControl
from service.ops.errors import IntakePaused, NotRetryable, RetryWouldSpendCredit
from service.ops.heartbeats import WorkerBeat
from service.ops.pauses import IntakeGate
from service.tryons.models import ErrorInfo, PersonDef, ProductDef, TryOnRecord
from service.tryons.store import TryOnStore
from service.webhooks.deliveries import Delivery, DeliveryStore
from workers.ops import WorkerOps

KEYS = Keys("t:")
QUEUE = "t:queue"


@pytest.fixture
def ops(redis: Redis) -> OpsControl:
    return OpsControl(redis, KEYS, QUEUE)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeWorker:
    """The attributes of arq's Worker that workers/ops.py reads and writes."""

    def __init__(self) -> None:
        self.allow_pick_jobs = True
        self.queue_name = QUEUE
        self.job_tasks: dict[str, Any] = {"a": None, "b": None}
        self.jobs_complete = 3
        self.jobs_failed = 1
        self.jobs_retried = 2
        self.stopping = False


# --- admin tokens ----------------------------------------------------------------------------


def test_admin_tokens_are_kept_as_digests_and_never_look_like_app_keys() -> None:
    token = "ops_" + "x" * 30
    parsed = parse_admin_tokens(f"{token}=alice, {'y' * 30}")
    assert parsed[token_digest(token)] == "alice"
    assert token not in str(parsed)
    assert parsed[token_digest("y" * 30)].startswith("admin-")
    for bad in ("sk_" + "a" * 30, "pk_" + "a" * 30, "short"):
        with pytest.raises(ValueError, match="admin token"):
            parse_admin_tokens(bad)


# --- pause flags -----------------------------------------------------------------------------


async def test_pause_and_resume_record_who_when_and_why(ops: OpsControl, redis: Redis) -> None:
    assert await ops.pauses.get("intake") is None
    state = await ops.pauses.pause("intake", by="alice", reason="migration")
    assert (state.by, state.reason, state.until) == ("alice", "migration", None)
    stored = await ops.pauses.get("intake")
    assert stored == state
    assert await redis.ttl(KEYS.ops_pause("intake")) == -1  # no end: only resume ends it
    assert await ops.pauses.get("processing") is None
    assert await ops.pauses.resume("intake") is True
    assert await ops.pauses.resume("intake") is False
    assert await ops.pauses.get("intake") is None


async def test_a_timed_pause_ends_by_itself(ops: OpsControl) -> None:
    before = time.time()
    state = await ops.pauses.pause("processing", by="bob", seconds=0.3)
    assert state.until is not None
    assert before <= state.at <= time.time()  # from the moment of the call, however slow
    assert state.until - state.at == pytest.approx(0.3)
    assert await ops.pauses.get("processing") is not None
    await asyncio.sleep(0.4)
    assert await ops.pauses.get("processing") is None


# --- the intake gate -------------------------------------------------------------------------


async def test_the_gate_reads_the_flag_at_most_once_per_second(ops: OpsControl) -> None:
    clock = FakeClock()
    gate = IntakeGate(ops.pauses, retry_after=17, clock=clock)
    for _ in range(100):
        await gate.check()
    assert gate.reads == 1

    await ops.pauses.pause("intake", by="alice", reason="upgrade")
    clock.now += 0.5
    await gate.check()  # still the cached answer: not paused
    assert gate.reads == 1

    clock.now += 0.6  # past one second since the read
    with pytest.raises(IntakePaused) as raised:
        await gate.check()
    err = raised.value
    assert (err.code, err.retry_after) == ("INTAKE_PAUSED", 17)
    assert "upgrade" in err.message
    for _ in range(50):
        with pytest.raises(IntakePaused):
            await gate.check()
    assert gate.reads == 2

    await ops.pauses.resume("intake")
    with pytest.raises(IntakePaused):
        await gate.check()  # within the second: still paused here
    clock.now += 1.0
    await gate.check()
    assert gate.reads == 3


async def test_a_timed_pause_answers_its_remaining_time(ops: OpsControl) -> None:
    await ops.pauses.pause("intake", by="alice", seconds=120)
    gate = IntakeGate(ops.pauses, retry_after=5)
    with pytest.raises(IntakePaused) as raised:
        await gate.check()
    assert 115 <= raised.value.retry_after <= 120


async def test_concurrent_requests_share_one_read(ops: OpsControl) -> None:
    gate = IntakeGate(ops.pauses)
    await asyncio.gather(*(gate.check() for _ in range(200)))
    assert gate.reads == 1


# --- heartbeats and the processing pause -----------------------------------------------------


def beat(worker_id: str, **fields: Any) -> WorkerBeat:
    now = time.time()
    base: dict[str, Any] = {
        "id": worker_id,
        "host": "h",
        "pid": 1,
        "version": "t",
        "queue": QUEUE,
        "started_at": now,
        "beat_at": now,
    }
    return WorkerBeat(**{**base, **fields})


async def test_heartbeats_expire_after_a_few_beats(ops: OpsControl, redis: Redis) -> None:
    await ops.heartbeats.beat(beat("w1"), interval=0.1)
    await ops.heartbeats.beat(beat("w2"), interval=10)
    assert [b.id for b in await ops.heartbeats.live()] == ["w1", "w2"]
    await asyncio.sleep(0.4)  # three beats of w1 without a new one
    assert [b.id for b in await ops.heartbeats.live()] == ["w2"]
    # the dead worker's id left the index as it was met
    assert await redis.zrange(KEYS.ops_workers, 0, -1) == [b"w2"]
    await ops.heartbeats.gone("w2")
    assert await ops.heartbeats.live() == []


async def test_worker_ops_follows_the_processing_flag(ops: OpsControl, redis: Redis) -> None:
    worker = FakeWorker()
    wops = WorkerOps(redis, KEYS, worker, beat_interval=5.0, poll_interval=0.05, name="host-42")
    wops.start()
    try:
        await asyncio.sleep(0.1)
        [live] = await ops.heartbeats.live()
        assert (live.id, live.host, live.pid, live.picking) == ("host-42", "host", 42, True)
        assert (live.jobs_in_progress, live.jobs_complete) == (2, 3)

        await ops.pauses.pause("processing", by="alice")
        await asyncio.sleep(0.2)
        assert worker.allow_pick_jobs is False
        # a change of picking is beaten at once, not at the next 5 s beat
        [live] = await ops.heartbeats.live()
        assert live.picking is False

        await ops.pauses.resume("processing")
        await asyncio.sleep(0.2)
        assert worker.allow_pick_jobs is True
        [live] = await ops.heartbeats.live()
        assert live.picking is True
    finally:
        await wops.stop()
    assert await ops.heartbeats.live() == []


async def test_resume_never_restarts_a_worker_that_is_stopping(
    ops: OpsControl, redis: Redis
) -> None:
    worker = FakeWorker()
    wops = WorkerOps(redis, KEYS, worker, beat_interval=5.0)
    # arq stopped picking itself (SIGTERM): the watcher did not, so it never turns it back on
    worker.allow_pick_jobs = False
    assert await wops.apply_pause() is False
    assert worker.allow_pick_jobs is False
    # paused by ops, then SIGTERM, then resumed: still off
    worker.allow_pick_jobs = True
    await ops.pauses.pause("processing", by="alice")
    assert await wops.apply_pause() is True
    worker.stopping = True
    await ops.pauses.resume("processing")
    assert await wops.apply_pause() is False
    assert worker.allow_pick_jobs is False


# --- the queue snapshot ------------------------------------------------------------------------


async def test_snapshot_counts_ready_deferred_and_in_progress(
    ops: OpsControl, redis: Redis
) -> None:
    queue = jobs.JobQueue(redis, QUEUE)
    for i in range(5):
        await queue.enqueue(jobs.RUN_TRYON, f"to_{i}", job_id=jobs.tryon_job_id(f"to_{i}"))
    await queue.enqueue(jobs.DELIVER, "msg_x", job_id="dlv:x", defer=60)
    await queue.enqueue(jobs.DELIVER, "msg_y", job_id="dlv:y", defer=120)
    # arq keeps a running job in the queue and marks it with an in-progress key
    await redis.set(jobs.in_progress_key(jobs.tryon_job_id("to_0")), b"1", px=10_000)
    # the oldest ready job is a second old
    await redis.zadd(QUEUE, {jobs.tryon_job_id("to_1"): int((time.time() - 1.0) * 1000)})
    await redis.zadd(KEYS.active_tryons, {"to_a": 1, "to_b": 2})
    await redis.zadd(KEYS.deliveries_due, {"msg_a": 1, "msg_b": time.time() + 100})
    await ops.pauses.pause("processing", by="alice")

    snap = await ops.snapshot()
    q = snap.queue
    assert (q.ready, q.deferred, q.in_progress, q.in_progress_exact) == (4, 2, 1, True)
    assert q.oldest_ready_age_seconds is not None
    assert 0.9 < q.oldest_ready_age_seconds < 3
    assert (snap.tryons_active, snap.deliveries_pending, snap.deliveries_due_now) == (2, 2, 1)
    assert snap.intake_pause is None
    assert snap.processing_pause is not None
    assert snap.processing_pause.by == "alice"
    # the snapshot is what the API returns: camelCase JSON
    assert b'"oldestReadyAgeSeconds"' in msgspec.json.encode(snap)

    oldest = await ops.queue.oldest_ready(limit=2)
    assert [j.job_id for j in oldest] == [jobs.tryon_job_id("to_1"), jobs.tryon_job_id("to_2")]
    assert oldest[0].function == jobs.RUN_TRYON
    assert oldest[0].args == ["to_1"]


async def test_an_empty_queue(ops: OpsControl) -> None:
    snap = await ops.snapshot()
    assert (snap.queue.ready, snap.queue.deferred, snap.queue.in_progress) == (0, 0, 0)
    assert snap.queue.oldest_ready_age_seconds is None
    assert snap.workers == []
    assert await ops.queue.oldest_ready() == []


# --- failed try-ons and retry ----------------------------------------------------------------


async def failed_tryon(store: TryOnStore, redis: Redis, tryon_id: str, **fields: Any) -> None:
    """A try-on accepted, taken up and failed as the runner does, listed as the store does."""
    record = TryOnRecord(
        id=tryon_id,
        app="shop",
        product=ProductDef(external_id="tee"),
        person=PersonDef(url="https://example.com/p.jpg"),
        deadline_at=time.time() + 60,
    )
    await store.accept(
        record, idempotency_key=None, request_fingerprint="f", idempotency_ttl=60, retention=600
    )
    await redis.delete(jobs.job_key(jobs.tryon_job_id(tryon_id)))
    await redis.zrem(store.queue.name, jobs.tryon_job_id(tryon_id))

    def fail(r: TryOnRecord) -> TryOnRecord:
        r.status = "failed"
        r.error = ErrorInfo(code="INSUFFICIENT_CREDITS", message="no credits")
        r.completed_at = time.time()
        for name, value in fields.items():
            setattr(r, name, value)
        return r

    await store.update(tryon_id, fail)
    await redis.zadd(store.keys.ops_failed_tryons, {tryon_id: time.time()})


async def test_retry_requeues_a_try_on_no_create_reached(ops: OpsControl, redis: Redis) -> None:
    store = TryOnStore(redis, KEYS, QUEUE, quotas=Quotas(redis, KEYS))
    await failed_tryon(store, redis, "to_1")
    assert await redis.zscore(KEYS.active_tryons, "to_1") is None
    [listed] = await ops.failed.tryons()
    assert listed.error is not None
    assert listed.error.code == "INSUFFICIENT_CREDITS"

    record = await ops.retry(
        store, "to_1", deadline=300, quotas=Quotas(redis, KEYS), apps=AppRegistry(redis, KEYS)
    )
    assert record.status == "queued"
    assert record.error is None
    assert record.completed_at is None
    assert 290 < record.deadline_at - time.time() <= 300
    stored = await store.get("to_1")
    assert stored is not None
    assert stored.status == "queued"
    # the sweeper's list and a job, as at accept; and no longer listed as failed
    assert await redis.zscore(KEYS.active_tryons, "to_1") == pytest.approx(record.deadline_at)
    assert await redis.zscore(QUEUE, jobs.tryon_job_id("to_1")) is not None
    assert await ops.failed.tryons() == []

    # retrying again is harmless: it is queued, the job is not duplicated
    again = await ops.retry(
        store, "to_1", deadline=300, quotas=Quotas(redis, KEYS), apps=AppRegistry(redis, KEYS)
    )
    assert again.status == "queued"
    assert await redis.zcard(QUEUE) == 1


async def test_retry_drops_the_requests_deadline(ops: OpsControl, redis: Redis) -> None:
    """A try-on whose caller's deadline passed before it was sent: retried, it may be sent
    (within the worker's bound) rather than fail DEADLINE_EXCEEDED again at once."""
    store = TryOnStore(redis, KEYS, QUEUE, quotas=Quotas(redis, KEYS))
    await failed_tryon(store, redis, "to_1", send_by=time.time() - 10)
    record = await ops.retry(
        store, "to_1", deadline=300, quotas=Quotas(redis, KEYS), apps=AppRegistry(redis, KEYS)
    )
    assert record.send_by is None
    assert not time.time() > record.send_deadline


@pytest.mark.parametrize(
    "fields",
    [{"generation_id": "gen_1"}, {"create_started_at": 1.0}],
    ids=["generation id", "create marker"],
)
async def test_retry_refuses_whenever_a_create_may_have_spent_a_credit(
    ops: OpsControl, redis: Redis, fields: dict[str, Any]
) -> None:
    store = TryOnStore(redis, KEYS, QUEUE, quotas=Quotas(redis, KEYS))
    await failed_tryon(store, redis, "to_1", **fields)
    with pytest.raises(RetryWouldSpendCredit) as refused:
        await ops.retry(
            store, "to_1", deadline=300, quotas=Quotas(redis, KEYS), apps=AppRegistry(redis, KEYS)
        )
    assert refused.value.code == "RETRY_WOULD_SPEND_CREDIT"
    assert "second" in refused.value.message
    stored = await store.get("to_1")
    assert stored is not None
    assert stored.status == "failed"
    assert await redis.zcard(QUEUE) == 0


async def test_retry_refuses_a_try_on_that_did_not_fail(ops: OpsControl, redis: Redis) -> None:
    store = TryOnStore(redis, KEYS, QUEUE, quotas=Quotas(redis, KEYS))
    await failed_tryon(store, redis, "to_1", status="completed", error=None)
    with pytest.raises(NotRetryable) as refused:
        await ops.retry(
            store, "to_1", deadline=300, quotas=Quotas(redis, KEYS), apps=AppRegistry(redis, KEYS)
        )
    assert refused.value.code == "TRYON_NOT_RETRYABLE"


async def test_discard_and_lazy_cleanup_of_the_failed_list(ops: OpsControl, redis: Redis) -> None:
    store = TryOnStore(redis, KEYS, QUEUE, quotas=Quotas(redis, KEYS))
    await failed_tryon(store, redis, "to_1")
    await failed_tryon(store, redis, "to_2")
    await redis.zadd(KEYS.ops_failed_tryons, {"to_expired": time.time()})
    assert [r.id for r in await ops.failed.tryons()] == ["to_2", "to_1"]
    assert await redis.zscore(KEYS.ops_failed_tryons, "to_expired") is None
    assert await ops.failed.discard("to_2") is True
    assert await ops.failed.discard("to_2") is False
    assert [r.id for r in await ops.failed.tryons()] == ["to_1"]
    stored = await store.get("to_2")
    assert stored is not None
    assert stored.status == "failed"  # discarding changes nothing but the list


async def test_failed_deliveries_leave_the_list_once_resent(ops: OpsControl, redis: Redis) -> None:
    deliveries = DeliveryStore(redis, KEYS)
    for i in range(2):
        d = Delivery(
            id=f"msg_{i}",
            event_id=f"evt_{i}",
            event_type="tryon.failed",
            app="shop",
            target="we_1",
            url="https://example.com/hook",
            body="{}",
            created_at=time.time(),
            status="failed",
        )
        await deliveries.create(d)
        await deliveries.save(d)
        await redis.zadd(KEYS.ops_failed_deliveries, {d.id: time.time() + i})
    assert [d.id for d in await ops.failed.deliveries()] == ["msg_1", "msg_0"]
    resent = await deliveries.get("msg_1")
    assert resent is not None
    resent.status = "pending"
    await deliveries.save(resent)
    assert [d.id for d in await ops.failed.deliveries()] == ["msg_0"]


# --- the API in process (registered on the app here until app.py wires it) ------------------

ADMIN = "ops_admin_token_0123456789abcdef"
SECRET = "sk_test_integration_key_0123456789"


@pytest.fixture
async def admin_api(redis: Redis) -> Any:
    from litestar.testing import AsyncTestClient
    from service.api.ops import OpsController
    from service.app import create_app
    from service.settings import Settings

    from tests.conftest import TEST_REDIS_URL

    settings = Settings.from_env(
        {
            "REDIS_URL": TEST_REDIS_URL,
            "GATEWAY_SECRET_KEYS": f"{SECRET}=shop",
            "OPS_ADMIN_TOKENS": f"{ADMIN}=alice",
        }
    )
    app = create_app(settings)
    if not any(r.path.startswith("/ops/api") for r in app.routes):
        app.register(OpsController)
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        (f"Bearer {SECRET}", 403),
        ("Bearer pk_live_0123456789abcdef0123", 403),
        ("Bearer not-a-token-at-all-0123456789", 401),
        (f"Basic {ADMIN}", 401),
    ],
    ids=["no key", "secret key", "publishable key", "unknown token", "not bearer"],
)
async def test_only_admin_tokens_open_the_ops_api(
    admin_api: Any, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    r = await admin_api.get("/ops/api/status", headers=headers)
    assert r.status_code == status, r.text
    assert r.json() == {
        "code": "ADMIN_TOKEN_REQUIRED",
        "message": r.json()["message"],
        "status": status,
    }


async def test_pause_status_and_retry_answers(admin_api: Any, redis: Redis) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    r = await admin_api.post(
        "/ops/api/pause", json={"what": "intake", "reason": "upgrade", "seconds": 60}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"]["by"] == "alice"
    status = (await admin_api.get("/ops/api/status", headers=auth)).json()
    assert status["intakePause"]["reason"] == "upgrade"
    assert status["processingPause"] is None
    assert status["queue"]["ready"] == 0
    bad = await admin_api.post("/ops/api/pause", json={"what": "everything"}, headers=auth)
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_FAILED")
    r = await admin_api.post("/ops/api/resume", json={"what": "intake"}, headers=auth)
    assert r.json() == {"what": "intake", "paused": False, "wasPaused": True}

    store = TryOnStore(redis, Keys("tryon:"), "tryon:queue", quotas=Quotas(redis, Keys("tryon:")))
    missing = await admin_api.post("/ops/api/tryons/to_nope/retry", headers=auth)
    assert (missing.status_code, missing.json()["code"]) == (404, "TRYON_NOT_FOUND")
    await failed_tryon(store, redis, "to_sent", create_started_at=1.0)
    refused = await admin_api.post("/ops/api/tryons/to_sent/retry", headers=auth)
    assert (refused.status_code, refused.json()["code"]) == (409, "RETRY_WOULD_SPEND_CREDIT")
    await failed_tryon(store, redis, "to_ok")
    listed = (await admin_api.get("/ops/api/tryons?status=failed", headers=auth)).json()
    assert {(t["id"], t["retryable"]) for t in listed} == {("to_sent", False), ("to_ok", True)}
    detail = (await admin_api.get("/ops/api/tryons/to_sent", headers=auth)).json()
    assert detail["retryable"] is False
    assert detail["record"]["create_started_at"] == 1.0
    ok = await admin_api.post("/ops/api/tryons/to_ok/retry", headers=auth)
    assert (ok.status_code, ok.json()["status"]) == (202, "queued")
    jobs_r = (await admin_api.get("/ops/api/jobs", headers=auth)).json()
    assert [j["jobId"] for j in jobs_r["oldestReady"]] == ["tryon:to_ok"]
    gone = await admin_api.get("/ops/api/deliveries/msg_nope", headers=auth)
    assert (gone.status_code, gone.json()["code"]) == (404, "DELIVERY_NOT_FOUND")


def test_every_ops_error_has_a_status_and_an_intake_pause_a_retry_after() -> None:
    from service.errors import http_status

    sample_record = TryOnRecord(
        id="t_1",
        app="shop",
        product=ProductDef(external_id="tee"),
        person=PersonDef(url="https://example.com/p.jpg"),
        deadline_at=time.time() + 60,
    )
    paused = IntakePaused("paused: upgrade", retry_after=17)
    assert (http_status(paused), paused.code, paused.message) == (
        503,
        "INTAKE_PAUSED",
        "paused: upgrade",
    )
    assert paused.retry_after == 17
    for refused, code in (
        (NotRetryable("no", sample_record), "TRYON_NOT_RETRYABLE"),
        (RetryWouldSpendCredit("no", sample_record), "RETRY_WOULD_SPEND_CREDIT"),
    ):
        assert (http_status(refused), refused.code) == (409, code)
