"""Liveness of the worker in this container: exit 0 while its heartbeat in Redis is fresh.

A worker writes its heartbeat (`{prefix}ops:worker:<host>-<pid>`, with a TTL of three beats)
from a task on its event loop every WORKER_HEALTH_CHECK_INTERVAL seconds, so no fresh beat
from this host means the loop is stuck or the task died: restarting the container helps.
When Redis does not answer, the answer is still 0: restarting workers does not bring Redis
back, and a worker reconnects by itself once it does.

Run in the worker's container, with the worker's environment: `python worker_alive.py`.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from redis.exceptions import RedisError
from service.keys import Keys
from service.redis_client import connect_redis
from service.settings import Settings

# Under the probe's own timeout: an answer, not a probe that times out.
DEADLINE = 3.0


async def check(settings: Settings, host: str) -> tuple[bool, str]:
    keys = Keys(settings.redis.prefix)
    redis = connect_redis(settings)
    try:
        async with asyncio.timeout(DEADLINE):
            ids: list[bytes] = await redis.zrange(keys.ops_workers, 0, -1)
            mine = [i.decode() for i in ids if i.decode().rpartition("-")[0] == host]
            if mine and await redis.exists(*(keys.ops_worker(i) for i in mine)):
                return True, f"heartbeat fresh ({', '.join(mine)})"
            return False, f"no fresh heartbeat from {host}"
    except (RedisError, OSError, TimeoutError) as exc:
        return True, f"Redis unavailable ({type(exc).__name__}): not the worker's fault"
    finally:
        await redis.aclose()


def main() -> int:
    alive, why = asyncio.run(check(Settings.from_env(), socket.gethostname()))
    print(why)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
