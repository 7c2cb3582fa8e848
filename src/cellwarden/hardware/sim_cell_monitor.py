"""A simulated cell-monitor front end over one string of the plant."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.hardware.sensor_faults import StuckAndDrift
from cellwarden.hardware.sim_hv_measurement import (
    HV_NOISE_V,
    SimulatedHvMeasurement,
    measured_v,
)
from cellwarden.model.board import BoardSpec
from cellwarden.model.faults import NtcFault, OpenWire
from cellwarden.plant import kernel as k
from cellwarden.plant.system_plant import SystemPlant

KELVIN = 273.15
NTC_RAIL_MARGIN_CODES = 3  # codes from either rail read as open or short


class SimulatedCellMonitor:
    """Cell channels with gain, offset, noise and quantisation; NTCs; open-wire test; bleeders.

    A standalone board's front end sees its whole string; a slave's sees ``cell_count`` series
    cells from ``first_cell`` on, and its NTCs from the string's ``first_sensor`` on. Fault
    indices (channels, wires, sensors) count along the string, so a fault lands on whichever
    front end holds that channel.
    """

    def __init__(
        self,
        plant: SystemPlant,
        string: int,
        board: BoardSpec,
        rng: np.random.Generator,
        first_cell: int = 0,
        cell_count: int | None = None,
        first_sensor: int = 0,
    ) -> None:
        self.plant = plant
        self.string = string
        self.spec = board
        layout = plant.layout
        string_groups = np.flatnonzero(layout.group_string == string)
        count = string_groups.size - first_cell if cell_count is None else cell_count
        self.groups = string_groups[first_cell : first_cell + count]
        self.first_cell = first_cell
        self.cell_count = int(self.groups.size)
        monitor = board.cell_monitor
        self.sensor_cells = np.arange(
            monitor.cells_per_temp_sensor // 2, self.cell_count, monitor.cells_per_temp_sensor
        )
        parallel = layout.strings[string].pack.parallel
        self._sensor_plant_cells = (
            layout.string_first_cell[string] + (first_cell + self.sensor_cells) * parallel
        )
        self._first_sensor = first_sensor
        self._rng = rng
        self._gain = 1.0 + rng.normal(0.0, monitor.gain_error_pct / 100.0, self.cell_count)
        self._offset_v = rng.normal(0.0, monitor.offset_v, self.cell_count)
        self.hv = SimulatedHvMeasurement(plant, self.groups, monitor.pack_gain_error_pct, rng)
        self._ntc_offset_c = rng.normal(0.0, board.ntc.tolerance_c, self.sensor_cells.size)
        self._voltage_faults = StuckAndDrift("cell_voltage", first_cell, self.cell_count)
        self._temp_faults = StuckAndDrift(
            "cell_temperature", self._first_sensor, self.sensor_cells.size
        )
        self._last: VoltageSample | None = None
        self._mask = np.zeros(self.cell_count, dtype=bool)
        self._duty = 1.0
        self.board_temp_c = float(plant.bus[k.COOLANT_C])
        # hot-path caches: the channels as a slice (a view, no gather) when contiguous, the
        # sensors' cells as a strided slice, and the spec's constants
        self._cells = _as_slice(self.groups)
        self._sensors = _as_slice(self._sensor_plant_cells)
        self._sensor_count = int(self.sensor_cells.size)
        self._lsb_v = monitor.adc_lsb_v
        self._noise_v = monitor.noise_v
        self._full_scale = 2**board.ntc.adc_bits - 1
        self._code_temp_c = _code_temperatures(board.ntc) if self._sensor_count else None
        self._prepared: TemperatureSample | None = None  # left by a ``FrontEndBatch``
        self._no_open_wire = np.zeros(self.cell_count, dtype=bool)
        self._no_open_wire.flags.writeable = False

    # --- voltages ---------------------------------------------------------------------------
    def sample_voltages(self, now_s: float) -> VoltageSample:
        """The latest conversion; a new one starts every ``conversion_period_s``."""
        period = self.spec.cell_monitor.conversion_period_s
        if self._last is not None and now_s - self._last.time_s < period - 1e-9:
            return self._last
        self._last = self._convert(now_s)
        return self._last

    def _convert(self, now_s: float) -> VoltageSample:
        plant = self.plant
        if not plant.hardware_faults:  # the same arithmetic, without the fault handling
            noise_v = self._rng.normal(0.0, self._noise_v, self.cell_count)
            reading = _readings_v(plant.gs[k.G_VOLT, self._cells], self._gain, self._offset_v,
                                  noise_v, self._lsb_v)  # fmt: skip
            pack, link = self.hv.measure()
            return VoltageSample(now_s, reading, pack, link)
        monitor = self.spec.cell_monitor
        true_v = self.plant.gs[k.G_VOLT, self.groups]
        seen = true_v.copy()
        for wire in self._open_wires():
            # the channel above a broken wire sees both cells, the one below sees nothing
            if wire > 0:
                seen[wire - 1] = 0.0
            if wire < self.cell_count:
                seen[wire] = true_v[wire] + (true_v[wire - 1] if wire > 0 else 0.0)
        noise = self._rng.normal(0.0, monitor.noise_v, self.cell_count)
        reading = np.round((seen * self._gain + self._offset_v + noise) / monitor.adc_lsb_v)
        cells = self._voltage_faults.apply(
            self.plant.hardware_faults, reading * monitor.adc_lsb_v, now_s
        )
        pack, link = self.hv.measure()
        return VoltageSample(now_s, np.maximum(cells, 0.0), pack, link)

    def stack_and_link_v(self, now_s: float) -> tuple[float, float]:
        return self.hv.measure()

    def _open_wires(self) -> list[int]:
        """Open wires touching this front end, numbered from its first channel."""
        return [
            fault.wire - self.first_cell
            for _, fault in self.plant.hardware_faults
            if isinstance(fault, OpenWire)
            and fault.string == self.string
            and 0 <= fault.wire - self.first_cell <= self.cell_count
        ]

    def open_wire_check(self, now_s: float) -> np.ndarray:
        """Channels next to an open sense wire (the front end's current-source test); with
        none, always the same read-only array."""
        wires = self._open_wires()
        if not wires:
            return self._no_open_wire
        flags = np.zeros(self.cell_count, dtype=bool)
        for wire in wires:
            for channel in (wire - 1, wire):
                if 0 <= channel < self.cell_count:
                    flags[channel] = True
        return flags

    # --- temperatures -----------------------------------------------------------------------
    def sample_temperatures(self, now_s: float) -> TemperatureSample:
        """NTC readings through the divider and ADC, with rail checks for open and short."""
        ntc = self.spec.ntc
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.time_s == now_s:
            return prepared
        if not self.plant.hardware_faults:  # the same arithmetic, without the fault handling
            noise_c = self._rng.normal(0.0, ntc.noise_c, self._sensor_count)
            temp_c = self.plant.cs[k.TEMP, self._sensors]
            return TemperatureSample(now_s, *_ntc_readings(temp_c, self._ntc_offset_c, noise_c,
                                                           ntc, self._code_temp_c))  # fmt: skip
        true_c = self.plant.cell_temp_c[self._sensor_plant_cells] + self._ntc_offset_c
        true_c = true_c + self._rng.normal(0.0, ntc.noise_c, true_c.size)
        resistance = ntc.r25_ohm * np.exp(ntc.beta_k * (1.0 / (true_c + KELVIN) - 1.0 / 298.15))
        full_scale = 2**ntc.adc_bits - 1
        fraction = resistance / (resistance + ntc.pullup_ohm)
        for _, fault in self.plant.hardware_faults:
            ours = isinstance(fault, NtcFault) and fault.string == self.string
            local = fault.sensor - self._first_sensor if ours else -1
            if 0 <= local < fraction.size:
                fraction[local] = 1.0 if fault.mode == "open" else 0.0
        codes = np.round(fraction * full_scale)
        open_circuit = codes >= full_scale - NTC_RAIL_MARGIN_CODES
        short_circuit = codes <= NTC_RAIL_MARGIN_CODES
        measured = np.clip(codes, 1, full_scale - 1) / full_scale
        r_measured = ntc.pullup_ohm * measured / (1.0 - measured)
        temp_c = 1.0 / (1.0 / 298.15 + np.log(r_measured / ntc.r25_ohm) / ntc.beta_k) - KELVIN
        temp_c = self._temp_faults.apply(self.plant.hardware_faults, temp_c, now_s)
        return TemperatureSample(now_s, temp_c, open_circuit, short_circuit)

    # --- balancing --------------------------------------------------------------------------
    def set_balancing(self, mask: np.ndarray) -> None:
        """Switch bleed resistors; the board derates the duty to stay within its heat budget."""
        mask = np.asarray(mask, dtype=bool)
        if self._stays_off(mask):
            return
        voltage = self.plant.gs[k.G_VOLT, self._cells]
        conductance_s = self._derated_conductance_s(
            mask, np.add.reduce(np.where(mask, voltage * voltage, 0.0))
        )
        self.plant.set_bleed_conductance(np.where(mask, conductance_s, 0.0), self._cells)

    def _stays_off(self, mask: np.ndarray) -> bool:
        """Whether ``mask`` leaves every bleeder off, as they were (the board is at coolant
        temperature, nothing else changes)."""
        if np.count_nonzero(mask) or np.count_nonzero(self._mask):
            return False
        self.board_temp_c = float(self.plant.bus[k.COOLANT_C])
        return True

    def _derated_conductance_s(self, mask: np.ndarray, square_sum_v2: float) -> float:
        """Take ``mask``, whose cells' squared voltages add up to ``square_sum_v2``: the board's
        temperature and bleed duty follow; returns each bleeding cell's conductance."""
        spec = self.spec.balancing
        self._mask = mask
        power_w = float(square_sum_v2 / spec.bleed_resistance_ohm)
        duty = 1.0 if power_w <= spec.max_board_power_w else spec.max_board_power_w / power_w
        board_c = (
            self.plant.bus[k.COOLANT_C] + power_w * duty * spec.board_thermal_resistance_k_per_w
        )
        self.board_temp_c = float(board_c)
        span = spec.derate_stop_c - spec.derate_start_c
        duty *= min(1.0, max(0.0, (spec.derate_stop_c - board_c) / span)) if span > 0 else 1.0
        self._duty = duty
        return duty / spec.bleed_resistance_ohm

    def balancing_duty(self) -> float:
        return self._duty

    def lost_modules(self) -> int:
        return 0


def _readings_v(
    true_v: np.ndarray, gain: np.ndarray, offset_v: np.ndarray, noise_v: np.ndarray, lsb_v: float
) -> np.ndarray:
    """Cell channels' readings: gain, offset and noise, quantised by the ADC, never negative."""
    reading = true_v * gain
    reading += offset_v
    reading += noise_v
    reading /= lsb_v
    np.rint(reading, out=reading)
    reading *= lsb_v
    np.maximum(reading, 0.0, out=reading)
    return reading


def _ntc_readings(
    temp_c: np.ndarray,
    offset_c: np.ndarray,
    noise_c: np.ndarray,
    ntc,
    table: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NTC readings through the divider and ADC: (temperature, open, short)."""
    true_c = temp_c + offset_c
    true_c += noise_c
    true_c += KELVIN
    x = np.divide(1.0, true_c, out=true_c)
    x -= 1.0 / 298.15
    x *= ntc.beta_k
    resistance = np.exp(x)
    resistance *= ntc.r25_ohm
    codes = resistance + ntc.pullup_ohm
    np.divide(resistance, codes, out=codes)
    full_scale = 2**ntc.adc_bits - 1
    codes *= full_scale
    np.rint(codes, out=codes)
    open_circuit = codes >= full_scale - NTC_RAIL_MARGIN_CODES
    short_circuit = codes <= NTC_RAIL_MARGIN_CODES
    if table is not None and np.maximum.reduce(codes) <= full_scale:  # (no NaN)
        return table.take(codes.astype(np.intp)), open_circuit, short_circuit
    measured = np.maximum(codes, 1)
    np.minimum(measured, full_scale - 1, out=measured)
    measured /= full_scale
    r_measured = ntc.pullup_ohm * measured
    np.subtract(1.0, measured, out=measured)
    r_measured /= measured
    r_measured /= ntc.r25_ohm
    measured_c = np.log(r_measured)
    measured_c /= ntc.beta_k
    measured_c += 1.0 / 298.15
    np.divide(1.0, measured_c, out=measured_c)
    measured_c -= KELVIN
    return measured_c, open_circuit, short_circuit


class StringConversion(NamedTuple):
    """A string's cell channels and NTCs converted together, end to end along the string."""

    time_s: float
    voltage_v: np.ndarray
    temp_c: np.ndarray
    open_circuit: np.ndarray
    short_circuit: np.ndarray


class FrontEndBatch:
    """The slaves' front ends of one string converting together: each draws from its own
    random stream, in its own order (cell noise, its stack measurement's noise, NTC noise),
    and the arithmetic runs once over the whole string's channels, element by element as each
    front end computes it. For a healthy plant only (no hardware fault acts)."""

    def __init__(self, front_ends: list[SimulatedCellMonitor]) -> None:
        self.front_ends = front_ends
        first = front_ends[0]
        self.plant = first.plant
        self._cells = _as_slice(np.concatenate([fe.groups for fe in front_ends]))
        self._sensors = _as_slice(np.concatenate([fe._sensor_plant_cells for fe in front_ends]))
        self._gain = np.concatenate([fe._gain for fe in front_ends])
        self._offset_v = np.concatenate([fe._offset_v for fe in front_ends])
        self._ntc_offset_c = np.concatenate([fe._ntc_offset_c for fe in front_ends])
        counts = [(fe.cell_count, fe._sensor_count) for fe in front_ends]
        self._cell_counts = [c for c, _ in counts]
        self._cell_spans = _spans(self._cell_counts)
        # boards of equal cell counts over consecutive channels: their sums as rows of one
        # array (a row-wise reduce adds each row up as the row alone)
        self._rows = (len(front_ends), first.cell_count) if (
            isinstance(self._cells, slice) and len(set(self._cell_counts)) == 1
            and all(_same_cells(fe.hv.groups, fe._cells, self.plant.gs.shape[1])
                    for fe in front_ends)
        ) else None  # fmt: skip
        self._hv_gain = np.array([fe.hv.gain for fe in front_ends])
        self._conversion: StringConversion | None = None
        self._sensor_spans = _spans([s for _, s in counts])
        tables = {id(fe._code_temp_c) for fe in front_ends if fe._sensor_count}
        self.usable = len(tables) <= 1 and all(
            fe.spec == first.spec and fe.plant is first.plant for fe in front_ends
        )
        self._table = next((fe._code_temp_c for fe in front_ends if fe._sensor_count), None)

    def prepare(self, now_s: float) -> bool:
        """Convert every front end now and leave each its samples, which its next
        ``sample_voltages`` and ``sample_temperatures`` at ``now_s`` return. Call only when
        every front end will take them (each draws at once); False, and nothing drawn, where
        the batch cannot stand in (a hardware fault acts, or the conversions are not due
        together)."""
        front_ends = self.front_ends
        if not self.usable or self.plant.hardware_faults:
            return False
        first = front_ends[0]
        period = first.spec.cell_monitor.conversion_period_s
        due = [fe._last is None or now_s - fe._last.time_s >= period - 1e-9 for fe in front_ends]
        if not all(due):
            return False
        noise_v, hv_noise, noise_c = [], [], []
        for fe in front_ends:  # each front end's draws, in its order, from its own stream
            z = fe._rng.standard_normal(fe.cell_count + 2 + fe._sensor_count)
            noise_v.append(z[: fe.cell_count])
            hv_noise.append(z[fe.cell_count : fe.cell_count + 2])
            noise_c.append(z[fe.cell_count + 2 :])
        plant = self.plant
        readings = _readings_v(plant.gs[k.G_VOLT, self._cells], self._gain, self._offset_v,
                               np.concatenate(noise_v) * first._noise_v, first._lsb_v)  # fmt: skip
        ntc = first.spec.ntc
        temps = _ntc_readings(plant.cs[k.TEMP, self._sensors], self._ntc_offset_c,
                              np.concatenate(noise_c) * ntc.noise_c, ntc, self._table)  # fmt: skip
        split_v = [readings[span] for span in self._cell_spans]
        self._conversion = None
        if self._table is not None and np.isnan(temps[0]).any():
            # a front end without a NaN reads its codes from the table: convert each alone
            per_front_end = self._each_alone(noise_c)
        else:
            self._conversion = StringConversion(now_s, readings, *temps)
            split_t = [[part[span] for span in self._sensor_spans] for part in temps]
            per_front_end = list(zip(*split_t, strict=True))
        for fe, cells_v, (pack, link), temps_c in zip(
            front_ends, split_v, self._hv_readings(hv_noise), per_front_end, strict=True
        ):
            fe._last = VoltageSample(now_s, cells_v, pack, link)
            fe._prepared = TemperatureSample(now_s, *temps_c)
        return True

    def take_conversion(self, now_s: float) -> StringConversion | None:
        """The conversion ``prepare`` made at ``now_s``, string-wide, as each front end's next
        samples would give it (which it then no longer does: a later ``sample_temperatures``
        converts anew); None where there is none whole (each front end converted alone, or
        one has taken its samples)."""
        conversion, self._conversion = self._conversion, None
        if conversion is None or conversion.time_s != now_s:
            return None
        prepared = [fe._prepared for fe in self.front_ends]
        if any(sample is None or sample.time_s != now_s for sample in prepared):
            return None
        for fe in self.front_ends:
            fe._prepared = None
        return conversion

    def _hv_readings(self, noise: list[np.ndarray]) -> list[tuple[float, float]]:
        """Each front end's stack and link measurement with its two noise draws."""
        if self._rows is None:
            return [fe.hv.reading(z * HV_NOISE_V) for fe, z in zip(self.front_ends, noise,
                                                                     strict=True)]  # fmt: skip
        plant = self.plant
        stack_v = np.add.reduce(plant.gs[k.G_VOLT, self._cells].reshape(self._rows), axis=1)
        noise_v = np.array(noise) * HV_NOISE_V
        pack, link = measured_v(stack_v, plant.bus_voltage_v, self._hv_gain, noise_v[:, 0],
                                noise_v[:, 1])  # fmt: skip
        return list(zip(pack.tolist(), link.tolist(), strict=True))

    def set_balancing(self, masks: list[np.ndarray]) -> None:
        """Each front end's ``set_balancing(masks[i])``, the string's squared voltages and
        conductances worked out at once (each front end's sum over its own cells, as it adds
        them up alone)."""
        masks = [np.asarray(mask, dtype=bool) for mask in masks]
        string_mask = np.concatenate(masks)
        voltage = self.plant.gs[k.G_VOLT, self._cells]
        squares = np.where(string_mask, voltage * voltage, 0.0)
        if self._rows is not None:
            sums = np.add.reduce(squares.reshape(self._rows), axis=1).tolist()
        else:
            sums = [np.add.reduce(squares[span]) for span in self._cell_spans]
        conductance_s = np.zeros(len(masks))
        for index, (fe, mask, square_sum) in enumerate(
            zip(self.front_ends, masks, sums, strict=True)
        ):
            if not fe._stays_off(mask):  # (a board that stays off keeps zeros, as written)
                conductance_s[index] = fe._derated_conductance_s(mask, square_sum)
        every_cell = np.repeat(conductance_s, self._cell_counts)
        self.plant.set_bleed_conductance(np.where(string_mask, every_cell, 0.0), self._cells)

    def _each_alone(self, noise_c: list[np.ndarray]) -> list[tuple]:
        """Each front end's NTC readings converted on their own, with the noise drawn."""
        ntc = self.front_ends[0].spec.ntc
        sensor_c = self.plant.cs[k.TEMP, self._sensors]
        sensor_c = [sensor_c[span] for span in self._sensor_spans]
        offsets = [self._ntc_offset_c[span] for span in self._sensor_spans]
        return [
            _ntc_readings(temp_c, offset_c, noise * ntc.noise_c, ntc,
                          self._table if temp_c.size else None)
            for temp_c, offset_c, noise in zip(sensor_c, offsets, noise_c, strict=True)
        ]  # fmt: skip


def _same_cells(a: slice | np.ndarray, b: slice | np.ndarray, count: int) -> bool:
    """Whether two selections of ``count`` cells pick the same cells in the same order."""
    every = np.arange(count)
    return np.array_equal(every[a], every[b])


def _spans(counts: list[int]) -> list[slice]:
    """Consecutive slices of the given lengths."""
    ends = np.cumsum(counts).tolist()
    return [slice(end - count, end) for count, end in zip(counts, ends, strict=True)]


_CODE_TABLES: dict[tuple, np.ndarray | None] = {}
CODE_TABLE_MAX_BITS = 16


def _code_temperatures(ntc) -> np.ndarray | None:
    """The temperature each ADC code reads as, by the same arithmetic as a conversion (one
    table per NTC spec); None for ADCs too fine to tabulate."""
    key = (ntc.adc_bits, ntc.pullup_ohm, ntc.r25_ohm, ntc.beta_k)
    if key not in _CODE_TABLES:
        table = None
        if ntc.adc_bits <= CODE_TABLE_MAX_BITS:
            full_scale = 2**ntc.adc_bits - 1
            codes = np.arange(full_scale + 1, dtype=float)
            measured = np.clip(codes, 1, full_scale - 1) / full_scale
            r_measured = ntc.pullup_ohm * measured / (1.0 - measured)
            table = 1.0 / (1.0 / 298.15 + np.log(r_measured / ntc.r25_ohm) / ntc.beta_k) - KELVIN
        _CODE_TABLES[key] = table
    return _CODE_TABLES[key]


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """Evenly spaced increasing indices as a slice (a view instead of a gather), else as given."""
    indices = np.asarray(indices)
    if indices.size == 0:
        return indices
    first = int(indices[0])
    if indices.size == 1:
        return slice(first, first + 1)
    step = int(indices[1]) - first
    if step > 0 and np.array_equal(indices, first + step * np.arange(indices.size)):
        return slice(first, int(indices[-1]) + 1, step)
    return indices
