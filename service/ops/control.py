"""See and steer the queue: pause flags, worker heartbeats, the queue snapshot, failed try-ons
and deliveries, and the one safe retry.

Everything lives in Redis under `{prefix}ops:` (service/keys.py), so every gateway and worker
of a deployment sees the same state and any of them can answer the ops API.

- **Pause flags** (`ops:pause:intake|processing`): JSON {by, at, reason, until}, with a TTL when
  the pause was given a duration. The gateway reads the intake flag through `IntakeGate`, at most
  once a second per process; workers poll the processing flag every second (workers/ops.py).
- **Heartbeats** (`ops:worker:<host>-<pid>`, TTL ~3 beats) and an index of worker ids by last
  beat (`ops:workers`), so listing live workers never needs SCAN/KEYS.
- **Queue snapshot**: counts read with O(log n) commands plus one pipeline of EXISTS over at
  most `SCAN_CAP` ready jobs (arq keeps a running job in its queue until it ends; the job's
  in-progress key tells the two apart).
- **Failed lists** (`ops:failed`, `ops:dlv-failed`): capped sorted sets written by the store's
  and the delivery store's terminal transitions, read here and cleaned lazily.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import httpx
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import jobs
from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.errors import ApiError
from service.keys import Keys
from service.tryons.models import TryOnRecord
from service.tryons.store import TryOnNotFound, TryOnStore
from service.webhooks.deliveries import Delivery

# A listed failure: a try-on record or a delivery, both with a `status`.
_Failed = TypeVar("_Failed", TryOnRecord, Delivery)

log = logging.getLogger("service.ops")

Pausable = Literal["intake", "processing"]
PAUSABLE: tuple[Pausable, ...] = ("intake", "processing")

# At most this many ready jobs are checked for an in-progress key per snapshot: bounded cost
# whatever the backlog; beyond it the in-progress count is a lower bound (`inProgressExact`).
SCAN_CAP = 1000
# The failed lists keep the newest this many ids (the writers trim them in the same script).
FAILED_CAP = 10_000
# A heartbeat lives this many beats: one or two lost beats do not make a worker vanish.
BEAT_TTL_BEATS = 3
# How long the gateway trusts its last read of the intake flag.
GATE_TTL = 1.0

_decode_record = msgspec.json.Decoder(TryOnRecord).decode
_decode_delivery = msgspec.json.Decoder(Delivery).decode


class PauseState(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    what: str
    by: str
    at: float
    reason: str | None = None
    # Unix seconds when the pause lifts by itself; None: until someone resumes.
    until: float | None = None

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now


_decode_pause = msgspec.json.Decoder(PauseState).decode


class WorkerBeat(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    host: str
    pid: int
    version: str
    queue: str
    started_at: float
    beat_at: float
    # arq's own counters: cheap, the worker already keeps them.
    jobs_in_progress: int = 0
    jobs_complete: int = 0
    jobs_failed: int = 0
    jobs_retried: int = 0
    # False while the worker takes no new job (processing paused, or shutting down).
    picking: bool = True


_decode_beat = msgspec.json.Decoder(WorkerBeat).decode


class QueueCounts(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str
    ready: int
    deferred: int
    in_progress: int
    # False when more than SCAN_CAP jobs were due: in_progress is then a lower bound and ready
    # an upper bound.
    in_progress_exact: bool
    oldest_ready_age_seconds: float | None


class ReadyJob(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    job_id: str
    function: str | None
    args: list[object]
    enqueued_at: float
    age_seconds: float


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    at: float
    queue: QueueCounts
    tryons_active: int
    tryons_failed_listed: int
    deliveries_pending: int
    deliveries_due_now: int
    deliveries_failed_listed: int
    workers: list[WorkerBeat]
    intake_pause: PauseState | None
    processing_pause: PauseState | None


# --- pause flags -----------------------------------------------------------------------------


class Pauses:
    _encode = msgspec.json.Encoder().encode

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def pause(
        self, what: Pausable, *, by: str, reason: str | None = None, seconds: float | None = None
    ) -> PauseState:
        """Pause `what` (replacing any earlier pause of it); for `seconds`, or until resumed."""
        now = time.time()
        state = PauseState(
            what=what, by=by, at=now, reason=reason, until=now + seconds if seconds else None
        )
        px = math.ceil(seconds * 1000) if seconds else None
        await self._redis.set(self._keys.ops_pause(what), self._encode(state), px=px)
        return state

    async def resume(self, what: Pausable) -> bool:
        """True if it was paused."""
        return bool(await self._redis.delete(self._keys.ops_pause(what)))

    async def get(self, what: Pausable) -> PauseState | None:
        raw: bytes | None = await self._redis.get(self._keys.ops_pause(what))
        if raw is None:
            return None
        state = _decode_pause(raw)
        # The key's TTL ends a timed pause; this covers the millisecond it still reads back.
        return state if state.active(time.time()) else None


class IntakeGate:
    """The gateway's hot-path check: raises 503 INTAKE_PAUSED while intake is paused.

    The flag is read at most once per `ttl` seconds per process; in between every request uses
    the last answer, so a pause takes effect within a second and costs no Redis round trip per
    request. A failed read keeps the last answer: a Redis outage fails the request further on
    (accept), not here.
    """

    def __init__(
        self,
        pauses: Pauses,
        *,
        retry_after: int = 30,
        ttl: float = GATE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pauses = pauses
        self._retry_after = retry_after
        self._ttl = ttl
        self._clock = clock
        self._fresh_until = -math.inf
        self._state: PauseState | None = None
        self.reads = 0  # for tests and curiosity: Redis reads made so far

    async def check(self) -> None:
        now = self._clock()
        if now >= self._fresh_until:
            # Marked fresh before the read: requests arriving meanwhile use the last answer
            # instead of each starting a read of their own.
            self._fresh_until = now + self._ttl
            self.reads += 1
            try:
                self._state = await self._pauses.get("intake")
            except (RedisError, OSError) as exc:
                log.warning("intake pause flag unreadable (%s); keeping the last answer", exc)
        state = self._state
        if state is None:
            return
        wall = time.time()
        if not state.active(wall):
            return
        retry_after = (
            max(1, math.ceil(state.until - wall)) if state.until is not None else self._retry_after
        )
        reason = f": {state.reason}" if state.reason else ""
        raise ApiError(
            503,
            "INTAKE_PAUSED",
            f"New try-ons are paused by the operators{reason}. Retry later.",
            headers={"Retry-After": str(retry_after)},
        )


# --- heartbeats ------------------------------------------------------------------------------


class Heartbeats:
    _encode = msgspec.json.Encoder().encode

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def beat(self, beat: WorkerBeat, interval: float) -> None:
        ttl_ms = math.ceil(interval * BEAT_TTL_BEATS * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.ops_worker(beat.id), self._encode(beat), px=ttl_ms)
            pipe.zadd(self._keys.ops_workers, {beat.id: beat.beat_at})
            # Ids of workers that died without saying so; read paths clean them too.
            pipe.zremrangebyscore(self._keys.ops_workers, "-inf", beat.beat_at - 86_400)
            await pipe.execute()

    async def gone(self, worker_id: str) -> None:
        """A worker stopping cleanly leaves the list at once instead of after its TTL."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._keys.ops_worker(worker_id))
            pipe.zrem(self._keys.ops_workers, worker_id)
            await pipe.execute()

    async def live(self, limit: int = 1000) -> list[WorkerBeat]:
        ids: list[bytes] = await self._redis.zrevrange(self._keys.ops_workers, 0, limit - 1)
        if not ids:
            return []
        raws: list[bytes | None] = await self._redis.mget(
            [self._keys.ops_worker(i.decode()) for i in ids]
        )
        dead = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if dead:
            await self._redis.zrem(self._keys.ops_workers, *dead)
        beats = [_decode_beat(raw) for raw in raws if raw is not None]
        return sorted(beats, key=lambda b: b.id)


