"""Server-Sent Events, parsed line by line (the text/event-stream format of the HTML spec).

The sync and async clients feed it the lines httpx reads; it hands back complete events.
Comments (the gateway's `: keep-alive`) and unknown fields are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None


@dataclass
class EventParser:
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, line: str) -> Event | None:
        """One line without its line end; an event when this (blank) line completes one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = Event(event=self._event or "message", data="\n".join(self._data), id=self._id)
        self._data, self._event = [], ""
        return event
