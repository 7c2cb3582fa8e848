"""Charger negotiation over CAN: the BMS's CanChargerLink and the simulated Elcon/TC-style
charger on one virtual bus, driving a real plant on a simulated clock.

Every frame on the bus is decoded with cantools straight from charger.dbc (never our codec)
and compared with what the sender was asked to send.
"""

from __future__ import annotations

from itertools import pairwise

import can
import cantools
import pytest

from cellwarden.comms.can_bus import CanNetwork, Frame
from cellwarden.comms.charger_can import CHARGER_TIMEOUT_S, CanChargerLink
from cellwarden.comms.dbc import dbc_path
from cellwarden.model.scenario import ChargerSpec
from cellwarden.plant.duty import DutyMode
from cellwarden.simulation.can_charger import SimulatedCanCharger

TICK_S = 0.1
REQUEST_ID = 0x1806E5F4
STATUS_ID = 0x18FF50E5
HALF_LSB = 0.05 + 1e-9  # 0.1 V / 0.1 A per bit


@pytest.fixture
def dbc():
    return cantools.database.load_file(dbc_path("charger"))


@pytest.fixture
def plant(kit):
    system = kit.standalone(kit.flat_cell(), series=13, parallel=2)
    plant = kit.make_plant(
        system, soc_pct=50.0, charger=ChargerSpec(max_current_a=20.0, max_voltage_v=60.0)
    )
    kit.close_all(plant)
    plant.set_duty(DutyMode.CHARGE, 15.0)  # plugged in, the charging point offers 15 A
    return plant


class Bench:
    """The BMS link, the charger node and a listening tool on one charger bus."""

    def __init__(self, plant, log_path=None) -> None:
        self.plant = plant
        self.network = CanNetwork(log_path=log_path)
        self.link = CanChargerLink(self.network.port("charger"))
        self.charger = SimulatedCanCharger(self.network.port("charger"), plant)
        self.tool = self.network.port("charger", logged=False)
        self.frames: list[Frame] = []
        self.requests: dict[float, tuple[float, float, bool]] = {}  # time -> what was asked
        self.statuses: dict[float, tuple[float, float, bool]] = {}  # time -> plant truth
        self.step = 0

    def run(self, seconds: float, bms: bool = True, charger: bool = True, check=None) -> None:
        for _ in range(round(seconds / TICK_S)):
            now_s = round(self.step * TICK_S, 6)
            if bms:
                sent = self.link.requests_sent
                self.link.tick(now_s)
                if self.link.requests_sent > sent:
                    self.requests[now_s] = (
                        self.link.voltage_v,
                        self.link.current_a,
                        self.link.charging,
                    )
            if charger:
                truth = (self.plant.bus_voltage_v, self.plant.charger_current_a)
                self.charger.tick(now_s)
                self.statuses[now_s] = (*truth, self.charger.timed_out)
            self.plant.advance(TICK_S)
            self.frames.extend(self.tool.receive())
            if check is not None:
                check(now_s)
            self.step += 1

    def last_requested_current_a(self, dbc) -> float:
        last = [f for f in self.frames if f.frame_id == REQUEST_ID][-1]
        return dbc.decode_message(last.frame_id, last.data)["Req_MaxChargeCurrent"]


def test_every_frame_decodes_from_the_dbc_to_what_was_sent(plant, dbc, tmp_path):
    bench = Bench(plant, tmp_path / "charger.log")
    bench.run(2.0)
    bench.link.request(54.6, 8.0)
    bench.run(5.0)
    bench.link.request(54.6, 3.5)
    bench.run(3.0)
    bench.link.stop()
    bench.run(3.0)
    bench.network.close()

    assert {f.frame_id for f in bench.frames} == {REQUEST_ID, STATUS_ID}
    assert all(f.extended and len(f.data) == 8 for f in bench.frames)
    for frame in bench.frames:
        message = dbc.get_message_by_frame_id(frame.frame_id)
        assert message.is_extended_frame
        values = dbc.decode_message(frame.frame_id, frame.data, decode_choices=False)
        if frame.frame_id == REQUEST_ID:
            voltage_v, current_a, charging = bench.requests[frame.time_s]
            assert values["Req_MaxChargeVoltage"] == pytest.approx(voltage_v, abs=HALF_LSB)
            assert values["Req_MaxChargeCurrent"] == pytest.approx(
                current_a if charging else 0.0, abs=HALF_LSB
            )
            assert values["Req_Control"] == (0 if charging else 1)
        else:
            voltage_v, current_a, timed_out = bench.statuses[frame.time_s]
            assert values["Sts_OutputVoltage"] == pytest.approx(voltage_v, abs=HALF_LSB)
            assert values["Sts_OutputCurrent"] == pytest.approx(max(current_a, 0), abs=HALF_LSB)
            assert values["Sts_CommTimeout"] == int(timed_out)
            assert values["Sts_HardwareFailure"] == 0
    # one status a second; a request at least once a second (a stop may go out early)
    for frame_id in (REQUEST_ID, STATUS_ID):
        times = [f.time_s for f in bench.frames if f.frame_id == frame_id]
        gaps = {round(b - a, 6) for a, b in pairwise(times)}
        if frame_id == STATUS_ID:
            assert gaps == {1.0}
        else:
            assert max(gaps) == 1.0
    # the BMS saw the charger's last status
    status = bench.link.status
    assert status is not None and not status.failed and not bench.link.silent
    assert bench.link.decode_errors == 0 and bench.charger.decode_errors == 0

    logged = list(can.LogReader(tmp_path / "charger.log"))
    assert len(logged) == len(bench.frames)
    for message, frame in zip(logged, bench.frames, strict=True):
        assert message.channel == "charger"
        assert message.arbitration_id == frame.frame_id
        assert message.is_extended_id == frame.extended
        assert bytes(message.data) == frame.data
        assert message.timestamp == pytest.approx(frame.time_s, abs=1e-6)


