"""Fleet-wide metrics: counters and histograms kept in one Redis hash, exported by every gateway.

Workers and gateways add to the same hash (`HINCRBYFLOAT`, inside the Lua scripts that make
the state changes where they can, so a count never disagrees with the state it counts); the
gateway's `/metrics` reads the hash and a few live figures (queue depth, oldest waiting job,
delivery backlog) at scrape time and renders them with prometheus-client. Label sets are small
and fixed (endpoint names, status classes, stages, outcomes): never an id.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from service.keys import Keys

# A worker counts as live when it beat this recently (it beats every few seconds).
LIVE_WITHIN = 30.0
# Seconds; generations take ~10 s, queues should take milliseconds.
BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900)
STAGES = ("queue_wait", "upstream", "end_to_end")

_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tryon_accepted": ("Try-ons accepted by the gateway.", ()),
    "tryon_finished": ("Try-ons that reached a terminal state, by status.", ("status",)),
    "upstream_requests": (
        "Genlook requests, by endpoint and status class.",
        ("endpoint", "status"),
    ),
    "upstream_rate_limited": ("Genlook 429 answers.", ()),
    "upstream_account_failovers": (
        "Upstream accounts taken out of their pools (402, 401), by reason.",
        ("reason",),
    ),
    "upstream_budget_grants": ("Cells taken from the shared upstream budget.", ()),
    "credits_spent": (
        "Credits spent: completed generations, and creates whose outcome is unknown.",
        (),
    ),
    "product_cache": ("Product cache lookups, by result.", ("result",)),
    "result_cache": (
        "Exact result cache: try-ons completed from a stored identical result (hit), and "
        "generations a worker led (miss).",
        ("result",),
    ),
    "credits_saved": ("Credits not spent: try-ons completed from a stored result.", ()),
    "photo_uploads": (
        "Photos needed upstream, by result (hit: already there; left_to_tryon: no spare budget"
        " to send it ahead of its try-on).",
        ("result",),
    ),
    "webhook_deliveries": ("Webhook delivery attempts, by outcome.", ("outcome",)),
}
_HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tryon_stage_seconds": ("Seconds spent per stage of a try-on.", ("stage",)),
}


def field(name: str, **labels: str) -> str:
    """The hash field of one series: `name` or `name|k=v,k=v` (labels sorted)."""
    if not labels:
        return name
    return name + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


def observations(stage: str, seconds: float) -> list[tuple[str, float]]:
    """The hash increments that record one histogram observation (cumulative buckets)."""
    name = "tryon_stage_seconds"
    out = [(field(name + "_bucket", stage=stage, le=_le(b)), 1.0) for b in BUCKETS if seconds <= b]
    out.append((field(name + "_bucket", stage=stage, le="+Inf"), 1.0))
    out.append((field(name + "_sum", stage=stage), seconds))
    out.append((field(name + "_count", stage=stage), 1.0))
    return out


def encode_increments(increments: Iterable[tuple[str, float]]) -> str:
    """For the Lua scripts: `field value field value ...` (fields never contain spaces)."""
    return " ".join(f"{name} {value!r}" for name, value in increments)


# Applies `encode_increments` output to the metrics hash; shared by the scripts that use it.
LUA_APPLY = """
local function apply_metrics(key, encoded)
  if encoded == '' then return end
  local name = nil
  for token in string.gmatch(encoded, '%S+') do
    if name == nil then name = token
    else redis.call('HINCRBYFLOAT', key, name, token); name = nil end
  end
end
"""


def _le(bound: float) -> str:
    return repr(float(bound))


class MetricsWriter:
    """Adds to the fleet's counters from Python, for events no Lua script sees."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.metrics

    async def add(self, name: str, by: float = 1.0, **labels: str) -> None:
        await self._redis.hincrbyfloat(self._key, field(name, **labels), by)  # type: ignore[misc]


