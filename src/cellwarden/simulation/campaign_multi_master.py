"""Campaign tests of a multi-master system: failover, rejoin, a refused join, the loss of the
system master and of the inverter. Judged on the plant's truth: which strings conduct, the
current each carries, the extremes every cell reached, and what the load drew.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cellwarden.model.scenario import Scenario
from cellwarden.model.system import StringSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode
from cellwarden.simulation.campaign import (
    CampaignTest,
    PackFacts,
    Verdict,
    _conducting,
    _msl_ok,
    _steps,
    _verdict,
)
from cellwarden.simulation.runner import RunResult

FAULT_AT_S = 30.0
FAILED_STRING = 1  # the string the tests break, 0-based (every system has at least 2 here)
SETTLE_S = 5.0  # after a failover, the system's new limits are in force within this


def _strings(scenario: Scenario):
    return scenario.system.expanded_strings()


def _rated_discharge_a(string: StringSpec) -> float:
    return PackFacts.of_string(string).discharge_mol_a


def _events(result: RunResult, text: str, source: str = "") -> list[float]:
    return [e.time_s for e in result.events.events if text in e.message and source in e.source]


def _system_load(share: float):
    """A discharge drawing ``share`` of the whole system's rated current."""

    def prepare(scenario: Scenario, data: dict[str, Any], faults: list[dict]) -> None:
        rated_a = sum(_rated_discharge_a(s) for s in _strings(scenario))
        data["initial"] = {"soc_pct": 70.0}
        data["faults"] = faults
        _steps(data, (DutyMode.REST, 0.0, 10.0), (DutyMode.CURRENT, share * rated_a, 600.0),
               ignores=False)  # fmt: skip

    return prepare


def _rest(data: dict[str, Any], faults: list[dict], **initial: Any) -> None:
    data["initial"] = {"soc_pct": 60.0, **initial}
    data["faults"] = faults
    _steps(data, (DutyMode.REST, 0.0, 60.0), ignores=False)


def _group_extremes(result: RunResult, strings: list[int]) -> tuple[float, float]:
    """The lowest and highest voltage any cell of ``strings`` reached at any plant step."""
    plant = result.plant
    groups = np.isin(plant.layout.group_string, strings)
    return (
        float(plant.gs[k.G_V_MIN_SEEN, groups].min()),
        float(plant.gs[k.G_V_MAX_SEEN, groups].max()),
    )


# --- string fault and failover ---------------------------------------------------------------


def _failover_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    fault = {"kind": "chain_fault", "mode": "break", "string": FAILED_STRING,
             "reachable_slaves": 0, "at_s": FAULT_AT_S}  # fmt: skip
    _system_load(0.6)(scenario, data, [fault])


def _failover_judge(result: RunResult, scenario: Scenario) -> Verdict:
    strings = _strings(scenario)
    rest = [i for i in range(len(strings)) if i != FAILED_STRING]
    band = strings[0].pack.cell.effective_limits.cell_voltage_v
    v_lo, v_hi = _group_extremes(result, rest)
    frame = result.recorder.pack_frame()
    after = frame[frame["time_s"] >= FAULT_AT_S + SETTLE_S]
    over = []
    for i in rest:
        peak = float(-after[f"string{i + 1}_current_a"].min())
        if peak > 1.02 * _rated_discharge_a(strings[i]):
            over.append(f"{strings[i].name} {peak:.0f} A")
    load = after["load_current_a"]
    limit = after["bms_discharge_limit_a"]
    within = bool((load <= 1.02 * limit + 1.0).all())
    connected = int(after["bms_strings_connected"].iloc[-1])
    return _verdict([
        (not _conducting(result, FAILED_STRING), f"{strings[FAILED_STRING].name} isolated"),
        (all(_conducting(result, i) for i in rest), f"{len(rest)} strings carry on"),
        (connected == len(rest), f"system master counts {connected} strings on the bus"),
        (band.lower.mol <= v_lo and v_hi <= band.upper.mol,
         f"remaining cells {v_lo:.3f}..{v_hi:.3f} V (operating limits "
         f"{band.lower.mol}..{band.upper.mol} V)"),
        (not over, "string currents within their rated discharge" + (
            f" except {', '.join(over)}" if over else "")),
        (within and float(load.min()) > 0.0,
         f"load {load.min():.0f}..{load.max():.0f} A within the new limit "
         f"{limit.min():.0f}..{limit.max():.0f} A"),
        _msl_ok(result, 0.0),
    ])  # fmt: skip


# --- rejoin ----------------------------------------------------------------------------------


def _rejoin_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    fault = {"kind": "chain_fault", "mode": "break", "string": FAILED_STRING,
             "reachable_slaves": 0, "at_s": FAULT_AT_S, "duration_s": 20.0}  # fmt: skip
    _rest(data, [fault])


def _rejoin_judge(result: RunResult, scenario: Scenario) -> Verdict:
    string = _strings(scenario)[FAILED_STRING]
    isolated = _events(result, f"string {string.name} faulted", "system-master")
    healthy = _events(result, f"string {string.name} healthy again", "system-master")
    joined = _events(result, f"string {string.name} joins the bus", "system-master")
    delay_s = scenario.system_master.rejoin_delay_s
    rated_a = _rated_discharge_a(string)
    peak = float(result.plant.bs[k.B_PEAK_A, result.plant.layout.string_branch[FAILED_STRING]])
    rejoined = bool(joined and healthy and joined[-1] >= healthy[0] - 1e-9)
    return _verdict([
        (bool(isolated), f"isolated at {isolated[0]:.1f} s" if isolated else "never isolated"),
        (bool(healthy), f"healthy again at {healthy[0]:.1f} s (after a {delay_s:g} s wait)"
         if healthy else "never healthy again"),
        (rejoined and _conducting(result, FAILED_STRING),
         f"rejoined at {joined[-1]:.1f} s" if joined else "never rejoined"),
        (peak <= rated_a, f"peak current {peak:.1f} A at the rejoin (rated {rated_a:.0f} A)"),
    ])  # fmt: skip


