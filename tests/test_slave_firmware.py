"""The slaves' firmware of a chain: every slave takes only its own frames, as its codecs read
them one at a time (commands decoded together must leave each slave where frame-by-frame
decoding would), refuses what fails its checks, and keeps its bleeders within the command
timeout and its board's thermal limit."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import FrameError
from cellwarden.comms.internal_protocol import bits_to_mask, slave_messages, trigger_codec
from cellwarden.comms.slave_firmware import SlaveFirmware
from cellwarden.comms.slave_reports import STATUS_FIELDS
from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.model.bms import InternalBusSettings
from cellwarden.simulation.daisy_chain import SlaveTap


class _FrontEnd:
    """A slave's front end that records what the firmware asks of it."""

    def __init__(self, cells: int, board_temp_c: float = 30.0) -> None:
        self.cell_count = cells
        self.sensor_cells = np.arange(0, cells, 3)
        self.board_temp_c = board_temp_c
        self.applied: list[np.ndarray] = []

    def sample_voltages(self, now_s: float) -> VoltageSample:
        return VoltageSample(now_s, np.full(self.cell_count, 3.3), 3.3 * self.cell_count, 0.0)

    def sample_temperatures(self, now_s: float) -> TemperatureSample:
        flags = np.zeros(self.sensor_cells.size, dtype=bool)
        return TemperatureSample(now_s, np.full(flags.size, 25.0), flags, flags)

    def open_wire_check(self, now_s: float) -> np.ndarray:
        return np.zeros(self.cell_count, dtype=bool)

    def balancing_duty(self) -> float:
        return 0.5

    def set_balancing(self, mask: np.ndarray) -> None:
        self.applied.append(np.array(mask, dtype=bool))


def _firmware(cells: list[int], board_temp_c: float = 30.0):
    front_ends = [_FrontEnd(count, board_temp_c) for count in cells]
    inboxes = [SlaveTap() for _ in cells]
    return SlaveFirmware(front_ends, inboxes), front_ends, inboxes


class _Reference:
    """One slave, frame by frame through its codecs: what it was told and what it refused."""

    def __init__(self, index: int, cells: int) -> None:
        self.m, self.cells = slave_messages(index), cells
        self.enabled, self.bits, self.command_s = False, 0, -np.inf
        self.timeout_s, self.max_temp_c = 3.0, 80.0
        self.rejected, self.triggers = 0, []

    def take(self, now_s: float, frame: Frame) -> None:
        m = self.m
        codec = {m.balancing.frame_id: m.balancing, m.config.frame_id: m.config,
                 trigger_codec().frame_id: trigger_codec()}.get(frame.frame_id)  # fmt: skip
        if codec is None:
            return
        try:
            values = codec.decode_checked(frame.data).values
        except FrameError:
            self.rejected += 1
            return
        if codec is m.balancing:
            self.enabled = bool(values[m.signal("Bal", "Enable")])
            self.bits = int(values[m.signal("Bal", "Mask")])
            self.command_s = now_s
        elif codec is m.config:
            self.timeout_s = float(values[m.signal("Cfg", "BalancingTimeout")])
            self.max_temp_c = float(values[m.signal("Cfg", "MaxBoardTemp")])
        else:
            self.triggers.append(bool(values["Trigger_OpenWire"]))


