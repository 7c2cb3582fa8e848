"""The master's end of the daisy chain: its slaves, seen through the internal bus, as one cell
monitor for the string's BMS.

Each main cycle the master sends configuration (at start and every few seconds), the balancing
command of every slave and a measurement trigger; the slaves answer with cell voltages,
temperatures and status. A frame that fails its CRC or repeats its alive counter (a frozen
sender) is discarded; a value whose frame was lost keeps its previous reading. A slave with a
part of its report (one frame's worth) missing for ``timeout_cycles`` cycles in a row is lost:
its channels read NaN (no data) until it reports in full again.

The master reads a cycle's report frames as arrays (``comms.slave_reports``), whether they
arrive as one block or frame by frame: each as ``FrameCodec.decode`` reads it, judged and
stored in arrival order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import Frame, FrameBlock, FramePort
from cellwarden.comms.codec import FrameCodec
from cellwarden.comms.e2e import AliveCounters
from cellwarden.comms.internal_protocol import trigger_codec
from cellwarden.comms.slave_reports import (
    STATUS,
    STATUS_SIGNALS,
    TEMPERATURES,
    VOLTAGES,
    BalancingCommands,
    DecodedReports,
    ReportLayout,
    decode_reports,
)
from cellwarden.compiled import njit
from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.model.bms import InternalBusSettings

CONFIG_PERIOD_S = 5.0
OPEN_WIRE, BALANCING, DUTY = (STATUS_SIGNALS.index(name)
                              for name in ("OpenWire", "Balancing", "BalancingDuty"))  # fmt: skip


class HvMeasurement(Protocol):
    """The master's own stack and link voltage measurement."""

    def measure(self) -> tuple[float, float]: ...


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
        self.layout = layout = ReportLayout(slave_cells, [s.size for s in sensor_cells_per_slave])
        self.cell_count = int(sum(slave_cells))
        self.sensor_cells = np.concatenate([
            first + cells for first, cells in zip(layout.first_cell, sensor_cells_per_slave,
                                                  strict=True)
        ])  # fmt: skip
        # each slave's cells along the string, (slave, cell of the slave); -1 past its last
        cell = np.arange(max(slave_cells))
        self._slave_cells = np.where(cell < np.array(slave_cells)[:, None],
                                     layout.first_cell[:, None] + cell, -1)  # fmt: skip
        self._bit_positions = cell.astype(np.uint64)
        self._voltage_v = np.full(self.cell_count, np.nan)
        self._temp_c = np.full(self.sensor_cells.size, np.nan)
        self._ntc_open = np.zeros(self.sensor_cells.size, dtype=bool)
        self._ntc_short = np.zeros(self.sensor_cells.size, dtype=bool)
        self._open_wire = np.zeros(self.cell_count, dtype=bool)
        self._duty = np.zeros(self.cell_count)
        self._balancing = np.zeros(self.cell_count, dtype=bool)
        self._mask = np.zeros(self.cell_count, dtype=bool)
        # cycles since each part of each slave's report last arrived (lost until a first one)
        self._age = np.full(layout.parts, self.settings.timeout_cycles)
        self._seen = np.zeros(layout.parts, dtype=bool)
        self._first_part = np.flatnonzero(np.diff(layout.part_slave, prepend=-1))
        self._last_alive = np.full(layout.counters, -1)  # -1: no frame yet
        self._open_wire_wanted = True
        self._config_sent_s = -np.inf
        self.rejected_frames = 0
        self.frozen_frames = 0
        self._last: VoltageSample | None = None
        self._commands = BalancingCommands(layout)

    # --- master → slaves ------------------------------------------------------------------
    def _send(self, now_s: float, codec: FrameCodec, values: dict) -> None:
        data = codec.encode(values, alive=self._alive_out.next(codec.frame_id))
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))

    def trigger(self, now_s: float) -> None:
        """Start a cycle: configuration when due, balancing commands, the measurement trigger."""
        s = self.settings
        if now_s - self._config_sent_s >= CONFIG_PERIOD_S:
            self._config_sent_s = now_s
            for m, cells in zip(self.layout.messages, self.layout.cells, strict=True):
                self._send(now_s, m.config, {
                    m.signal("Cfg", "Cells"): cells,
                    m.signal("Cfg", "MaxBoardTemp"): s.slave_max_board_temp_c,
                    m.signal("Cfg", "BalancingTimeout"): s.balancing_timeout_s,
                })  # fmt: skip
        block = self._commands.encode(now_s, self._mask)
        send_block = getattr(self.port, "send_block", None)
        if send_block is not None:
            send_block(block)
        else:
            for frame in block.frames():
                self.port.send(frame)
        self._send(now_s, self._trigger, {"Trigger_OpenWire": int(self._open_wire_wanted)})
        self._open_wire_wanted = False

    # --- slaves → master ------------------------------------------------------------------
    def _receive(self) -> None:
        """Every report frame that arrived, in arrival order, as arrays."""
        receive_batch = getattr(self.port, "receive_batch", None)
        items = receive_batch() if receive_batch is not None else self.port.receive()
        ids, payloads = [], []
        for item in items:
            if isinstance(item, FrameBlock):
                ours = self.layout.ours(item.frame_ids)
                if item.payload.shape[1] != 8:  # not one of our layouts
                    self.rejected_frames += int(np.count_nonzero(ours))
                elif ours.all():
                    ids.append(item.frame_ids)
                    payloads.append(item.payload)
                elif ours.any():
                    ids.append(item.frame_ids[ours])
                    payloads.append(item.payload[ours])
                continue
            if not self.layout.ours(np.array([item.frame_id]))[0]:
                continue
            if len(item.data) != 8:
                self.rejected_frames += 1
                continue
            ids.append(np.array([item.frame_id]))
            payloads.append(frame_arrays.payloads([item], 8))
        if len(ids) > 1:
            ids, payloads = [np.concatenate(ids)], [np.concatenate(payloads)]
        if ids:
            self._store(decode_reports(self.layout, ids[0], payloads[0]))

    def _store(self, decoded: DecodedReports) -> None:
        """Judge each frame (CRC, multiplexer, alive counter) and keep what it carries; the
        numba kernel where ``frame_arrays.USE_NUMBA``, else with NumPy (the same arrays)."""
        if frame_arrays.USE_NUMBA:
            layout = self.layout
            voltages, temperatures = layout.kinds[VOLTAGES], layout.kinds[TEMPERATURES]
            rejected, frozen = _store_kernel(
                decoded.kind, decoded.slave, decoded.key, decoded.usable, decoded.alive,
                decoded.counter, decoded.part, decoded.position, *decoded.values,
                *decoded.raws, self._last_alive, self._seen, voltages.sources,
                temperatures.sources, self._slave_cells, layout.ntc_open_raw,
                layout.ntc_short_raw, OPEN_WIRE, BALANCING, DUTY, self._voltage_v, self._temp_c,
                self._ntc_open, self._ntc_short, self._open_wire, self._balancing, self._duty,
            )  # fmt: skip
            self.rejected_frames += rejected
            self.frozen_frames += frozen
            return
        usable = np.flatnonzero(decoded.usable)
        self.rejected_frames += decoded.usable.size - usable.size
        repeated = _repeated(self._last_alive, decoded.counter[usable], decoded.alive[usable])
        self.frozen_frames += int(np.count_nonzero(repeated))
        accepted = np.zeros(decoded.usable.size, dtype=bool)
        accepted[usable[~repeated]] = True
        parts = decoded.part[accepted]
        self._seen[parts[parts >= 0]] = True
        kinds = self.layout.kinds
        for number, rows in enumerate(decoded.rows):
            taken = accepted[rows]
            if not taken.any():
                continue
            values, raws = decoded.values[number][taken], decoded.raws[number][taken]
            slave, key = decoded.slave[rows][taken], decoded.key[rows][taken]
            if number == STATUS:
                self._store_status(slave, values, raws)
                continue
            target, values, raw = _last_wins(kinds[number].sources[slave, key], values, raws)
            if number == VOLTAGES:
                self._voltage_v[target] = values
            elif number == TEMPERATURES:
                opened, shorted = raw == self.layout.ntc_open_raw, raw == self.layout.ntc_short_raw
                self._ntc_open[target] = opened
                self._ntc_short[target] = shorted
                self._temp_c[target] = np.where(opened | shorted, np.nan, values)

    def _store_status(self, slave: np.ndarray, values: np.ndarray, raws: np.ndarray) -> None:
        """Open wires, bleeders and duty of each slave's cells, from its latest status frame."""
        latest = slave.size - 1 - np.unique(slave[::-1], return_index=True)[1]
        slave, values, raws = slave[latest], values[latest], raws[latest]
        cells = self._slave_cells[slave]
        inside = cells >= 0
        target = cells[inside]
        bits = self._bit_positions
        self._open_wire[target] = ((raws[:, OPEN_WIRE, None] >> bits) & 1)[inside].astype(bool)
        self._balancing[target] = ((raws[:, BALANCING, None] >> bits) & 1)[inside].astype(bool)
        self._duty[target] = np.broadcast_to(values[:, DUTY, None], cells.shape)[inside]

    def _close_cycle(self) -> None:
        """Count each slave's missed cycle; a lost slave's channels read NaN."""
        self._age = np.where(self._seen, 0, self._age + 1)
        self._seen[:] = False
        lost = self._lost()
        for slave in np.flatnonzero(lost).tolist() if np.count_nonzero(lost) else ():
            layout = self.layout
            cells = slice(layout.first_cell[slave], layout.first_cell[slave] + layout.cells[slave])
            first = layout.first_sensor[slave]
            sensors = slice(first, first + layout.sensors[slave])
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
        return int(np.count_nonzero(self._lost()))

    def _lost(self) -> np.ndarray:
        """Per slave: whether a part of its report has been missing for the timeout."""
        missed = np.maximum.reduceat(self._age, self._first_part)
        return missed >= self.settings.timeout_cycles


