"""A certification-style test campaign, run in simulation and judged against ground truth.

Each test takes a scenario, injects one fault or abuse condition (after ../shared/STANDARDS.md:
IEC 62619, UL 1973/2271/2580), runs the BMS in the loop and judges the plant's truth:
- no cell beyond a maximum safety limit for longer than the protection's reaction time;
- the power path opened, or the direction was blocked, as the table says;
- the right event was logged by the BMS;
- the pack recovered where the table says it may.
"""

from __future__ import annotations

import copy
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellwarden.bms.string_bms import StringBms
from cellwarden.model.architecture import Architecture
from cellwarden.model.scenario import Scenario
from cellwarden.model.system import StringSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode
from cellwarden.simulation.runner import RunResult, Simulation

VOLTAGE_REACTION_S = 0.3  # 200 ms debounce plus one main cycle
TEMPERATURE_REACTION_S = 2.0  # 1 s debounce plus thermal update and cycle
SENSOR_REACTION_S = 2.5  # open-wire test period plus debounce
FAULT_AT_S = 30.0
FIRMWARE_TIMING = {  # the rates a real board runs, whatever a long scenario uses for speed
    "plant_step_s": 0.01,
    "protection_period_s": 0.01,
    "main_period_s": 0.1,
    "log_period_s": 1.0,
    "parameter_refresh_s": 1.0,
}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str


@dataclass(frozen=True)
class CampaignTest:
    """One abuse test: how to change the scenario, how long to run, how to judge."""

    name: str
    reference: str
    prepare: Callable[[Scenario, dict[str, Any]], None]  # edits the scenario's dict in place
    duration_s: float
    judge: Callable[[RunResult, Scenario], Verdict]


@dataclass(frozen=True)
class TestResult:
    scenario: str
    test: str
    passed: bool
    detail: str
    reference: str
    wall_s: float = field(default=0.0, compare=False)  # how long it took (not a result)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "test": self.test,
            "passed": self.passed,
            "detail": self.detail,
            "reference": self.reference,
        }


# --- what a test needs to know about the pack ----------------------------------------------


@dataclass(frozen=True)
class PackFacts:
    series: int
    capacity_ah: float
    charge_mol_a: float  # rated charge current: the cells' MOL, or the power path's rating
    discharge_mol_a: float  # rated discharge current, likewise
    discharge_rsl_a: float
    upper_mol_v: float
    upper_msl_v: float
    charge_temp_upper_mol_c: float
    path_max_a: float

    @classmethod
    def of(cls, scenario: Scenario) -> PackFacts:
        """The facts of the scenario's first string."""
        return cls.of_string(scenario.system.strings[0])

    @classmethod
    def of_string(cls, string: StringSpec) -> PackFacts:
        pack = string.pack
        limits = pack.cell.effective_limits
        amps = pack.capacity_ah
        return cls(
            series=pack.series,
            capacity_ah=amps,
            charge_mol_a=min(
                limits.charge_current_c.upper.mol * amps, string.power_path.max_current_a
            ),
            discharge_mol_a=min(
                limits.discharge_current_c.upper.mol * amps, string.power_path.max_current_a
            ),
            discharge_rsl_a=limits.discharge_current_c.upper.rsl * amps,
            upper_mol_v=limits.cell_voltage_v.upper.mol,
            upper_msl_v=limits.cell_voltage_v.upper.msl,
            charge_temp_upper_mol_c=limits.charge_temp_c.upper.mol,
            path_max_a=string.power_path.max_current_a,
        )


def _steps(data: dict[str, Any], *steps: tuple[DutyMode, float, float], ignores: bool) -> None:
    """Replace the profile by a lab sequence of (mode, value, duration) steps."""
    parameters: dict[str, float] = {}
    for n, (mode, value, duration_s) in enumerate(steps, start=1):
        parameters |= {f"mode_{n}": int(mode), f"value_{n}": value, f"duration_{n}_s": duration_s}
    data["profile"] = {"kind": "steps", "parameters": parameters, "ignores_limits": ignores}


