"""The external CAN to a vehicle controller: the BMS's ExternalCanLink and the simulated vehicle
on one virtual bus, the vehicle driving a real plant's load on a simulated clock.

Every frame is decoded with cantools straight from external.dbc (never our codec), its CRC is
checked with a bitwise CRC-8 written here, and its values are compared with what was sent.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import can
import cantools
import pytest

from cellwarden.bms.limits import Limits
from cellwarden.bms.protection_table import build_table
from cellwarden.bms.string_bms import BmsState
from cellwarden.comms.can_bus import CanNetwork, Frame
from cellwarden.comms.dbc import dbc_path
from cellwarden.comms.external_can import ALARM_KINDS, ExternalCanLink, alarm_kind
from cellwarden.model.bms import BmsSettings
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode
from cellwarden.simulation.vehicle_node import SimulatedVehicleController

TICK_S = 0.1
STATE_ID, LIMITS_ID, COMMAND_ID = 0x400, 0x402, 0x408


def crc8_sae_j1850(data: bytes) -> int:
    """Bitwise CRC-8 SAE J1850 (poly 0x1D, init 0xFF, xor-out 0xFF), independent of e2e.py."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def protected(frame_id: int, payload: bytes) -> bool:
    return payload[-1] == crc8_sae_j1850(bytes((frame_id & 0xFF, frame_id >> 8)) + payload[:-1])


@pytest.fixture
def dbc():
    return cantools.database.load_file(dbc_path("external"))


@pytest.fixture
def plant(kit):
    system = kit.standalone(kit.flat_cell(), series=13, parallel=4)
    plant = kit.make_plant(system, soc_pct=60.0)
    kit.close_all(plant)
    plant.set_duty(DutyMode.CURRENT, 80.0)  # the driver asks for 80 A
    return plant


def bms_state(**changes) -> BmsState:
    state = BmsState(
        time_s=0.0,
        soc_pct=61.23,
        soc_min_pct=58.5,
        soc_max_pct=63.0,
        energy_wh=1234.5,
        capacity_soh_pct=97.31,
        resistance_soh_pct=88.8,
        limits=Limits(
            charge_current_a=20.0,
            discharge_current_a=50.0,
            charge_voltage_v=54.6,
            discharge_voltage_v=39.0,
        ),
        power_limits_a={},
        path_state="normal",
        active_codes=(),
        cell_voltage_min_v=3.7012,
        cell_voltage_max_v=3.7456,
        temp_min_c=24.0,
        temp_max_c=31.0,
        current_a=-47.3,
        pack_voltage_v=48.37,
        balancing_cells=2,
    )
    return replace(state, **changes)


class Bench:
    """The BMS link, the vehicle node and a listening tool on one vehicle bus."""

    def __init__(self, plant, rules=(), ignores_limits=False, log_path=None) -> None:
        self.plant = plant
        self.network = CanNetwork(log_path=log_path)
        self.link = ExternalCanLink(self.network.port("vehicle"), rules)
        self.vehicle = SimulatedVehicleController(
            self.network.port("vehicle"), plant, ignores_limits
        )
        self.tool = self.network.port("vehicle", logged=False)
        self.frames: list[Frame] = []
        self.sent: dict[float, tuple[BmsState | None, tuple[float, float, bool], bool]] = {}
        self.step = 0

    @property
    def now_s(self) -> float:
        return round(self.step * TICK_S, 6)

    def run(
        self, seconds: float, state: BmsState | None, bms: bool = True, vehicle: bool = True
    ) -> None:
        for _ in range(round(seconds / TICK_S)):
            now_s = self.now_s
            if bms:
                self.link.tick(now_s, state)
                published = (self.link.discharge_a, self.link.regen_a, self.link.ready)
                self.sent[now_s] = (state, published, self.link.vehicle_silent)
            if vehicle:
                self.vehicle.tick(now_s)
            self.plant.advance(TICK_S)
            self.frames.extend(self.tool.receive())
            self.step += 1

    def load_limits(self) -> tuple[float, float]:
        return float(self.plant.bus[k.LOAD_MAX_DISCHARGE_A]), float(
            self.plant.bus[k.LOAD_MAX_REGEN_A]
        )