# --- the queue -------------------------------------------------------------------------------


class QueueView:
    """Reads arq's layout (service/jobs.py owns it) without KEYS or SCAN."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self._redis = redis
        self.name = queue_name

    async def _due(self, now_ms: int) -> tuple[int, int, list[tuple[str, float, bool]]]:
        """(due count, deferred count, [(job id, score ms, in progress)] for the first SCAN_CAP
        due jobs, oldest first)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self.name, "-inf", now_ms)
            pipe.zcount(self.name, f"({now_ms}", "+inf")
            pipe.zrangebyscore(self.name, "-inf", now_ms, start=0, num=SCAN_CAP, withscores=True)
            due, deferred, first = await pipe.execute()
        members: list[tuple[bytes, float]] = first
        if not members:
            return int(due), int(deferred), []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, _ in members:
                pipe.exists(jobs.in_progress_key(job_id.decode()))
            running: list[int] = await pipe.execute()
        listed = [
            (job_id.decode(), score, bool(r))
            for (job_id, score), r in zip(members, running, strict=True)
        ]
        return int(due), int(deferred), listed

    async def counts(self, now: float | None = None) -> QueueCounts:
        now = time.time() if now is None else now
        due, deferred, listed = await self._due(int(now * 1000))
        in_progress = sum(1 for *_, running in listed if running)
        oldest = next((score for _, score, running in listed if not running), None)
        return QueueCounts(
            name=self.name,
            ready=due - in_progress,
            deferred=deferred,
            in_progress=in_progress,
            in_progress_exact=due <= SCAN_CAP,
            oldest_ready_age_seconds=None if oldest is None else max(0.0, now - oldest / 1000),
        )

    async def oldest_ready(self, limit: int = 10, now: float | None = None) -> list[ReadyJob]:
        """The oldest jobs waiting for a worker (not running), with their function and args."""
        now = time.time() if now is None else now
        _, _, listed = await self._due(int(now * 1000))
        waiting = [(job_id, score) for job_id, score, running in listed if not running][:limit]
        if not waiting:
            return []
        raws: list[bytes | None] = await self._redis.mget(
            [jobs.job_key(job_id) for job_id, _ in waiting]
        )
        out = []
        for (job_id, score), raw in zip(waiting, raws, strict=True):
            function: str | None = None
            args: list[object] = []
            if raw is not None:  # arq dropped an expired job's key; its id stays queued
                try:
                    data = jobs.deserialize(raw)
                    function, args = data.get("f"), list(data.get("a") or [])
                except (msgspec.DecodeError, TypeError, ValueError):
                    function = "<unreadable>"
            out.append(
                ReadyJob(
                    job_id=job_id,
                    function=function,
                    args=args,
                    enqueued_at=score / 1000,
                    age_seconds=max(0.0, now - score / 1000),
                )
            )
        return out