# --- a join at a large voltage difference ------------------------------------------------------


def _mismatch_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    _rest(data, [], soc_pct=90.0, string_soc_pct={FAILED_STRING: 5.0})


def _mismatch_judge(result: RunResult, scenario: Scenario) -> Verdict:
    strings = _strings(scenario)
    gap_v = float(
        result.plant.string_voltage_v[FAILED_STRING] - np.delete(result.plant.string_voltage_v,
                                                                 FAILED_STRING).mean()
    )  # fmt: skip
    window_v = (
        scenario.system_master.connect_window_pct
        / 100.0
        * (strings[FAILED_STRING].pack.nominal_voltage_v)
    )
    branch = result.plant.layout.string_branch[FAILED_STRING]
    moved_as = float(
        result.plant.bs[k.B_CHARGED_AS, branch] + result.plant.bs[k.B_DISCHARGED_AS, branch]
    )
    refused = _events(result, "kept off the bus", "system-master")
    others = [i for i in range(len(strings)) if i != FAILED_STRING]
    isolated = not _conducting(result, FAILED_STRING) and moved_as < 1e-6
    return _verdict([
        (abs(gap_v) > window_v, f"{strings[FAILED_STRING].name} {gap_v:+.1f} V from the others "
         f"(window {window_v:.1f} V)"),
        (bool(refused), "join refused and logged" if refused else "no refusal logged"),
        (isolated, f"{'never conducted' if isolated else 'conducted'} ({moved_as:.3g} As "
         "through its path)"),
        (all(_conducting(result, i) for i in others), "the others are on the bus"),
    ])  # fmt: skip


# --- the system master falls silent ----------------------------------------------------------


def _master_loss_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    fault = {"kind": "node_silence", "node": "system_master", "at_s": FAULT_AT_S}
    _system_load(0.3)(scenario, data, [fault])


def _master_loss_judge(result: RunResult, scenario: Scenario) -> Verdict:
    strings = _strings(scenario)
    settings = scenario.system_master
    heard = _events(result, "system master lost", "bms:")
    checks = [
        (len(heard) == len(strings), f"{len(heard)} of {len(strings)} string masters noticed"),
        _msl_ok(result, 0.0),
    ]
    conducting = [_conducting(result, i) for i in range(len(strings))]
    if settings.loss_action == "open":
        checks.append((not any(conducting), "every string opened (loss_action = open)"))
    else:
        checks.append((all(conducting), "every string holds its path (loss_action = hold)"))
    if scenario.buses.inverter:
        frame = result.recorder.pack_frame()
        late = frame[frame["time_s"] >= FAULT_AT_S + 10.0]
        peak = float(late["load_current_a"].abs().max())
        checks.append((peak < 1.0, f"the inverter stopped without the BMS ({peak:.1f} A after)"))
    return _verdict(checks)


# --- the inverter falls silent ------------------------------------------------------------------


def _inverter_loss_prepare(scenario: Scenario, data: dict[str, Any]) -> None:
    fault = {"kind": "node_silence", "node": "inverter", "at_s": FAULT_AT_S}
    _system_load(0.3)(scenario, data, [fault])


def _inverter_loss_judge(result: RunResult, scenario: Scenario) -> Verdict:
    settings = scenario.system_master
    lost = _events(result, "inverter lost", "system-master")
    allowed_s = FAULT_AT_S + settings.inverter_timeout_s + scenario.timing.main_period_s + 1.5
    checks = [
        (bool(lost) and lost[0] <= allowed_s,
         f"inverter loss noticed at {lost[0]:.1f} s" if lost else "inverter loss not noticed"),
        _msl_ok(result, 0.0),
    ]  # fmt: skip
    conducting = [_conducting(result, i) for i in range(len(_strings(scenario)))]
    if settings.inverter_loss_action == "open":
        checks.append((not any(conducting), "every string opened (inverter_loss_action = open)"))
    else:
        checks.append((all(conducting), "strings stay on (inverter_loss_action = hold)"))
    return _verdict(checks)


MULTI_MASTER_TESTS: tuple[CampaignTest, ...] = (
    CampaignTest("string fault and failover", "IEC 62619 §8.1, UL 1973 §16",
                 _failover_prepare, 120.0, _failover_judge),
    CampaignTest("string rejoin after recovery", "IEC 62619 §8.1", _rejoin_prepare, 150.0,
                 _rejoin_judge),
    CampaignTest("join at a large voltage difference refused", "IEC 62619 §8.1, UL 1973 §16",
                 _mismatch_prepare, 60.0, _mismatch_judge),
    CampaignTest("system master loss", "IEC 62619 §8.1", _master_loss_prepare, 90.0,
                 _master_loss_judge),
)  # fmt: skip
INVERTER_TESTS: tuple[CampaignTest, ...] = (
    CampaignTest("inverter silence", "IEC 62619 §8.1", _inverter_loss_prepare, 90.0,
                 _inverter_loss_judge),
)  # fmt: skip


def multi_master_tests(scenario: Scenario) -> tuple[CampaignTest, ...]:
    """The multi-master tests that apply: the inverter test needs the inverter bus."""
    if len(_strings(scenario)) < 2:
        return ()
    return MULTI_MASTER_TESTS + (INVERTER_TESTS if scenario.buses.inverter else ())
