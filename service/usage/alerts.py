"""Budget alerts: an account's credit balance at or under a threshold, an app near its daily cap.

Each alert is sent once per crossing. The alerts hash (service/keys.py) holds one field per
alert that fired; the field is written in the same script that puts the event in the webhook
outbox, so a crash can neither lose nor double an alert, and however many workers check at
once one of them sends it. The field is removed when the condition clears, which re-arms the
alert: a balance back above its threshold (a top-up), or a new UTC day for a cap (its field
names the day).

The events go through the webhook delivery of try-on events (signed, retried, in the ops API's
lists): `account.balance_low` to every app's endpoints (every app of this gateway spends the
account), `app.daily_cap_near` to that app's endpoints, and both to the ops endpoint
(ALERTS_OPS_URL) when one is set. An endpoint receives them unless its `eventTypes` leave them
out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence

import msgspec
from redis.asyncio import Redis

from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.keys import Keys
from service.namespacing import DEFAULT_ACCOUNT, part
from service.settings import AlertSettings
from service.tryons.models import iso
from service.usage.counting import utc_date
from service.webhooks.events import BALANCE_LOW, DAILY_CAP_NEAR
from service.webhooks.signing import secret_key

log = logging.getLogger("service.usage.alerts")

# KEYS[1]: the alerts hash; KEYS[2]: the outbox. ARGV: alert id, now, event id, event type,
# body, '1' to send it to the ops endpoint, then the apps whose endpoints receive it.
_FIRE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'type', ARGV[4], 'app', ARGV[i],
             'tryon', '', 'callback', '', 'body', ARGV[5], 'trace', '')
end
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'type', ARGV[4], 'app', '',
             'tryon', '', 'callback', '', 'body', ARGV[5], 'trace', '', 'ops', '1')
end
return 1
"""


class AlertData(msgspec.Struct, frozen=True, rename="camel", kw_only=True, omit_defaults=True):
    """`data` of an alert event: the account's balance and the threshold it reached, or the
    app's try-ons counted against its daily cap today and the share reached."""

    account: str | None = None
    balance: int | None = None
    threshold: int | None = None
    app: str | None = None
    day: str | None = None
    used: int | None = None
    daily_cap: int | None = None
    percent: int | None = None


class AlertEvent(msgspec.Struct, frozen=True):
    type: str
    timestamp: str
    data: AlertData


_encoder = msgspec.json.Encoder()


def balance_alert_id(account: str, threshold: int) -> str:
    return f"balance:{account}:{threshold}"


def cap_alert_id(app: str, day: str, percent: int) -> str:
    return f"cap:{part(app)}:{day}:{percent}"


class BudgetAlerts:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        apps: AppRegistry,
        quotas: Quotas,
        settings: AlertSettings,
        static_apps: frozenset[str] = frozenset(),
    ) -> None:
        self._redis = redis
        # Apps of GATEWAY_SECRET_KEYS: not in the registry, yet they spend the account too.
        self._static_apps = static_apps
        self._keys = keys
        self._apps = apps
        self._quotas = quotas
        self._settings = settings
        if settings.ops_secret:
            secret_key(settings.ops_secret)  # a malformed secret fails at start-up, named
        self._fire = redis.register_script(_FIRE)

    async def check_balance(
        self,
        account: str,
        balance: int,
        now: float | None = None,
        *,
        pools: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """After a balance read: send each threshold newly reached, re-arm those left behind
        (a top-up), to the apps whose pool holds the account (`pools`: app -> its pool; an
        app absent from it is on the default account). Returns how many alerts were sent."""
        now = time.time() if now is None else now
        thresholds = self._settings.balances
        rearmed = [balance_alert_id(account, t) for t in thresholds if balance > t]
        if rearmed:
            await self._redis.hdel(self._keys.alerts, *rearmed)  # type: ignore[misc]
        reached = [t for t in thresholds if balance <= t]
        if not reached:
            return 0
        apps = sorted({a.id for a in await self._apps.all_apps()} | self._static_apps)
        if pools is not None:
            apps = [a for a in apps if account in pools.get(a, (DEFAULT_ACCOUNT,))]
        sent = 0
        for threshold in reached:
            data = AlertData(account=account, balance=balance, threshold=threshold)
            alert = balance_alert_id(account, threshold)
            sent += await self._send(alert, BALANCE_LOW, data, apps, now)
        return sent

    async def check_daily_caps(self, now: float | None = None) -> int:
        """Send each share of an app's daily cap newly reached today; yesterday's fields go,
        so every day starts armed. Returns how many alerts were sent."""
        now = time.time() if now is None else now
        day = utc_date(now)
        await self._forget_other_days(day)
        percents = self._settings.cap_percents
        capped = [a for a in await self._apps.all_apps() if a.policy.daily_credit_cap]
        if not percents or not capped:
            return 0
        caps = [(a.id, a.policy.daily_credit_cap or 0) for a in capped]
        counters = [self._quotas.daily_cap(app_id, cap, now).key for app_id, cap in caps]
        used_raw: list[bytes | None] = await self._redis.mget(counters)
        sent = 0
        for (app_id, cap), raw in zip(caps, used_raw, strict=True):
            used = int(raw or 0)
            for percent in percents:
                if used * 100 < cap * percent:
                    continue
                data = AlertData(app=app_id, day=day, used=used, daily_cap=cap, percent=percent)
                sent += await self._send(
                    cap_alert_id(app_id, day, percent), DAILY_CAP_NEAR, data, [app_id], now
                )
        return sent

    async def _forget_other_days(self, day: str) -> None:
        fired: list[bytes] = await self._redis.hkeys(self._keys.alerts)  # type: ignore[misc]
        stale = [
            f
            for f in (raw.decode() for raw in fired)
            if f.startswith("cap:") and f.rsplit(":", 2)[1] != day
        ]
        if stale:
            await self._redis.hdel(self._keys.alerts, *stale)  # type: ignore[misc]

    async def _send(
        self, alert: str, event_type: str, data: AlertData, apps: list[str], now: float
    ) -> int:
        # Stable for this crossing (the same id on every delivery and retry), new for the next.
        event = "evt_alert_" + hashlib.sha256(f"{alert}|{now!r}".encode()).hexdigest()[:24]
        body = _encoder.encode(AlertEvent(type=event_type, timestamp=iso(now), data=data))
        fired = await self._fire(
            keys=[self._keys.alerts, self._keys.outbox],
            args=[
                alert,
                now,
                event,
                event_type,
                body,
                "1" if self._settings.ops_url else "",
                *apps,
            ],
        )
        if fired:
            log.warning("alert %s: %s", event_type, alert)
        return int(fired)

    async def firing(self) -> list[str]:
        """The alerts that fired and are not re-armed yet."""
        raw: list[bytes] = await self._redis.hkeys(self._keys.alerts)  # type: ignore[misc]
        return sorted(f.decode() for f in raw)