def expected_values(name: str, state: BmsState, published, vehicle_silent: bool) -> dict:
    discharge_a, regen_a, ready = published
    return {
        "BMS_State": {
            "State_PathState": state.path_state.capitalize(),
            "State_Ready": "Ready" if ready else "NotReady",
            "State_ChargeAllowed": int(ready and regen_a > 0),
            "State_DischargeAllowed": int(ready and discharge_a > 0),
            "State_VehicleTimeout": int(vehicle_silent),
            "State_BalancingCells": state.balancing_cells,
        },
        "BMS_Pack": {"Pack_Voltage": state.pack_voltage_v, "Pack_Current": state.current_a},
        "BMS_CurrentLimits": {
            "Lim_MaxChargeCurrent": regen_a,
            "Lim_MaxDischargeCurrent": discharge_a,
        },
        "BMS_VoltageLimits": {
            "VLim_ChargeVoltage": state.limits.charge_voltage_v,
            "VLim_DischargeVoltage": state.limits.discharge_voltage_v,
        },
        "BMS_CellExtremes": {
            "Cell_VoltageMin": state.cell_voltage_min_v,
            "Cell_VoltageMax": state.cell_voltage_max_v,
            "Cell_TempMin": state.temp_min_c,
            "Cell_TempMax": state.temp_max_c,
        },
        "BMS_Alarms": {"Alarm_ActiveCount": len(state.active_codes)},
        "BMS_Soc": {
            "Soc_Soc": state.soc_pct,
            "Soc_SocMin": state.soc_min_pct,
            "Soc_SocMax": state.soc_max_pct,
            "Soc_Energy": state.energy_wh / 1000.0,
        },
        "BMS_Health": {
            "Soh_Capacity": state.capacity_soh_pct,
            "Soh_Resistance": state.resistance_soh_pct,
        },
    }[name]


def test_every_frame_decodes_from_the_dbc_to_what_was_sent(plant, dbc, tmp_path):
    bench = Bench(plant, log_path=tmp_path / "vehicle.log")
    bench.run(0.3, None)  # before the BMS's first main task
    state = bms_state()
    bench.link.publish(50.0, 20.0, True)
    bench.run(2.5, state)
    bench.link.publish(12.5, 0.0, True)
    bench.run(1.5, replace(state, current_a=12.0, path_state="normal", soc_pct=60.9))
    bench.network.close()

    by_id: dict[int, list[Frame]] = {}
    for frame in bench.frames:
        by_id.setdefault(frame.frame_id, []).append(frame)
    assert set(by_id) == {0x400, 0x401, 0x402, 0x403, 0x404, 0x405, 0x406, 0x407, COMMAND_ID}
    for frame_id, frames in by_id.items():
        message = dbc.get_message_by_frame_id(frame_id)
        # E2E: CRC over identifier and payload, alive counter +1 mod 16 per identifier
        alive_signal = next(s.name for s in message.signals if s.name.endswith("_Alive"))
        alive = []
        for frame in frames:
            assert not frame.extended and len(frame.data) == 8
            assert protected(frame_id, frame.data)
            values = dbc.decode_message(frame_id, frame.data)
            alive.append(values[alive_signal])
        assert alive == [i % 16 for i in range(len(frames))]
        # cycle from the DBC
        times = [f.time_s for f in frames]
        assert {round(b - a, 6) for a, b in pairwise(times)} == {message.cycle_time / 1000.0}

    for frame in bench.frames:
        if frame.frame_id == COMMAND_ID:
            values = dbc.decode_message(frame.frame_id, frame.data)
            assert values["Veh_ConnectRequest"] == "Connect"
            continue
        message = dbc.get_message_by_frame_id(frame.frame_id)
        values = dbc.decode_message(frame.frame_id, frame.data)
        state, published, silent = bench.sent[frame.time_s]
        if state is None:
            assert message.name == "BMS_State"
            assert values["State_PathState"] == "Init" and values["State_Ready"] == "NotReady"
            continue
        for name, want in expected_values(message.name, state, published, silent).items():
            signal = message.get_signal_by_name(name)
            if isinstance(want, str):
                assert values[name] == want, name
            else:
                assert values[name] == pytest.approx(want, abs=signal.scale / 2 + 1e-9), name
    assert bench.link.decode_errors == 0 and bench.vehicle.decode_errors == 0
    assert bench.link.connect_requested and not bench.link.vehicle_silent

    logged = list(can.LogReader(tmp_path / "vehicle.log"))
    assert [
        (m.channel, m.arbitration_id, m.is_extended_id, bytes(m.data), round(m.timestamp, 6))
        for m in logged
    ] == [("vehicle", f.frame_id, False, f.data, round(f.time_s, 6)) for f in bench.frames]