def _parse(raw: Mapping[bytes, bytes]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for key, value in raw.items():
        name, _, label_text = key.decode().partition("|")
        labels = tuple(
            (k, v) for k, _, v in (part.partition("=") for part in label_text.split(",") if part)
        )
        series[name][labels] = float(value)
    return series


class Snapshot:
    """What one scrape read from Redis."""

    def __init__(
        self,
        stored: Mapping[bytes, bytes],
        gauges: Mapping[str, tuple[str, float]],
    ) -> None:
        self.series = _parse(stored)
        self.gauges = gauges

    def families(self) -> Iterator[Metric]:
        for name, (doc, label_names) in _COUNTERS.items():
            family = CounterMetricFamily(f"tryon_gateway_{name}", doc, labels=label_names)
            for labels, value in sorted(self.series.get(name, {}).items()):
                family.add_metric([dict(labels).get(n, "") for n in label_names], value)
            yield family
        for name, (doc, label_names) in _HISTOGRAMS.items():
            histogram = HistogramMetricFamily(f"tryon_gateway_{name}", doc, labels=label_names)
            buckets = self.series.get(name + "_bucket", {})
            sums = self.series.get(name + "_sum", {})
            for stage in STAGES:
                rows = [(dict(k)["le"], v) for k, v in buckets.items() if dict(k)["stage"] == stage]
                if not rows:
                    continue
                rows.sort(key=lambda r: float(r[0]))
                histogram.add_metric([stage], rows, sum_value=sums.get((("stage", stage),), 0.0))
            yield histogram
        for name, (doc, value) in self.gauges.items():
            yield GaugeMetricFamily(f"tryon_gateway_{name}", doc, value=value)


class SnapshotCollector(Collector):
    """prometheus-client collector over a snapshot taken just before rendering."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return self._snapshot.families()


class QueueFigures(Protocol):
    @property
    def ready(self) -> int: ...
    @property
    def deferred(self) -> int: ...
    @property
    def in_progress(self) -> int: ...
    @property
    def oldest_ready_age_seconds(self) -> float | None: ...


async def take_snapshot(redis: Redis, keys: Keys, queue: QueueFigures) -> Snapshot:
    """The stored series plus the live gauges; `queue` comes from the ops queue view."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.metrics)
        pipe.zcard(keys.active_tryons)
        pipe.zcard(keys.deliveries_due)
        pipe.zcount(keys.ops_workers, time.time() - LIVE_WITHIN, "+inf")
        pipe.scard(keys.webhook_endpoints_disabled)
        pipe.get(keys.credits_balance)
        pipe.zcard(keys.results_expiry)
        pipe.get(keys.results_bytes)
        pipe.hkeys(keys.alerts)
        (
            stored,
            active,
            backlog,
            live,
            disabled,
            credits,
            objects,
            size,
            alerts,
        ) = await pipe.execute()
    # Budget alerts that fired and are not re-armed (service/usage/alerts.py), by kind.
    fired = [a.decode().split(":", 1)[0] for a in alerts]
    gauges = {
        "queue_ready_jobs": ("Jobs waiting for a worker now.", float(queue.ready)),
        "queue_in_progress_jobs": ("Jobs a worker is running now.", float(queue.in_progress)),
        "queue_deferred_jobs": (
            "Jobs scheduled for later (retries, backoff).",
            float(queue.deferred),
        ),
        "queue_oldest_ready_age_seconds": (
            "Age of the oldest job waiting for a worker (0 when none).",
            queue.oldest_ready_age_seconds or 0.0,
        ),
        "tryons_active": ("Try-ons not yet in a terminal state.", float(active)),
        "webhook_backlog": ("Webhook deliveries pending (first attempt or retry).", float(backlog)),
        "webhook_endpoints_disabled": (
            "Webhook endpoints disabled (410, failing, manual).",
            float(disabled),
        ),
        "workers_live": ("Workers whose heartbeat is recent.", float(live)),
        "results_stored_objects": ("Result images in the gateway's store.", float(objects)),
        "results_stored_bytes": ("Bytes of result images in the store.", float(size or 0)),
        "alerts_balance_low": (
            "Balance thresholds (ALERTS_BALANCE_THRESHOLDS) the account is at or under.",
            float(fired.count("balance")),
        ),
        "alerts_daily_cap_near": (
            "Shares of apps' daily caps (ALERTS_DAILY_CAP_PERCENTS) reached today.",
            float(fired.count("cap")),
        ),
    }
    if credits is not None:
        gauges["credits_balance"] = ("Genlook credit balance (last read).", float(credits))
    return Snapshot(stored, gauges)
