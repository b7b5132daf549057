"""The Redis client a process opens from its settings (gateway, worker, CLI, probes).

Below the domain modules and the wiring (service/resources.py), so a CLI command or a probe
that needs only a connection loads neither.
"""

from __future__ import annotations

from redis.asyncio import Redis

from service import redis_conn
from service.settings import Settings


def connect_redis(settings: Settings) -> Redis:
    r = settings.redis
    return redis_conn.connect(
        r.url,
        connect_timeout=r.connect_timeout,
        socket_timeout=r.socket_timeout,
        health_check_interval=30,
    )
