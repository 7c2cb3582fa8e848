"""The protection and diagnosis table, and the engine that debounces, latches and acts on it.

Each rule watches one scalar quantity against a threshold (with hysteresis), must persist for
its debounce time to trip, then applies its action until it recovers as its rule says: ``auto``
(after the quantity has been back inside threshold minus hysteresis for ``recovery_s``, and,
for rules ``released_by`` a quantity, while that quantity is positive: an undervoltage stop is
released by charging, not by the cells relaxing),
``latch`` (until the BMS is reset) or ``lock`` (never: IEC 62619's non-resettable lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from cellwarden.bms.event_log import BmsEventLog


class Action(IntEnum):
    """What a tripped rule does; a higher value is more severe."""

    WARN = 1
    DERATE = 2
    STOP_CHARGE = 3
    STOP_DISCHARGE = 4
    OPEN = 5


class Recovery(StrEnum):
    AUTO = "auto"
    LATCH = "latch"
    LOCK = "lock"


class Task(StrEnum):
    """Which firmware task evaluates the rule."""

    FAST = "fast"  # protection task: current, short circuit, power path
    MAIN = "main"  # main task: voltages, temperatures, plausibility


@dataclass(frozen=True)
class Rule:
    """One line of the table."""

    code: str  # DTC-style code, e.g. B1102
    name: str
    quantity: str  # key into the quantities the BMS computes each tick
    threshold: float
    above: bool = True  # trips above the threshold (else below)
    hysteresis: float = 0.0
    debounce_s: float = 0.2
    recovery: Recovery = Recovery.AUTO
    recovery_s: float = 1.0
    action: Action = Action.WARN
    task: Task = Task.MAIN
    armed_by: str | None = None  # a quantity that must be positive for the rule to watch
    released_by: str | None = None  # a quantity that must be positive for it to recover

    def beyond(self, value: float) -> bool:
        return value > self.threshold if self.above else value < self.threshold

    def back_inside(self, value: float) -> bool:
        if self.above:
            return value < self.threshold - self.hysteresis
        return value > self.threshold + self.hysteresis


@dataclass
class _RuleState:
    active: bool = False
    beyond_since_s: float | None = None
    inside_since_s: float | None = None


@dataclass(frozen=True)
class ProtectionStatus:
    """The combined effect of every active rule."""

    charge_allowed: bool
    discharge_allowed: bool
    open_all: bool
    derate: bool
    active_codes: tuple[str, ...]

    @property
    def worst(self) -> str:
        return ",".join(self.active_codes) or "none"


@dataclass
class ProtectionEngine:
    """Evaluates the table against the quantities of each tick; logs trips with freeze frames."""

    rules: list[Rule]
    log: BmsEventLog
    _states: dict[str, _RuleState] = field(default_factory=dict)
    _status: ProtectionStatus | None = None

    def __post_init__(self) -> None:
        codes = [rule.code for rule in self.rules]
        if len(codes) != len(set(codes)):
            raise ValueError("protection table codes must be unique")
        self._states = {rule.code: _RuleState() for rule in self.rules}
        self._by_task: dict[Task, list[tuple[Rule, _RuleState]]] = {}
        self._by_task_of: tuple[int, int] = (0, -1)  # (id, length) of the rules they follow

    def _task_rules(self, task: Task) -> list[tuple[Rule, _RuleState]]:
        """The rules of ``task`` in table order, each with its state (cached per table)."""
        rules = self.rules
        if self._by_task_of != (id(rules), len(rules)):
            self._by_task = {}
            self._by_task_of = (id(rules), len(rules))
        entries = self._by_task.get(task)
        if entries is None:
            states = self._states
            entries = [(rule, states[rule.code]) for rule in rules if rule.task is task]
            self._by_task[task] = entries
        return entries

    def evaluate(
        self,
        now_s: float,
        task: Task,
        quantities: dict[str, float],
        freeze: Callable[[], dict[str, Any]],
    ) -> None:
        """Advance every rule of ``task`` with this tick's quantities.

        ``freeze`` builds the freeze frame; it is called only when a rule trips.
        """
        for rule, state in self._task_rules(task):
            value = quantities[rule.quantity]
            armed = rule.armed_by is None or quantities[rule.armed_by] > 0
            if not state.active:
                if armed and rule.beyond(value):
                    state.beyond_since_s = (
                        now_s if state.beyond_since_s is None else state.beyond_since_s
                    )
                    if now_s - state.beyond_since_s >= rule.debounce_s - 1e-9:
                        state.active = True
                        state.inside_since_s = None
                        self._status = None
                        self.log.trip(now_s, rule, value, freeze())
                else:
                    state.beyond_since_s = None
                continue
            if rule.recovery is not Recovery.AUTO:
                continue
            released = rule.released_by is None or quantities[rule.released_by] > 0
            if released and rule.back_inside(value):
                state.inside_since_s = (
                    now_s if state.inside_since_s is None else state.inside_since_s
                )
                if now_s - state.inside_since_s >= rule.recovery_s - 1e-9:
                    self._clear(now_s, rule, value)
            else:
                state.inside_since_s = None

    def reset_latches(self, now_s: float) -> list[str]:
        """Clear latched (not locked) rules, as a service tool would; returns their codes."""
        latched = [
            rule
            for rule in self.rules
            if self._states[rule.code].active and rule.recovery is Recovery.LATCH
        ]
        for rule in latched:
            self._clear(now_s, rule, float("nan"))
        return [rule.code for rule in latched]

    def _clear(self, now_s: float, rule: Rule, value: float) -> None:
        state = self._states[rule.code]
        state.active = False
        state.beyond_since_s = None
        self._status = None
        self.log.clear(now_s, rule, value)

    def status(self) -> ProtectionStatus:
        if self._status is None:
            self._status = self._combine()
        return self._status

    def _combine(self) -> ProtectionStatus:
        active = [rule for rule in self.rules if self._states[rule.code].active]
        actions = {rule.action for rule in active}
        open_all = Action.OPEN in actions
        return ProtectionStatus(
            charge_allowed=not open_all and Action.STOP_CHARGE not in actions,
            discharge_allowed=not open_all and Action.STOP_DISCHARGE not in actions,
            open_all=open_all,
            derate=Action.DERATE in actions,
            active_codes=tuple(rule.code for rule in active),
        )
