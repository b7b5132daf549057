"""Dependencies shared by the route modules."""

from __future__ import annotations

from typing import Any

from litestar import Request

from service.events import EventHub
from service.resources import Resources


def resources(request: Request[Any, Any, Any]) -> Resources:
    res: Resources = request.app.state.resources
    return res


def hub(request: Request[Any, Any, Any]) -> EventHub:
    events: EventHub = request.app.state.hub
    return events
