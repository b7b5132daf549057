"""How long a stored result is kept: the one rule, used when it is stored."""

from __future__ import annotations

from service.settings import DAY, Settings
from service.webhooks.schedule import RETRY_DELAYS

# The last webhook retry of an event comes this long after the first attempt: a link in it
# must still load then (docs/webhooks.md).
WEBHOOK_RETRY_WINDOW = float(sum(RETRY_DELAYS))


def retention_seconds(settings: Settings, keep_for_days: int | None) -> float:
    """The longest of RESULTS_RETENTION_DAYS, the try-on's `output.keepForDays` and the
    webhook retry window (scaled by WEBHOOK_TIME_SCALE, as the schedule is)."""
    return max(
        settings.results.retention_days * DAY,
        (keep_for_days or 0) * DAY,
        WEBHOOK_RETRY_WINDOW / settings.webhooks.time_scale,
    )
