"""A passport document brought up to date with the battery's condition (condition.py).

Each dynamic value the condition knows and that differs from the document's replaces it,
dated the condition's ``updated``; an unchanged value keeps its date (so a day that changes
nothing makes no new version), and a value the condition does not know yet (None: no SoH
estimate, too little energy moved) keeps the document's, with its own older date. Negative
events are stated per kind: how many, the first and the last day.
"""

from __future__ import annotations

import copy

from cellwarden.passport.builder import timestamp
from cellwarden.passport.condition import POWER_SOC_PCT, BatteryCondition, EventCount
from cellwarden.passport.negative_events import (
    DEEP_DISCHARGE,
    LATCHED,
    OVER_TEMPERATURE,
    OVERCHARGE,
    SHORT_CIRCUIT,
)

# the text a negative event entry starts with (passport_fields: deep discharges and
# overcharges are attributes 91 and 92, the others 93)
EVENT_LABELS = {
    DEEP_DISCHARGE: "deep discharge",
    OVERCHARGE: "overcharge",
    OVER_TEMPERATURE: "over-temperature",
    SHORT_CIRCUIT: "short circuit",
    LATCHED: "latched safety event",
}
VALUE_DIGITS = 4


def event_text(count: EventCount) -> str:
    noun = "event" if count.count == 1 else "events"
    return (
        f"{EVENT_LABELS[count.kind]}: {count.count} {noun}, first on {count.first_day}, "
        f"last on {count.last_day}"
    )


def apply_condition(document: dict, condition: BatteryCondition) -> dict:
    """A copy of ``document`` with ``condition``'s values."""
    updated = copy.deepcopy(document)
    performance = updated["performance"]
    state = performance["batteryCondition"]
    technical = performance["batteryTechicalProperties"]
    when = timestamp(condition.updated)

    def put_dated(key: str, entry: object) -> None:
        """``entry`` (dated ``when``) unless it equals the document's but for its dates."""
        if _undated(state.get(key)) != _undated(entry):
            state[key] = entry

    def put(key: str, value: float | None) -> None:
        if value is not None:
            put_dated(key, {f"{key}Value": round(value, VALUE_DIGITS), "lastUpdate": when})

    put("stateOfCharge", condition.state_of_charge_pct)
    put("remainingCapacity", condition.remaining_capacity_ah)
    put("capacityFade", condition.capacity_fade_pct)
    put("remainingEnergy", condition.remaining_energy_kwh)
    put("stateOfCertifiedEnergy", condition.state_of_certified_energy_pct)
    put("remainingRoundTripEnergyEfficiency", condition.round_trip_efficiency_pct)
    put("numberOfFullCycles", condition.full_cycles)
    put("energyThroughput", condition.energy_throughput_kwh)
    put("capacityThroughput", condition.capacity_throughput_ah)
    put("currentSelfDischargingRate", condition.self_discharge_pct_per_month)
    put("evolutionOfSelfDischarge", condition.self_discharge_change_pct)
    if condition.remaining_power_w is not None:
        put_dated(
            "remainingPowerCapability",
            {
                "remainingPowerCapabilityValue": {
                    "atSoC": POWER_SOC_PCT,
                    "powerCapabilityAt": round(condition.remaining_power_w / 1000, 4),  # kW
                    "rPCLastUpdated": when,
                },
                "lastUpdate": when,
            },
        )
    if condition.resistance_increase_pct is not None:
        put_dated("internalResistanceIncrease", [{
            "internalResistanceIncreaseValue": round(condition.resistance_increase_pct, 3),
            "batteryComponent": "pack", "lastUpdate": when,
        }])  # fmt: skip
    put_dated(
        "temperatureInformation",
        {
            "timeExtremeHighTemp": round(condition.minutes_above_idle_range, 1),
            "timeExtremeLowTemp": round(condition.minutes_below_idle_range, 1),
            "timeExtremeHighTempCharging": round(condition.charging_minutes_above_idle_range, 1),
            "timeExtremeLowTempCharging": round(condition.charging_minutes_below_idle_range, 1),
            "lastUpdate": when,
        },
    )
    put_dated("negativeEvents", [
        {"negativeEvent": event_text(count), "lastUpdate": when}
        for count in condition.negative_event_counts
        if count.count > 0
    ])  # fmt: skip
    if condition.power_fade_pct is not None:
        technical["powerFade"] = round(condition.power_fade_pct, 3)
    if condition.round_trip_efficiency_fade_pct is not None:
        technical["roundTripEfficiencyFade"] = round(condition.round_trip_efficiency_fade_pct, 3)
    return updated


def _undated(node: object) -> object:
    """``node`` without its update times."""
    if isinstance(node, dict):
        return {k: _undated(v) for k, v in node.items() if k not in DATE_KEYS}
    if isinstance(node, list):
        return [_undated(item) for item in node]
    return node


DATE_KEYS = ("lastUpdate", "rPCLastUpdated")
