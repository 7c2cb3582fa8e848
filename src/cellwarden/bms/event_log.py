"""The BMS's own event log: DTC-coded trips and clears with a freeze frame of the moment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cellwarden.bms.protection import Rule


@dataclass(frozen=True)
class BmsEvent:
    time_s: float
    code: str
    name: str
    kind: str  # "trip", "clear" or "info"
    value: float
    action: str
    freeze_frame: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BmsEventLog:
    """Keeps every event; ``listeners`` (e.g. the simulation's event log) hear each one."""

    def __init__(self) -> None:
        self.events: list[BmsEvent] = []
        self.listeners: list = []

    def _add(self, event: BmsEvent) -> None:
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def trip(self, now_s: float, rule: Rule, value: float, freeze: dict[str, Any]) -> None:
        self._add(
            BmsEvent(now_s, rule.code, rule.name, "trip", value, rule.action.name, dict(freeze))
        )

    def clear(self, now_s: float, rule: Rule, value: float) -> None:
        self._add(BmsEvent(now_s, rule.code, rule.name, "clear", value, rule.action.name))

    def info(self, now_s: float, code: str, name: str, **data: Any) -> None:
        self._add(BmsEvent(now_s, code, name, "info", float("nan"), "", data))

    def tripped(self, code: str) -> list[BmsEvent]:
        return [e for e in self.events if e.code == code and e.kind == "trip"]