# --- failed try-ons and their retry ------------------------------------------------------------

RetryRefusal = Literal["NOT_FAILED", "CREATE_SENT"]


def retry_refusal(record: TryOnRecord) -> tuple[RetryRefusal, str] | None:
    """Why an operator may not retry this try-on, or None when a retry is safe.

    At most one credit per accepted try-on (docs/pipeline.md): once a generation id exists
    a credit was spent, and while a create marker remains the create may have reached Genlook.
    Only a try-on that failed before any create was sent, or whose create Genlook refused
    outright (the runner clears the marker with such a failure), can be sent again."""
    if record.status != "failed":
        return "NOT_FAILED", f"Only failed try-ons can be retried; this one is {record.status}."
    if record.generation_id is not None:
        return (
            "CREATE_SENT",
            f"Genlook created generation {record.generation_id} for this try-on: a credit was "
            "spent. A retry would spend a second one, so it is refused; start a new try-on "
            "knowingly instead.",
        )
    if record.create_started_at is not None:
        return (
            "CREATE_SENT",
            "A create call was sent for this try-on and its outcome is unknown: Genlook may "
            "have spent a credit. A retry could spend a second one, so it is refused; start a "
            "new try-on knowingly instead.",
        )
    return None


class RetryRefused(Exception):
    def __init__(self, code: RetryRefusal, message: str, record: TryOnRecord) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.record = record


