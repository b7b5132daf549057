"""`GET /metrics`: Prometheus text format, fleet-wide (read from Redis at scrape time).

Open like `/healthz`: it holds counts, never ids, keys or payloads. Expose it only where the
scraper can reach it (a cluster-internal port or network policy, see the deploy docs)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency, Provide
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from service.api.deps import resources
from service.metrics import SnapshotCollector, take_snapshot
from service.ops.queue import QueueView
from service.resources import Resources


@get(
    "/metrics",
    tags=["ops"],
    dependencies={"res": Provide(resources, sync_to_thread=False)},
    include_in_schema=False,
)
async def metrics(res: NamedDependency[Resources]) -> Response[bytes]:
    queue = await QueueView(res.redis, res.settings.redis.queue_name).counts()
    snapshot = await take_snapshot(res.redis, res.keys, queue)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
