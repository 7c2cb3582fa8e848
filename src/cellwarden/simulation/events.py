"""Events of a run: what happened, when, where, with the measurements of the moment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One event; ``source`` says who raised it (plant, truth, controller, ...)."""

    time_s: float
    source: str
    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventLog:
    """Events in the order they happened."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, time_s: float, source: str, code: str, message: str, **data: Any) -> Event:
        event = Event(time_s, source, code, message, data)
        self.events.append(event)
        return event

    def with_code(self, code: str) -> list[Event]:
        return [e for e in self.events if e.code == code]

    def __len__(self) -> int:
        return len(self.events)