class OpsControl:
    """Everything the ops API and CLI read and change, over one Redis connection."""

    def __init__(self, redis: Redis, keys: Keys, queue_name: str) -> None:
        self._redis = redis
        self._keys = keys
        self.pauses = Pauses(redis, keys)
        self.heartbeats = Heartbeats(redis, keys)
        self.queue = QueueView(redis, queue_name)

    async def live_workers(self) -> list[WorkerBeat]:
        return await self.heartbeats.live()

    async def snapshot(self) -> Snapshot:
        now = time.time()
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.active_tryons)
            pipe.zcard(k.ops_failed_tryons)
            pipe.zcard(k.deliveries_due)
            pipe.zcount(k.deliveries_due, "-inf", now)
            pipe.zcard(k.ops_failed_deliveries)
            active, failed, pending, due_now, dead = await pipe.execute()
        return Snapshot(
            at=now,
            queue=await self.queue.counts(now),
            tryons_active=int(active),
            tryons_failed_listed=int(failed),
            deliveries_pending=int(pending),
            deliveries_due_now=int(due_now),
            deliveries_failed_listed=int(dead),
            workers=await self.live_workers(),
            intake_pause=await self.pauses.get("intake"),
            processing_pause=await self.pauses.get("processing"),
        )

    # --- failed try-ons ------------------------------------------------------------------------

    async def failed_tryons(self, limit: int = 50) -> list[TryOnRecord]:
        """The most recently failed try-ons, newest first. Ids whose record expired or is no
        longer failed (retried) leave the list as they are met."""

        async def load(ids: list[str]) -> list[TryOnRecord | None]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hget(self._keys.tryon(i), "doc")
                raws: list[bytes | None] = await pipe.execute()
            return [None if raw is None else _decode_record(raw) for raw in raws]

        return await self._still_failed(self._keys.ops_failed_tryons, limit, load)

    async def discard(self, tryon_id: str) -> bool:
        """Drop a try-on from the failed list (it stays failed); True if it was listed."""
        return bool(await self._redis.zrem(self._keys.ops_failed_tryons, tryon_id))

    async def retry(
        self,
        store: TryOnStore,
        tryon_id: str,
        deadline: float,
        *,
        quotas: Quotas,
        apps: AppRegistry,
    ) -> TryOnRecord:
        """Send a failed try-on through the pipeline again, from `queued`, with a new deadline.

        Refused (RetryRefused) unless `retry_refusal` allows it; the check runs inside the
        store's compare-and-set, so a concurrent change cannot slip between check and write.
        The failure gave the try-on's reservation back, so it is counted again, as a new
        try-on would be, against the app's current limits and its token's or anonymous
        user's: a full one raises its ApiError (402/429) and nothing changes; a later failure
        gives it back once. Raises TryOnNotFound."""
        now = time.time()
        current = await store.get(tryon_id)
        if current is None:
            raise TryOnNotFound(tryon_id)
        counters: list[str] = []
        if retry_refusal(current) is None:
            app = await apps.get(current.app)
            policy = app.policy if app is not None else None
            limits = quotas.tryon_limits(current.app, policy, current.payer, now)
            counters = await quotas.take_again(tryon_id, limits)

        def to_queued(r: TryOnRecord) -> TryOnRecord | None:
            if retry_refusal(r) is not None:
                return None
            r.status = "queued"
            r.error = None
            r.upstream_status = None
            r.completed_at = None
            r.started_at = None
            r.deadline_at = now + deadline
            r.quota_counters = counters
            return r

        try:
            record = await store.update(tryon_id, to_queued)
        except BaseException:
            await quotas.give_back(tryon_id, counters)
            raise
        if record.quota_counters is not counters:  # our mutation declined: undo the count
            await quotas.give_back(tryon_id, counters)
        if record.status != "queued":
            refusal = retry_refusal(record)
            assert refusal is not None  # the mutation declined: the record says why
            raise RetryRefused(refusal[0], refusal[1], record)
        # The sweeper's list: a non-terminal try-on must be in it (the store removed it when
        # the try-on failed). If this process dies right here the try-on stays queued without
        # a job; retrying it again repairs that: a record already queued passes through here
        # (its mutation declines, its status is queued) and only gets its place and its job.
        await self._redis.zadd(self._keys.active_tryons, {tryon_id: record.deadline_at})
        await store.enqueue(tryon_id)
        await self.discard(tryon_id)
        return record

    # --- failed deliveries ---------------------------------------------------------------------

    async def failed_deliveries(self, limit: int = 50) -> list[Delivery]:
        """Deliveries that ended failed, newest first; resent ones leave the list lazily."""

        async def load(ids: list[str]) -> list[Delivery | None]:
            raws: list[bytes | None] = await self._redis.mget([self._keys.delivery(i) for i in ids])
            return [None if raw is None else _decode_delivery(raw) for raw in raws]

        return await self._still_failed(self._keys.ops_failed_deliveries, limit, load)

    async def _still_failed(
        self,
        key: str,
        limit: int,
        load: Callable[[list[str]], Awaitable[list[_Failed | None]]],
    ) -> list[_Failed]:
        """The newest `limit` ids of a capped failed list, loaded; entries gone or no longer
        failed are dropped from the list as they are met."""
        ids = [i.decode() for i in await self._redis.zrevrange(key, 0, limit - 1)]
        if not ids:
            return []
        found: list[_Failed] = []
        stale: list[str] = []
        for i, item in zip(ids, await load(ids), strict=True):
            if item is None or item.status != "failed":
                stale.append(i)
            else:
                found.append(item)
        if stale:
            await self._redis.zrem(key, *stale)
        return found


# --- how the CLI shows them --------------------------------------------------------------------


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _pause_line(what: str, state: PauseState | None, now: float) -> str:
    if state is None:
        return f"{what:<11} running"
    until = "until resumed" if state.until is None else f"for {_ago(state.until - now)} more"
    reason = f" ({state.reason})" if state.reason else ""
    return f"{what:<11} PAUSED by {state.by} {_ago(now - state.at)} ago, {until}{reason}"