@njit(cache=True)
def _store_kernel(kind, slave, key, usable, alive, counter, part, position, voltage_values,
                  temperature_values, status_values, voltage_raws, temperature_raws, status_raws,
                  last_alive, seen, voltage_sources, temperature_sources, slave_cells, open_raw,
                  short_raw, open_wire_column, balancing_column, duty_column, voltage_v, temp_c,
                  ntc_open, ntc_short, open_wire, balancing, duty):  # fmt: skip
    """``SlaveChainMonitor._store`` frame by frame in arrival order: (rejected, frozen)."""
    rejected = frozen = 0
    for row in range(kind.size):
        if not usable[row]:
            rejected += 1
            continue
        previous = last_alive[counter[row]]
        last_alive[counter[row]] = alive[row]
        if previous == alive[row]:
            frozen += 1
            continue
        if part[row] >= 0:
            seen[part[row]] = True
        at, sender, group = position[row], slave[row], key[row]
        if kind[row] == VOLTAGES:
            for column in range(voltage_sources.shape[2]):
                target = voltage_sources[sender, group, column]
                if target >= 0:
                    voltage_v[target] = voltage_values[at, column]
        elif kind[row] == TEMPERATURES:
            for column in range(temperature_sources.shape[2]):
                target = temperature_sources[sender, group, column]
                if target >= 0:
                    code = temperature_raws[at, column]
                    ntc_open[target] = code == open_raw
                    ntc_short[target] = code == short_raw
                    labelled = ntc_open[target] or ntc_short[target]
                    temp_c[target] = np.nan if labelled else temperature_values[at, column]
        else:
            for cell in range(slave_cells.shape[1]):
                target = slave_cells[sender, cell]
                if target >= 0:
                    bit = np.uint64(cell)
                    open_wire[target] = (status_raws[at, open_wire_column] >> bit) & 1
                    balancing[target] = (status_raws[at, balancing_column] >> bit) & 1
                    duty[target] = status_values[at, duty_column]
    return rejected, frozen


def _repeated(last_alive: np.ndarray, counter: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Whether each frame repeats the alive count of the frame before it on its identifier
    (``AliveCheck.judge`` frame by frame in arrival order); ``last_alive`` moves on."""
    order = np.argsort(counter, kind="stable")
    by_counter, counts = counter[order], alive[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = by_counter[1:] != by_counter[:-1]
    previous = np.empty_like(counts)
    previous[1:] = counts[:-1]
    previous[first] = last_alive[by_counter[first]]
    repeated = np.empty(order.size, dtype=bool)
    repeated[order] = counts == previous
    final = np.ones(order.size, dtype=bool)
    final[:-1] = first[1:]
    last_alive[by_counter[final]] = counts[final]
    return repeated


def _last_wins(target: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The carried string-wide indices of ``(rows, columns)`` frames (``target``, -1: not
    carried) and each of ``columns``' values for them, where two frames carry one index the
    later one's (as storing them frame by frame in arrival order leaves it)."""
    target = target.ravel()
    carried = np.flatnonzero(target >= 0)
    kept = target[carried]
    last = kept.size - 1 - np.unique(kept[::-1], return_index=True)[1]
    return (kept[last], *(column.ravel()[carried[last]] for column in columns))