def test_alarms_map_codes_to_warning_and_fault_bits(kit, plant, dbc):
    cell = plant.layout.strings[0].pack.cell
    rules = build_table(cell, 4, BmsSettings())
    actions = {rule.code: rule.action for rule in rules}
    bench = Bench(plant, rules)
    codes = ("B1101", "B1302", "B1504")  # a derating warning, a stop, an opening fault
    bench.link.publish(50.0, 0.0, True)
    bench.run(0.5, bms_state(active_codes=codes))
    alarms = [f for f in bench.frames if f.frame_id == 0x405][-1]
    values = dbc.decode_message(0x405, alarms.data)
    assert values["Alarm_WarnOverVoltage"] == 1
    assert values["Alarm_FaultTemperature"] == 1
    assert values["Alarm_FaultInternal"] == 1
    assert values["Alarm_ActiveCount"] == 3
    assert values["Alarm_WorstCode"] == 1504  # opens the path: the most severe
    assert sum(v for n, v in values.items() if n.startswith(("Alarm_Warn", "Alarm_Fault"))) == 3
    state = [f for f in bench.frames if f.frame_id == STATE_ID][-1]
    assert dbc.decode_message(STATE_ID, state.data)["State_FaultLevel"] == "Fault"
    # every code of the table lands in a group
    assert {alarm_kind(code) for code in actions} <= set(ALARM_KINDS)
    assert [alarm_kind(c) for c in ("B1103", "B1112", "B1220", "B1331", "B1701", "B1602")] == [
        "OverVoltage", "UnderVoltage", "OverCurrent", "Temperature", "InsulationComm", "Internal"
    ]  # fmt: skip
    bench.run(0.2, bms_state(active_codes=("B1101",)))
    state = [f for f in bench.frames if f.frame_id == STATE_ID][-1]
    assert dbc.decode_message(STATE_ID, state.data)["State_FaultLevel"] == "Warning"
    bench.network.close()


def test_vehicle_applies_limits_and_drops_to_zero_when_bms_frames_stop(plant):
    bench = Bench(plant)
    bench.run(0.5, None)
    assert bench.load_limits() == (0.0, 0.0)  # not ready yet
    assert plant.load_current_a == pytest.approx(0.0, abs=1e-6)
    bench.link.publish(30.0, 10.0, True)
    bench.run(1.0, bms_state())
    assert bench.load_limits() == pytest.approx((30.0, 10.0), abs=1e-9)
    assert plant.load_current_a == pytest.approx(30.0, rel=1e-3)  # asked 80 A, got the limit

    bench.link.publish(0.0, 0.0, False)  # the BMS withdraws ready
    bench.run(0.3, bms_state(path_state="opening"))
    assert bench.load_limits() == (0.0, 0.0)
    bench.link.publish(30.0, 10.0, True)
    bench.run(0.3, bms_state())
    assert bench.load_limits() == pytest.approx((30.0, 10.0), abs=1e-9)

    # the BMS falls silent: the vehicle keeps the limits for 0.5 s, then drops them
    last_bms_s = bench.now_s - TICK_S
    dropped_at_s = None
    while dropped_at_s is None and bench.now_s < last_bms_s + 3.0:
        now_s = bench.now_s
        bench.run(TICK_S, None, bms=False)
        if bench.load_limits() == (0.0, 0.0):
            dropped_at_s = now_s
    assert dropped_at_s is not None and 0.5 < dropped_at_s - last_bms_s <= 0.6 + 1e-9
    bench.run(0.5, None, bms=False)
    assert plant.load_current_a == pytest.approx(0.0, abs=1e-6)
    bench.network.close()