def render_status(snap: Snapshot) -> str:
    """`tryon-gateway ops status`: the snapshot as a few aligned lines and a worker table."""
    q = snap.queue
    exact = "" if q.in_progress_exact else " (at least)"
    lines = [
        _pause_line("intake", snap.intake_pause, snap.at),
        _pause_line("processing", snap.processing_pause, snap.at),
        "",
        f"queue {q.name}: {q.ready} ready, {q.deferred} deferred, "
        f"{q.in_progress}{exact} in progress; oldest ready {_ago(q.oldest_ready_age_seconds)}",
        f"try-ons: {snap.tryons_active} not finished, {snap.tryons_failed_listed} failed listed",
        f"deliveries: {snap.deliveries_pending} pending ({snap.deliveries_due_now} due now), "
        f"{snap.deliveries_failed_listed} failed listed",
        "",
        f"workers: {len(snap.workers)} live",
    ]
    if snap.workers:
        rows = [("ID", "VERSION", "UP", "LAST BEAT", "RUNNING", "DONE", "FAILED", "PICKING")]
        rows += [
            (
                w.id,
                w.version,
                _ago(snap.at - w.started_at),
                _ago(snap.at - w.beat_at) + " ago",
                str(w.jobs_in_progress),
                str(w.jobs_complete),
                str(w.jobs_failed),
                "yes" if w.picking else "NO",
            )
            for w in snap.workers
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(n) for c, n in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_jobs(jobs_out: dict[str, Any]) -> str:
    """`tryon-gateway ops jobs`: the counts and the oldest jobs waiting for a worker."""
    j = jobs_out
    oldest = msgspec.convert(j["oldestReady"], list[ReadyJob])
    lines = [
        f"queue {j['queue']}: {j['ready']} ready, {j['deferred']} deferred, "
        f"{j['inProgress']} in progress",
    ]
    if oldest:
        lines.append("oldest ready:")
        lines += [f"  {_ago(j.age_seconds):>7}  {j.function or '?':<16} {j.job_id}" for j in oldest]
    return "\n".join(lines)


def run_ops_command(url: str, token: str, command: str, args: dict[str, Any]) -> int:
    """`tryon-gateway ops <command>` over HTTP; prints the answer, returns the exit status."""
    try:
        r = _ops_request(url, token, command, args)
    except httpx.TransportError as exc:
        print(f"{url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return _print_answer(command, r)


def _ops_request(url: str, token: str, command: str, args: dict[str, Any]) -> httpx.Response:
    with httpx.Client(
        base_url=url.rstrip("/") + "/ops/api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    ) as client:
        if command == "status":
            r = client.get("/status")
        elif command == "jobs":
            r = client.get("/jobs", params={"limit": args.get("limit", 10)})
        elif command == "retry":
            r = client.post(f"/tryons/{args['tryon_id']}/retry")
        elif command == "pause":
            body = {k: args.get(k) for k in ("what", "reason", "seconds")}
            r = client.post("/pause", json={k: v for k, v in body.items() if v is not None})
        elif command == "resume":
            r = client.post("/resume", json={"what": args["what"]})
        else:
            raise ValueError(command)
    return r


def _print_answer(command: str, r: httpx.Response) -> int:
    if r.status_code >= 400:
        try:
            err = r.json()
            print(f"{r.status_code} {err['code']}: {err['message']}", file=sys.stderr)
        except (ValueError, KeyError, TypeError):
            print(f"{r.status_code}: {r.text[:500]}", file=sys.stderr)
        return 1
    data: dict[str, Any] = r.json()
    if command == "status":
        print(render_status(msgspec.convert(data, Snapshot)))
    elif command == "jobs":
        print(render_jobs(data))
    elif command == "retry":
        print(f"{data['id']}: {data['status']}. {data['message']}")
    elif command == "pause":
        state = data["state"]
        until = f", lifts in {_ago(state['until'] - time.time())}" if state.get("until") else ""
        print(f"{data['what']} paused by {state['by']}{until}")
    else:
        print(f"{data['what']} resumed" + ("" if data["wasPaused"] else " (it was not paused)"))
    return 0


__all__ = [
    "PAUSABLE",
    "IntakeGate",
    "OpsControl",
    "Pausable",
    "PauseState",
    "RetryRefused",
    "Snapshot",
    "TryOnNotFound",
    "WorkerBeat",
    "retry_refusal",
]
