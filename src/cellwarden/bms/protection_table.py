"""The protection and diagnosis table of a string, built from its cells' three limit levels.

One place to read what the BMS does about every fault: threshold, hysteresis, debounce, how
it recovers and what it does. Reaction times follow foxBMS 2's diagnosis table (100 ms for
current, plausibility and contactor faults, 200 ms for cell voltages, 1 s for temperatures).
"""

from __future__ import annotations

from cellwarden.bms.protection import Action, Recovery, Rule, Task
from cellwarden.model.bms import BmsSettings
from cellwarden.model.cell import CellSpec

# quantities the BMS computes every tick (see bms/standalone.py)
CELL_V_MAX = "cell_voltage_max_v"
CELL_V_MIN = "cell_voltage_min_v"
CELL_V_INVALID = "cell_voltage_invalid"
CHARGE_A = "charge_current_a"
CHARGE_EXCESS_A = "charge_current_above_limit_a"
DISCHARGE_A = "discharge_current_a"
OVERCURRENT_DOSE = "overcurrent_dose"
TEMP_MAX = "temp_max_c"
TEMP_MIN = "temp_min_c"
CHARGING = "charging"
DISCHARGING = "discharging"
IMBALANCE_V = "imbalance_v"
OPEN_WIRE = "open_wire"
NTC_OPEN = "ntc_open"
NTC_SHORT = "ntc_short"
CURRENT_FROZEN = "current_frozen"
PACK_SUM_ERROR_PCT = "pack_sum_error_pct"
CELL_RATE_V_PER_S = "cell_rate_v_per_s"
PRECHARGE_FAILED = "precharge_failed"
WELDED = "welded"
HW_SHORT_CIRCUIT = "hardware_short_circuit"
MODULES_LOST = "monitoring_modules_lost"

VOLTAGE_DEBOUNCE_S = 0.2
CURRENT_DEBOUNCE_S = 0.1
TEMPERATURE_DEBOUNCE_S = 1.0
PLAUSIBILITY_DEBOUNCE_S = 0.1
SUM_CHECK_DEBOUNCE_S = 0.3  # three cell-monitor conversions
FLAG = 0.5  # flags are 0 or 1