def test_vehicle_that_ignores_limits_still_waits_for_ready(plant):
    bench = Bench(plant, ignores_limits=True)
    bench.link.publish(30.0, 10.0, False)
    bench.run(0.5, bms_state(path_state="precharge"))
    assert bench.load_limits() == (0.0, 0.0)
    bench.link.publish(30.0, 10.0, True)
    bench.run(0.5, bms_state())
    assert all(math.isinf(limit) for limit in bench.load_limits())
    bench.network.close()


def test_bad_frames_are_counted_and_make_the_vehicle_drop_its_limits(plant, dbc):
    bench = Bench(plant)
    bench.link.publish(30.0, 10.0, True)
    bench.run(1.0, bms_state())
    assert bench.load_limits() == pytest.approx((30.0, 10.0), abs=1e-9)
    rogue = bench.network.port("vehicle", logged=False)

    # a limit frame with a broken CRC: the vehicle drops to zero at once, then recovers
    good = [f for f in bench.frames if f.frame_id == LIMITS_ID][-1].data
    broken = good[:-1] + bytes((good[-1] ^ 0xFF,))
    now_s = bench.now_s
    bench.link.tick(now_s, bms_state())
    rogue.send(Frame(now_s, LIMITS_ID, broken, False))
    bench.vehicle.tick(now_s)
    assert bench.vehicle.decode_errors == 1
    assert bench.load_limits() == (0.0, 0.0)
    bench.plant.advance(TICK_S)
    bench.step += 1
    bench.run(0.2, bms_state())
    assert bench.load_limits() == pytest.approx((30.0, 10.0), abs=1e-9)

    # the BMS gets a short command, one with a bad CRC and a replayed one: all counted, ignored
    assert bench.link.connect_requested
    command = dbc.get_message_by_frame_id(COMMAND_ID)
    replay = [f for f in bench.frames if f.frame_id == COMMAND_ID][-1].data
    disconnect = bytearray(command.encode({"Veh_Alive": 0, "Veh_ConnectRequest": 0, "Veh_Crc": 0}))
    now_s = bench.now_s
    rogue.send(Frame(now_s, COMMAND_ID, bytes(disconnect[:4]), False))
    rogue.send(Frame(now_s, COMMAND_ID, bytes(disconnect), False))  # CRC 0: wrong
    rogue.send(Frame(now_s, COMMAND_ID, replay, False))  # same alive counter again
    bench.link.tick(now_s, bms_state())
    assert bench.link.decode_errors == 3
    assert bench.link.connect_requested
    bench.network.close()


def test_bms_sees_the_key_and_a_silent_vehicle(plant, dbc):
    bench = Bench(plant)
    bench.link.publish(30.0, 10.0, True)
    bench.run(0.5, bms_state())
    assert bench.link.connect_requested
    bench.vehicle.connect_request = False
    bench.run(0.2, bms_state())
    assert not bench.link.connect_requested
    bench.vehicle.connect_request = True
    bench.run(0.2, bms_state())
    assert bench.link.connect_requested

    # the vehicle stops talking: 0.5 s after the BMS heard it last (at its next tick, as the
    # BMS ticks first) the BMS counts it silent and the key off
    last_command_s = bench.now_s
    silent_at_s = None
    while silent_at_s is None and bench.now_s < last_command_s + 3.0:
        now_s = bench.now_s
        bench.run(TICK_S, bms_state(), vehicle=False)
        if bench.link.vehicle_silent:
            silent_at_s = now_s
    assert silent_at_s is not None and 0.5 < silent_at_s - last_command_s <= 0.6 + 1e-9
    assert not bench.link.connect_requested
    bench.run(0.2, bms_state(), vehicle=False)
    timeout = [f for f in bench.frames if f.frame_id == STATE_ID][-1]
    assert dbc.decode_message(STATE_ID, timeout.data)["State_VehicleTimeout"] == 1
    bench.network.close()
