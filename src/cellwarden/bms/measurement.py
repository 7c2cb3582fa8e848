"""Measurements as the BMS sees them, and the plausibility checks that decide what to trust."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.hardware.interfaces import TemperatureSample, VoltageSample
from cellwarden.model.bms import DiagnosisSettings


@dataclass(frozen=True)
class CellTemperatures:
    """Sensor readings spread onto cells: each cell takes its nearest working sensor."""

    cell_temp_c: np.ndarray
    sensor_ok: np.ndarray


class TemperatureMap:
    """Spreads sensor readings onto cells: each cell takes its nearest working sensor."""

    def __init__(self, sensor_cells: np.ndarray, cell_count: int) -> None:
        self.sensor_cells = sensor_cells
        self.cell_count = cell_count
        self._ok: np.ndarray | None = None
        self._nearest = np.zeros(cell_count, dtype=np.int64)

    def apply(self, sample: TemperatureSample) -> CellTemperatures:
        ok = ~(sample.open_circuit | sample.short_circuit)
        if not ok.any():
            return CellTemperatures(np.full(self.cell_count, np.nan), ok)
        if self._ok is None or not np.array_equal(ok, self._ok):
            working = np.flatnonzero(ok)
            cells = np.arange(self.cell_count)[:, None]
            distance = np.abs(cells - self.sensor_cells[working][None, :])
            self._nearest = working[distance.argmin(axis=1)]
            self._ok = ok
        return CellTemperatures(sample.temp_c[self._nearest], ok)


class FrozenValueDetector:
    """A reading that repeats exactly for many samples is stuck: real ADCs always flicker."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self._last: float | None = None
        self._repeats = 0

    def update(self, value: float) -> bool:
        self._repeats = self._repeats + 1 if value == self._last else 0
        self._last = value
        return self._repeats >= self.samples


class Plausibility:
    """Checks that compare independent measurements and physical rates of change."""

    def __init__(self, settings: DiagnosisSettings, resistance_bound_ohm: float) -> None:
        self.resistance_bound_ohm = resistance_bound_ohm
        self.current_frozen = FrozenValueDetector(settings.frozen_current_samples)
        self.configure(settings)
        self._last: tuple[VoltageSample, float] | None = None

    def configure(self, settings: DiagnosisSettings) -> None:
        """Take (new) settings; the frozen-sensor count follows."""
        self.settings = settings
        self.current_frozen.samples = settings.frozen_current_samples

    def pack_sum_error_pct(self, sample: VoltageSample) -> float:
        """Mismatch between the sum of cell channels and the independent stack measurement."""
        total = float(sample.cell_voltage_v.sum())
        return 100.0 * abs(total - sample.pack_voltage_v) / max(sample.pack_voltage_v, 1.0)

    def cell_rate_v_per_s(self, sample: VoltageSample, current_a: float) -> float:
        """Fastest cell-voltage change beyond what a current step can explain (0 if none).

        A current step moves every cell by at most ``resistance_bound_ohm`` times the step;
        whatever moves faster than that is not the cell.
        """
        last = self._last
        self._last = (sample, current_a)
        if last is None or sample.time_s <= last[0].time_s:
            return 0.0
        step_v = np.abs(sample.cell_voltage_v - last[0].cell_voltage_v)
        explained_v = self.resistance_bound_ohm * abs(current_a - last[1])
        excess = np.maximum(step_v - explained_v, 0.0) / (sample.time_s - last[0].time_s)
        return float(excess.max())

    def current_is_frozen(self, current_a: float) -> bool:
        return self.current_frozen.update(current_a)
