"""For `bench.overheads`: the gateway exactly as `tryon-gateway serve` runs it, except that its
Redis client has no socket timeout (redis-py then sends without `asyncio.wait_for`).

    python bench/_gateway_no_socket_timeout.py PORT
"""

from __future__ import annotations

import sys

import service.resources
import uvicorn
from redis.asyncio import Redis
from service.settings import Settings


def _connect_redis(settings: Settings) -> Redis:
    r = settings.redis
    client: Redis = Redis.from_url(
        r.url,
        socket_connect_timeout=r.connect_timeout,
        socket_timeout=None,
        health_check_interval=30,
    )
    return client


if __name__ == "__main__":
    service.resources.connect_redis = _connect_redis
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        proxy_headers=True,
    )
