"""The internal bus between a master and its slaves, as laid out in ``dbc/internal.dbc``.

Slave ``k`` (0-based, its position on the daisy chain) owns one identifier per message type
(``CellVoltages_S{k+1:02d}`` and so on); this module names its signals once for both ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum

import numpy as np

from cellwarden.comms.codec import BusCodec, FrameCodec, bus_codec

MAX_SLAVES = 16
MAX_CELLS = 18
MAX_SENSORS = 18
CELLS_PER_FRAME = 3
SENSORS_PER_FRAME = 6
NTC_SHORT = "ShortCircuit"
NTC_OPEN = "OpenCircuit"


class SlaveState(IntEnum):
    INIT = 0
    NORMAL = 1
    BALANCING = 2
    FAULT = 3


def mask_to_bits(mask: np.ndarray) -> int:
    """Bit k set where ``mask[k]``."""
    if mask.dtype == np.bool_ and mask.ndim == 1 and mask.size < 63:
        return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")
    return int(np.dot(mask.astype(np.int64), 1 << np.arange(mask.size, dtype=np.int64)))


_BIT_POSITIONS: dict[int, np.ndarray] = {}  # np.arange(size), read only, by size


def bits_to_mask(bits: float, size: int) -> np.ndarray:
    positions = _BIT_POSITIONS.get(size)
    if positions is None:
        positions = np.arange(size)
        positions.flags.writeable = False
        _BIT_POSITIONS[size] = positions
    return ((int(bits) >> positions) & 1).astype(bool)


class SlaveMessages:
    """The codecs and signal names of one slave address (names built once)."""

    def __init__(self, index: int, codec: BusCodec) -> None:
        self.index = index
        self.tag = tag = f"S{index + 1:02d}"
        self.voltages: FrameCodec = codec[f"CellVoltages_{tag}"]
        self.temperatures: FrameCodec = codec[f"Temperatures_{tag}"]
        self.status: FrameCodec = codec[f"SlaveStatus_{tag}"]
        self.balancing: FrameCodec = codec[f"BalancingCmd_{tag}"]
        self.config: FrameCodec = codec[f"SlaveConfig_{tag}"]
        self.cell_signals = [f"CV{tag}_Cell{cell + 1:02d}" for cell in range(MAX_CELLS)]
        self.sensor_signals = [f"TE{tag}_Sensor{s + 1:02d}" for s in range(MAX_SENSORS)]
        self._names: dict[tuple[str, str], str] = {}
        self.voltage_mux = self.signal("CV", "Mux")
        self.temperature_mux = self.signal("TE", "Mux")

    def signal(self, prefix: str, name: str) -> str:
        """E.g. ``signal("ST", "OpenWire")`` → ``STS03_OpenWire``."""
        key = (prefix, name)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = f"{prefix}{self.tag}_{name}"
        return found

    # --- slave → master ---------------------------------------------------------------
    def voltage_frames(self, voltage_v: np.ndarray) -> Iterator[dict[str, float]]:
        """Signal values of each cell-voltage frame, three cells per frame."""
        mux = self.voltage_mux
        names = self.cell_signals
        values_v = voltage_v.tolist()
        count = len(values_v)
        for group in range(0, count, CELLS_PER_FRAME):
            values: dict[str, float] = {mux: group // CELLS_PER_FRAME}
            for cell in range(group, min(group + CELLS_PER_FRAME, count)):
                values[names[cell]] = values_v[cell]
            yield values

    def temperature_frames(
        self, temp_c: np.ndarray, open_circuit: np.ndarray, short_circuit: np.ndarray
    ) -> Iterator[dict[str, float | str]]:
        """Signal values of each temperature frame; a rail reading is sent as its code."""
        mux = self.temperature_mux
        names = self.sensor_signals
        count = temp_c.size
        temps, opened, shorted = temp_c.tolist(), open_circuit.tolist(), short_circuit.tolist()
        for group in range(0, count, SENSORS_PER_FRAME):
            values: dict[str, float | str] = {mux: group // SENSORS_PER_FRAME}
            for sensor in range(group, min(group + SENSORS_PER_FRAME, count)):
                if opened[sensor]:
                    values[names[sensor]] = NTC_OPEN
                elif shorted[sensor]:
                    values[names[sensor]] = NTC_SHORT
                else:
                    values[names[sensor]] = float(temps[sensor])
            yield values


def slave_messages(index: int) -> SlaveMessages:
    """The messages of the slave at chain position ``index`` (0 = next to the master)."""
    if not 0 <= index < MAX_SLAVES:
        raise ValueError(f"slave index {index} is outside the allowed range 0..{MAX_SLAVES - 1}")
    return SlaveMessages(index, internal_codec())


def internal_codec() -> BusCodec:
    """Codecs of every internal-bus message."""
    return bus_codec("internal")


def trigger_codec() -> FrameCodec:
    return internal_codec()["MasterTrigger"]
