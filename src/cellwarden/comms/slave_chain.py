"""The master's end of the daisy chain: its slaves, seen through the internal bus, as one cell
monitor for the string's BMS.

Each main cycle the master sends configuration (at start and every few seconds), the balancing
command of every slave and a measurement trigger; the slaves answer with cell voltages,
temperatures and status. A frame that fails its CRC or repeats its alive counter (a frozen
sender) is discarded; a value whose frame was lost keeps its previous reading. A slave with a
part of its report (one frame's worth) missing for ``timeout_cycles`` cycles in a row is lost:
its channels read NaN (no data) until it reports in full again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import Frame, FrameBlock, FramePort
from cellwarden.comms.codec import BitField, FrameCodec, FrameError
from cellwarden.comms.e2e import AliveCheck, AliveCounters, Verdict
from cellwarden.comms.internal_protocol import (
    CELLS_PER_FRAME,
    NTC_OPEN,
    NTC_SHORT,
    SENSORS_PER_FRAME,
    SlaveMessages,
    bits_to_mask,
    mask_to_bits,
    slave_messages,
    trigger_codec,
)
from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.model.bms import InternalBusSettings

CONFIG_PERIOD_S = 5.0
STANDARD_IDS = 1 << 11


class HvMeasurement(Protocol):
    """The master's own stack and link voltage measurement."""

    def measure(self) -> tuple[float, float]: ...


@dataclass
class _Slave:
    """The master's record of one slave."""

    messages: SlaveMessages
    first_cell: int
    cells: int
    first_sensor: int
    sensors: int
    age: dict[tuple[str, int], int]  # cycles since each part of the report last arrived
    seen: set[tuple[str, int]]
    alive: dict[int, AliveCheck]
    balancing_signals: tuple[str, str] = ("", "")  # enable, mask
    status_signals: tuple[str, str, str] = ("", "", "")  # open wire, balancing, duty

    @property
    def missed(self) -> int:
        return max(self.age.values())


