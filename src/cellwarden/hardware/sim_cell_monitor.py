"""A simulated cell-monitor front end over one string of the plant."""

from __future__ import annotations

import numpy as np

from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.hardware.sensor_faults import StuckAndDrift
from cellwarden.hardware.sim_hv_measurement import SimulatedHvMeasurement
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

    # --- voltages ---------------------------------------------------------------------------
    def sample_voltages(self, now_s: float) -> VoltageSample:
        """The latest conversion; a new one starts every ``conversion_period_s``."""
        period = self.spec.cell_monitor.conversion_period_s
        if self._last is not None and now_s - self._last.time_s < period - 1e-9:
            return self._last
        self._last = self._convert(now_s)
        return self._last

    def _convert(self, now_s: float) -> VoltageSample:
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
        """Channels next to an open sense wire (the front end's current-source test)."""
        flags = np.zeros(self.cell_count, dtype=bool)
        for wire in self._open_wires():
            for channel in (wire - 1, wire):
                if 0 <= channel < self.cell_count:
                    flags[channel] = True
        return flags

    # --- temperatures -----------------------------------------------------------------------
    def sample_temperatures(self, now_s: float) -> TemperatureSample:
        """NTC readings through the divider and ADC, with rail checks for open and short."""
        ntc = self.spec.ntc
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
        spec = self.spec.balancing
        mask = np.asarray(mask, dtype=bool)
        if not mask.any() and not self._mask.any():  # all off, and already off
            self.board_temp_c = float(self.plant.bus[k.COOLANT_C])
            return
        self._mask = mask
        voltage = self.plant.gs[k.G_VOLT, self.groups]
        power_w = float(np.sum(np.where(self._mask, voltage**2, 0.0)) / spec.bleed_resistance_ohm)
        duty = 1.0 if power_w <= spec.max_board_power_w else spec.max_board_power_w / power_w
        board_c = (
            self.plant.bus[k.COOLANT_C] + power_w * duty * spec.board_thermal_resistance_k_per_w
        )
        self.board_temp_c = float(board_c)
        span = spec.derate_stop_c - spec.derate_start_c
        duty *= min(1.0, max(0.0, (spec.derate_stop_c - board_c) / span)) if span > 0 else 1.0
        self._duty = duty
        conductance = self.plant.gs[k.G_BLEED_G].copy()
        conductance[self.groups] = np.where(self._mask, duty / spec.bleed_resistance_ohm, 0.0)
        self.plant.set_bleed_conductance(conductance)

    def balancing_duty(self) -> float:
        return self._duty

    def lost_modules(self) -> int:
        return 0
