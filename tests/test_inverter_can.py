"""The inverter CAN (Pylontech low-voltage protocol with the SMA/Victron extensions): the BMS's
InverterCanLink and the simulated inverter on one virtual bus, the inverter driving a real
plant's load and charger on a simulated clock.

Every frame is decoded here with ``struct`` from the byte layout in docs/can-inverter.md, never
with our codec or the DBC file, and compared with the SystemState that was sent.
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from itertools import pairwise

import can
import numpy as np
import pytest

from cellwarden.bms.alarms import Alarm
from cellwarden.bms.system_state import SystemState, rating_of
from cellwarden.comms.can_bus import CanNetwork, Frame
from cellwarden.comms.inverter_can import InverterCanLink
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.inverter_node import SimulatedInverter

TICK_S = 0.1
LIMITS, SOC, MEAS, PROT, SMA, REQ, NAME, KEEPALIVE = (
    0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E, 0x305
)  # fmt: skip
BMS_IDS = {LIMITS, SOC, MEAS, PROT, SMA, REQ, NAME}

# --- the layout of docs/can-inverter.md, written out independently of the code ---------------
PROTECTION_BIT = {  # alarm -> (byte, bit) in 0x359 bytes 0-1
    Alarm.CELL_OVER_VOLTAGE: (0, 1),
    Alarm.CELL_UNDER_VOLTAGE: (0, 2),
    Alarm.OVER_TEMPERATURE: (0, 3),
    Alarm.UNDER_TEMPERATURE: (0, 4),
    Alarm.DISCHARGE_OVER_CURRENT: (0, 7),
    Alarm.CHARGE_OVER_CURRENT: (1, 0),
    Alarm.IMBALANCE: (1, 3),
    Alarm.COMMUNICATION: (1, 3),
    Alarm.INTERNAL: (1, 3),
}
WARNING_BIT = {  # warning -> (byte, bit) in 0x359 bytes 2-3; None: no 0x359 bit
    Alarm.CELL_OVER_VOLTAGE: (2, 1),
    Alarm.CELL_UNDER_VOLTAGE: (2, 2),
    Alarm.OVER_TEMPERATURE: (2, 3),
    Alarm.UNDER_TEMPERATURE: (2, 4),
    Alarm.DISCHARGE_OVER_CURRENT: (2, 7),
    Alarm.CHARGE_OVER_CURRENT: (3, 0),
    Alarm.IMBALANCE: None,
    Alarm.COMMUNICATION: (3, 3),
    Alarm.INTERNAL: None,
}
SMA_FIELD = {  # 0x35A field -> (byte, first bit) in the alarm half; the warning half is +4 bytes
    "general": (0, 0),
    "high voltage": (0, 2),
    "low voltage": (0, 4),
    "high temperature": (0, 6),
    "low temperature": (1, 0),
    "high temperature charge": (1, 2),
    "low temperature charge": (1, 4),
    "high discharge current": (1, 6),
    "high charge current": (2, 0),
    "contactor": (2, 2),
    "short circuit": (2, 4),
    "bms internal": (2, 6),
    "cell imbalance": (3, 0),
}
SMA_OF = {
    Alarm.CELL_OVER_VOLTAGE: "high voltage",
    Alarm.CELL_UNDER_VOLTAGE: "low voltage",
    Alarm.OVER_TEMPERATURE: "high temperature",
    Alarm.UNDER_TEMPERATURE: "low temperature",
    Alarm.DISCHARGE_OVER_CURRENT: "high discharge current",
    Alarm.CHARGE_OVER_CURRENT: "high charge current",
    Alarm.IMBALANCE: "cell imbalance",
    Alarm.COMMUNICATION: "bms internal",
    Alarm.INTERNAL: "bms internal",
}
NOT_MONITORED = {"high temperature charge", "low temperature charge", "contactor", "short circuit"}
ACTIVE, OK, NOT_SUPPORTED = 0b01, 0b10, 0b00
CHARGE_ENABLE, DISCHARGE_ENABLE, FORCE_CHARGE_2 = 0x80, 0x40, 0x10


def limits(data: bytes) -> tuple[float, float, float, float]:
    cvl, ccl, dcl, dvl = struct.unpack("<HhhH", data)
    return cvl / 10, ccl / 10, dcl / 10, dvl / 10


def bit(data: bytes, byte: int, index: int) -> bool:
    return bool(data[byte] >> index & 1)


def sma_field(data: bytes, field: str, warning: bool) -> int:
    byte, first = SMA_FIELD[field]
    return data[byte + 4 * warning] >> first & 0b11


# --- a system with known values --------------------------------------------------------------
@pytest.fixture(scope="module")
def scenario():
    return load_builtin("telecom-backup")


@pytest.fixture(scope="module")
def rating(scenario):
    return rating_of(scenario.system)


@pytest.fixture
def plant(scenario, kit):
    plant = SystemPlant(
        scenario.system,
        rng=np.random.default_rng(1),
        initial=scenario.initial,
        ambient_temp_c=scenario.ambient_temp_c,
        charger=scenario.charger,
    )
    kit.close_all(plant)
    plant.set_duty(DutyMode.CURRENT, 80.0)  # the site's loads ask for 80 A
    return plant


def system_state(**changes) -> SystemState:
    state = SystemState(
        time_s=0.0,
        voltage_v=52.37,
        current_a=-41.3,
        soc_pct=61.23,
        soh_pct=97.4,
        capacity_ah=300.0,
        charge_voltage_limit_v=55.2,
        discharge_voltage_limit_v=44.8,
        charge_current_limit_a=60.0,
        discharge_current_limit_a=150.0,
        cell_voltage_min_v=3.27,
        cell_voltage_max_v=3.29,
        temp_min_c=24.0,
        temp_max_c=31.0,
        strings_connected=3,
        charge_allowed=True,
        discharge_allowed=True,
    )
    return replace(state, **changes)


class Bench:
    """The BMS's link, optionally the simulated inverter, and a listening tool on one bus."""

    def __init__(self, rating, plant=None, log_path=None, ignores_limits=False, **link) -> None:
        self.network = CanNetwork(log_path=log_path)
        self.link = InverterCanLink(self.network.port("inverter"), rating, **link)
        self.inverter = (
            SimulatedInverter(self.network.port("inverter"), plant, ignores_limits, 1.5)
            if plant is not None
            else None
        )
        self.plant = plant
        self.tool = self.network.port("inverter", logged=False)
        self.frames: list[Frame] = []
        self.step = 0

    @property
    def now_s(self) -> float:
        return round(self.step * TICK_S, 6)

    def run(self, seconds: float, state: SystemState | None, bms: bool = True) -> None:
        for _ in range(round(seconds / TICK_S)):
            if bms:
                self.link.tick(self.now_s, state)
            if self.inverter is not None:
                self.inverter.tick(self.now_s)
            if self.plant is not None:
                self.plant.advance(TICK_S)
            self.frames.extend(self.tool.receive())
            self.step += 1

    def last(self, frame_id: int) -> bytes:
        return [f for f in self.frames if f.frame_id == frame_id][-1].data

    def load_limits(self) -> tuple[float, float]:
        bus = self.plant.bus
        return float(bus[k.LOAD_MAX_DISCHARGE_A]), float(bus[k.LOAD_MAX_REGEN_A])

    def charger_request(self) -> tuple[float, float]:
        request = self.plant.charger.request
        return request.voltage_v, request.current_a