def _random_frame(rng: np.random.Generator, slaves: int, alive: int) -> Frame:
    """A frame of the master's, to one slave or all, at times broken (a flipped bit, a short
    payload) or meant for nobody here."""
    slave = int(rng.integers(slaves))
    m = slave_messages(slave)
    pick = rng.random()
    if pick < 0.5:
        codec = m.balancing
        values = {m.signal("Bal", "Enable"): int(rng.integers(2)),
                  m.signal("Bal", "Mask"): int(rng.integers(2**18))}  # fmt: skip
    elif pick < 0.65:
        codec = m.config
        timeout_s = round(float(rng.uniform(0, 25)), 1)
        values = {m.signal("Cfg", "Cells"): 12,
                  m.signal("Cfg", "MaxBoardTemp"): float(rng.integers(-40, 215)),
                  m.signal("Cfg", "BalancingTimeout"): timeout_s}  # fmt: skip
    elif pick < 0.9:
        codec = trigger_codec()
        values = {"Trigger_OpenWire": int(rng.integers(2))}
    else:
        return Frame(0.0, 0x7F0, bytes(8))  # nobody's
    data = bytearray(codec.encode(values, alive=alive))
    if rng.random() < 0.15:  # a flipped bit
        bit = int(rng.integers(64))
        data[bit // 8] ^= 1 << (bit % 8)
    if rng.random() < 0.05:  # cut short
        data = data[: int(rng.integers(8))]
    return Frame(0.0, codec.frame_id, bytes(data), codec.extended)


@pytest.mark.parametrize("seed", range(8))
def test_each_slave_is_left_as_its_codecs_read_its_frames_one_by_one(seed):
    rng = np.random.default_rng(seed)
    cells = rng.integers(1, 19, int(rng.integers(1, 17))).tolist()
    firmware, front_ends, inboxes = _firmware(cells)
    references = [_Reference(index, count) for index, count in enumerate(cells)]
    for cycle in range(12):
        now_s = float(cycle)
        for _ in range(int(rng.integers(0, 3 * len(cells)))):
            frame = _random_frame(rng, len(cells), cycle % 16)
            for index in range(len(cells)):
                if frame.frame_id in firmware.accepted_ids(index):
                    inboxes[index].inbox.append(frame)
                    references[index].take(now_s, frame)
        firmware.tick(now_s)
        rounds = firmware.take_reports()
        for index, ref in enumerate(references):
            assert firmware.rejected_frames[index] == ref.rejected
            assert firmware._enabled[index] == ref.enabled
            assert firmware._command_s[index] == ref.command_s
            assert firmware.balancing_timeout_s[index] == ref.timeout_s
            assert firmware.max_board_temp_c[index] == ref.max_temp_c
            mask = bits_to_mask(ref.bits, cells[index])
            assert (firmware._mask[index].mask == mask).all()
            assert sum(bool(made.reporting[index]) for made in rounds) == len(ref.triggers)
            ref.triggers.clear()
            fresh = now_s - ref.command_s <= ref.timeout_s
            on = ref.enabled and fresh and front_ends[index].board_temp_c < ref.max_temp_c
            expected = mask if on else np.zeros(cells[index], dtype=bool)
            assert (front_ends[index].applied[-1] == expected).all()


def test_a_report_carries_the_bleeders_as_they_were_before_the_command():
    firmware, front_ends, inboxes = _firmware([6])
    m = slave_messages(0)
    command = m.balancing.encode({m.signal("Bal", "Enable"): 1, m.signal("Bal", "Mask"): 0b101},
                                 alive=0)  # fmt: skip
    trigger = trigger_codec().encode({"Trigger_OpenWire": 0}, alive=0)
    inboxes[0].inbox = [Frame(0.0, m.balancing.frame_id, command),
                         Frame(0.0, trigger_codec().frame_id, trigger)]  # fmt: skip
    firmware.tick(0.0)
    (first,) = firmware.take_reports()
    bits, duty = STATUS_FIELDS.index("balancing_bits"), STATUS_FIELDS.index("balancing_duty")
    assert first.status[0, bits] == 0  # nothing bled yet when it measured
    assert front_ends[0].applied[-1].tolist() == [True, False, True, False, False, False]
    inboxes[0].inbox = [Frame(1.0, trigger_codec().frame_id, trigger)]
    firmware.tick(1.0)
    (second,) = firmware.take_reports()
    assert second.status[0, bits] == 0b101
    assert second.status[0, duty] == pytest.approx(0.5, abs=1 / 30)


def test_a_hot_board_and_a_silent_master_stop_the_bleeders():
    settings = InternalBusSettings()
    firmware, front_ends, inboxes = _firmware([4, 4])
    front_ends[1].board_temp_c = settings.slave_max_board_temp_c + 1.0
    for index in range(2):
        m = slave_messages(index)
        inboxes[index].inbox = [
            Frame(0.0, m.config.frame_id, m.config.encode({
                m.signal("Cfg", "Cells"): 4,
                m.signal("Cfg", "MaxBoardTemp"): settings.slave_max_board_temp_c,
                m.signal("Cfg", "BalancingTimeout"): settings.balancing_timeout_s}, alive=0)),
            Frame(0.0, m.balancing.frame_id, m.balancing.encode(
                {m.signal("Bal", "Enable"): 1, m.signal("Bal", "Mask"): 0b11}, alive=0)),
        ]  # fmt: skip
    firmware.tick(0.0)
    assert front_ends[0].applied[-1].tolist() == [True, True, False, False]
    assert not front_ends[1].applied[-1].any()  # too hot: off
    firmware.tick(settings.balancing_timeout_s)  # the command still counts
    assert front_ends[0].applied[-1].any()
    firmware.tick(settings.balancing_timeout_s + 0.1)  # no command since: off
    assert not front_ends[0].applied[-1].any()


def test_only_the_running_slaves_act():
    firmware, front_ends, inboxes = _firmware([3, 3, 3])
    trigger = Frame(0.0, trigger_codec().frame_id,
                    trigger_codec().encode({"Trigger_OpenWire": 1}, alive=0))  # fmt: skip
    for inbox in inboxes:
        inbox.inbox = [trigger]
    firmware.tick(0.0, running=[0, 2])
    (made,) = firmware.take_reports()
    assert made.reporting.tolist() == [True, False, True]
    assert [len(fe.applied) for fe in front_ends] == [1, 0, 1]
    with pytest.raises(ValueError, match="2 front ends for 1 inboxes"):
        SlaveFirmware(front_ends[:2], inboxes[:1])


class _Bank:
    """Stands in for a batch of front ends: their present samples, end to end."""

    def __init__(self, front_ends: list[_RandomFrontEnd]) -> None:
        self.front_ends = front_ends

    def set_balancing(self, masks: list[np.ndarray]) -> None:
        for fe, mask in zip(self.front_ends, masks, strict=True):
            fe.set_balancing(mask)

    def take_conversion(self, now_s: float):
        samples = [(fe.sample_voltages(now_s), fe.sample_temperatures(now_s))
                   for fe in self.front_ends]  # fmt: skip
        return _Conversion(np.concatenate([v.cell_voltage_v for v, _ in samples]),
                           *(np.concatenate([getattr(t, name) for _, t in samples])
                             for name in ("temp_c", "open_circuit", "short_circuit")))  # fmt: skip


class _Conversion(NamedTuple):
    voltage_v: np.ndarray
    temp_c: np.ndarray
    open_circuit: np.ndarray
    short_circuit: np.ndarray


class _RandomFrontEnd(_FrontEnd):
    """Readings, rail flags, open wires, duty and board temperature drawn anew each cycle."""

    def __init__(self, cells: int, sensors_every: int, rng: np.random.Generator) -> None:
        super().__init__(cells)
        self.sensor_cells = np.arange(0, cells, sensors_every)
        self.rng = rng

    def draw(self, now_s: float) -> None:
        rng, sensors = self.rng, self.sensor_cells.size
        self.voltages = VoltageSample(now_s, rng.uniform(2.5, 3.6, self.cell_count), 40.0, 40.0)
        opened, shorted = rng.random(sensors) < 0.1, rng.random(sensors) < 0.1
        self.temps = TemperatureSample(now_s, rng.uniform(-20, 60, sensors), opened, shorted)
        self.open_wires = rng.random(self.cell_count) < 0.05
        self.duty = float(rng.choice([1.0, rng.uniform(0, 1), 7.5 / 15]))
        self.board_temp_c = float(rng.uniform(20, 90))

    def sample_voltages(self, now_s: float) -> VoltageSample:
        return self.voltages

    def sample_temperatures(self, now_s: float) -> TemperatureSample:
        return self.temps

    def open_wire_check(self, now_s: float) -> np.ndarray:
        return self.open_wires

    def balancing_duty(self) -> float:
        return self.duty


@pytest.mark.parametrize("seed", range(4))
def test_reports_made_together_read_as_each_slaves_own(seed):
    cells = [18, 18, 12, 7, 1]
    reports = []
    for together in (True, False):
        rng = np.random.default_rng(seed)
        front_ends = [_RandomFrontEnd(count, [3, 5, 18][index % 3], rng)
                      for index, count in enumerate(cells)]  # fmt: skip
        inboxes = [SlaveTap() for _ in cells]
        firmware = SlaveFirmware(front_ends, inboxes)
        bank = _Bank(front_ends) if together else None
        made = []
        for cycle in range(10):
            for index, fe in enumerate(front_ends):
                fe.draw(float(cycle))
                m, alive = slave_messages(index), cycle % 16
                mask = int(rng.integers(2 ** cells[index]))
                values = {m.signal("Bal", "Enable"): int(rng.random() < 0.8),
                          m.signal("Bal", "Mask"): mask}  # fmt: skip
                command = m.balancing.encode(values, alive=alive)
                trigger = trigger_codec().encode({"Trigger_OpenWire": cycle % 2}, alive=alive)
                inboxes[index].inbox = [
                    Frame(cycle, m.balancing.frame_id, command),
                    Frame(cycle, trigger_codec().frame_id, trigger),
                ]
            firmware.tick(float(cycle), bank=bank)
            made += firmware.take_reports()
        reports.append(made)
    together, alone = reports
    assert len(together) == len(alone) == 10
    for a, b in zip(together, alone, strict=True):
        for name in a._fields:
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    states = np.concatenate([made.status[:, 0] for made in together])
    assert {1.0, 2.0, 3.0} <= set(states.tolist())  # normal, balancing and fault all seen


def test_reports_not_yet_taken_keep_their_order():
    rng = np.random.default_rng(9)
    front_ends = [_RandomFrontEnd(6, 3, rng) for _ in range(3)]
    inboxes = [SlaveTap() for _ in front_ends]
    firmware = SlaveFirmware(front_ends, inboxes)
    voltages = []
    for cycle in range(2):  # two triggers, the reports taken once
        for fe, inbox in zip(front_ends, inboxes, strict=True):
            fe.draw(float(cycle))
            trigger = trigger_codec().encode({"Trigger_OpenWire": 0}, alive=cycle)
            inbox.inbox = [Frame(cycle, trigger_codec().frame_id, trigger)]
        voltages.append(np.concatenate([fe.voltages.cell_voltage_v for fe in front_ends]))
        firmware.tick(float(cycle), bank=_Bank(front_ends))
    first, second = firmware.take_reports()
    assert first.voltage_v.tobytes() == voltages[0].tobytes()
    assert second.voltage_v.tobytes() == voltages[1].tobytes()
    assert firmware.take_reports() == []
