"""Master-slave over the internal CAN bus: every frame decodes from the DBC, end-to-end
protection holds, the contactors close in order, and chain faults are found in time."""

from __future__ import annotations

import copy
from pathlib import Path

import can
import cantools
import numpy as np
import pytest
from crccheck.crc import Crc8SaeJ1850

from cellwarden.comms.dbc import dbc_path
from cellwarden.model.errors import ConfigError
from cellwarden.model.scenario import Scenario
from cellwarden.plant import kernel as k
from cellwarden.plant.power_path import SwitchStates
from cellwarden.simulation.campaign import FIRMWARE_TIMING
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import RunResult, Simulation

CART = "utility-cart-24s"  # master + 2 × 12S


def _scenario(name: str = CART, duration_s: float = 20.0, **changes) -> Scenario:
    data = copy.deepcopy(load_builtin(name).model_dump(mode="json"))
    data["duration_s"] = duration_s
    data["timing"] = dict(FIRMWARE_TIMING)
    data["profile"] = {"kind": "steps", "parameters": {"mode_1": 2, "value_1": 30.0,
                                                       "duration_1_s": duration_s}}  # fmt: skip
    data.update(changes)
    return Scenario.model_validate(data)


def _run(scenario: Scenario, can_log: Path | None = None) -> RunResult:
    return Simulation(scenario, can_log=can_log).run()


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[RunResult, list[can.Message]]:
    path = tmp_path_factory.mktemp("can") / "run.log"
    result = _run(_scenario(), can_log=path)
    return result, list(can.LogReader(str(path)))


def test_every_frame_of_every_bus_decodes_with_cantools(logged_run):
    """Internal, charger and vehicle buses, each with its own DBC file; the E2E-protected
    buses' CRC checked with an independent CRC-8 SAE J1850."""
    _, messages = logged_run
    databases = {
        "internal": cantools.database.load_file(dbc_path("internal")),
        "charger": cantools.database.load_file(dbc_path("charger")),
        "vehicle": cantools.database.load_file(dbc_path("external")),
    }
    channels = {m.channel for m in messages}
    assert channels == set(databases)
    assert sum(m.channel == "internal" for m in messages) > 1000
    for message in messages:
        decoded = databases[message.channel].decode_message(message.arbitration_id, message.data)
        assert decoded  # cantools knows the identifier and the layout
        if message.channel != "charger":  # the Elcon/TC protocol has no E2E fields
            ident = message.arbitration_id.to_bytes(2, "little")
            assert Crc8SaeJ1850.calc(ident + bytes(message.data[:-1])) == message.data[-1]


def test_alive_counters_count_up_per_identifier(logged_run):
    _, messages = logged_run
    db = cantools.database.load_file(dbc_path("internal"))
    last: dict[int, int] = {}
    for message in (m for m in messages if m.channel == "internal"):
        decoded = db.decode_message(message.arbitration_id, message.data)
        alive = next(v for name, v in decoded.items() if name.endswith("_Alive"))
        if message.arbitration_id in last:
            assert alive == (last[message.arbitration_id] + 1) % 16
        last[message.arbitration_id] = alive


def test_slaves_report_cell_voltages_the_plant_has(logged_run):
    """The last cell-voltage frames against the plant's truth, within the front end's error
    budget (offset 1 mV, gain 0.05 %, noise 0.8 mV, each 1 σ; 4 σ bound)."""
    result, messages = logged_run
    db = cantools.database.load_file(dbc_path("internal"))
    seen: dict[int, float] = {}
    for message in messages:
        if message.channel != "internal" or not 0x200 <= message.arbitration_id < 0x210:
            continue
        slave = message.arbitration_id - 0x200
        for name, value in db.decode_message(message.arbitration_id, message.data).items():
            if "_Cell" in name:
                seen[12 * slave + int(name[-2:]) - 1] = value
    truth = result.plant.gs[k.G_VOLT, :24]
    reported = np.array([seen[cell] for cell in range(24)])
    bound = 4 * (1e-3 + 0.0005 * 3.4 + 0.8e-3) + 1e-4
    assert np.abs(reported - truth).max() < bound
    addresses = {m.arbitration_id for m in messages if 0x200 <= m.arbitration_id < 0x210}
    assert addresses == {0x200, 0x201}  # two slaves, addresses from their chain positions


def test_can_log_is_candump_format_in_simulated_seconds(logged_run):
    result, messages = logged_run
    times = [m.timestamp for m in messages]
    assert times == sorted(times)
    assert times[0] >= 0.0 and times[-1] <= result.plant.time_s + 1e-6
    assert {m.channel for m in messages} == {"internal", "charger", "vehicle"}


