"""The one safe retry of a failed try-on: the policy (`retry_refusal`) and the requeue."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from service.keys import Keys
from service.ops.errors import NotRetryable, RetryRefused, RetryWouldSpendCredit
from service.ops.failed import FailedLists
from service.tryons.models import TryOnRecord
from service.tryons.store import TryOnStore

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
) -> TryOnRecord:
    """Send a failed try-on through the pipeline again, from `queued`, with a new deadline
    (one whose result copy failed: from `storing`, to copy it again).

    Raises the RetryRefused that `retry_refusal` gives, unless it allows the retry; the check
    runs inside the store's compare-and-set, so a concurrent change cannot slip between check
    and write. Raises TryOnNotFound."""
    now = time.time()

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
        return r

    record = await store.update(tryon_id, to_queued)
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