def sent(rating, state: SystemState, **link) -> dict[int, bytes]:
    """Every frame one tick of a fresh link sends for ``state``."""
    bench = Bench(rating, **link)
    bench.run(TICK_S, state)
    bench.network.close()
    return {frame.frame_id: frame.data for frame in bench.frames}


# --- the frames --------------------------------------------------------------------------------
def test_every_frame_decodes_from_the_documented_layout(rating, tmp_path):
    bench = Bench(rating, log_path=tmp_path / "inverter.log")
    state = system_state()
    bench.run(3.5, state)
    bench.network.close()

    by_id: dict[int, list[Frame]] = {}
    for frame in bench.frames:
        by_id.setdefault(frame.frame_id, []).append(frame)
    assert set(by_id) == BMS_IDS
    for frames in by_id.values():  # every frame once a second, from the first tick on
        assert [f.time_s for f in frames] == [0.0, 1.0, 2.0, 3.0]
        assert all(not f.extended and len(f.data) == 8 for f in frames)
        assert {round(b.time_s - a.time_s, 6) for a, b in pairwise(frames)} == {1.0}

    cvl, ccl, dcl, dvl = limits(by_id[LIMITS][0].data)
    assert (cvl, ccl, dcl, dvl) == pytest.approx((55.2, 60.0, 150.0, 44.8), abs=1e-9)
    soc, soh, soc_fine, pad = struct.unpack("<HHHH", by_id[SOC][0].data)
    assert (soc, soh, pad) == (61, 97, 0)
    assert soc_fine / 100 == pytest.approx(61.23, abs=0.005)
    voltage, current, temp, pad = struct.unpack("<hhhH", by_id[MEAS][0].data)
    assert voltage / 100 == pytest.approx(52.37, abs=0.005)
    assert current / 10 == pytest.approx(-41.3, abs=0.05)  # negative: discharging
    assert temp / 10 == pytest.approx(27.5, abs=0.05)  # mean of the coldest and hottest cell
    assert pad == 0
    protection = by_id[PROT][0].data
    assert protection[:4] == bytes(4)  # no protection, no alarm
    assert protection[4] == 3  # three strings of one module each on the bus
    assert protection[5:7] == b"PN" and protection[7] == 0
    sma = by_id[SMA][0].data
    for warning in (False, True):
        for field in SMA_FIELD:
            want = NOT_SUPPORTED if field in NOT_MONITORED else OK
            assert sma_field(sma, field, warning) == want, field
    assert by_id[REQ][0].data == bytes((CHARGE_ENABLE | DISCHARGE_ENABLE,)) + bytes(7)
    assert by_id[NAME][0].data == b"CELLWARD"

    logged = list(can.LogReader(tmp_path / "inverter.log"))
    assert [(m.channel, m.arbitration_id, bytes(m.data)) for m in logged] == [
        ("inverter", f.frame_id, f.data) for f in bench.frames
    ]


