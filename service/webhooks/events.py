"""The events a try-on emits, as receivers see them: `{type, timestamp, data}`.

`data` is the try-on exactly as `GET /v1/try-ons/{id}` shows it (metadata echoed, the result as
a link, never image bytes). Event ids are derived from the try-on and the type, so the same
state change always has the same id, however often it is written or replayed.
"""

from __future__ import annotations

import time

import msgspec

from service.tryons.models import TryOnOut, iso

# "processing" starts when a worker takes the try-on up: with the sync strategy a try-on goes
# from submitting straight to storing its result (shown as "running") and to its end.
EVENT_FOR_STATUS: dict[str, str] = {
    "submitting": "tryon.processing",
    "completed": "tryon.completed",
    "failed": "tryon.failed",
    "canceled": "tryon.canceled",
}
TEST_EVENT = "webhook.test"
# Budget alerts (service/usage/alerts.py): not about one try-on, so their `data` is their own.
BALANCE_LOW = "account.balance_low"
DAILY_CAP_NEAR = "app.daily_cap_near"


class Event(msgspec.Struct, frozen=True):
    type: str
    timestamp: str
    data: TryOnOut | dict[str, str]


_encoder = msgspec.json.Encoder()


def event_id(tryon_id: str, event_type: str) -> str:
    return f"evt_{tryon_id}_{event_type.rsplit('.', 1)[-1]}"


def event_body(event_type: str, data: TryOnOut | dict[str, str]) -> bytes:
    return _encoder.encode(Event(type=event_type, timestamp=iso(time.time()), data=data))