class SlaveChainMonitor:
    """All slaves of a string as one ``CellMonitor``."""

    def __init__(
        self,
        port: FramePort,
        slave_cells: list[int],
        sensor_cells_per_slave: list[np.ndarray],
        hv: HvMeasurement,
        settings: InternalBusSettings | None = None,
    ) -> None:
        self.port = port
        self.hv = hv
        self.settings = settings or InternalBusSettings()
        self._trigger = trigger_codec()
        self._alive_out = AliveCounters()
        self.slaves: list[_Slave] = []
        self._by_id: dict[int, tuple[_Slave, FrameCodec]] = {}
        first_cell = first_sensor = 0
        for index, (cells, sensors) in enumerate(
            zip(slave_cells, sensor_cells_per_slave, strict=True)
        ):
            m = slave_messages(index)
            parts = [("v", g) for g in range(-(-cells // CELLS_PER_FRAME))]
            parts += [("t", g) for g in range(-(-sensors.size // SENSORS_PER_FRAME))]
            parts.append(("s", 0))
            never = self.settings.timeout_cycles  # lost until its first full report
            slave = _Slave(m, first_cell, cells, first_sensor, sensors.size,
                           dict.fromkeys(parts, never), set(), {})  # fmt: skip
            slave.balancing_signals = (m.signal("Bal", "Enable"), m.signal("Bal", "Mask"))
            slave.status_signals = (m.signal("ST", "OpenWire"), m.signal("ST", "Balancing"),
                                    m.signal("ST", "BalancingDuty"))  # fmt: skip
            for codec in (m.voltages, m.temperatures, m.status):
                self._by_id[codec.frame_id] = (slave, codec)
                slave.alive[codec.frame_id] = AliveCheck()
            self.slaves.append(slave)
            first_cell += cells
            first_sensor += sensors.size
        self.cell_count = first_cell
        self.sensor_cells = np.concatenate(
            [
                s.first_cell + cells
                for s, cells in zip(self.slaves, sensor_cells_per_slave, strict=True)
            ]
        )
        self._voltage_v = np.full(self.cell_count, np.nan)
        self._temp_c = np.full(self.sensor_cells.size, np.nan)
        self._ntc_open = np.zeros(self.sensor_cells.size, dtype=bool)
        self._ntc_short = np.zeros(self.sensor_cells.size, dtype=bool)
        self._open_wire = np.zeros(self.cell_count, dtype=bool)
        self._duty = np.zeros(self.cell_count)
        self._balancing = np.zeros(self.cell_count, dtype=bool)
        self._mask = np.zeros(self.cell_count, dtype=bool)
        self._open_wire_wanted = True
        self._config_sent_s = -np.inf
        self.rejected_frames = 0
        self.frozen_frames = 0
        self._last: VoltageSample | None = None
        self._voltage_frames = _VoltageFrames.of(self.slaves)

    # --- master → slaves ------------------------------------------------------------------
    def _send(self, now_s: float, codec: FrameCodec, values: dict) -> None:
        data = codec.encode(values, alive=self._alive_out.next(codec.frame_id))
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))

    def trigger(self, now_s: float) -> None:
        """Start a cycle: configuration when due, balancing commands, the measurement trigger."""
        s = self.settings
        if now_s - self._config_sent_s >= CONFIG_PERIOD_S:
            self._config_sent_s = now_s
            for slave in self.slaves:
                m = slave.messages
                self._send(now_s, m.config, {
                    m.signal("Cfg", "Cells"): slave.cells,
                    m.signal("Cfg", "MaxBoardTemp"): s.slave_max_board_temp_c,
                    m.signal("Cfg", "BalancingTimeout"): s.balancing_timeout_s,
                })  # fmt: skip
        mask = self._mask
        # the whole string's mask as one integer: each slave's bits are a shift and a mask
        every = None
        if mask.ndim == 1 and mask.dtype == np.bool_:
            every = int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")
        for slave in self.slaves:
            m = slave.messages
            enable, bits = slave.balancing_signals
            if every is not None and slave.cells < 63:  # (as mask_to_bits counts them)
                own = (every >> slave.first_cell) & ((1 << slave.cells) - 1)
                self._send(now_s, m.balancing, {enable: int(own != 0), bits: own})
                continue
            part = mask[slave.first_cell : slave.first_cell + slave.cells]
            self._send(now_s, m.balancing, {enable: int(part.any()), bits: mask_to_bits(part)})
        self._send(now_s, self._trigger, {"Trigger_OpenWire": int(self._open_wire_wanted)})
        self._open_wire_wanted = False

    # --- slaves → master ------------------------------------------------------------------
    def _receive(self) -> None:
        receive_batch = getattr(self.port, "receive_batch", None)
        items = receive_batch() if receive_batch is not None else self.port.receive()
        batch = self._voltage_frames
        if batch is None:
            frames = []
            for item in items:
                frames += item.frames() if isinstance(item, FrameBlock) else [item]
            self._receive_each(frames)
            return
        voltages, others = batch.split(items)
        self._receive_each(others)
        if voltages is not None:
            self._receive_voltages(batch, *voltages)

    def _receive_voltages(self, batch: _VoltageFrames, payload: np.ndarray, slave: np.ndarray):
        """The cycle's cell-voltage frames of every slave, decoded as arrays; the same checks,
        counts and values, as ``_receive_each`` makes frame by frame in arrival order."""
        decoded = batch.decode(payload, slave)
        usable = np.flatnonzero(decoded.usable)
        self.rejected_frames += slave.size - usable.size
        repeated = _judge_alive(
            [self.slaves[index].alive[frame_id] for index, frame_id in enumerate(batch.frame_ids)],
            slave[usable], decoded.alive[usable],
        )  # fmt: skip
        self.frozen_frames += int(np.count_nonzero(repeated))
        accepted = usable[~repeated]
        if not accepted.size:
            return
        slaves = self.slaves
        for index, group in set(
            zip(slave[accepted].tolist(), decoded.group[accepted].tolist(), strict=True)
        ):
            slaves[index].seen.add(("v", group))
        cells, values = decoded.cell_values(accepted)
        self._voltage_v[cells] = values

    def _receive_each(self, frames: list[Frame]) -> None:
        by_id = self._by_id
        for frame in frames:
            entry = by_id.get(frame.frame_id)
            if entry is None:
                continue
            slave, codec = entry
            try:  # codec.decode_checked, inline
                decoded = codec.decode(frame.data)
            except FrameError:
                self.rejected_frames += 1
                continue
            if not decoded.crc_ok or decoded.alive is None:
                self.rejected_frames += 1
                continue
            if slave.alive[frame.frame_id].judge(decoded.alive) is Verdict.REPEATED:
                self.frozen_frames += 1
                continue
            self._store(slave, codec, decoded.values)

    def _store(self, slave: _Slave, codec: FrameCodec, values: dict) -> None:
        m = slave.messages
        if codec is m.voltages:
            group = int(values[m.voltage_mux])
            first = group * CELLS_PER_FRAME
            names = m.cell_signals
            voltage_v = self._voltage_v
            offset = slave.first_cell
            for cell in range(first, min(first + CELLS_PER_FRAME, slave.cells)):
                voltage_v[offset + cell] = values[names[cell]]
            slave.seen.add(("v", group))
        elif codec is m.temperatures:
            group = int(values[m.temperature_mux])
            first = group * SENSORS_PER_FRAME
            names = m.sensor_signals
            for sensor in range(first, min(first + SENSORS_PER_FRAME, slave.sensors)):
                value = values[names[sensor]]
                index = slave.first_sensor + sensor
                self._ntc_open[index] = value == NTC_OPEN
                self._ntc_short[index] = value == NTC_SHORT
                self._temp_c[index] = value if isinstance(value, float) else np.nan
            slave.seen.add(("t", group))
        else:
            open_wire, balancing, duty = slave.status_signals
            cells = slice(slave.first_cell, slave.first_cell + slave.cells)
            self._open_wire[cells] = bits_to_mask(values[open_wire], slave.cells)
            self._balancing[cells] = bits_to_mask(values[balancing], slave.cells)
            self._duty[cells] = float(values[duty])
            slave.seen.add(("s", 0))

    def _close_cycle(self) -> None:
        """Count each slave's missed cycle; a lost slave's channels read NaN."""
        timeout = self.settings.timeout_cycles
        for slave in self.slaves:
            age, seen = slave.age, slave.seen
            for part in age:
                age[part] = 0 if part in seen else age[part] + 1
            slave.seen = set()
            if max(age.values()) >= timeout:  # slave.missed
                cells = slice(slave.first_cell, slave.first_cell + slave.cells)
                sensors = slice(slave.first_sensor, slave.first_sensor + slave.sensors)
                self._voltage_v[cells] = np.nan
                self._temp_c[sensors] = np.nan
                self._ntc_open[sensors] = False
                self._ntc_short[sensors] = False
                self._balancing[cells] = False

    # --- the CellMonitor interface ----------------------------------------------------------
    def sample_voltages(self, now_s: float) -> VoltageSample:
        """What the slaves reported this cycle (call once per cycle, after ``trigger``)."""
        self._receive()
        self._close_cycle()
        pack_v, link_v = self.hv.measure()
        self._last = VoltageSample(now_s, self._voltage_v.copy(), pack_v, link_v)
        return self._last

    def stack_and_link_v(self, now_s: float) -> tuple[float, float]:
        """The master's own HV measurement (not over the chain)."""
        return self.hv.measure()

    def sample_temperatures(self, now_s: float) -> TemperatureSample:
        return TemperatureSample(
            now_s, self._temp_c.copy(), self._ntc_open.copy(), self._ntc_short.copy()
        )

    def open_wire_check(self, now_s: float) -> np.ndarray:
        """The slaves' last open-wire result; the next trigger asks for a fresh test."""
        self._open_wire_wanted = True
        return self._open_wire.copy()

    def set_balancing(self, mask: np.ndarray) -> None:
        self._mask = np.asarray(mask, dtype=bool).copy()

    def balancing_duty(self) -> np.ndarray:
        """Per cell: the bleed duty its slave reports (zero where its bleeder is off)."""
        return np.where(self._balancing, self._duty, 0.0)

    def lost_modules(self) -> int:
        return sum(slave.missed >= self.settings.timeout_cycles for slave in self.slaves)


@dataclass(frozen=True)
class _DecodedVoltages:
    """One cycle's cell-voltage frames as arrays (see ``_VoltageFrames.decode``)."""

    usable: np.ndarray  # a defined multiplexer value and a good CRC
    alive: np.ndarray
    group: np.ndarray  # multiplexer value: which three cells
    slave: np.ndarray
    word: np.ndarray
    batch: _VoltageFrames

    def cell_values(self, accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The string's cell indices and voltages the accepted frames carry; where two frames
        carry one cell, the later one's (as storing frame by frame leaves it)."""
        batch = self.batch
        group = self.group[accepted]
        slave = self.slave[accepted]
        raws = frame_arrays.raw(self.word[accepted, None], batch.shift[group], batch.mask[group])
        values = raws.astype(np.float64) * batch.scale[group] + batch.offset[group]
        cell = batch.cell[group]  # within the slave
        inside = cell < batch.slave_cells[slave, None]
        index = (batch.slave_first[slave, None] + cell)[inside]
        values = values[inside]
        last = index.size - 1 - np.unique(index[::-1], return_index=True)[1]
        return index[last], values[last]


@dataclass(frozen=True)
class _VoltageFrames:
    """The cell-voltage frames of every slave: one layout, told apart by identifier."""

    slave_of: dict[int, int]  # frame identifier -> slave index
    slave_of_standard_id: np.ndarray  # the same for every 11-bit identifier (-1: none)
    seeds: np.ndarray  # CRC register per slave
    mux: BitField
    alive: BitField
    shift: np.ndarray  # (group, cell of the frame)
    mask: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    cell: np.ndarray  # the slave's cell each value is
    slave_first: np.ndarray
    slave_cells: np.ndarray

    @classmethod
    def of(cls, slaves: list[_Slave]) -> _VoltageFrames | None:
        """The batch decoder, or None when the slaves' voltage frames differ in layout."""
        layouts = [slave.messages.voltages.array_layout() for slave in slaves]
        first = layouts[0]
        if first is None or first.length != 8 or first.mux is None or first.alive is None:
            return None
        if sorted(first.frames) != list(range(len(first.frames))):
            return None

        def shape(layout) -> tuple:
            fields = [(f.shift, f.mask, f.scale, f.offset, f.identity)
                      for key in sorted(layout.frames) for f in layout.frames[key]]  # fmt: skip
            return layout.length, layout.protected, layout.mux.shift, layout.mux.mask, \
                layout.alive.shift, layout.alive.mask, fields  # fmt: skip

        if not first.protected or any(layout is None or shape(layout) != shape(first)
                                      for layout in layouts):  # fmt: skip
            return None
        names = slaves[0].messages.cell_signals
        groups = [[f for f in first.frames[key] if f.name != first.mux.name]
                  for key in sorted(first.frames)]  # fmt: skip
        if len({len(fields) for fields in groups}) != 1:
            return None
        slave_of = {s.messages.voltages.frame_id: i for i, s in enumerate(slaves)}
        if any(slave.messages.voltages.extended for slave in slaves):
            return None
        slave_of_standard_id = np.full(STANDARD_IDS, -1)
        slave_of_standard_id[list(slave_of)] = list(slave_of.values())
        return cls(
            slave_of=slave_of,
            slave_of_standard_id=slave_of_standard_id,
            seeds=np.array([layout.crc_seed for layout in layouts], dtype=np.uint8),
            mux=first.mux,
            alive=first.alive,
            shift=np.array([[f.shift for f in fields] for fields in groups], dtype=np.uint64),
            mask=np.array([[f.mask for f in fields] for fields in groups], dtype=np.uint64),
            scale=np.array([[1.0 if f.identity else f.scale for f in fields] for fields in groups]),
            offset=np.array(
                [[0.0 if f.identity else f.offset for f in fields] for fields in groups]
            ),
            cell=np.array([[names.index(f.name) for f in fields] for fields in groups]),
            slave_first=np.array([s.first_cell for s in slaves]),
            slave_cells=np.array([s.cells for s in slaves]),
        )

    @property
    def frame_ids(self) -> list[int]:
        """The slaves' voltage frame identifiers, in chain order."""
        return list(self.slave_of)

    def split(
        self, items: list[Frame | FrameBlock]
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[Frame]]:
        """(the well-sized voltage frames as payloads and senders, every other frame), each
        in arrival order."""
        payloads, senders, others = [], [], []
        slave_of = self.slave_of
        for item in items:
            if isinstance(item, FrameBlock):
                slave = (np.full(len(item), -1) if item.extended or item.payload.shape[1] != 8
                         else self.slave_of_standard_id[item.frame_ids])  # fmt: skip
                ours = slave >= 0
                if ours.any():
                    payloads.append(item.payload[ours])
                    senders.append(slave[ours])
                if not ours.all():
                    others += item.frames(np.flatnonzero(~ours))
            elif item.frame_id in slave_of and len(item.data) == 8 and not item.extended:
                payloads.append(frame_arrays.payloads([item], 8))
                senders.append(np.array([slave_of[item.frame_id]]))
            else:
                others.append(item)
        if not payloads:
            return None, others
        return (np.concatenate(payloads), np.concatenate(senders)), others

    def decode(self, payload: np.ndarray, slave: np.ndarray) -> _DecodedVoltages:
        word = frame_arrays.words(payload)
        group = frame_arrays.raw(word, self.mux.shift, self.mux.mask).astype(np.intp)
        usable = (group < self.shift.shape[0]) & frame_arrays.crc_holds(payload, self.seeds[slave])
        alive = frame_arrays.raw(word, self.alive.shift, self.alive.mask).astype(np.intp)
        return _DecodedVoltages(usable, alive, np.minimum(group, self.shift.shape[0] - 1), slave,
                                word, self)  # fmt: skip


def _judge_alive(checks: list[AliveCheck], sender: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Whether each frame repeats its sender's alive counter (``AliveCheck.judge`` frame by
    frame in order: each compared with the sender's previous frame); the checks move on."""
    order = np.argsort(sender, kind="stable")
    by_sender, counters = sender[order], alive[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = by_sender[1:] != by_sender[:-1]
    previous = np.empty_like(counters)
    previous[1:] = counters[:-1]
    previous[first] = [-1 if (last := checks[index].last) is None else last
                       for index in by_sender[first].tolist()]  # fmt: skip
    repeated = np.empty(order.size, dtype=bool)
    repeated[order] = counters == previous
    final = np.ones(order.size, dtype=bool)
    final[:-1] = by_sender[:-1] != by_sender[1:]
    for index, counter in zip(by_sender[final].tolist(), counters[final].tolist(), strict=True):
        checks[index].last = counter
    return repeated
