"""The system master's decisions on hand-made string reports (no bus, no plant)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cellwarden.bms.alarms import Alarm
from cellwarden.bms.system_master import SHARE_MARGIN, StringInfo, SystemMaster
from cellwarden.bms.system_state import StringReport, StringStatus, SystemRating
from cellwarden.model.architecture import Topology
from cellwarden.model.system_master import SystemMasterSettings

NOMINAL_V = 400.0
RATING = SystemRating(
    serial_number="T", topology="parallel", strings=4, modules_per_string=7,
    cells_per_string=126, rated_capacity_ah=1120.0, rated_energy_wh=448_000.0,
    nominal_voltage_v=NOMINAL_V, max_voltage_v=453.6, min_voltage_v=352.8,
    max_charge_current_a=1120.0, max_discharge_current_a=1120.0,
)  # fmt: skip


def _report(index, time_s=0.0, pack_v=NOMINAL_V, connected=False, **changes) -> StringReport:
    base = StringReport(
        index=index, time_s=time_s, path_state="normal" if connected else "standby",
        connected=connected, fault=False, charge_allowed=True, discharge_allowed=True,
        pack_voltage_v=pack_v, link_voltage_v=pack_v if connected else 0.0, current_a=0.0,
        soc_pct=50.0, soh_pct=100.0, charge_current_limit_a=100.0,
        discharge_current_limit_a=100.0, charge_voltage_limit_v=453.6,
        cell_voltage_min_v=3.30, cell_voltage_max_v=3.32, temp_min_c=24.0, temp_max_c=26.0,
    )  # fmt: skip
    return replace(base, **changes)


def _master(resistances=(0.05, 0.05, 0.05, 0.05), topology=Topology.PARALLEL, **settings):
    infos = [StringInfo(f"rack-{i + 1}", 7, NOMINAL_V, 280.0, r) for i, r in enumerate(resistances)]
    return SystemMaster(RATING, infos, topology, SystemMasterSettings(**settings))


def test_dead_bus_start_connects_the_largest_matching_group_and_refuses_the_outlier():
    master = _master()  # window 1.5 % of 400 V = 6 V
    reports = [_report(0, pack_v=400.0), _report(1, pack_v=403.0), _report(2, pack_v=398.0),
               _report(3, pack_v=420.0)]  # fmt: skip
    commands, state = master.step(0.0, reports)
    assert [c.connect for c in commands] == [True, True, True, False]
    assert state.strings_connected == 0
    assert state.charge_current_limit_a == 0.0 and state.discharge_current_limit_a == 0.0
    assert state.charge_voltage_limit_v > 0.0  # never 0, even with nothing connected
    # the three close: the bus is live at about 400 V; rack 4 is 20 V away and stays off
    live = [_report(i, time_s=1.0, pack_v=v, connected=True)
            for i, v in enumerate((400.0, 403.0, 398.0))]  # fmt: skip
    commands, state = master.step(1.0, [*live, _report(3, time_s=1.0, pack_v=420.0)])
    assert not commands[3].connect
    assert state.strings[3].status is StringStatus.DISCONNECTED
    refused = [e for e in master.log.events if e.code == "JOIN_REFUSED"]
    assert len(refused) == 1 and refused[0].freeze_frame["gap_v"] == pytest.approx(19.67, abs=0.01)
    # charging lifts the bus to within 6 V of rack 4: it joins
    live = [replace(r, time_s=2.0, link_voltage_v=415.0) for r in live]
    commands, _ = master.step(2.0, [*live, _report(3, time_s=2.0, pack_v=420.0)])
    assert commands[3].connect


def test_failover_isolates_a_faulted_string_and_derates_to_the_rest():
    master = _master()
    live = [_report(i, connected=True) for i in range(4)]
    _, state = master.step(0.0, live)
    # equal impedances: each carries a quarter; the system allows 4 × 100 A with the margin
    assert state.discharge_current_limit_a == pytest.approx(SHARE_MARGIN * 400.0)
    faulted = replace(live[1], time_s=1.0, fault=True, connected=False, path_state="fault",
                      alarms=frozenset({Alarm.COMMUNICATION}))  # fmt: skip
    others = [replace(r, time_s=1.0) for i, r in enumerate(live) if i != 1]
    commands, state = master.step(1.0, [others[0], faulted, *others[1:]])
    assert not commands[1].connect
    assert state.strings[1].status is StringStatus.ISOLATED
    assert state.strings_connected == 3
    assert state.discharge_current_limit_a == pytest.approx(SHARE_MARGIN * 300.0)
    # the isolated string's alarm is a warning while three carry on
    assert Alarm.COMMUNICATION in state.warnings and not state.alarms


def test_the_weakest_string_bounds_the_system_by_impedance():
    # rack 1 has half the resistance of the others: it takes 2/5 of the current
    master = _master(resistances=(0.025, 0.05, 0.05, 0.05))
    _, state = master.step(0.0, [_report(i, connected=True) for i in range(4)])
    share_low_r = (1 / 0.025) / (1 / 0.025 + 3 / 0.05)
    assert share_low_r == pytest.approx(0.4)
    assert state.discharge_current_limit_a == pytest.approx(SHARE_MARGIN * 100.0 / 0.4)
    assert state.strings[0].current_share == pytest.approx(0.4)


def test_measured_sharing_tightens_the_limit_when_a_string_carries_more_than_nominal():
    master = _master()
    currents = (-160.0, -80.0, -80.0, -80.0)  # rack 1 carries 40 % of a 400 A discharge
    for step in range(30):
        reports = [_report(i, time_s=step, connected=True, current_a=a)
                   for i, a in enumerate(currents)]  # fmt: skip
        _, state = master.step(float(step), reports)
    assert state.strings[0].current_share == pytest.approx(0.4, abs=0.01)
    assert state.discharge_current_limit_a == pytest.approx(SHARE_MARGIN * 100.0 / 0.4, rel=0.02)
    assert state.current_a == pytest.approx(-400.0)


def test_a_silent_string_is_isolated_and_rejoins_after_the_delay_within_the_window():
    master = _master(string_timeout_s=1.0, rejoin_delay_s=10.0)
    live = [_report(i, connected=True) for i in range(4)]
    master.step(0.0, live)
    stale = live[2]  # its last report, from t = 0
    step = [replace(r, time_s=2.0) for r in live]
    commands, state = master.step(2.0, [step[0], step[1], stale, step[3]])
    assert not commands[2].connect and state.strings[2].status is StringStatus.ISOLATED
    assert Alarm.COMMUNICATION in state.warnings
    # heard again, healthy, at a matching voltage: waits out the rejoin delay first
    back = _report(2, pack_v=401.0)
    for t in (3.0, 8.0, 12.0):
        commands, _ = master.step(
            t,
            [
                *[replace(r, time_s=t) for r in step[:2]],
                replace(back, time_s=t),
                replace(step[3], time_s=t),
            ],
        )
        assert commands[2].connect is (t - 3.0 >= 10.0)  # fmt: skip
    commands, _ = master.step(
        13.0,
        [
            *[replace(r, time_s=13.0) for r in step[:2]],
            replace(back, time_s=13.0),
            replace(step[3], time_s=13.0),
        ],
    )
    assert commands[2].connect  # fmt: skip


def test_series_stack_runs_only_whole_with_the_minimum_limits():
    master = _master(topology=Topology.SERIES)
    reports = [_report(i, connected=True, pack_v=100.0, charge_voltage_limit_v=113.4,
                       discharge_current_limit_a=100.0 - 10 * i) for i in range(4)]  # fmt: skip
    reports[3] = replace(reports[3], pack_voltage_v=110.0)  # the fullest string: least headroom
    commands, state = master.step(0.0, reports)
    assert all(c.connect for c in commands)
    assert state.discharge_current_limit_a == pytest.approx(70.0)
    assert state.voltage_v == pytest.approx(410.0)
    assert state.charge_voltage_limit_v == pytest.approx(410.0 + 3.4)
    faulted = replace(reports[0], fault=True, connected=False)
    commands, _ = master.step(1.0, [faulted, *[replace(r, time_s=1.0) for r in reports[1:]]])
    assert not any(c.connect for c in commands)


def test_operator_disconnect_and_inverter_loss_take_every_string_off():
    master = _master()
    live = [_report(i, connected=True) for i in range(4)]
    master.request_connected(False)
    commands, state = master.step(0.0, live)
    assert not any(c.connect for c in commands)
    # the load is ramped down first: zero limits while the strings still conduct
    assert state.strings_connected == 4
    assert state.charge_current_limit_a == state.discharge_current_limit_a == 0.0
    assert not state.charge_allowed and not state.discharge_allowed
    master.request_connected(True)
    master.inverter_lost = True
    commands, _ = master.step(1.0, [replace(r, time_s=1.0) for r in live])
    assert not any(c.connect for c in commands)
    hold = _master(inverter_loss_action="hold")
    hold.inverter_lost = True
    commands, _ = hold.step(0.0, live)
    assert all(c.connect for c in commands)
    with pytest.raises(ValueError, match=r"outside the allowed range 0\.\.3"):
        master.request_string_enabled(4, False)