def _broken_charger(data: dict[str, Any], facts: PackFacts, volts_per_cell: float) -> None:
    """A charger whose voltage control failed: it ignores the BMS and its own voltage is high."""
    voltage = facts.series * volts_per_cell
    data["charger"] = {
        "max_current_a": facts.charge_mol_a,
        "max_voltage_v": voltage,
        "voltage_setpoint_v": voltage,
        "ignores_limits": True,
    }


def _good_charger(data: dict[str, Any], facts: PackFacts) -> None:
    data["charger"] = {
        "max_current_a": facts.charge_mol_a,
        "max_voltage_v": facts.series * facts.upper_mol_v,
    }


# --- judging helpers -------------------------------------------------------------------------


def _bms(result: RunResult) -> StringBms:
    return result.controller.bms[0]


def _tripped(result: RunResult, *codes: str) -> list[float]:
    """Times at which any of ``codes`` tripped in the BMS's event log."""
    return sorted(e.time_s for e in _bms(result).log.events if e.kind == "trip" and e.code in codes)


def _msl_ok(result: RunResult, allowance_s: float) -> tuple[bool, str]:
    worst = float(result.truth.seconds_beyond_msl.max())
    v_lo, v_hi = result.truth.cell_voltage_range_v
    t_lo, t_hi = result.truth.cell_temp_range_c
    text = (
        f"cells {v_lo:.3f}..{v_hi:.3f} V, {t_lo:.1f}..{t_hi:.1f} °C, "
        f"{worst:.2f} s beyond a safety limit (allowed {allowance_s:g} s)"
    )
    return worst <= allowance_s, text


def _frame(result: RunResult):
    return result.recorder.pack_frame()


def _charge_after(result: RunResult, start_s: float, end_s: float = np.inf) -> tuple[float, float]:
    """(charged, discharged) Ah through the string between two times, from the log."""
    frame = _frame(result)
    part = frame[(frame["time_s"] > start_s) & (frame["time_s"] <= end_s)]
    dt = float(result.scenario.timing.log_period_s)
    current = part["pack_current_a"].to_numpy()
    return (
        float(np.clip(current, 0, None).sum() * dt / 3600.0),
        float(np.clip(-current, 0, None).sum() * dt / 3600.0),
    )


def _conducting(result: RunResult, string: int) -> bool:
    """Ground truth: the string's branch conducts."""
    plant = result.plant
    return bool(plant.bs[k.B_CONDUCTING, plant.layout.string_branch[string]] > 0.5)


def _path_open(result: RunResult) -> bool:
    """Ground truth: the (single) string's power path no longer conducts."""
    return not _conducting(result, 0)


def _verdict(checks: list[tuple[bool, str]]) -> Verdict:
    return Verdict(all(ok for ok, _ in checks), "; ".join(text for _, text in checks))


def _event_check(result: RunResult, codes: tuple[str, ...], before_s: float = np.inf):
    times = _tripped(result, *codes)
    ok = bool(times) and times[0] <= before_s
    when = f"at {times[0]:.2f} s" if times else "never"
    return times, (ok, f"{'/'.join(codes)} tripped {when}")


# --- the tests -------------------------------------------------------------------------------


def _overcharge_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    data["initial"] = {"soc_pct": 90.0}
    _broken_charger(data, facts, 1.10 * facts.upper_mol_v)
    _steps(
        data,
        (DutyMode.REST, 0.0, 5.0),
        (DutyMode.CHARGE, facts.charge_mol_a, 1800.0),
        (DutyMode.CURRENT, 0.3 * facts.discharge_mol_a, 120.0),
        ignores=False,
    )


def _overcharge_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    times, event = _event_check(result, ("B1204", "B1102", "B1103"))
    stopped_at = times[0] if times else 1805.0
    late_charge, _ = _charge_after(result, stopped_at + 60.0, 1805.0)
    _, discharged = _charge_after(result, 1810.0)
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            event,
            (
                late_charge <= 0.02 * facts.capacity_ah,
                f"{late_charge:.3f} Ah charged after the stop (allowed 2 % of capacity)",
            ),
            (discharged > 0.5 * 0.3 * facts.discharge_mol_a * 110 / 3600, "discharge still works"),
        ]
    )