def build_table(cell: CellSpec, parallel: int, settings: BmsSettings) -> list[Rule]:
    """Every rule for a string of ``cell`` with ``parallel`` cells per series element."""
    limits = cell.effective_limits
    volts = limits.cell_voltage_v
    amps_per_c = cell.capacity_ah * parallel
    charge = limits.charge_current_c.upper
    discharge = limits.discharge_current_c.upper
    t_charge = limits.charge_temp_c
    t_discharge = limits.discharge_temp_c
    diag = settings.diagnosis
    table = [
        # cell voltage: warn at the operating limit, stop at the recommended safety limit,
        # open and lock at the maximum safety limit
        Rule(
            "B1101",
            "cell overvoltage (MOL)",
            CELL_V_MAX,
            volts.upper.mol,
            hysteresis=0.02,
            debounce_s=VOLTAGE_DEBOUNCE_S,
            action=Action.DERATE,
        ),
        Rule(
            "B1102",
            "cell overvoltage (RSL)",
            CELL_V_MAX,
            volts.upper.rsl,
            hysteresis=0.05,
            debounce_s=VOLTAGE_DEBOUNCE_S,
            recovery_s=10.0,
            action=Action.STOP_CHARGE,
        ),
        Rule(
            "B1103",
            "cell overvoltage (MSL)",
            CELL_V_MAX,
            volts.upper.msl,
            debounce_s=CURRENT_DEBOUNCE_S,
            recovery=Recovery.LOCK,
            action=Action.OPEN,
        ),
        Rule(
            "B1111",
            "cell undervoltage (MOL)",
            CELL_V_MIN,
            volts.lower.mol,
            above=False,
            hysteresis=0.05,
            debounce_s=VOLTAGE_DEBOUNCE_S,
            action=Action.DERATE,
        ),
        Rule(
            "B1112",
            "cell undervoltage (RSL)",
            CELL_V_MIN,
            volts.lower.rsl,
            above=False,
            hysteresis=0.1,
            debounce_s=VOLTAGE_DEBOUNCE_S,
            recovery_s=2.0,
            released_by=CHARGING,
            action=Action.STOP_DISCHARGE,
        ),
        Rule(
            "B1113",
            "cell undervoltage (MSL)",
            CELL_V_MIN,
            volts.lower.msl,
            above=False,
            debounce_s=CURRENT_DEBOUNCE_S,
            recovery=Recovery.LOCK,
            action=Action.OPEN,
        ),
        # current: charge and discharge, with a time-current curve between MOL and RSL
        Rule(
            "B1201",
            "charge overcurrent (MOL)",
            CHARGE_A,
            charge.mol * amps_per_c,
            hysteresis=0.05 * amps_per_c,
            debounce_s=1.0,
            action=Action.DERATE,
            task=Task.FAST,
        ),
        Rule(
            "B1202",
            "charge overcurrent (RSL)",
            CHARGE_A,
            charge.rsl * amps_per_c,
            debounce_s=CURRENT_DEBOUNCE_S,
            recovery_s=5.0,
            action=Action.STOP_CHARGE,
            task=Task.FAST,
        ),
        Rule(
            "B1203",
            "charge overcurrent (MSL)",
            CHARGE_A,
            charge.msl * amps_per_c,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        Rule(
            "B1204",
            "charger ignores the charge current limit",
            CHARGE_EXCESS_A,
            0.05 * amps_per_c,
            debounce_s=2.0,
            recovery=Recovery.LATCH,
            action=Action.STOP_CHARGE,
            task=Task.FAST,
        ),
        Rule(
            "B1211",
            "discharge overcurrent (time-current curve)",
            OVERCURRENT_DOSE,
            1.0,
            hysteresis=0.99,
            debounce_s=0.0,
            recovery_s=30.0,
            action=Action.STOP_DISCHARGE,
            task=Task.FAST,
        ),
        Rule(
            "B1212",
            "discharge overcurrent (RSL)",
            DISCHARGE_A,
            discharge.rsl * amps_per_c,
            debounce_s=CURRENT_DEBOUNCE_S,
            recovery_s=5.0,
            action=Action.STOP_DISCHARGE,
            task=Task.FAST,
        ),
        Rule(
            "B1213",
            "discharge overcurrent (MSL)",
            DISCHARGE_A,
            discharge.msl * amps_per_c,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        Rule(
            "B1220",
            "short circuit (software)",
            DISCHARGE_A,
            diag.short_circuit_msl_factor * discharge.msl * amps_per_c,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        Rule(
            "B1221",
            "short circuit (hardware cut-off)",
            HW_SHORT_CIRCUIT,
            FLAG,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        # temperature, charge limits while charging, discharge limits always
        Rule(
            "B1301",
            "charge overtemperature (MOL)",
            TEMP_MAX,
            t_charge.upper.mol,
            hysteresis=2.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            action=Action.DERATE,
            armed_by=CHARGING,
        ),
        Rule(
            "B1302",
            "charge overtemperature (RSL)",
            TEMP_MAX,
            t_charge.upper.rsl,
            hysteresis=5.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery_s=60.0,
            action=Action.STOP_CHARGE,
        ),
        Rule(
            "B1303",
            "charge overtemperature (MSL)",
            TEMP_MAX,
            t_charge.upper.msl,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            armed_by=CHARGING,
        ),
        Rule(
            "B1311",
            "charge undertemperature (MOL)",
            TEMP_MIN,
            t_charge.lower.mol,
            above=False,
            hysteresis=2.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            action=Action.DERATE,
            armed_by=CHARGING,
        ),
        Rule(
            "B1312",
            "charge undertemperature (RSL)",
            TEMP_MIN,
            t_charge.lower.rsl,
            above=False,
            hysteresis=3.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery_s=60.0,
            action=Action.STOP_CHARGE,
            armed_by=CHARGING,
        ),
        Rule(
            "B1321",
            "discharge overtemperature (RSL)",
            TEMP_MAX,
            t_discharge.upper.rsl,
            hysteresis=5.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery_s=60.0,
            action=Action.STOP_DISCHARGE,
        ),
        Rule(
            "B1322",
            "overtemperature (MSL)",
            TEMP_MAX,
            t_discharge.upper.msl,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1331",
            "discharge undertemperature (RSL)",
            TEMP_MIN,
            t_discharge.lower.rsl,
            above=False,
            hysteresis=3.0,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery_s=60.0,
            action=Action.STOP_DISCHARGE,
        ),
        # balance and sensors: a measurement the BMS cannot trust opens the path
        Rule(
            "B1401",
            "cell imbalance",
            IMBALANCE_V,
            diag.imbalance_v,
            hysteresis=0.03,
            debounce_s=10.0,
            action=Action.WARN,
        ),
        Rule(
            "B1501",
            "open sense wire",
            OPEN_WIRE,
            FLAG,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1502",
            "temperature sensor open",
            NTC_OPEN,
            FLAG,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1503",
            "temperature sensor shorted",
            NTC_SHORT,
            FLAG,
            debounce_s=TEMPERATURE_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1504",
            "current sensor frozen",
            CURRENT_FROZEN,
            FLAG,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        Rule(
            "B1505",
            "pack voltage implausible (sum of cells)",
            PACK_SUM_ERROR_PCT,
            diag.pack_sum_tolerance_pct,
            debounce_s=SUM_CHECK_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1507",
            "cell voltage outside the measurable range",
            CELL_V_INVALID,
            FLAG,
            debounce_s=PLAUSIBILITY_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        Rule(
            "B1506",
            "cell voltage changing implausibly fast",
            CELL_RATE_V_PER_S,
            diag.cell_voltage_rate_v_per_s,
            debounce_s=PLAUSIBILITY_DEBOUNCE_S,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
        ),
        # communication: cells nobody monitors cannot be ruled safe
        Rule(
            "B1701",
            "slave communication lost",
            MODULES_LOST,
            FLAG,
            debounce_s=0.0,
            recovery_s=5.0,
            action=Action.OPEN,
        ),
        # power path
        Rule(
            "B1601",
            "precharge failed",
            PRECHARGE_FAILED,
            FLAG,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
        Rule(
            "B1602",
            "welded contactor",
            WELDED,
            FLAG,
            debounce_s=0.0,
            recovery=Recovery.LATCH,
            action=Action.OPEN,
            task=Task.FAST,
        ),
    ]
    return table