def test_name_is_padded_ascii_and_checked(rating):
    assert sent(rating, system_state(), name="PYLON")[NAME] == b"PYLON   "
    with pytest.raises(ValueError, match="8 printable ASCII"):
        InverterCanLink(CanNetwork().port("inverter"), rating, name="CELLWARDEN")
    with pytest.raises(ValueError, match="8 printable ASCII"):
        InverterCanLink(CanNetwork().port("inverter"), rating, name="Zelle°")


def test_a_high_voltage_system_is_refused(rating):
    with pytest.raises(ValueError, match=r"327\.67 V"):
        InverterCanLink(CanNetwork().port("inverter"), replace(rating, max_voltage_v=800.0))


# --- the traps -------------------------------------------------------------------------------
def test_blocked_charge_sends_zero_current_never_zero_voltage(rating):
    frames = sent(rating, system_state(charge_allowed=False))
    cvl, ccl, dcl, dvl = limits(frames[LIMITS])
    assert (ccl, dcl, dvl) == (0.0, 150.0, 44.8)
    assert cvl == pytest.approx(52.4, abs=0.051)  # held at the present bus voltage
    assert frames[REQ][0] == DISCHARGE_ENABLE

    frames = sent(rating, system_state(charge_allowed=False), hold_voltage_when_blocked=False)
    assert limits(frames[LIMITS])[:2] == pytest.approx((55.2, 0.0), abs=1e-9)  # normal CVL

    frames = sent(rating, system_state(charge_current_limit_a=0.0))  # derated to zero
    assert limits(frames[LIMITS])[:2] == pytest.approx((52.4, 0.0), abs=1e-9)
    assert frames[REQ][0] == DISCHARGE_ENABLE


