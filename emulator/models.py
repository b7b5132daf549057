"""The emulator's in-memory records. Times are emulator seconds (see `Clock.seconds`)."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.images import Kind

DAY = 86400.0

Origin = Literal["catalog", "inline", "one-shot"]
Status = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
TERMINAL: frozenset[Status] = frozenset({"COMPLETED", "FAILED"})


@dataclass(slots=True)
class Account:
    api_key: str
    credits: int
    rate_limit: int
    has_logo: bool
    retention_default_days: int = 7


@dataclass(slots=True)
class StoredFile:
    """Bytes served under /_emulator/files/: upload previews and results."""

    key: str
    data: bytes
    content_type: str
    owner: str
    external_user_id: str | None
    expires_at: float


@dataclass(slots=True)
class PersonImage:
    image_id: str
    owner: str
    data: bytes
    kind: Kind
    external_user_id: str | None
    expires_at: float
    preview_key: str


@dataclass(slots=True)
class ProductImage:
    source_url: str
    order: int
    role: str | None = None
    classifications: dict[str, Any] | None = None
    # Bytes sent by multipart (`upload://` refs); URL images are fetched at generation time.
    data: bytes | None = None


@dataclass(slots=True)
class Product:
    owner: str
    external_id: str
    origin: Origin
    seq: int
    created_at: float
    updated_at: float
    title: str | None = None
    description: str | None = None
    images: list[ProductImage] = field(default_factory=list)
    metadata: Any = None
    auto_detect_image_roles: bool = False
    valid_for_days: int | None = None
    expires_at: float | None = None
    last_used_at: float | None = None

    def alive(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now

    def touch(self, now: float) -> None:
        self.last_used_at = now
        if self.valid_for_days is not None:
            self.expires_at = now + self.valid_for_days * DAY

    def snapshot(self) -> Product:
        """Past generations keep their own copy when the product is edited or deleted."""
        return dataclasses.replace(self, images=list(self.images))


@dataclass(slots=True)
class Generation:
    id: str
    owner: str
    product: Product
    person: bytes
    person_kind: Kind
    external_user_id: str | None
    watermark: bool
    ai_label: bool
    keep_for_days: int
    mock: bool
    charged: bool
    created_at: float
    # Emulator seconds from creation: end of PENDING, then terminal.
    pending_for: float
    duration: float
    status: Status = "PENDING"
    updated_at: float = 0.0
    result_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    erased: bool = False
    history: list[tuple[Status, float]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def transition(self, status: Status, now: float) -> None:
        self.status = status
        self.updated_at = now
        self.history.append((status, now))
        if status in TERMINAL:
            self.done.set()
