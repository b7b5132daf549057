"""Everything one running emulator holds, and the reset that wipes it."""

from __future__ import annotations

from emulator.clock import Clock
from emulator.config import EmulatorConfig
from emulator.counters import Counters
from emulator.faults import Faults
from emulator.fetch import LoopbackFetcher
from emulator.generations import Engine
from emulator.links import FileLinks
from emulator.models import Account
from emulator.ratelimit import SlidingWindow
from emulator.samples import person_sample, render_samples
from emulator.state import Store


class Runtime:
    def __init__(self, config: EmulatorConfig) -> None:
        self.startup_config = config
        self.config = config
        self.clock = Clock(config.speed)
        self.store = Store()
        self.counters = Counters()
        self.faults = Faults()
        self.limiter = SlidingWindow(self.clock)
        self.fetcher = LoopbackFetcher()
        self.engine = Engine(self.store, self.clock, self.counters, self.fetcher)
        self.links = FileLinks()
        self.samples = render_samples()
        self.person_sample = person_sample()
        self._apply(config)

    def reset(self, config: EmulatorConfig) -> None:
        """Wipe all state; `config` holds until the next reset."""
        self.engine.cancel_all()
        for generation in self.store.generations.values():
            # Wakes /try-on/sync requests still waiting on a generation that no longer exists.
            generation.done.set()
        self.faults.clear()
        self.limiter.clear()
        self.store = Store()
        self.counters = Counters()
        self.engine.rebind(self.store, self.counters, self.fetcher)
        self.clock.reset(config.speed)
        self._apply(config)

    def _apply(self, config: EmulatorConfig) -> None:
        self.config = config
        self.engine.duration_median = config.duration_median
        self.engine.duration_sigma = config.duration_sigma
        self.store.accounts[config.api_key] = Account(
            api_key=config.api_key,
            credits=config.credits,
            rate_limit=config.rate_limit,
            has_logo=config.has_logo,
        )

    def file_url(self, base_url: str, key: str) -> str:
        """A signed URL of a stored file, valid for the configured lifetime from now."""
        return self.links.url(
            base_url, key, now=self.clock.seconds(), lifetime=self.config.result_url_lifetime
        )

    async def aclose(self) -> None:
        self.engine.cancel_all()
        self.faults.clear()
        await self.fetcher.aclose()
