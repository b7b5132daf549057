"""Reading usage back: figures over a span of UTC days, grouped one way; and the GDPR erase of
one end user's figures.

A report reads one hash per day of the span (two when grouping by user or product), so its
cost grows with the span (at most USAGE_RETENTION_DAYS) and, for users and products, with how
many of them the app had on those days.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Literal

import msgspec
from redis.asyncio import Redis

from service.domain_errors import validation_failed
from service.keys import Keys
from service.namespacing import part, unpart
from service.usage.counting import FIGURES, split_field, utc_date

GroupBy = Literal["day", "user", "product"]
OpsGroupBy = Literal["day", "app", "account", "user", "product"]
# Without `from`, a report covers this many days up to `to`.
DEFAULT_DAYS = 7


class UsageFigures(msgspec.Struct, rename="camel", kw_only=True):
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    # Credits spent: completed generations, and creates whose outcome is unknown.
    credits: int = 0

    def add(self, figure: str, n: int) -> None:
        if figure in FIGURES:
            setattr(self, figure, getattr(self, figure) + n)


class UsageRow(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One group's figures; only the fields of its grouping are present (an absent `userId`
    or `productId` in a user or product grouping: try-ons without one)."""

    day: str | None = None
    account: str | None = None
    app: str | None = None
    user_id: str | None = None
    product_id: str | None = None
    accepted: int
    completed: int
    failed: int
    canceled: int
    credits: int


class UsageReport(msgspec.Struct, rename="camel", kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str
    group_by: str
    rows: list[UsageRow]
    total: UsageFigures


def days_between(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _day(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise validation_failed(name, "A UTC day as YYYY-MM-DD.") from None


def span(first: str | None, last: str | None, retention_days: int, now: float) -> list[str]:
    """The days a report covers: `to` (default today) back to `from` (default six days
    before), at most the retention; VALIDATION_FAILED otherwise."""
    end = _day(last, "to") if last else dt.date.fromisoformat(utc_date(now))
    start = _day(first, "from") if first else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise validation_failed("from", "`from` is after `to`.")
    if (end - start).days + 1 > retention_days:
        raise validation_failed(
            "from", f"At most {retention_days} days (USAGE_RETENTION_DAYS) in one report."
        )
    return days_between(start.isoformat(), end.isoformat())


Dims = tuple[tuple[str, str], ...]


class UsageReader:
    def __init__(self, redis: Redis, keys: Keys, *, retention_days: int) -> None:
        self._redis = redis
        self._keys = keys
        self.retention_days = retention_days

    async def report(
        self, days: list[str], group_by: OpsGroupBy, *, app: str | None = None
    ) -> UsageReport:
        """`app`: one app's figures (required to group by user or product); None: all apps.
        Grouped by day with no app, a row per day, account and app (the whole breakdown)."""
        groups: dict[Dims, UsageFigures] = {}
        total = UsageFigures()
        for dims, figure, n in await self._entries(days, group_by, app):
            groups.setdefault(dims, UsageFigures()).add(figure, n)
            total.add(figure, n)
        rows = [_row(dict(dims), figures) for dims, figures in sorted(groups.items())]
        return UsageReport(from_=days[0], to=days[-1], group_by=group_by, rows=rows, total=total)

    async def _entries(
        self, days: list[str], group_by: OpsGroupBy, app: str | None
    ) -> list[tuple[Dims, str, int]]:
        k = self._keys
        if group_by in ("user", "product"):
            if app is None:
                raise validation_failed("app", "Grouping by user or product needs `app`.")
            per = k.usage_users if group_by == "user" else k.usage_products
            dim = "user_id" if group_by == "user" else "product_id"
            out: list[tuple[Dims, str, int]] = []
            for raw in await self._read([per(app, day) for day in days]):
                for name, n in raw:
                    figure, who = split_field(name)
                    out.append((((dim, who),) if who else (), figure, n))
            return out
        out = []
        wanted = None if app is None else part(app)
        for day, raw in zip(days, await self._read([k.usage_totals(d) for d in days]), strict=True):
            for name, n in raw:
                account, app_part, figure = name.split(":", 2)
                if wanted is not None and app_part != wanted:
                    continue
                out.append((_dims(group_by, day, account, unpart(app_part), app), figure, n))
        return out

    async def _read(self, hashes: list[str]) -> list[list[tuple[str, int]]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in hashes:
                pipe.hgetall(key)
            raws: list[dict[bytes, bytes]] = await pipe.execute()
        return [[(f.decode(), int(v)) for f, v in raw.items()] for raw in raws]

    async def erase_user(self, app: str, external_user_id: str, now: float | None = None) -> int:
        """Delete the user's fields from the app's per-user hashes of every day still kept;
        returns how many were deleted."""
        today = dt.date.fromisoformat(utc_date(time.time() if now is None else now))
        # One day more than the retention: the oldest hash outlives its day by the retention.
        days = [(today - dt.timedelta(days=i)).isoformat() for i in range(self.retention_days + 2)]
        fields = [f"{figure}:{external_user_id}" for figure in FIGURES]
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hdel(self._keys.usage_users(app, day), *fields)
            deleted: Iterable[int] = await pipe.execute()
        return sum(deleted)


def _row(dims: dict[str, str], figures: UsageFigures) -> UsageRow:
    return UsageRow(
        day=dims.get("day"),
        account=dims.get("account"),
        app=dims.get("app"),
        user_id=dims.get("user_id"),
        product_id=dims.get("product_id"),
        accepted=figures.accepted,
        completed=figures.completed,
        failed=figures.failed,
        canceled=figures.canceled,
        credits=figures.credits,
    )


def _dims(group_by: OpsGroupBy, day: str, account: str, app_id: str, one_app: str | None) -> Dims:
    if group_by == "app":
        return (("app", app_id),)
    if group_by == "account":
        return (("account", account),)
    if one_app is not None:  # one app's days: its accounts summed
        return (("day", day),)
    return (("day", day), ("account", account), ("app", app_id))
