"""A small client for the emulator's control API, shared by the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class EmulatorControl:
    """A running emulator: its Genlook base URL, its key and its control API."""

    root: str
    api_key: str

    @property
    def base_url(self) -> str:
        return f"{self.root}/tryon/v1"

    def control(self, method: str, path: str, json: Any = None) -> Any:
        r = httpx.request(method, f"{self.root}/_emulator/{path}", json=json, timeout=30.0)
        r.raise_for_status()
        return r.json() if r.content else None

    def reset(self, **config: Any) -> None:
        self.control("POST", "reset", json=config or None)

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "counters")
        return result