def _over_discharge_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    data["initial"] = {"soc_pct": 12.0}
    _good_charger(data, facts)
    _steps(
        data,
        (DutyMode.CURRENT, facts.discharge_mol_a, 1500.0),
        (DutyMode.REST, 0.0, 60.0),
        (DutyMode.CHARGE, 0.5 * facts.charge_mol_a, 600.0),
        ignores=True,
    )


def _over_discharge_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    times, event = _event_check(result, ("B1112", "B1113"))
    stopped_at = times[0] if times else 1500.0
    _, late_discharge = _charge_after(result, stopped_at + 30.0, 1500.0)
    recharged, _ = _charge_after(result, 1600.0)
    bms = _bms(result)
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            event,
            (
                late_discharge <= 0.02 * facts.capacity_ah,
                f"{late_discharge:.3f} Ah discharged after the stop",
            ),
            (bms.counters.deep_discharge_flag, "deep-discharge flag kept"),
            (recharged > 0.01 * facts.capacity_ah, f"recovered: {recharged:.2f} Ah recharged"),
        ]
    )


def _external_short_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    data["initial"] = {"soc_pct": 100.0}
    data["faults"] = [{"kind": "external_short", "at_s": FAULT_AT_S, "resistance_ohm": 0.02}]
    _steps(data, (DutyMode.REST, 0.0, 60.0), ignores=False)


def _external_short_judge(result: RunResult, scenario: Scenario) -> Verdict:
    plant = result.plant
    spec = scenario.system.strings[0].power_path
    peak = float(plant.bs[k.B_PEAK_A, 0])
    _, event = _event_check(result, ("B1220", "B1221"), FAULT_AT_S + 0.2)
    checks = [_msl_ok(result, VOLTAGE_REACTION_S), event]
    if spec.short_circuit_trip_a is not None:
        let_through_s = spec.short_circuit_delay_s
        checks.append(
            (
                plant.short_circuit_tripped(0),
                f"analog cut-off opened after {1e6 * let_through_s:.0f} µs, peak {peak:.0f} A",
            )
        )
    checks.append((_path_open(result), "power path open and latched"))
    return _verdict(checks)


def _over_current_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    overload = min(1.2 * facts.discharge_mol_a, 0.97 * facts.discharge_rsl_a)
    data["initial"] = {"soc_pct": 90.0}
    _steps(
        data,
        (DutyMode.CURRENT, overload, 240.0),
        (DutyMode.REST, 0.0, 30.0),
        (DutyMode.CURRENT, 0.3 * facts.discharge_mol_a, 120.0),
        ignores=True,
    )


def _over_current_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    settings = scenario.bms.diagnosis
    overload = min(1.2 * facts.discharge_mol_a, 0.97 * facts.discharge_rsl_a)
    curve_s = settings.overcurrent_curve_s / ((overload / facts.discharge_mol_a) ** 2 - 1.0)
    times, event = _event_check(result, ("B1211", "B1212"), 1.3 * curve_s + 1.0)
    stopped_at = times[0] if times else 240.0
    _, drawn = _charge_after(result, stopped_at, 240.0)
    mean_a = drawn * 3600.0 / max(240.0 - stopped_at, 1.0)
    _, resumed = _charge_after(result, 290.0)
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            (event[0], f"{event[1]} (time-current curve: {curve_s:.1f} s)"),
            (
                mean_a <= facts.discharge_mol_a,
                f"mean current after the trip {mean_a:.1f} A "
                f"(rating {facts.discharge_mol_a:.0f} A)",
            ),
            (resumed > 0.0, f"recovered: {resumed:.3f} Ah delivered afterwards"),
        ]
    )


def _charge_overcurrent_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    data["initial"] = {"soc_pct": 30.0}
    _broken_charger(data, facts, facts.upper_mol_v)
    data["charger"]["max_current_a"] = 1.3 * facts.charge_mol_a
    _steps(
        data,
        (DutyMode.REST, 0.0, 5.0),
        (DutyMode.CHARGE, 1.3 * facts.charge_mol_a, 120.0),
        ignores=False,
    )


