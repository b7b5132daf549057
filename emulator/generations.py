"""The generation engine: one asyncio task per generation drives PENDING -> PROCESSING -> terminal.

Timers run on the emulator clock, so `clock/advance` also hurries running generations along.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets

from PIL import Image

from emulator.clock import Clock
from emulator.config import DEFAULT_DURATION_MEDIAN, DEFAULT_DURATION_SIGMA
from emulator.counters import Counters
from emulator.fetch import FetchError, LoopbackFetcher
from emulator.images import composite, decode, garment_placeholder, person_placeholder, sniff
from emulator.models import DAY, Generation, StoredFile
from emulator.state import Store

log = logging.getLogger(__name__)

PENDING_RANGE = (0.2, 0.8)
MOCK_RANGE = (1.0, 2.0)
# Relative to the median: with the default 10 s this clips to [3, 60] s.
CLIP = (0.3, 6.0)


class GenerationFailure(Exception):
    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Engine:
    def __init__(
        self, store: Store, clock: Clock, counters: Counters, fetcher: LoopbackFetcher
    ) -> None:
        self._store = store
        self._clock = clock
        self._counters = counters
        self._fetcher = fetcher
        self._tasks: set[asyncio.Task[None]] = set()
        self.duration_median = DEFAULT_DURATION_MEDIAN
        self.duration_sigma = DEFAULT_DURATION_SIGMA

    def rebind(self, store: Store, counters: Counters, fetcher: LoopbackFetcher) -> None:
        self._store = store
        self._counters = counters
        self._fetcher = fetcher

    def draw_timing(self, mock: bool) -> tuple[float, float]:
        """(pending_for, duration) in emulator seconds."""
        pending = random.uniform(*PENDING_RANGE)
        if mock:
            return pending, max(random.uniform(*MOCK_RANGE), pending)
        median = self.duration_median
        drawn = median * math.exp(self.duration_sigma * random.gauss(0.0, 1.0))
        duration = min(max(drawn, median * CLIP[0]), median * CLIP[1])
        return min(pending, duration / 2), duration

    def start(self, generation: Generation) -> None:
        task = asyncio.create_task(self._run(generation), name=f"generation {generation.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    async def _run(self, gen: Generation) -> None:
        try:
            await self._clock.sleep_until(gen.created_at + gen.pending_for)
            gen.transition("PROCESSING", self._clock.seconds())
            if gen.mock:
                await self._clock.sleep_until(gen.created_at + gen.duration)
                self._complete(gen, gen.person)
                return
            garment = await self._garment(gen)
            await self._clock.sleep_until(gen.created_at + gen.duration)
            if gen.erased:
                raise GenerationFailure(None, "The customer's data was erased during processing.")
            person = decode(gen.person) or person_placeholder()
            result = await asyncio.to_thread(
                composite,
                person,
                garment,
                logo=gen.watermark and self._has_logo(gen.owner),
                ai_label=gen.ai_label,
            )
            self._complete(gen, result)
        except GenerationFailure as failure:
            self._fail(gen, failure.code, failure.message)
        except Exception:
            log.exception("generation %s crashed", gen.id)
            self._fail(gen, None, "The generation failed because of an internal error.")

    async def _garment(self, gen: Generation) -> Image.Image:
        main = gen.product.images[0]
        data = main.data
        if data is None:
            try:
                data = await self._fetcher.fetch(main.source_url)
            except FetchError as exc:
                raise GenerationFailure("PRODUCT_IMAGE_FETCH_FAILED", str(exc)) from None
        if sniff(data) == "heic":
            return garment_placeholder()
        garment = decode(data)
        if garment is None:
            raise GenerationFailure(
                "PRODUCT_IMAGE_FETCH_FAILED",
                f"The product image '{main.source_url}' is not a readable image.",
            )
        return garment

    def _has_logo(self, owner: str) -> bool:
        account = self._store.accounts.get(owner)
        return account is not None and account.has_logo

    def _complete(self, gen: Generation, data: bytes) -> None:
        now = self._clock.seconds()
        ext = "jpeg" if sniff(data) != "heic" else "heic"
        key = f"results/{gen.id}/{secrets.token_hex(8)}.{ext}"
        self._store.files[key] = StoredFile(
            key=key,
            data=data,
            content_type=f"image/{ext}",
            owner=gen.owner,
            external_user_id=gen.external_user_id,
            expires_at=now + gen.keep_for_days * DAY,
        )
        gen.result_key = key
        gen.transition("COMPLETED", now)

    def _fail(self, gen: Generation, code: str | None, message: str) -> None:
        gen.error_code = code
        gen.error_message = message
        gen.transition("FAILED", self._clock.seconds())
        if gen.charged:
            account = self._store.accounts.get(gen.owner)
            if account is not None:
                account.credits += 1
            self._counters.credits_refunded += 1
