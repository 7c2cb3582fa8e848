"""Alarm categories a system reports outward (inverter CAN, SunSpec, the system bus).

A string's active protection codes fold into these categories; a code whose rule only warns or
derates is a warning, any other active code an alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from cellwarden.bms.protection import Action, Rule


class Alarm(StrEnum):
    CELL_OVER_VOLTAGE = "cell_over_voltage"
    CELL_UNDER_VOLTAGE = "cell_under_voltage"
    CHARGE_OVER_CURRENT = "charge_over_current"
    DISCHARGE_OVER_CURRENT = "discharge_over_current"
    OVER_TEMPERATURE = "over_temperature"
    UNDER_TEMPERATURE = "under_temperature"
    IMBALANCE = "imbalance"
    COMMUNICATION = "communication"
    INTERNAL = "internal"


ALARM_BITS = {alarm: 1 << index for index, alarm in enumerate(Alarm)}
WARNING_ACTIONS = (Action.WARN, Action.DERATE)


def alarm_of(code: str) -> Alarm:
    """The category of a DTC code of the protection table (see docs/bms.md)."""
    prefixes = (
        ("B110", Alarm.CELL_OVER_VOLTAGE),
        ("B111", Alarm.CELL_UNDER_VOLTAGE),
        ("B120", Alarm.CHARGE_OVER_CURRENT),
        ("B121", Alarm.DISCHARGE_OVER_CURRENT),
        ("B122", Alarm.DISCHARGE_OVER_CURRENT),
        ("B131", Alarm.UNDER_TEMPERATURE),
        ("B1331", Alarm.UNDER_TEMPERATURE),
        ("B13", Alarm.OVER_TEMPERATURE),
        ("B14", Alarm.IMBALANCE),
        ("B17", Alarm.COMMUNICATION),
        ("B18", Alarm.COMMUNICATION),
    )
    for prefix, alarm in prefixes:
        if code.startswith(prefix):
            return alarm
    return Alarm.INTERNAL


def classify(
    codes: Iterable[str], rules: Iterable[Rule]
) -> tuple[frozenset[Alarm], frozenset[Alarm]]:
    """Active codes as (alarms, warnings); a code the rules do not know is an alarm."""
    actions = {rule.code: rule.action for rule in rules}
    alarms, warnings = set(), set()
    for code in codes:
        target = warnings if actions.get(code) in WARNING_ACTIONS else alarms
        target.add(alarm_of(code))
    return frozenset(alarms), frozenset(warnings)


def code_number(code: str) -> int:
    """A code's digits as a number (B1102 -> 1102); 9999 when it has none."""
    digits = code[1:]
    return min(int(digits), 9999) if digits.isdigit() else 9999


def worst_code(codes: Iterable[str], rules: Iterable[Rule]) -> int:
    """The number of the active code with the most severe action (0 when none is active)."""
    actions = {rule.code: rule.action for rule in rules}
    worst = max(codes, key=lambda code: actions.get(code, Action.OPEN), default=None)
    return 0 if worst is None else code_number(worst)


def to_mask(alarms: Iterable[Alarm]) -> int:
    """Alarm categories as a bit mask (bit n: the n-th category in declaration order)."""
    mask = 0
    for alarm in alarms:
        mask |= ALARM_BITS[alarm]
    return mask


def from_mask(mask: int) -> frozenset[Alarm]:
    return frozenset(alarm for alarm, bit in ALARM_BITS.items() if mask & bit)
