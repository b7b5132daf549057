"""The exact result cache, with single flight: identical try-ons spend one credit.

Identical means the same key (`reuse_key`): the app, the end user (`externalUserId`, or none),
the product's definition fingerprint (service/products.py: title, description, image URLs,
classifications; not its externalId), the person photo's content hash and crop flag, and the
output options (watermark, keepForDays, aiLabel). The end user is part of the key so that a
stored object is only ever shared between try-ons of one user (or of the app's user-less
try-ons): erasing a user deletes their objects without taking another user's result away,
and purges exactly their entries (erase finds them through the records' `reuse_key`).

Three Redis keys per cache key (service/keys.py):

- the entry (`reuse:<key>`, a hash, RESULTS_REUSE_TTL): the try-on that made a completed
  result and its StoredResult. A try-on that finds it while the object is still indexed in
  the results store completes at once with the same object (by reference, never copied), and
  the object's end of retention is raised to cover the new try-on's own (`ZADD XX GT` on the
  results index the sweeper reads).
- the lead (`reuse-lead:<key>`): the one try-on generating that result now. A worker taking
  up a queued try-on claims it; if another live try-on holds it, this one waits instead
  (joins the waiters, its job ends; the record stays `queued`). Except an interactive try-on
  behind a batch leader not yet sent (no create started): it takes the lead over (docs/results.md).
- the waiters (`reuse-wait:<key>`): when the leader completes, its worker records the entry
  and completes every waiter from it; when it fails or is canceled, the lead is released and
  every waiter's job is enqueued again: they claim afresh, one leads, the others wait on it.
  Failures are never recorded. A leader that dies with its worker is resumed from its record
  (the lead stays its own); the sweeper's re-enqueue of every active try-on
  (WORKER_SWEEP_INTERVAL) makes any waiter that missed a hand-over claim again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from redis.asyncio import Redis

from service.keys import Keys
from service.photos import StoredImage
from service.products import fingerprint
from service.tryons.models import StoredResult, TryOnRecord

if TYPE_CHECKING:
    from service.tryons.store import Mutation

# KEYS: entry, results index, lead, waiters. ARGV: now, the new try-on's end of retention, its
# id, the lead's lifetime (ms), the prefix of try-on record keys, '1' to claim (else only look),
# its lane.
_CLAIM = """
local e = redis.call('HMGET', KEYS[1], 'from', 'object', 'doc')
if e[1] then
  local score = redis.call('ZSCORE', KEYS[2], e[2])
  if score and tonumber(score) > tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[2], e[2])
    return {'hit', e[1], e[3], score}
  end
  redis.call('DEL', KEYS[1])
end
if ARGV[6] ~= '1' then return {'miss'} end
local lead = redis.call('GET', KEYS[3])
if lead and lead ~= ARGV[3] then
  local status = redis.call('HGET', ARGV[5] .. lead, 'status')
  if status == 'completed' then return {'ended', lead} end
  if status and status ~= 'failed' and status ~= 'canceled' then
    -- An interactive try-on does not wait behind a batch leader not yet sent (starved by
    -- design behind the interactive lane): it takes the lead (records omit default fields).
    local overtake = false
    if ARGV[7] == 'interactive' then
      local doc = cjson.decode(redis.call('HGET', ARGV[5] .. lead, 'doc'))
      overtake = doc['lane'] == 'batch' and doc['create_started_at'] == nil
        and doc['generation_id'] == nil
    end
    if not overtake then
      redis.call('SADD', KEYS[4], ARGV[3])
      redis.call('PEXPIRE', KEYS[4], ARGV[4])
      return {'follow', lead}
    end
  end
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return {'lead'}
"""

# KEYS: entry, lead, waiters, results index. ARGV: from, object key, StoredResult, ttl (ms).
# The entry only while its object is indexed (an erase or sweep may have taken it already).
_REMEMBER = """
if redis.call('ZSCORE', KEYS[4], ARGV[2]) then
  redis.call('HSET', KEYS[1], 'from', ARGV[1], 'object', ARGV[2], 'doc', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
local waiting = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[3])
return waiting
"""

# KEYS: lead, waiters. ARGV: the failed try-on's id. Only the leader hands its waiters on.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {} end
redis.call('DEL', KEYS[1])
local waiting = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return waiting
"""


def reuse_key(record: TryOnRecord, photo: StoredImage) -> str:
    """The cache key of a try-on whose person is the stored photo `photo`."""
    material = msgspec.json.encode(
        [
            record.app,
            record.external_user_id,
            fingerprint(record.product),
            photo.digest,
            photo.crop,
            record.watermark,
            record.keep_for_days,
            record.ai_label,
        ]
    )
    return hashlib.sha256(material).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Hit:
    """A completed result to complete with: the try-on that made it, and its object."""

    source: str
    stored: StoredResult