def _charge_overcurrent_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    times, event = _event_check(result, ("B1202", "B1203", "B1204"), 8.0)
    stopped_at = times[0] if times else 120.0
    late, _ = _charge_after(result, stopped_at + 1.0)
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            event,
            (late <= 0.002 * facts.capacity_ah, f"{late:.4f} Ah charged after the stop"),
        ]
    )


def _overheat_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    hot_c = facts.charge_temp_upper_mol_c + 5.0
    data["ambient_temp_c"] = hot_c
    data["initial"] = {"soc_pct": 40.0, "temp_c": hot_c}
    data["faults"] = [{"kind": "cooling_failure", "at_s": 0.0, "remaining_fraction": 0.0}]
    _broken_charger(data, facts, facts.upper_mol_v)
    _steps(data, (DutyMode.CHARGE, facts.charge_mol_a, 600.0), ignores=False)


def _overheat_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    times, event = _event_check(result, ("B1302", "B1303"), 5.0)
    stopped_at = times[0] if times else 600.0
    late, _ = _charge_after(result, stopped_at + TEMPERATURE_REACTION_S)
    state = _bms(result).state
    alive = state is not None and state.time_s >= result.plant.time_s - 1.0
    return _verdict(
        [
            _msl_ok(result, TEMPERATURE_REACTION_S),
            event,
            (late <= 0.002 * facts.capacity_ah, f"{late:.4f} Ah charged after the stop"),
            (alive, "BMS still measuring and reporting"),
        ]
    )


def _freezing_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    data["ambient_temp_c"] = -10.0
    data["initial"] = {"soc_pct": 50.0, "temp_c": -10.0}
    _broken_charger(data, facts, facts.upper_mol_v)
    _steps(data, (DutyMode.REST, 0.0, 10.0), (DutyMode.CHARGE, facts.charge_mol_a, 300.0),
           ignores=False)  # fmt: skip


def _freezing_judge(result: RunResult, scenario: Scenario) -> Verdict:
    facts = PackFacts.of(scenario)
    charged, _ = _charge_after(result, 0.0)
    allowed_ah = facts.charge_mol_a * (TEMPERATURE_REACTION_S + 1.0) / 3600.0
    times = _tripped(result, "B1312", "B1311")
    when = f"at {times[0]:.2f} s" if times else "never"
    limit_zero = _bms(result).limits.charge_current_a == 0.0
    return _verdict(
        [
            _msl_ok(result, TEMPERATURE_REACTION_S),
            (bool(times) or charged == 0.0, f"B1312 tripped {when}"),
            (
                charged <= allowed_ah,
                f"{charged:.4f} Ah charged below freezing (allowed {allowed_ah:.4f})",
            ),
            (limit_zero, "charge current limit published as 0 A"),
        ]
    )


def _imbalance_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    facts = PackFacts.of(scenario)
    parallel = scenario.system.strings[0].pack.parallel
    middle = (facts.series // 2) * parallel
    data["initial"] = {
        "soc_pct": 5.0,
        "cell_soc_pct": {str(middle + slot): 50.0 for slot in range(parallel)},
    }
    _good_charger(data, facts)
    charge_s = 3600.0 * 1.2 / max(facts.charge_mol_a / facts.capacity_ah, 0.1)
    _steps(data, (DutyMode.CHARGE, facts.charge_mol_a, charge_s), ignores=False)


def _imbalance_judge(result: RunResult, scenario: Scenario) -> Verdict:
    limits = scenario.system.strings[0].pack.cell.effective_limits.cell_voltage_v.upper
    v_max = result.truth.cell_voltage_range_v[1]
    median_soc = float(np.median(result.plant.soc))
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            (v_max <= limits.rsl, f"highest cell {v_max:.3f} V (maximum voltage {limits.rsl} V)"),
            (median_soc > 0.3, f"the others still charged: median SoC {100 * median_soc:.0f} %"),
        ]
    )


