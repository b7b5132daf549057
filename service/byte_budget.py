"""An async semaphore weighted in bytes: concurrent photo cleanings share one memory budget.

Each cleaning reserves what decoding its photo will take at most (service/imaging.py
`peak_bytes`) before a thread decodes it. Waiters are served first come, first served, so a
large photo is not starved by a stream of small ones; a wait is bounded, and a request larger
than the whole budget is refused at once (it could never fit).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator

from service.domain_errors import Unavailable, Unprocessable

_MIB = 1024 * 1024


class OverBudget(Unprocessable):
    """One request needs more than the whole budget. Only photo decoding holds a byte budget:
    the request was within its byte limit, but the photo it carries cannot be decoded in this
    gateway's memory (unprocessable, like the pixel limit)."""

    def __init__(self, needed: int, capacity: int) -> None:
        super().__init__(
            "IMAGE_TOO_LARGE",
            f"Decoding this photo takes {needed // _MIB} MiB; this gateway decodes at most "
            f"{capacity // _MIB} MiB at once. Send fewer pixels.",
        )
        self.needed = needed
        self.capacity = capacity


class BudgetBusy(Unavailable):
    """The budget stayed taken for longer than a caller may wait. Unavailable, not a rate
    limit: nothing this caller did is over a limit; the gateway is busy decoding."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "IMAGE_PROCESSING_BUSY",
            "The gateway is decoding other photos; retry shortly.",
            retry_after=retry_after,
        )


class ByteBudget:
    def __init__(self, capacity: int, *, wait: float) -> None:
        if capacity <= 0:
            raise ValueError("a byte budget needs a positive capacity")
        self.capacity = capacity
        self._free = capacity
        self._wait = wait
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        return self._free

    @contextlib.asynccontextmanager
    async def hold(self, needed: int) -> AsyncIterator[None]:
        """Hold `needed` bytes for the block (OverBudget, or BudgetBusy after the wait)."""
        await self._acquire(needed)
        try:
            yield
        finally:
            self._release(needed)

    async def _acquire(self, needed: int) -> None:
        if needed > self.capacity:
            raise OverBudget(needed, self.capacity)
        if not self._waiters and needed <= self._free:
            self._free -= needed
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (needed, granted)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(granted), self._wait)
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                self._release(needed)  # granted just as the wait ended: give it back
            else:
                granted.cancel()
                self._waiters.remove(entry)
                self._wake()  # those behind it may fit now
            if isinstance(exc, TimeoutError):
                raise BudgetBusy(max(1, math.ceil(self._wait))) from None
            raise

    def _release(self, needed: int) -> None:
        self._free += needed
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._free:
            needed, granted = self._waiters.popleft()
            self._free -= needed
            granted.set_result(None)
