"""What the emulator saw, for tests to assert on (e.g. "the retry created no second generation")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Counters:
    # Every request that reached /tryon/v1, whatever happened to it.
    requests: Counter[str] = field(default_factory=Counter)
    # Requests whose handler ran and answered 2xx/3xx.
    processed: Counter[str] = field(default_factory=Counter)
    generations_created: int = 0
    credits_spent: int = 0
    credits_refunded: int = 0
    rate_limited: int = 0
    storm_rejected: int = 0
    faults_injected: int = 0
    uploads: int = 0
    unauthorized: int = 0
    # Generations created from a reference-only product item vs from a full definition
    # (inline upsert or one-shot): how a client's product cache is measured.
    product_references: int = 0
    product_inline_upserts: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "processed": dict(self.processed),
            "generationsCreated": self.generations_created,
            "creditsSpent": self.credits_spent,
            "creditsRefunded": self.credits_refunded,
            "rateLimited": self.rate_limited,
            "stormRejected": self.storm_rejected,
            "faultsInjected": self.faults_injected,
            "uploads": self.uploads,
            "unauthorized": self.unauthorized,
            "productReferences": self.product_references,
            "productInlineUpserts": self.product_inline_upserts,
        }