def _sensor_prepare(fault: dict[str, Any]) -> Callable[[Scenario, dict[str, Any]], None]:
    def prepare(scenario: Scenario, data: dict[str, Any]) -> None:
        facts = PackFacts.of(scenario)
        data["initial"] = {"soc_pct": 70.0}
        extra = {"wire": facts.series // 2} if fault["kind"] == "open_wire" else {}
        data["faults"] = [{**fault, **extra, "at_s": FAULT_AT_S}]
        _steps(
            data,
            (DutyMode.CURRENT, 0.3 * facts.discharge_mol_a, 20.0),
            (DutyMode.CURRENT, 0.5 * facts.discharge_mol_a, 20.0),
            (DutyMode.CURRENT, 0.2 * facts.discharge_mol_a, 200.0),
            ignores=False,
        )

    return prepare


def _sensor_judge(codes: tuple[str, ...]) -> Callable[[RunResult, Scenario], Verdict]:
    def judge(result: RunResult, scenario: Scenario) -> Verdict:
        _, event = _event_check(result, codes, FAULT_AT_S + SENSOR_REACTION_S)
        return _verdict(
            [
                _msl_ok(result, VOLTAGE_REACTION_S),
                event,
                (_path_open(result), "power path opened (fault cannot be ruled out) and latched"),
            ]
        )

    return judge


def _normal_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    """The scenario's own duty profile, unchanged."""


def _normal_judge(result: RunResult, scenario: Scenario) -> Verdict:
    severe = [
        e
        for e in _bms(result).log.events
        if e.kind == "trip" and e.action not in ("WARN", "DERATE")
    ]
    names = ", ".join(sorted({e.code for e in severe})) or "none"
    return _verdict(
        [_msl_ok(result, 0.0), (not severe, f"protective trips in normal use: {names}")]
    )


STANDALONE_TESTS: tuple[CampaignTest, ...] = (
    CampaignTest("overcharge, charger ignores limits", "IEC 62619 8.2.2, UL 2271 §23",
                 _overcharge_prepare, 1930.0, _overcharge_judge),
    CampaignTest("over-discharge", "UL 1973 §19, UL 2271 §27", _over_discharge_prepare, 2160.0,
                 _over_discharge_judge),
    CampaignTest("external short circuit", "UL 2580, IEC 62619 7.2.1", _external_short_prepare,
                 60.0, _external_short_judge),
    CampaignTest("over-current in discharge", "UL 2271 §26, UL 1973 §18", _over_current_prepare,
                 390.0, _over_current_judge),
    CampaignTest("charge over-current", "IEC 62619 8.2.3, UL 2271 §24",
                 _charge_overcurrent_prepare, 120.0, _charge_overcurrent_judge),
    CampaignTest("overtemperature while charging", "IEC 62619 8.2.4", _overheat_prepare, 600.0,
                 _overheat_judge),
    CampaignTest("charging below freezing", "IEC 62619 §8.1, UL 2271", _freezing_prepare, 310.0,
                 _freezing_judge),
    CampaignTest("imbalanced pack charging", "UL 1973 §21, UL 2271 §29", _imbalance_prepare,
                 5400.0, _imbalance_judge),
    CampaignTest("open sense wire", "IEC 62619 §8.1", _sensor_prepare({"kind": "open_wire"}),
                 240.0, _sensor_judge(("B1501", "B1507"))),
    CampaignTest("open NTC", "IEC 62619 §8.1",
                 _sensor_prepare({"kind": "ntc_fault", "sensor": 0, "mode": "open"}), 240.0,
                 _sensor_judge(("B1502",))),
    CampaignTest("stuck current sensor", "IEC 62619 §8.1",
                 _sensor_prepare({"kind": "sensor_stuck", "sensor": "current", "index": 0}),
                 240.0, _sensor_judge(("B1504",))),
    CampaignTest("no nuisance trips in normal use", "UL 1973 §20, UL 2271 §28", _normal_prepare,
                 3600.0, _normal_judge),
)  # fmt: skip


# --- master-slave: contactors, precharge and the daisy chain ----------------------------------

COMM_FAULT_AT_S = 20.0


def _rest_prepare(**changes: Any) -> Callable[[Scenario, dict[str, Any]], None]:
    """A pack at rest with the given top-level changes (faults, system fields)."""

    def prepare(scenario: Scenario, data: dict[str, Any]) -> None:
        data["initial"] = {"soc_pct": 60.0}
        for key, value in changes.items():
            if key == "system":
                data["system"].update(value)
            else:
                data[key] = value
        _steps(data, (DutyMode.REST, 0.0, 60.0), ignores=False)

    return prepare


def _precharge_peak_ok(result: RunResult, scenario: Scenario) -> tuple[bool, str]:
    """Ground truth: the main contactor never closed onto the link (no inrush past the
    precharge resistor's limit)."""
    string = scenario.system.strings[0]
    limit_a = 1.2 * string.pack.max_operating_voltage_v / string.power_path.precharge_resistance_ohm
    peak = float(result.plant.bs[k.B_PEAK_A, 0])
    return peak <= limit_a, f"peak current {peak:.1f} A (precharge limit {limit_a:.1f} A)"


def _precharge_failure_judge(result: RunResult, scenario: Scenario) -> Verdict:
    _, event = _event_check(result, ("B1601",), 30.0)
    state = _bms(result).path.state.value
    return _verdict(
        [
            event,
            _precharge_peak_ok(result, scenario),
            (_path_open(result) and state == "fault", f"power path open, state {state}"),
        ]
    )


def _welded_judge(result: RunResult, scenario: Scenario) -> Verdict:
    """Found at the first closing, with only the negative in: the precharge never starts."""
    _, event = _event_check(result, ("B1602",), 0.2)
    negative = result.plant.power_paths[0].command.negative
    return _verdict(
        [
            event,
            (not negative and _path_open(result), "negative contactor open: no current path"),
        ]
    )


def _comm_prepare(fault: dict[str, Any]) -> Callable[[Scenario, dict[str, Any]], None]:
    def prepare(scenario: Scenario, data: dict[str, Any]) -> None:
        facts = PackFacts.of(scenario)
        data["initial"] = {"soc_pct": 70.0}
        data["faults"] = [{**fault, "at_s": COMM_FAULT_AT_S}]
        _steps(data, (DutyMode.CURRENT, 0.3 * facts.discharge_mol_a, 120.0), ignores=False)

    return prepare


def _comm_loss_judge(result: RunResult, scenario: Scenario) -> Verdict:
    bus = scenario.bms.internal_bus
    allowed_s = COMM_FAULT_AT_S + (bus.timeout_cycles + 1) * scenario.timing.main_period_s
    _, event = _event_check(result, ("B1701",), allowed_s + 0.05)
    return _verdict(
        [
            _msl_ok(result, VOLTAGE_REACTION_S),
            (event[0], f"{event[1]} (allowed by {allowed_s:.2f} s)"),
            (_path_open(result), "power path opened: unmonitored cells cannot be ruled safe"),
        ]
    )


def _corruption_judge(result: RunResult, scenario: Scenario) -> Verdict:
    controller = result.controller
    chain = controller.nodes[0].chain
    cell_v = result.plant.gs[k.G_VOLT, : scenario.system.strings[0].pack.series]
    seen_v = _bms(result).voltages.cell_voltage_v
    error_mv = 1000.0 * float(np.nanmax(np.abs(seen_v - cell_v)))
    severe = [e.code for e in _bms(result).log.events if e.kind == "trip"]
    return _verdict(
        [
            (chain.rejected_frames > 0, f"{chain.rejected_frames} corrupted frames rejected"),
            (not severe, f"trips: {', '.join(severe) or 'none'}"),
            (error_mv < 15.0, f"cell voltages the BMS uses within {error_mv:.1f} mV of truth"),
            (not _path_open(result), "power path stays closed"),
        ]
    )


MASTER_SLAVE_TESTS: tuple[CampaignTest, ...] = (
    CampaignTest("precharge into a shorted load", "IEC 62619 §8.1 (functional safety)",
                 _rest_prepare(faults=[{"kind": "external_short", "at_s": 0.0,
                                        "resistance_ohm": 1.0}]),
                 60.0, _precharge_failure_judge),
    CampaignTest("precharge with the DC-link capacitor missing", "IEC 62619 §8.1",
                 _rest_prepare(system={"dc_link_capacitance_f": 0.0}), 60.0,
                 _precharge_failure_judge),
    CampaignTest("welded main contactor", "UL 1973 §16, IEC 62619 §8.1",
                 _rest_prepare(faults=[{"kind": "welded_contactor", "at_s": 0.0}]), 30.0,
                 _welded_judge),
    CampaignTest("slave communication loss", "IEC 62619 §8.1, UL 1973 §16",
                 _comm_prepare({"kind": "slave_fault", "slave": 1, "mode": "silent"}), 60.0,
                 _comm_loss_judge),
    CampaignTest("broken daisy chain", "IEC 62619 §8.1",
                 _comm_prepare({"kind": "chain_fault", "mode": "break", "reachable_slaves": 1}),
                 60.0, _comm_loss_judge),
    CampaignTest("frozen slave (alive counter stuck)", "IEC 62619 §8.1",
                 _comm_prepare({"kind": "slave_fault", "slave": 0, "mode": "frozen"}), 60.0,
                 _comm_loss_judge),
    CampaignTest("corrupted frames (1 % of frames)", "IEC 62619 §8.1",
                 _comm_prepare({"kind": "chain_fault", "mode": "corruption",
                                "probability": 0.01}), 120.0, _corruption_judge),
)  # fmt: skip


def tests_for(scenario: Scenario) -> tuple[CampaignTest, ...]:
    """The campaign tests that apply to a scenario's architecture."""
    from cellwarden.simulation.campaign_multi_master import multi_master_tests  # uses this module

    architecture = scenario.system.architecture
    if architecture is Architecture.STANDALONE:
        return STANDALONE_TESTS
    if architecture is Architecture.MASTER_SLAVE:
        return STANDALONE_TESTS + MASTER_SLAVE_TESTS
    return multi_master_tests(scenario)


def run_test(scenario: Scenario, test: CampaignTest) -> TestResult:
    """Prepare, run and judge one test on one scenario."""
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    data["faults"] = []
    test.prepare(scenario, data)
    data["duration_s"] = test.duration_s
    data["controller"] = "bms"
    data["timing"] = FIRMWARE_TIMING
    prepared = Scenario.model_validate(data)
    started = time.perf_counter()
    result = Simulation(prepared).run()
    verdict = test.judge(result, prepared)
    return TestResult(scenario.name, test.name, verdict.passed, verdict.detail, test.reference,
                      time.perf_counter() - started)  # fmt: skip


def run_campaign(
    scenarios: list[Scenario],
    only: list[str] | None = None,
    on_result: Callable[[TestResult], None] | None = None,
    jobs: int = 1,
) -> list[TestResult]:
    """Every applicable test on every scenario (only those whose name contains a part of
    ``only``, when given); ``on_result`` hears each result, in the campaign's order.

    ``jobs`` > 1 runs the tests in that many processes: each test is its own simulation with
    its own seed, so the results are the same as one after another, only sooner."""
    chosen = [
        (scenario, index)
        for scenario in scenarios
        for index, test in enumerate(tests_for(scenario))
        if not only or any(part in test.name for part in only)
    ]
    if jobs <= 1 or len(chosen) <= 1:
        outcomes = (_run_indexed(scenario, index) for scenario, index in chosen)
        return _collect(outcomes, on_result)
    context = multiprocessing.get_context("spawn")  # no threads or open buses carried over
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        # the longest first, so that no long test starts last; results in the campaign's order
        futures = {}
        for position in sorted(range(len(chosen)), key=lambda p: -_expected_cost(*chosen[p])):
            futures[position] = pool.submit(_run_indexed, *chosen[position])
        return _collect((futures[p].result() for p in range(len(chosen))), on_result)


def _expected_cost(scenario: Scenario, index: int) -> float:
    """A test's rough cost: its simulated time, weighted by the cells simulated and watched."""
    cells = scenario.system.cell_count
    return tests_for(scenario)[index].duration_s * (1.0 + cells / 100.0)


def _run_indexed(scenario: Scenario, index: int) -> TestResult:
    """The ``index``-th test of ``scenario`` (a process pool's unit of work)."""
    return run_test(scenario, tests_for(scenario)[index])


def _collect(
    outcomes: Iterable[TestResult], on_result: Callable[[TestResult], None] | None
) -> list[TestResult]:
    results = []
    for outcome in outcomes:
        results.append(outcome)
        if on_result is not None:
            on_result(outcome)
    return results
