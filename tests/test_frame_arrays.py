"""The master's array decode of its slaves' report frames against a frame-by-frame reference
built here on ``FrameCodec.decode`` (itself held to cantools): the same voltages,
temperatures, sensor faults, open wires, bleeders and duty bit for bit, the same rejected and
frozen counts and lost slaves, over good frames and every kind of bad one, in random order,
arriving as single frames or as blocks."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import Frame, FrameBlock
from cellwarden.comms.codec import FrameError
from cellwarden.comms.e2e import AliveCheck, Verdict, frame_crc
from cellwarden.comms.internal_protocol import (
    CELLS_PER_FRAME,
    NTC_OPEN,
    NTC_SHORT,
    SENSORS_PER_FRAME,
    bits_to_mask,
    slave_messages,
)
from cellwarden.comms.slave_chain import SlaveChainMonitor
from cellwarden.compiled import HAVE_NUMBA

SLAVE_CELLS = [18, 16, 18, 12]
SENSORS = [np.arange(0, 18, 3), np.arange(0, 16, 4), np.arange(0, 18, 2), np.arange(0, 12, 6)]


class Replay:
    """A port that hands over the frames and blocks set for the cycle."""

    def __init__(self) -> None:
        self.items: list[Frame | FrameBlock] = []

    def receive_batch(self) -> list[Frame | FrameBlock]:
        return list(self.items)

    def receive(self) -> list[Frame]:
        raise AssertionError("the master takes blocks")

    def send(self, frame: Frame) -> None:
        pass


class Hv:
    def measure(self) -> tuple[float, float]:
        return 100.0, 100.0


class Reference:
    """The master's rules applied frame by frame, in arrival order."""

    def __init__(self, timeout_cycles: int) -> None:
        self.timeout = timeout_cycles
        self.messages = [slave_messages(index) for index in range(len(SLAVE_CELLS))]
        self.first_cell = np.cumsum([0, *SLAVE_CELLS[:-1]])
        self.first_sensor = np.cumsum([0, *[s.size for s in SENSORS[:-1]]])
        cells, sensors = sum(SLAVE_CELLS), sum(s.size for s in SENSORS)
        self.voltage_v, self.temp_c = np.full(cells, np.nan), np.full(sensors, np.nan)
        self.ntc_open, self.ntc_short = np.zeros(sensors, bool), np.zeros(sensors, bool)
        self.open_wire, self.balancing = np.zeros(cells, bool), np.zeros(cells, bool)
        self.duty = np.zeros(cells)
        self.rejected = self.frozen = 0
        self.checks: dict[int, AliveCheck] = {}
        self.age, self.seen = [], []
        for cells_, sensors_ in zip(SLAVE_CELLS, SENSORS, strict=True):
            parts = [("v", g) for g in range(-(-cells_ // CELLS_PER_FRAME))]
            parts += [("t", g) for g in range(-(-sensors_.size // SENSORS_PER_FRAME))]
            self.age.append(dict.fromkeys([*parts, ("s", 0)], timeout_cycles))
            self.seen.append(set())

    def receive(self, frame: Frame) -> None:
        for index, m in enumerate(self.messages):
            for kind, codec in (("v", m.voltages), ("t", m.temperatures), ("s", m.status)):
                if codec.frame_id == frame.frame_id:
                    self._frame(index, m, kind, codec, frame.data)
                    return

    def _frame(self, index, m, kind, codec, data) -> None:
        try:
            decoded = codec.decode(data)
        except FrameError:
            self.rejected += 1
            return
        if not decoded.crc_ok:
            self.rejected += 1
            return
        check = self.checks.setdefault(codec.frame_id, AliveCheck())
        if check.judge(decoded.alive) is Verdict.REPEATED:
            self.frozen += 1
            return
        values, cells = decoded.values, SLAVE_CELLS[index]
        first = self.first_cell[index]
        if kind == "v":
            group = int(values[m.voltage_mux])
            for cell in range(3 * group, min(3 * group + 3, cells)):
                self.voltage_v[first + cell] = values[m.cell_signals[cell]]
        elif kind == "t":
            group = int(values[m.temperature_mux])
            for sensor in range(6 * group, min(6 * group + 6, SENSORS[index].size)):
                value = values[m.sensor_signals[sensor]]
                at = self.first_sensor[index] + sensor
                self.ntc_open[at], self.ntc_short[at] = value == NTC_OPEN, value == NTC_SHORT
                self.temp_c[at] = value if isinstance(value, float) else np.nan
        else:
            group = 0
            span = slice(first, first + cells)
            self.open_wire[span] = bits_to_mask(values[m.signal("ST", "OpenWire")], cells)
            self.balancing[span] = bits_to_mask(values[m.signal("ST", "Balancing")], cells)
            self.duty[span] = float(values[m.signal("ST", "BalancingDuty")])
        self.seen[index].add((kind, group))

    def close_cycle(self) -> int:
        lost = 0
        for index, (age, seen) in enumerate(zip(self.age, self.seen, strict=True)):
            for part in age:
                age[part] = 0 if part in seen else age[part] + 1
            seen.clear()
            if max(age.values()) >= self.timeout:
                lost += 1
                cells = slice(self.first_cell[index], self.first_cell[index] + SLAVE_CELLS[index])
                first = self.first_sensor[index]
                sensors = slice(first, first + SENSORS[index].size)
                self.voltage_v[cells] = self.temp_c[sensors] = np.nan
                self.ntc_open[sensors] = self.ntc_short[sensors] = self.balancing[cells] = False
        return lost


def cycle_frames(rng: np.random.Generator, alive: dict[int, int]) -> list[Frame]:
    """One cycle of every slave's frames, with bad ones mixed in, shuffled."""
    frames = []
    for index, cells in enumerate(SLAVE_CELLS):
        m = slave_messages(index)
        voltage_v = np.round(rng.uniform(2.5, 4.3, cells), 4)
        voltage_v[rng.random(cells) < 0.05] = rng.uniform(0, 6.5535)  # any raw value
        for values in m.voltage_frames(voltage_v):
            counter = alive.get(m.voltages.frame_id, 0)
            roll = rng.random()
            # a good frame below 0.85 (its counter stuck now and then: a frozen sender)
            if roll < 0.85 and rng.random() > 0.05:
                alive[m.voltages.frame_id] = counter = (counter + 1) % 15
            data = bytearray(m.voltages.encode(values, alive=counter))
            if 0.85 <= roll < 0.90:  # corrupted on the way
                data[int(rng.integers(0, 8))] ^= int(rng.integers(1, 256))
            elif 0.90 <= roll < 0.94:  # a multiplexer value the DBC does not define
                data[0] = (data[0] & 0xF0) | int(rng.integers(6, 16))
                data[7] = frame_crc(m.voltages.frame_id, bytes(data[:7]))
            frames.append(Frame(0.0, m.voltages.frame_id, bytes(data), False))
            if 0.94 <= roll < 0.97:  # the same group once more, other values, counter on
                alive[m.voltages.frame_id] = counter = (counter + 1) % 15
                values = {k: (v if k.endswith("Mux") else round(float(rng.uniform(3, 4)), 4))
                          for k, v in values.items()}  # fmt: skip
                frames.append(Frame(0.0, m.voltages.frame_id,
                                    m.voltages.encode(values, alive=counter), False))  # fmt: skip
            elif roll >= 0.99:  # a frame of the wrong length
                frames.append(Frame(0.0, m.voltages.frame_id, bytes(data[:6]), False))
        temps = rng.uniform(10, 40, SENSORS[index].size)
        opened = rng.random(temps.size) < 0.1
        for values in m.temperature_frames(temps, opened, rng.random(temps.size) < 0.1):
            frames.append(_tampered(rng, m.temperatures, values, alive))
        status = {m.signal("ST", "OpenWire"): int(rng.integers(2**cells)),
                  m.signal("ST", "Balancing"): int(rng.integers(2**cells)),
                  m.signal("ST", "BalancingDuty"): int(rng.integers(16)) / 15,
                  m.signal("ST", "State"): int(rng.integers(4))}  # fmt: skip
        if rng.random() > 0.1:  # now and then a slave's status is missing
            frames.append(_tampered(rng, m.status, status, alive))
    order = rng.permutation(len(frames))
    return [frames[i] for i in order]


def _tampered(rng: np.random.Generator, codec, values: dict, alive: dict[int, int]) -> Frame:
    """A frame of ``codec``: mostly good; now and then frozen, corrupted or cut short."""
    counter = alive.get(codec.frame_id, 0)
    if rng.random() > 0.05:
        alive[codec.frame_id] = counter = (counter + 1) % 15
    data = bytearray(codec.encode(values, alive=counter))
    roll = rng.random()
    if roll < 0.04:
        data[int(rng.integers(0, 8))] ^= int(rng.integers(1, 256))
    elif roll < 0.06:
        data = data[:5]
    return Frame(0.0, codec.frame_id, bytes(data), False)


def as_blocks(rng: np.random.Generator, frames: list[Frame]) -> list[Frame | FrameBlock]:
    """The frames in arrival order: runs of 8-byte frames as blocks, others one by one."""
    items: list[Frame | FrameBlock] = []
    run: list[Frame] = []
    for frame in [*frames, None]:
        if frame is not None and len(frame.data) == 8 and rng.random() < 0.9:
            run.append(frame)
            continue
        if run:
            payload = np.frombuffer(b"".join(f.data for f in run), np.uint8).reshape(-1, 8)
            items.append(FrameBlock(0.0, np.array([f.frame_id for f in run]), payload))
            run = []
        if frame is not None:
            items.append(frame)
    return items


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_array_decode_matches_the_frame_by_frame_rules(monkeypatch, compiled: bool):
    monkeypatch.setattr(frame_arrays, "USE_NUMBA", compiled and HAVE_NUMBA)
    rng = np.random.default_rng(16)
    port = Replay()
    chain = SlaveChainMonitor(port, SLAVE_CELLS, SENSORS, Hv())
    reference = Reference(chain.settings.timeout_cycles)
    alive: dict[int, int] = {}
    carried = np.zeros(sum(SLAVE_CELLS), dtype=bool)
    lost_seen = 0
    for _ in range(300):
        frames = cycle_frames(rng, alive)
        port.items = as_blocks(rng, frames) if rng.random() < 0.7 else frames
        for frame in frames:
            reference.receive(frame)
        voltages = chain.sample_voltages(0.0).cell_voltage_v
        lost = reference.close_cycle()
        temps = chain.sample_temperatures(0.0)
        assert voltages.tobytes() == reference.voltage_v.tobytes()
        assert temps.temp_c.tobytes() == reference.temp_c.tobytes()
        assert (temps.open_circuit == reference.ntc_open).all()
        assert (temps.short_circuit == reference.ntc_short).all()
        assert (chain.open_wire_check(0.0) == reference.open_wire).all()
        duty = np.where(reference.balancing, reference.duty, 0.0)
        assert chain.balancing_duty().tobytes() == duty.tobytes()
        assert (chain.rejected_frames, chain.frozen_frames) == (reference.rejected,
                                                                 reference.frozen)  # fmt: skip
        assert chain.lost_modules() == lost
        carried |= ~np.isnan(voltages)
        lost_seen += lost
    assert reference.rejected > 100 and reference.frozen > 20 and lost_seen > 0
    assert carried.all()
