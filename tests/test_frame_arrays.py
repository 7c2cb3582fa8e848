"""The master's array decode of its slaves' cell-voltage frames against the frame-by-frame
decode: the same voltages bit for bit, the same rejected and frozen counts, the same alive
states and reports seen, over good frames and every kind of bad one, mixed with the other
frame kinds in random order."""

from __future__ import annotations

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.e2e import frame_crc
from cellwarden.comms.internal_protocol import slave_messages
from cellwarden.comms.slave_chain import SlaveChainMonitor

SLAVE_CELLS = [18, 16, 18, 12]
SENSORS = [np.arange(0, 18, 3), np.arange(0, 16, 4), np.arange(0, 18, 2), np.arange(0, 12, 6)]


class Replay:
    """A port that hands over the frames set for the cycle."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def receive(self) -> list[Frame]:
        return list(self.frames)

    def send(self, frame: Frame) -> None:
        pass


class Hv:
    def measure(self) -> tuple[float, float]:
        return 100.0, 100.0


def monitor(batch: bool) -> tuple[SlaveChainMonitor, Replay]:
    port = Replay()
    chain = SlaveChainMonitor(port, SLAVE_CELLS, SENSORS, Hv())
    assert chain._voltage_frames is not None
    if not batch:
        chain._voltage_frames = None
    return chain, port


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
        none = np.zeros(temps.size, dtype=bool)
        for values in m.temperature_frames(temps, none, rng.random(temps.size) < 0.1):
            counter = alive[m.temperatures.frame_id] = (alive.get(m.temperatures.frame_id, 0)
                                                        + 1) % 15  # fmt: skip
            frames.append(Frame(0.0, m.temperatures.frame_id,
                                m.temperatures.encode(values, alive=counter), False))  # fmt: skip
    order = rng.permutation(len(frames))
    return [frames[i] for i in order]


def state(chain: SlaveChainMonitor) -> tuple:
    return (chain._voltage_v.tobytes(), chain._temp_c.tobytes(), chain.rejected_frames,
            chain.frozen_frames,
            [sorted(s.seen) for s in chain.slaves], [dict(s.age) for s in chain.slaves],
            [{k: a.last for k, a in s.alive.items()} for s in chain.slaves])  # fmt: skip


def test_array_decode_matches_frame_by_frame_decode():
    rng = np.random.default_rng(16)
    batch, batch_port = monitor(batch=True)
    each, each_port = monitor(batch=False)
    alive: dict[int, int] = {}
    carried = np.zeros(sum(SLAVE_CELLS), dtype=bool)
    for _ in range(300):
        frames = cycle_frames(rng, alive)
        batch_port.frames = each_port.frames = frames
        batch._receive()
        each._receive()
        assert state(batch) == state(each)
        carried |= ~np.isnan(each._voltage_v)
        batch._close_cycle()
        each._close_cycle()
    assert each.rejected_frames > 100 and each.frozen_frames > 20
    assert carried.all()
