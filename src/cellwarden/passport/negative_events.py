"""The passport's negative events (Annex XIII: "information on accidents"; Battery Pass
``negativeEvents``): which diagnostic trouble codes of the BMS are abuse of the battery.

The passport keeps its own table of the codes (it never imports the BMS): a trip of a
restricted or maximum safe limit (RSL, MSL) of a cell's voltage or of any over-temperature,
a short circuit, or a trip whose reaction latches the power path open until serviced. Warning
levels (MOL) and sensor or plausibility latches (B15xx, B16xx, B17xx) are not abuse.
"""

from __future__ import annotations

DEEP_DISCHARGE = "deep_discharge"
OVERCHARGE = "overcharge"
OVER_TEMPERATURE = "over_temperature"
SHORT_CIRCUIT = "short_circuit"
LATCHED = "latched"
KINDS = (DEEP_DISCHARGE, OVERCHARGE, OVER_TEMPERATURE, SHORT_CIRCUIT, LATCHED)

CODES: dict[str, frozenset[str]] = {
    # cell undervoltage RSL, MSL
    DEEP_DISCHARGE: frozenset({"B1112", "B1113"}),
    # cell overvoltage RSL, MSL
    OVERCHARGE: frozenset({"B1102", "B1103"}),
    # charge over-temperature RSL, MSL; discharge over-temperature RSL; over-temperature MSL
    OVER_TEMPERATURE: frozenset({"B1302", "B1303", "B1321", "B1322"}),
    # short circuit found by software, cut off by hardware
    SHORT_CIRCUIT: frozenset({"B1220", "B1221"}),
    # cell voltage MSL (locked until serviced); charge and discharge current MSL, a charger
    # ignoring the limit, short circuits, over-temperature MSL (latched)
    LATCHED: frozenset(
        {"B1103", "B1113", "B1203", "B1204", "B1213", "B1220", "B1221", "B1303", "B1322"}
    ),
}
# the daily count of each kind in the fleet history format (short circuits have none: they
# are latched safety events)
DAILY_COLUMN = {
    DEEP_DISCHARGE: "deep_discharge_events",
    OVERCHARGE: "overcharge_events",
    OVER_TEMPERATURE: "over_temp_events",
    LATCHED: "latched_safety_events",
}
NEGATIVE_CODES = frozenset().union(*CODES.values())


def classify(code: str) -> set[str]:
    """The negative event kinds a trip of ``code`` is (empty when it is none)."""
    return {kind for kind in KINDS if code.strip().upper() in CODES[kind]}
