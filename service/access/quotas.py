"""Limits that protect credits, each checked and counted in one Redis script.

Counters, not token buckets: a credit is spent per try-on, so per-token and per-day limits are
counts, reserved all-or-nothing when a try-on is accepted (50 concurrent requests against a
quota of 5 accept exactly 5). Browser request rates use one-minute fixed windows. A reservation
is given back once, when its try-on ends without spending a credit; a crash between a
reservation and its release can only leave a counter one too high, never let a try-on through
that the limits would refuse.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from service.access.models import Policy
from service.domain_errors import LimitReached, QuotaExhausted, RateLimited
from service.keys import Keys

# KEYS: counters; ARGV: limit_1, ttl_ms_1, limit_2, ttl_ms_2, ..., units
# Returns 0 when every counter was incremented by `units`, else the 1-based index of the first
# one without room for them all (a batch counts all its try-ons or none).
_RESERVE = """
local units = tonumber(ARGV[#ARGV])
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') + units > tonumber(ARGV[2 * i - 1]) then
    return i
  end
end
for i = 1, #KEYS do
  if redis.call('INCRBY', KEYS[i], units) == units then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
  end
end
return 0
"""

# KEYS[1]: the release marker; KEYS[2..]: the counters reserved. Gives back at most once.
_RELEASE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
"""

DAY = 86_400
WINDOW = 60


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter with its ceiling, and the error to answer when it is full."""

    key: str
    limit: int
    ttl: float
    kind: type[LimitReached]
    code: str
    message: str
    # Seconds until the counter starts over (Retry-After); None for counts that never reset.
    resets_in: float | None = None

    def error(self) -> LimitReached:
        retry_after = None if self.resets_in is None else max(1, math.ceil(self.resets_in))
        return self.kind(self.code, self.message, retry_after=retry_after)


class Payer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Whose per-try-on limits a browser's try-on counts against, kept on its record so an
    operator's retry counts it against the same ones (a backend's try-on has none: None)."""

    # The end-user token's counter and its ceiling, or, for an anonymous browser, its IP.
    token_id: str | None = None
    max_tryons: int = 0
    token_expires_at: float = 0.0
    anonymous_ip: str | None = None


def utc_day(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def seconds_to_midnight(now: float) -> float:
    return DAY - now % DAY


def _per_day(key: str, limit: int, now: float, code: str, message: str) -> Limit:
    """A count of try-ons for one UTC day: exhausted when full, until midnight."""
    return Limit(
        key=key,
        limit=limit,
        ttl=2 * DAY,
        kind=QuotaExhausted,
        code=code,
        message=message,
        resets_in=seconds_to_midnight(now),
    )


class Quotas:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    # --- limits -------------------------------------------------------------------------------
    def rate(self, scope: str, who: str, per_minute: int, now: float) -> Limit:
        window = int(now // WINDOW)
        # Digested: an end user's id (or an IP) never names a key, so an erase has none to find.
        who_digest = hashlib.sha256(who.encode()).hexdigest()[:24]
        return Limit(
            key=self._keys.rate_window(scope, who_digest, window),
            limit=per_minute,
            ttl=WINDOW + 5,
            kind=RateLimited,
            code="RATE_LIMITED",
            message=f"Too many requests ({scope}): at most {per_minute} a minute.",
            resets_in=(window + 1) * WINDOW - now,
        )

    def daily_cap(self, app: str, cap: int, now: float) -> Limit:
        return _per_day(
            self._keys.daily_tryons(app, utc_day(now)),
            cap,
            now,
            "DAILY_CREDIT_CAP_REACHED",
            f"This app's daily try-on cap ({cap}) is reached; it resets at 00:00 UTC.",
        )

    def token_tryons(self, token_id: str, max_tryons: int, expires_at: float, now: float) -> Limit:
        return Limit(
            key=self._keys.token_uses(token_id),
            limit=max_tryons,
            ttl=max(expires_at - now, 1) + DAY,
            kind=QuotaExhausted,
            code="TOKEN_QUOTA_EXHAUSTED",
            message=f"This end-user token allows {max_tryons} try-ons; ask the app for a new one.",
        )

    def anonymous_daily(self, app: str, ip: str, per_day: int, now: float) -> Limit:
        return _per_day(
            self._keys.anonymous_daily(app, ip, utc_day(now)),
            per_day,
            now,
            "ANONYMOUS_QUOTA_EXHAUSTED",
            f"Anonymous visitors get {per_day} try-ons a day.",
        )

    def tryon_limits(
        self, app: str, policy: Policy | None, payer: Payer | None, now: float
    ) -> list[Limit]:
        """What one try-on counts against: its token's (or anonymous IP's) allowance and the
        app's daily cap; nothing for an app without a stored policy."""
        limits: list[Limit] = []
        if payer is not None and payer.token_id is not None:
            limits.append(
                self.token_tryons(payer.token_id, payer.max_tryons, payer.token_expires_at, now)
            )
        elif payer is not None and payer.anonymous_ip is not None and policy is not None:
            limits.append(
                self.anonymous_daily(
                    app, payer.anonymous_ip, policy.anonymous_tryons_per_ip_per_day, now
                )
            )
        if policy is not None and policy.daily_credit_cap is not None:
            limits.append(self.daily_cap(app, policy.daily_credit_cap, now))
        return limits

    # --- counting -----------------------------------------------------------------------------
    async def take(self, limits: Sequence[Limit], units: int = 1) -> list[str]:
        """Count `units` against every limit, or none and raise the first full one's error.
        Returns the counters taken (a reservation of one unit each per try-on, for
        `give_back`)."""
        if not limits:
            return []
        args: list[int] = []
        for limit in limits:
            args += [limit.limit, int(limit.ttl * 1000)]
        args.append(units)
        full = await self._reserve(keys=[limit.key for limit in limits], args=args)
        if full:
            raise limits[int(full) - 1].error()
        return [limit.key for limit in limits]

    async def take_again(self, reservation_id: str, limits: Sequence[Limit]) -> list[str]:
        """`take` for a reservation that was given back (a retried try-on): counted anew, and
        its next `give_back` counts again."""
        counters = await self.take(limits)
        await self._redis.delete(self._keys.quota_released(reservation_id))
        return counters

    async def give_back(self, reservation_id: str, counters: Sequence[str]) -> bool:
        """Undo one reservation, once however often it is called."""
        if not counters:
            return False
        released = await self._release(
            keys=[self._keys.quota_released(reservation_id), *counters], args=[2 * DAY * 1000]
        )
        return bool(released)
