"""What a worker does on SIGTERM: hand over at once what can resume elsewhere, finish the one
thing that cannot.

A try-on job can stop anywhere and resume on another worker from its record, except during
the create call: cut there, the next attempt must report UPSTREAM_OUTCOME_UNKNOWN (a credit
may be spent, the result is never shown). arq's own SIGTERM handling only stops picking jobs,
waits `job_completion_wait` for all of them, then cancels whatever still runs; meanwhile a job
that was waiting for its budget cell gets it and sends a create that the cancel cuts a moment
later (seen in tests/e2e/test_fleet.py: a rolling deploy under a backlog lost results this way).

So on SIGTERM the worker:
- lets no create call start any more (the job hands over: it is retried at once elsewhere);
- cancels every try-on job that is not inside a create call (arq puts a cancelled job back in
  the queue, and another worker resumes it from its record);
- gives create calls in flight, webhook attempts and photo uploads the whole
  `job_completion_wait`, after which arq cancels what is left; a try-on whose create call
  ends in that time records its outcome and hands the rest (the wait for the result) over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from signal import Signals
from typing import Any

from workers.ops import OpsWorker

log = logging.getLogger("workers")


class CreateGate:
    """Knows which try-on jobs may be cancelled now, and shuts the create call on shutdown."""

    def __init__(self) -> None:
        self.closed = False
        self._resumable: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def resumable(self) -> Iterator[None]:
        """A try-on attempt: cancelled at once on shutdown unless inside `create_call`."""
        task = asyncio.current_task()
        assert task is not None
        self._resumable.add(task)
        try:
            yield
        finally:
            self._resumable.discard(task)

    @contextlib.contextmanager
    def create_call(self) -> Iterator[None]:
        """The create call's window, from its marker to its recorded outcome. The caller checks
        `closed` first, with no await in between."""
        task = asyncio.current_task()
        assert task is not None
        held = task in self._resumable
        self._resumable.discard(task)
        try:
            yield
        finally:
            if held:
                self._resumable.add(task)

    def close(self) -> int:
        """Shut the gate and cancel every resumable attempt; returns how many."""
        self.closed = True
        cancelled = 0
        for task in self._resumable:
            if not task.done():
                task.cancel()
                cancelled += 1
        return cancelled


class GracefulWorker(OpsWorker):
    """arq's Worker, handing resumable try-ons over at once when told to stop."""

    def __init__(self, *args: Any, gate: CreateGate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self._insisting: asyncio.Task[None] | None = None

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        log.info("%s: handing %d try-ons over at once", signum.name, self.gate.close())
        super().handle_sig_wait_for_completion(signum)
        self._insisting = self.loop.create_task(self._insist_on_stopping())

    async def _insist_on_stopping(self) -> None:
        """arq cancels its main task once the completion wait is over, once. A cancellation
        that lands just as an awaited Redis call completes can be lost (asyncio.wait_for on
        Python 3.11 swallows it), and the worker then ran on, dispatching webhooks, until
        killed (seen once in the fleet test under load). Cancel again until it stops."""
        await asyncio.sleep(float(self._job_completion_wait) + 1.0)
        while self.main_task is not None and not self.main_task.done():
            log.warning("worker still running after its completion wait; cancelling it again")
            self.main_task.cancel()
            await asyncio.sleep(1.0)
