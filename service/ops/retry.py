"""The one safe retry of a failed try-on: the policy (`retry_refusal`) and the requeue."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.keys import Keys
from service.ops.errors import NotRetryable, RetryRefused, RetryWouldSpendCredit
from service.ops.failed import FailedLists
from service.tryons.models import TryOnRecord
from service.tryons.store import TryOnNotFound, TryOnStore

# A failed copy of a completed generation's result (workers/runner.py): a retry resumes the
# copy from a fresh read of the generation, which spends nothing.
RESULT_NOT_STORED = "RESULT_NOT_STORED"


def _copy_failed(record: TryOnRecord) -> bool:
    return record.error is not None and record.error.code == RESULT_NOT_STORED


def retry_refusal(record: TryOnRecord) -> RetryRefused | None:
    """Why an operator may not retry this try-on (the error a retry raises), or None when a
    retry is safe.

    At most one credit per accepted try-on (docs/pipeline.md): once a generation id exists
    a credit was spent, and while a create marker remains the create may have reached Genlook.
    Only a try-on that failed before any create was sent, or whose create Genlook refused
    outright (the runner clears the marker with such a failure), can be sent again."""
    if record.status != "failed":
        return NotRetryable(
            f"Only failed try-ons can be retried; this one is {record.status}.", record
        )
    if _copy_failed(record):
        return None
    if record.generation_id is not None:
        return RetryWouldSpendCredit(
            f"Genlook created generation {record.generation_id} for this try-on: a credit was "
            "spent. A retry would spend a second one, so it is refused; start a new try-on "
            "knowingly instead.",
            record,
        )
    if record.create_started_at is not None:
        return RetryWouldSpendCredit(
            "A create call was sent for this try-on and its outcome is unknown: Genlook may "
            "have spent a credit. A retry could spend a second one, so it is refused; start a "
            "new try-on knowingly instead.",
            record,
        )
    return None


async def retry_tryon(
    redis: Redis,
    keys: Keys,
    failed: FailedLists,
    store: TryOnStore,
    tryon_id: str,
    *,
    deadline: float,
    quotas: Quotas,
    apps: AppRegistry,
) -> TryOnRecord:
    """Send a failed try-on through the pipeline again, from `queued`, with a new deadline
    (the worker's; the request's own `deadlineSeconds` is not applied again; one whose result
    copy failed: from `storing`, to copy it again).

    Raises the RetryRefused that `retry_refusal` gives, unless it allows the retry; the check
    runs inside the store's compare-and-set, so a concurrent change cannot slip between check
    and write. The failure gave the try-on's reservation back, so it is counted again, as a
    new try-on would be, against the app's current limits and its token's or anonymous
    user's: a full one raises its LimitReached (402/429) and nothing changes; a later failure
    gives it back once. Raises TryOnNotFound."""
    now = time.time()
    current = await store.get(tryon_id)
    if current is None:
        raise TryOnNotFound(tryon_id)
    counters: list[str] = []
    # A failed copy spent its credit and kept its unit: resuming it counts nothing again.
    if retry_refusal(current) is None and not _copy_failed(current):
        app = await apps.get(current.app)
        policy = app.policy if app is not None else None
        limits = quotas.tryon_limits(current.app, policy, current.payer, now)
        counters = await quotas.take_again(tryon_id, limits)

    def to_queued(r: TryOnRecord) -> TryOnRecord | None:
        if retry_refusal(r) is not None:
            return None
        if _copy_failed(r):
            r.status = "storing"
            r.copy_attempts = 0
        else:
            r.status = "queued"
            r.upstream_status = None
            r.started_at = None
        r.error = None
        r.completed_at = None
        r.deadline_at = now + deadline
        r.quota_counters = counters
        # The caller's deadline was for the first attempt; retrying is the operator's decision
        # to send it now, within the worker's bound only.
        r.send_by = None
        return r

    try:
        record = await store.update(tryon_id, to_queued)
    except BaseException:
        await quotas.give_back(tryon_id, counters)
        raise
    if record.quota_counters is not counters:  # our mutation declined: undo the count
        await quotas.give_back(tryon_id, counters)
    if record.status not in ("queued", "storing"):
        refusal = retry_refusal(record)
        assert refusal is not None  # the mutation declined: the record says why
        raise refusal
    # The sweeper's list: a non-terminal try-on must be in it (the store removed it when
    # the try-on failed). If this process dies right here the try-on stays queued without
    # a job; retrying it again repairs that: a record already queued passes through here
    # (its mutation declines, its status is queued) and only gets its place and its job.
    await redis.zadd(keys.active_tryons, {tryon_id: record.deadline_at})
    await store.enqueue(tryon_id)
    await failed.discard(tryon_id)
    return record
