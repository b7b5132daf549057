"""The last hour of the fleet, sampled: what the ops dashboard's charts draw.

`record_sample` reads the fleet counters (the metrics hash, service/metrics.py) and a few live
gauges (queue depth, oldest ready job, active try-ons, pending deliveries, live workers) and
appends them as one JSON entry to a Redis stream (`{prefix}ops:history`). Counters are stored
as running totals, not rates: whoever reads computes per-minute rates from the deltas between
two samples, so a missed or late sample costs resolution, never correctness.

The worker's periodic sweep calls it (one worker per tick: arq runs a cron job once per tick
across the fleet). A Lua script makes the append conditional on the newest entry being at
least `min_gap` seconds old by Redis' clock, so extra callers (several workers, a manual call)
cannot flood the stream, and trims entries older than the window in the same call, so the
stream holds at most an hour at the sampling interval (≤ 3600 entries at the 1 s floor).
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from service.keys import Keys
from service.ops.heartbeats import Heartbeats
from service.ops.queue import QueueView

# What the charts look back over; older entries are trimmed as new ones arrive.
WINDOW_SECONDS = 3600
# Fleet-wide floor between two samples, whoever records them.
MIN_GAP_SECONDS = 1.0


class Sample(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One point in time. Counters are running totals since the metrics hash began (rates
    come from deltas); gauges are the value at `at`."""

    at: float
    # counters
    accepted: float = 0.0
    completed: float = 0.0
    failed: float = 0.0
    canceled: float = 0.0
    upstream_requests: float = 0.0
    # 5xx answers and transport errors (no answer at all)
    upstream_errors: float = 0.0
    upstream_rate_limited: float = 0.0
    budget_grants: float = 0.0
    credits_spent: float = 0.0
    # The exact result cache (service/results/reuse.py): each hit is a credit not spent.
    credits_saved: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    webhooks_delivered: float = 0.0
    webhooks_failed: float = 0.0
    # gauges
    ready: int = 0
    deferred: int = 0
    in_progress: int = 0
    oldest_ready_age_seconds: float = 0.0
    tryons_active: int = 0
    deliveries_pending: int = 0
    workers_live: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Sample).decode

# KEYS[1] stream; ARGV: sample JSON, min gap (ms), window (ms). Returns 1 if appended.
_APPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local ms = tonumber(string.match(last[1][1], '^(%d+)'))
  if now - ms < tonumber(ARGV[2]) then return 0 end
end
redis.call('XADD', KEYS[1], 'MINID', '~', tostring(now - tonumber(ARGV[3])), '*', 's', ARGV[1])
return 1
"""


def _counters(raw: dict[bytes, bytes]) -> dict[str, float]:
    """Sums of the metrics hash's series the charts use (fields: `name` or `name|k=v,...`)."""
    out: dict[str, float] = {}

    def add(name: str, value: float) -> None:
        out[name] = out.get(name, 0.0) + value

    for key, value in raw.items():
        name, _, label_text = key.decode().partition("|")
        labels = dict(part.partition("=")[::2] for part in label_text.split(",") if part)
        v = float(value)
        if name == "tryon_accepted":
            add("accepted", v)
        elif name == "tryon_finished":
            status = labels.get("status", "")
            if status in ("completed", "failed", "canceled"):
                add(status, v)
        elif name == "upstream_requests":
            add("upstream_requests", v)
            if labels.get("status") in ("5xx", "error"):
                add("upstream_errors", v)
        elif name == "upstream_rate_limited":
            add("upstream_rate_limited", v)
        elif name == "upstream_budget_grants":
            add("budget_grants", v)
        elif name in ("credits_spent", "credits_saved"):
            add(name, v)
        elif name == "result_cache":
            add("cache_hits" if labels.get("result") == "hit" else "cache_misses", v)
        elif name == "webhook_deliveries":
            outcome = labels.get("outcome", "")
            if outcome == "succeeded":
                add("webhooks_delivered", v)
            elif outcome == "failed":
                add("webhooks_failed", v)
    return out


async def take_sample(redis: Redis, keys: Keys, queue_name: str) -> Sample:
    """The fleet now, without storing it (the dashboard's live point)."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.metrics)
        pipe.zcard(keys.active_tryons)
        pipe.zcard(keys.deliveries_due)
        raw, active, pending = await pipe.execute()
    queue = await QueueView(redis, queue_name).counts(now)
    workers = await Heartbeats(redis, keys).live()
    c = _counters(raw)
    return Sample(
        at=now,
        accepted=c.get("accepted", 0.0),
        completed=c.get("completed", 0.0),
        failed=c.get("failed", 0.0),
        canceled=c.get("canceled", 0.0),
        upstream_requests=c.get("upstream_requests", 0.0),
        upstream_errors=c.get("upstream_errors", 0.0),
        upstream_rate_limited=c.get("upstream_rate_limited", 0.0),
        budget_grants=c.get("budget_grants", 0.0),
        credits_spent=c.get("credits_spent", 0.0),
        credits_saved=c.get("credits_saved", 0.0),
        cache_hits=c.get("cache_hits", 0.0),
        cache_misses=c.get("cache_misses", 0.0),
        webhooks_delivered=c.get("webhooks_delivered", 0.0),
        webhooks_failed=c.get("webhooks_failed", 0.0),
        ready=queue.ready,
        deferred=queue.deferred,
        in_progress=queue.in_progress,
        oldest_ready_age_seconds=queue.oldest_ready_age_seconds or 0.0,
        tryons_active=int(active),
        deliveries_pending=int(pending),
        workers_live=len(workers),
    )


async def record_sample(
    redis: Redis, keys: Keys, queue_name: str, *, min_gap: float = MIN_GAP_SECONDS
) -> bool:
    """Append the fleet's current sample to the history; False when another was appended less
    than `min_gap` seconds ago (by Redis' clock). Cost: one pipeline, the bounded queue
    snapshot of service/ops/control.py, one heartbeat read and one script call."""
    sample = await take_sample(redis, keys, queue_name)
    appended = await redis.eval(  # type: ignore[misc]
        _APPEND,
        1,
        keys.ops_history,
        _encode(sample).decode(),
        str(int(min_gap * 1000)),
        str(WINDOW_SECONDS * 1000),
    )
    return bool(appended)


async def read_history(
    redis: Redis, keys: Keys, *, seconds: float = WINDOW_SECONDS, now: float | None = None
) -> list[Sample]:
    """Samples of the last `seconds` (at most the window), oldest first."""
    now = time.time() if now is None else now
    since_ms = int((now - min(seconds, WINDOW_SECONDS)) * 1000)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
        keys.ops_history, min=f"{since_ms}-0", max="+"
    )
    out = []
    for _, fields in entries:
        raw = fields.get(b"s")
        if raw is None:
            continue
        try:
            out.append(_decode(raw))
        except msgspec.DecodeError:  # an entry from an older layout: skip, don't break charts
            continue
    return out
