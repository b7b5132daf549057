"""Counting usage at the try-on's state changes, inside the scripts that make them.

The try-on store's accept and update scripts (service/tryons/store.py) add these increments in
the same step as the change, as they add the fleet's metrics: a figure never disagrees with the
state it counts, and a change written twice (a CAS retry) is counted once.

Per UTC day, three hashes (service/keys.py), each expiring USAGE_RETENTION_DAYS after its day:

- the day's totals: `<account>:<app>:<figure>`, one field per account, app and figure;
- per app, its end users: `<figure>:<externalUserId>` (an erase deletes a user's fields);
- per app, its products: `<figure>:<product externalId>`.

A try-on without an `externalUserId` (or whose product has no `externalId`) counts under an
empty id, so the rows of every grouping add up to the day's totals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.keys import Keys
from service.namespacing import DEFAULT_ACCOUNT, part
from service.tryons.models import TERMINAL, TryOnRecord, spends_credit

DAY = 86_400
# The figures counted, in the order reports show them.
FIGURES: tuple[str, ...] = ("accepted", "completed", "failed", "canceled", "credits")

# For the store's scripts: KEYS[first_key..] are the usage hashes of one day; ARGV[first_arg]
# is their expiry (Unix seconds) and ARGV[first_arg + 1..] are (key offset, field, increment)
# triples. Nothing follows, so a change with nothing to count passes no arguments.
LUA_USAGE = """
local function apply_usage(first_key, first_arg)
  local expire_at = ARGV[first_arg]
  if expire_at == nil then return end
  for i = first_arg + 1, #ARGV, 3 do
    redis.call('HINCRBY', KEYS[first_key + tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  end
  for k = first_key, #KEYS do redis.call('EXPIREAT', KEYS[k], expire_at) end
end
"""


@dataclass(frozen=True, slots=True)
class Increments:
    """What one state change adds: the day's hashes and the script arguments for them."""

    keys: list[str] = field(default_factory=list)
    args: list[str | int] = field(default_factory=list)


NOTHING = Increments()


def utc_date(ts: float) -> str:
    """`YYYY-MM-DD`: the day a figure is counted under and the reports' `from`/`to`."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def split_field(raw: str) -> tuple[str, str]:
    """(figure, id) of a per-user or per-product field (figures hold no `:`; ids may)."""
    figure, _, who = raw.partition(":")
    return figure, who


def totals_field(account: str, app: str, figure: str) -> str:
    return f"{account}:{part(app)}:{figure}"


class UsageCounter:
    """Turns a try-on's accept and state changes into usage increments."""

    def __init__(self, keys: Keys, *, retention_days: float) -> None:
        self._keys = keys
        self._retention = int(retention_days * DAY)

    @staticmethod
    def account_of(record: TryOnRecord) -> str:
        """The upstream account a try-on's usage counts under: the one it was created on (its
        id, as `tryon-gateway accounts list` names it); not yet sent, or from before accounts
        existed: the default one."""
        return record.account or DEFAULT_ACCOUNT

    def accepted(self, record: TryOnRecord) -> Increments:
        return self._count(record, [("accepted", 1)], record.created_at)

    def transition(self, before: str, after: TryOnRecord) -> Increments:
        """What the change from status `before` to `after` adds (nothing if no figure moves)."""
        figures: list[tuple[str, int]] = []
        if after.status in TERMINAL and before not in TERMINAL:
            figures.append((after.status, 1))
        if before in TERMINAL and after.status not in TERMINAL:
            # An ops retry reopens it: its earlier end no longer counts (one try-on, one
            # end figure), taken back on the retry's day.
            figures.append((before, -1))
        if spends_credit(before, after):
            figures.append(("credits", 1))
        return self._count(after, figures, after.updated_at) if figures else NOTHING

    def _count(
        self, record: TryOnRecord, figures: Sequence[tuple[str, int]], at: float
    ) -> Increments:
        day = utc_date(at)
        k = self._keys
        keys = [
            k.usage_totals(day),
            k.usage_users(record.app, day),
            k.usage_products(record.app, day),
        ]
        user = record.external_user_id or ""
        product = record.product.external_id or ""
        account = self.account_of(record)
        # The day's end plus the retention: every write of a day's hash sets the same instant.
        args: list[str | int] = [(int(at) // DAY + 1) * DAY + self._retention]
        for figure, by in figures:
            args += [0, totals_field(account, record.app, figure), by]
            args += [1, f"{figure}:{user}", by]
            args += [2, f"{figure}:{product}", by]
        return Increments(keys=keys, args=args)