@dataclass(frozen=True, slots=True)
class Lead:
    """Generate it: no stored result, and no other try-on generating it."""


@dataclass(frozen=True, slots=True)
class Follow:
    """Wait: `leader` is generating the same result now."""

    leader: str


@dataclass(frozen=True, slots=True)
class Ended:
    """`leader` completed, but its result was not recorded (its worker died in between)."""

    leader: str


Claim = Hit | Lead | Follow | Ended


def completed_from(hit: Hit) -> Mutation:
    """The state change that completes a queued try-on with `hit`'s result (no credit)."""

    def apply(r: TryOnRecord) -> TryOnRecord | None:
        if r.status != "queued":
            return None
        r.status = "completed"
        r.stored_result = hit.stored
        r.reused_from = hit.source
        r.completed_at = time.time()
        return r

    return apply


class ResultReuse:
    _stored = msgspec.json.Decoder(StoredResult)
    _encoder = msgspec.json.Encoder()

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        ttl: float,
        lead_ttl: float,
        retention: Callable[[int | None], float],
    ) -> None:
        self._keys = keys
        # How long a try-on's result must be kept, from its `keepForDays`
        # (service/results/retention.py): a reused object is kept at least that long again.
        self._retention = retention
        # 0: the cache is off (RESULTS_REUSE_TTL=0).
        self.ttl = ttl
        # A lead outlives any try-on (WORKER_TRYON_DEADLINE), so a lead whose record vanished
        # (erased) cannot hold its waiters longer than their own bound.
        self._lead_ms = int(lead_ttl * 1000)
        self._claim = redis.register_script(_CLAIM)
        self._remember = redis.register_script(_REMEMBER)
        self._release = redis.register_script(_RELEASE)
        self._redis = redis

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    async def _run_claim(self, record: TryOnRecord, claim: bool) -> tuple[list[bytes], float]:
        assert record.reuse_key is not None
        now = time.time()
        need_until = now + self._retention(record.keep_for_days)
        k = self._keys
        key = record.reuse_key
        reply: list[bytes] = await self._claim(
            keys=[k.reuse_entry(key), k.results_expiry, k.reuse_lead(key), k.reuse_waiters(key)],
            args=[
                now,
                need_until,
                record.id,
                self._lead_ms,
                k.tryon(""),
                "1" if claim else "0",
                record.lane,
            ],
        )
        return reply, need_until

    def _hit(self, reply: list[bytes], need_until: float) -> Hit:
        stored = self._stored.decode(reply[2])
        expires_at = max(float(reply[3]), need_until)
        return Hit(reply[1].decode(), msgspec.structs.replace(stored, expires_at=expires_at))

    async def lookup(self, record: TryOnRecord) -> Hit | None:
        """A stored result for `record`, its object kept at least as long as `record` needs."""
        reply, need_until = await self._run_claim(record, claim=False)
        return self._hit(reply, need_until) if reply[0] == b"hit" else None

    async def claim(self, record: TryOnRecord) -> Claim:
        """What a worker taking up the queued `record` does: complete from a stored result,
        lead the generation, or wait for the try-on leading it."""
        reply, need_until = await self._run_claim(record, claim=True)
        kind = reply[0]
        if kind == b"hit":
            return self._hit(reply, need_until)
        if kind == b"follow":
            return Follow(reply[1].decode())
        if kind == b"ended":
            return Ended(reply[1].decode())
        return Lead()

    async def remember(self, record: TryOnRecord) -> list[str]:
        """Offer `record`'s completed result to identical try-ons; the waiters to complete."""
        assert record.reuse_key is not None
        assert record.stored_result is not None
        k = self._keys
        key = record.reuse_key
        stored = record.stored_result
        waiting: list[bytes] = await self._remember(
            keys=[k.reuse_entry(key), k.reuse_lead(key), k.reuse_waiters(key), k.results_expiry],
            args=[record.id, stored.key, self._encoder.encode(stored), int(self.ttl * 1000)],
        )
        return [w.decode() for w in waiting]

    async def release(self, record: TryOnRecord) -> list[str]:
        """`record` ended without a result: give up its lead; the waiters to enqueue again."""
        assert record.reuse_key is not None
        k = self._keys
        key = record.reuse_key
        waiting: list[bytes] = await self._release(
            keys=[k.reuse_lead(key), k.reuse_waiters(key)], args=[record.id]
        )
        return [w.decode() for w in waiting]

    async def erase(self, reuse_keys: set[str]) -> None:
        """Purge the entries (and any lead and waiters) of an erased user's try-ons."""
        if not reuse_keys:
            return
        k = self._keys
        names = [n for key in reuse_keys for n in (k.reuse_entry(key), k.reuse_lead(key))]
        names += [k.reuse_waiters(key) for key in reuse_keys]
        await self._redis.delete(*names)