def test_blocked_discharge_sends_zero_current_never_zero_voltage(rating):
    frames = sent(rating, system_state(discharge_allowed=False))
    assert limits(frames[LIMITS]) == pytest.approx((55.2, 60.0, 0.0, 44.8), abs=1e-9)
    assert frames[REQ][0] == CHARGE_ENABLE


def test_disconnected_system_sends_zero_currents_and_no_requests(rating):
    state = system_state(strings_connected=0, voltage_v=0.0, current_a=0.0)
    frames = sent(rating, state)
    cvl, ccl, dcl, dvl = limits(frames[LIMITS])
    assert (ccl, dcl) == (0.0, 0.0)
    assert cvl == pytest.approx(55.2) and dvl == pytest.approx(44.8)  # never 0
    assert frames[REQ][0] == 0
    assert frames[PROT][4] == 0  # no module on the bus


@pytest.mark.parametrize(
    ("changes", "want"),
    [
        # no charge voltage limit known: the present voltage, then the rating's maximum
        ({"charge_voltage_limit_v": 0.0}, (52.4, 60.0, 150.0, 44.8)),
        ({"charge_voltage_limit_v": math.nan, "voltage_v": 0.0}, (57.6, 60.0, 150.0, 44.8)),
        # no discharge voltage limit known: the rating's minimum
        ({"discharge_voltage_limit_v": 0.0}, (55.2, 60.0, 150.0, 43.2)),
        # negative or unknown current limits go out as 0
        ({"charge_current_limit_a": -5.0, "discharge_current_limit_a": math.nan},
         (52.4, 0.0, 0.0, 44.8)),
        ({"discharge_current_limit_a": -0.4}, (55.2, 60.0, 0.0, 44.8)),
    ],
)  # fmt: skip
def test_unknown_or_negative_limits_never_reach_the_inverter(rating, changes, want):
    frames = sent(rating, system_state(**changes))
    assert limits(frames[LIMITS]) == pytest.approx(want, abs=1e-9)


def test_nothing_is_sent_before_the_first_state(rating):
    bench = Bench(rating)
    bench.run(2.0, None)
    assert bench.frames == []
    bench.run(0.1, system_state())
    assert {f.frame_id for f in bench.frames} == BMS_IDS
    bench.network.close()


# --- alarms, warnings and requests -----------------------------------------------------------
@pytest.mark.parametrize("alarm", list(Alarm))
def test_each_alarm_category_sets_its_protection_bit_and_alarm_field(rating, alarm):
    frames = sent(rating, system_state(alarms=frozenset({alarm})))
    protection = frames[PROT]
    byte, index = PROTECTION_BIT[alarm]
    assert bit(protection, byte, index)
    set_bits = sum(bin(b).count("1") for b in protection[:4])
    assert set_bits == 1  # that bit only
    sma = frames[SMA]
    for field in SMA_FIELD:
        if field in NOT_MONITORED:
            want = NOT_SUPPORTED
        else:
            want = ACTIVE if field in (SMA_OF[alarm], "general") else OK
        assert sma_field(sma, field, warning=False) == want, field
        assert sma_field(sma, field, warning=True) == (
            NOT_SUPPORTED if field in NOT_MONITORED else OK
        )


@pytest.mark.parametrize("warning", list(Alarm))
def test_each_warning_category_sets_its_alarm_bit_and_warning_field(rating, warning):
    frames = sent(rating, system_state(warnings=frozenset({warning})))
    protection = frames[PROT]
    assert protection[:2] == bytes(2)  # no protection
    where = WARNING_BIT[warning]
    if where is None:
        assert protection[2:4] == bytes(2)
    else:
        assert bit(protection, *where)
        assert sum(bin(b).count("1") for b in protection[2:4]) == 1
    sma = frames[SMA]
    for field in SMA_FIELD:
        if field in NOT_MONITORED:
            want = NOT_SUPPORTED
        else:
            want = ACTIVE if field in (SMA_OF[warning], "general") else OK
        assert sma_field(sma, field, warning=True) == want, field
        assert sma_field(sma, field, warning=False) == (
            NOT_SUPPORTED if field in NOT_MONITORED else OK
        )


