"""The slaves' firmware of a chain: every slave takes only its own frames, as its codecs read
them one at a time (commands decoded together must leave each slave where frame-by-frame
decoding would), refuses what fails its checks, and keeps its bleeders within the command
timeout and its board's thermal limit."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import FrameError
from cellwarden.comms.internal_protocol import bits_to_mask, slave_messages, trigger_codec
from cellwarden.comms.slave_firmware import SlaveFirmware
from cellwarden.comms.slave_reports import SlaveReport
from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.model.bms import InternalBusSettings


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


class _Inbox:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def receive(self) -> list[Frame]:
        frames, self.frames = self.frames, []
        return frames


def _firmware(cells: list[int], board_temp_c: float = 30.0):
    front_ends = [_FrontEnd(count, board_temp_c) for count in cells]
    inboxes = [_Inbox() for _ in cells]
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
                    inboxes[index].frames.append(frame)
                    references[index].take(now_s, frame)
        firmware.tick(now_s)
        reports = firmware.take_reports()
        for index, ref in enumerate(references):
            assert firmware.rejected_frames[index] == ref.rejected
            assert firmware._enabled[index] == ref.enabled
            assert firmware._command_s[index] == ref.command_s
            assert firmware.balancing_timeout_s[index] == ref.timeout_s
            assert firmware.max_board_temp_c[index] == ref.max_temp_c
            mask = bits_to_mask(ref.bits, cells[index])
            assert (firmware._mask[index].mask == mask).all()
            assert len(reports[index]) == len(ref.triggers)
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
    inboxes[0].frames = [Frame(0.0, m.balancing.frame_id, command),
                         Frame(0.0, trigger_codec().frame_id, trigger)]  # fmt: skip
    firmware.tick(0.0)
    (first,) = firmware.take_reports()[0]
    assert isinstance(first, SlaveReport)
    assert first.balancing_bits == 0  # nothing bled yet when it measured
    assert front_ends[0].applied[-1].tolist() == [True, False, True, False, False, False]
    inboxes[0].frames = [Frame(1.0, trigger_codec().frame_id, trigger)]
    firmware.tick(1.0)
    (second,) = firmware.take_reports()[0]
    assert second.balancing_bits == 0b101
    assert second.balancing_duty == pytest.approx(0.5, abs=1 / 30)


def test_a_hot_board_and_a_silent_master_stop_the_bleeders():
    settings = InternalBusSettings()
    firmware, front_ends, inboxes = _firmware([4, 4])
    front_ends[1].board_temp_c = settings.slave_max_board_temp_c + 1.0
    for index in range(2):
        m = slave_messages(index)
        inboxes[index].frames = [
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
        inbox.frames = [trigger]
    firmware.tick(0.0, running=[0, 2])
    assert [len(made) for made in firmware.take_reports()] == [1, 0, 1]
    assert [len(fe.applied) for fe in front_ends] == [1, 0, 1]
    with pytest.raises(ValueError, match="2 front ends for 1 inboxes"):
        SlaveFirmware(front_ends[:2], inboxes[:1])