def test_charger_follows_requests_and_stops_5_to_6_s_after_they_stop(plant, dbc):
    bench = Bench(plant)

    def within_request(now_s: float) -> None:
        if any(f.frame_id == REQUEST_ID for f in bench.frames):
            limit_a = bench.last_requested_current_a(dbc)
            assert plant.charger_current_a <= limit_a + 1e-6, now_s

    bench.run(1.0, check=within_request)
    assert plant.charger_current_a == 0.0  # stopped until the first request
    bench.link.request(54.6, 8.0)
    bench.run(3.0, check=within_request)
    assert plant.charger_current_a == pytest.approx(8.0, abs=1e-6)
    bench.link.request(54.6, 2.0)
    bench.run(3.0, check=within_request)
    assert plant.charger_current_a == pytest.approx(2.0, abs=1e-6)

    # the BMS falls silent: the charger keeps going for 5 s, then stops and says why
    last_request_s = max(bench.requests)
    stopped_at_s = None
    while stopped_at_s is None and bench.step * TICK_S < last_request_s + 10.0:
        bench.run(TICK_S, bms=False)
        if plant.charger_current_a == 0.0:
            stopped_at_s = bench.step * TICK_S
        else:
            assert plant.charger_current_a == pytest.approx(2.0, abs=1e-6)
    assert stopped_at_s is not None
    assert CHARGER_TIMEOUT_S <= stopped_at_s - last_request_s <= CHARGER_TIMEOUT_S + 1.0
    bench.run(2.0, bms=False)
    assert plant.charger_current_a == 0.0
    last_status = [f for f in bench.frames if f.frame_id == STATUS_ID][-1]
    assert dbc.decode_message(STATUS_ID, last_status.data)["Sts_CommTimeout"] == "Timeout"

    # requests again: the charger resumes
    bench.run(2.0)
    assert plant.charger_current_a == pytest.approx(2.0, abs=1e-6)
    bench.network.close()


def test_stop_reaches_the_charger_at_the_next_tick(plant):
    bench = Bench(plant)
    bench.link.request(54.6, 6.0)
    bench.run(2.5)
    assert plant.charger_current_a == pytest.approx(6.0, abs=1e-6)
    bench.link.stop()
    bench.run(TICK_S)
    assert plant.charger_current_a == 0.0
    bench.network.close()


def test_bms_counts_the_charger_silent_after_5_s(plant):
    bench = Bench(plant)
    bench.run(3.0)
    assert bench.link.status is not None and not bench.link.silent
    seen_s = bench.link.status.time_s
    while not bench.link.silent:
        bench.run(TICK_S, charger=False)
    assert 5.0 < bench.step * TICK_S - TICK_S - seen_s <= 5.0 + TICK_S + 1e-6
    bench.network.close()


def test_malformed_frames_are_counted_and_ignored(plant, dbc):
    bench = Bench(plant)
    bench.link.request(54.6, 5.0)
    bench.run(2.0)
    status_before = bench.link.status
    rogue = bench.network.port("charger", logged=False)
    status = dbc.get_message_by_frame_id(STATUS_ID).encode(
        {
            "Sts_OutputVoltage": 1.0,
            "Sts_OutputCurrent": 99.0,
            "Sts_HardwareFailure": 1,
            "Sts_OverTemperature": 0,
            "Sts_InputVoltageWrong": 0,
            "Sts_StartingState": 0,
            "Sts_CommTimeout": 0,
        }
    )
    request = dbc.get_message_by_frame_id(REQUEST_ID).encode(
        {"Req_MaxChargeVoltage": 60.0, "Req_MaxChargeCurrent": 20.0, "Req_Control": "Charge"}
    )
    now_s = bench.step * TICK_S
    rogue.send(Frame(now_s, STATUS_ID, bytes(status[:5]), True))  # too short
    rogue.send(Frame(now_s, REQUEST_ID, bytes(request[:3]), True))  # too short
    rogue.send(Frame(now_s, 0x123, bytes(request), False))  # someone else's frame: not ours
    bench.link.tick(now_s)
    bench.charger.tick(now_s)
    assert bench.link.decode_errors == 1 and bench.charger.decode_errors == 1
    assert bench.link.status == status_before
    bench.run(2.0)
    assert plant.charger_current_a == pytest.approx(5.0, abs=1e-6)  # the request still holds
    bench.network.close()


def test_charger_fault_flags_reach_the_bms_and_stop_the_output(plant):
    bench = Bench(plant)
    bench.link.request(54.6, 5.0)
    bench.run(2.5)
    bench.charger.over_temperature = True
    bench.run(2.0)
    assert plant.charger_current_a == 0.0
    status = bench.link.status
    assert status is not None and status.over_temperature and status.failed
    bench.network.close()
