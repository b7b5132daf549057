"""Priority lanes: which try-ons take the upstream budget first (docs/lanes.md).

An interactive try-on (a browser, a `?wait` reader, a synchronous caller: the default for a
single try-on) is granted a budget cell before any batch try-on; within a lane, apps share the
account's budget by weight (weighted fair queuing in `service/budget.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lane = Literal["interactive", "batch"]
INTERACTIVE: Lane = "interactive"
BATCH: Lane = "batch"
# An app's share within a lane when its policy names none.
DEFAULT_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class Claim:
    """Who asks for a budget cell: its lane, its app and the app's weight in that lane."""

    lane: Lane
    app: str
    weight: int = DEFAULT_WEIGHT