def test_contactors_close_negative_precharge_positive_then_open_precharge(monkeypatch):
    seen: list[tuple[float, SwitchStates]] = []
    original = Simulation.__init__

    def spy_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        plant = self.plant
        set_switches = plant.set_switches

        def record(string, states):
            seen.append((plant.time_s, states, plant.bus_voltage_v,
                         float(plant.string_voltage_v[0])))  # fmt: skip
            set_switches(string, states)

        plant.set_switches = record

    monkeypatch.setattr(Simulation, "__init__", spy_init)
    _run(_scenario(duration_s=5.0))
    states = [(s.negative, s.precharge, s.positive) for _, s, _, _ in seen]
    closing = [st for st in states if any(st)]
    assert closing[:4] == [
        (True, False, False),  # negative alone: is the positive welded?
        (True, True, False),  # precharge
        (True, True, True),  # positive in
        (True, False, True),  # precharge out
    ]
    positive_at = next(i for i, st in enumerate(states) if st[2])
    _, _, link_v, pack_v = seen[positive_at]
    assert link_v >= 0.95 * pack_v  # the link was charged before the positive closed


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "slave_fault", "slave": 1, "mode": "silent"},
        {"kind": "slave_fault", "slave": 0, "mode": "frozen"},
        {"kind": "chain_fault", "mode": "break", "reachable_slaves": 1},
        {"kind": "chain_fault", "mode": "corruption", "slave": 0, "probability": 1.0},
        {"kind": "chain_fault", "mode": "loss", "slave": 1, "probability": 1.0},
        {"kind": "chain_fault", "mode": "latency", "latency_s": 0.5},
    ],
    ids=["silent", "frozen", "break", "garbled", "lost", "late"],
)
def test_a_lost_slave_is_found_within_three_cycles_and_opens_the_path(fault):
    fault_at_s = 5.0
    result = _run(_scenario(duration_s=8.0, faults=[{**fault, "at_s": fault_at_s}]))
    bms = result.controller.bms[0]
    trips = [e.time_s for e in bms.log.events if e.code == "B1701" and e.kind == "trip"]
    cycle_s = FIRMWARE_TIMING["main_period_s"]
    assert trips and fault_at_s < trips[0] <= fault_at_s + 4 * cycle_s + 1e-6
    assert result.plant.bs[k.B_CONDUCTING, 0] < 0.5  # ground truth: the string is cut off
    assert not np.isnan(bms.estimator.soc).any()  # estimation carried on by counting


def test_slave_comes_back_and_the_string_reconnects():
    faults = [{"kind": "chain_fault", "mode": "latency", "latency_s": 0.5, "at_s": 3.0}]
    scenario = _scenario(duration_s=30.0, faults=faults)
    result = _run(scenario)
    bms = result.controller.bms[0]
    codes = [(e.code, e.kind) for e in bms.log.events if e.code == "B1701"]
    assert ("B1701", "trip") in codes
    # data keeps flowing, late: the slave is heard again, the rule clears, the path recloses
    assert ("B1701", "clear") not in codes or result.plant.bs[k.B_CONDUCTING, 0] > 0.5


def test_balancing_stops_when_the_master_falls_silent():
    simulation = Simulation(_scenario(duration_s=2.0))
    node = simulation.controller.nodes[0]
    slaves = node.daisy_chain.slaves
    mask = np.zeros(24, dtype=bool)
    mask[3] = True
    node.chain.set_balancing(mask)
    node.chain.trigger(0.0)
    node.daisy_chain.service(0.0)
    plant = simulation.plant
    assert plant.gs[k.G_BLEED_G, 3] > 0.0  # the command reached the bleeder
    timeout_s = float(slaves.balancing_timeout_s[0])
    assert timeout_s == simulation.scenario.bms.internal_bus.balancing_timeout_s
    node.daisy_chain.service(timeout_s + 0.1)  # no command since
    assert plant.gs[k.G_BLEED_G, 3] == 0.0
    simulation.controller.close()


def test_slave_addresses_must_run_from_one_without_gaps_or_twins():
    data = load_builtin(CART).model_dump(mode="json")
    for layout, message in [
        ([{"address": 1, "cells": 12}, {"address": 1, "cells": 12}], "address 1 appears twice"),
        ([{"address": 1, "cells": 12}, {"address": 3, "cells": 12}], "address 2 is missing"),
    ]:
        data["system"]["strings"][0]["slave_layout"] = layout
        with pytest.raises((ConfigError, ValueError), match=message):
            Scenario.model_validate(data)


def test_a_very_hot_sensor_reads_hot_not_as_an_ntc_fault():
    """The temperature signal's range stops one step short of the two codes the value table
    reserves (254 short circuit, 255 open circuit): a sensor hotter than the range reads the
    range's top (86.5 °C, far above any cell limit), never an NTC fault that would hide it."""
    from cellwarden.comms.internal_protocol import NTC_OPEN, NTC_SHORT, slave_messages

    db = cantools.database.load_file(dbc_path("internal"))
    m = slave_messages(0)
    temps = np.array([25.0, 86.5, 86.8, 87.3, 95.0, 300.0])
    clear = np.zeros(temps.size, dtype=bool)
    (values,) = list(m.temperature_frames(temps, clear, clear))
    data = m.temperatures.encode(values, alive=0)
    decoded = m.temperatures.decode(data).values
    readings = [decoded[m.sensor_signals[i]] for i in range(temps.size)]
    assert readings == [25.0, 86.5, 86.5, 86.5, 86.5, 86.5]
    assert NTC_OPEN not in readings and NTC_SHORT not in readings
    reference = db.decode_message(m.temperatures.frame_id, data, decode_choices=True)
    assert [reference[m.sensor_signals[i]] for i in range(temps.size)] == readings
    for name in m.sensor_signals:  # every sensor of every slave: the range ends below 254
        signal = db.get_message_by_frame_id(m.temperatures.frame_id).get_signal_by_name(name)
        assert (signal.maximum - signal.offset) / signal.scale <= 253