def test_force_charge_is_requested_at_low_soc_or_cell_under_voltage(rating):
    request = sent(rating, system_state())[REQ][0]
    assert not request & FORCE_CHARGE_2
    low = system_state(soc_pct=4.0, discharge_allowed=False)
    assert sent(rating, low)[REQ][0] == CHARGE_ENABLE  # no threshold configured
    assert sent(rating, low, force_charge_soc_pct=5.0)[REQ][0] == CHARGE_ENABLE | FORCE_CHARGE_2
    weak = system_state(warnings=frozenset({Alarm.CELL_UNDER_VOLTAGE}))
    assert sent(rating, weak)[REQ][0] == CHARGE_ENABLE | DISCHARGE_ENABLE | FORCE_CHARGE_2
    blocked = replace(weak, charge_allowed=False)  # never ask for a charge that is not allowed
    assert sent(rating, blocked)[REQ][0] == DISCHARGE_ENABLE


# --- keep-alive --------------------------------------------------------------------------------
def test_keepalive_presence_and_timeout(rating):
    bench = Bench(rating, inverter_timeout_s=2.0)
    rogue = bench.network.port("inverter", logged=False)
    bench.run(1.0, system_state())
    assert not bench.link.inverter_present(bench.now_s)  # nothing heard yet
    # an inverter's 0x305 every second, zeros (Pylontech) or with data (SMA): both count
    for second in range(3):
        rogue.send(Frame(bench.now_s, KEEPALIVE, bytes(8) if second else b"\x0c\x02\x00\x00"))
        bench.run(1.0, system_state())
        assert bench.link.inverter_present(bench.now_s)
    last_s = bench.link.keepalive_s
    assert bench.link.keepalives == 3
    rogue.send(Frame(bench.now_s, KEEPALIVE, bytes(8), extended=True))  # not the 0x305
    bench.run(1.9, system_state())
    assert bench.link.keepalives == 3
    assert bench.link.inverter_present(last_s + 2.0)
    assert not bench.link.inverter_present(last_s + 2.1)
    bench.network.close()


def test_simulated_inverter_sends_keepalive_every_second_unless_silent(rating, plant):
    bench = Bench(rating, plant)
    bench.run(3.0, system_state())
    keepalives = [f for f in bench.frames if f.frame_id == KEEPALIVE]
    assert [f.time_s for f in keepalives] == [0.0, 1.0, 2.0]
    assert all(f.data == bytes(8) and not f.extended for f in keepalives)
    assert bench.link.inverter_present(bench.now_s)
    bench.inverter.silent = True
    bench.run(6.0, system_state())
    assert len([f for f in bench.frames if f.frame_id == KEEPALIVE]) == 3
    assert not bench.link.inverter_present(bench.now_s)
    bench.inverter.silent = False
    bench.run(0.2, system_state())
    assert bench.link.inverter_present(bench.now_s)
    bench.network.close()


