"""Pause flags (`ops:pause:intake|processing`) and the gateway's intake gate.

A flag is JSON {by, at, reason, until}, with a TTL when the pause was given a duration. The
gateway reads the intake flag through `IntakeGate`, at most once a second per process; workers
poll the processing flag every second (workers/ops.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Literal

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.keys import Keys
from service.ops.errors import IntakePaused

log = logging.getLogger("service.ops")

Pausable = Literal["intake", "processing"]
PAUSABLE: tuple[Pausable, ...] = ("intake", "processing")

# How long the gateway trusts its last read of the intake flag.
GATE_TTL = 1.0


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
    """The gateway's hot-path check: raises IntakePaused while intake is paused.

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
        raise IntakePaused(
            f"New try-ons are paused by the operators{reason}. Retry later.",
            retry_after=retry_after,
        )