# --- the simulated inverter on a real plant ----------------------------------------------------
def test_inverter_applies_limits_to_the_plant_and_stops_after_bms_silence(rating, plant):
    bench = Bench(rating, plant)
    assert bench.load_limits() == (0.0, 0.0)  # nothing heard from the BMS yet
    bench.run(1.0, system_state(discharge_current_limit_a=30.0, charge_current_limit_a=20.0))
    assert bench.load_limits() == pytest.approx((30.0, 20.0))
    assert bench.charger_request() == pytest.approx((55.2, 20.0))
    assert plant.load_current_a == pytest.approx(30.0, rel=1e-3)  # asked 80 A, got the DCL

    bench.run(1.0, system_state(discharge_allowed=False))  # DCL 0: the inverter stops inverting
    assert bench.load_limits() == pytest.approx((0.0, 60.0))
    assert plant.load_current_a == pytest.approx(0.0, abs=1e-6)

    plant.set_duty(DutyMode.CHARGE, 60.0)  # the grid is back: the charger offers 60 A
    bench.run(1.0, system_state(charge_current_limit_a=25.0))
    assert bench.charger_request() == pytest.approx((55.2, 25.0))
    bench.run(1.0, system_state(charge_current_limit_a=25.0))
    assert plant.charger_current_a == pytest.approx(25.0, rel=1e-3)
    bench.run(1.0, system_state(charge_allowed=False))
    assert bench.charger_request()[1] == 0.0 and bench.load_limits()[1] == 0.0
    assert bench.charger_request()[0] > 0.0
    bench.run(1.0, system_state(charge_allowed=False))
    assert plant.charger_current_a == pytest.approx(0.0, abs=1e-6)

    # the BMS falls silent: the inverter keeps the last limits for 1.5 s, then stops both ways
    plant.set_duty(DutyMode.CURRENT, 80.0)
    bench.run(0.1, system_state())
    last_limits_s = bench.inverter.limits_s
    stopped_at_s = None
    while stopped_at_s is None and bench.now_s < last_limits_s + 5.0:
        now_s = bench.now_s
        bench.run(TICK_S, None, bms=False)
        if bench.load_limits() == (0.0, 0.0):
            stopped_at_s = now_s
    assert stopped_at_s is not None and 1.5 < stopped_at_s - last_limits_s <= 1.6 + 1e-9
    assert bench.charger_request()[1] == 0.0
    bench.run(0.5, None, bms=False)
    assert plant.load_current_a == pytest.approx(0.0, abs=1e-6)
    assert bench.inverter.decode_errors == 0
    bench.network.close()


def test_inverter_follows_the_enable_flags_and_ignores_bad_frames(rating, plant):
    bench = Bench(rating, plant)
    bms = bench.network.port("inverter", logged=False)  # a hand-made BMS, no link

    def send(cvl_v: float, ccl_a: float, dcl_a: float, flags: int) -> None:
        raw = round(cvl_v * 10), round(ccl_a * 10), round(dcl_a * 10), 480
        bms.send(Frame(bench.now_s, LIMITS, struct.pack("<HhhH", *raw)))
        bms.send(Frame(bench.now_s, REQ, bytes((flags,)) + bytes(7)))
        bench.run(TICK_S, None, bms=False)

    send(55.0, 20.0, 30.0, DISCHARGE_ENABLE)  # charge current offered, but charge disabled
    assert bench.load_limits() == pytest.approx((30.0, 0.0))
    assert bench.charger_request() == pytest.approx((55.0, 0.0))
    send(55.0, 20.0, 30.0, CHARGE_ENABLE)
    assert bench.load_limits() == pytest.approx((0.0, 20.0))
    assert bench.charger_request() == pytest.approx((55.0, 20.0))
    send(0.0, 20.0, -30.0, CHARGE_ENABLE | DISCHARGE_ENABLE)  # CVL 0 and a negative DCL
    assert bench.load_limits() == pytest.approx((0.0, 20.0))
    assert bench.charger_request() == pytest.approx((55.0, 20.0))  # the last valid CVL
    bms.send(Frame(bench.now_s, LIMITS, bytes(4)))  # too short
    bench.run(TICK_S, None, bms=False)
    assert bench.inverter.decode_errors == 1
    bench.network.close()


def test_inverter_that_ignores_limits_still_waits_for_the_bms(rating, plant):
    bench = Bench(rating, plant, ignores_limits=True)
    bench.run(1.0, None)  # the BMS is not up yet
    assert bench.load_limits() == (0.0, 0.0)
    bench.run(1.0, system_state(discharge_current_limit_a=30.0))
    assert all(math.isinf(limit) for limit in bench.load_limits())
    assert plant.load_current_a == pytest.approx(80.0, rel=1e-3)  # the limit ignored
    bench.run(2.0, None, bms=False)
    assert bench.load_limits() == (0.0, 0.0)
    bench.network.close()
