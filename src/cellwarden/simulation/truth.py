"""Ground-truth watch: extremes of every cell and time spent beyond the maximum safety limits.

This reads the plant directly — it is the referee, never part of the BMS.
"""

from __future__ import annotations

import numpy as np

from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.events import EventLog


class GroundTruthMonitor:
    """Tracks extremes and maximum-safety-limit excursions at every runner stop."""

    def __init__(self, plant: SystemPlant, events: EventLog) -> None:
        self.plant = plant
        self.events = events
        types = plant.layout.cell_types
        cell_type = plant.layout.cell_type

        def per_cell(getter) -> np.ndarray:
            return np.array([getter(c.effective_limits) for c in types])[cell_type]

        self.voltage_max_v = per_cell(lambda lim: lim.cell_voltage_v.upper.msl)
        self.voltage_min_v = per_cell(lambda lim: lim.cell_voltage_v.lower.msl)
        self.temp_max_c = per_cell(lambda lim: lim.discharge_temp_c.upper.msl)
        self.temp_min_c = per_cell(lambda lim: lim.discharge_temp_c.lower.msl)
        n = plant.layout.cell_count
        self.seconds_beyond_msl = np.zeros(n)
        self._beyond = np.zeros(n, dtype=bool)
        self.cell_voltage_range_v = [np.inf, -np.inf]
        self.cell_temp_range_c = [np.inf, -np.inf]
        self.soc_range = [np.inf, -np.inf]
        self._last_time_s = 0.0

    def observe(self) -> None:
        """Take the plant's present state into account."""
        plant = self.plant
        now_s = plant.time_s
        voltage = plant.cell_voltage_v
        temp = plant.cell_temp_c
        _widen(self.cell_voltage_range_v, voltage)
        _widen(self.cell_temp_range_c, temp)
        _widen(self.soc_range, plant.soc)
        beyond = (
            (voltage > self.voltage_max_v)
            | (voltage < self.voltage_min_v)
            | (temp > self.temp_max_c)
            | (temp < self.temp_min_c)
        )
        self.seconds_beyond_msl += np.where(beyond & self._beyond, now_s - self._last_time_s, 0.0)
        for cell in np.flatnonzero(beyond & ~self._beyond):
            position = plant.layout.position(int(cell)).label()
            self.events.add(
                now_s,
                "truth",
                "TRUTH_BEYOND_MSL",
                f"cell {position} beyond a maximum safety limit",
                cell=int(cell),
                voltage_v=float(voltage[cell]),
                temp_c=float(temp[cell]),
            )
        self._beyond = beyond
        self._last_time_s = now_s


def _widen(extremes: list[float], values: np.ndarray) -> None:
    extremes[0] = min(extremes[0], float(values.min()))
    extremes[1] = max(extremes[1], float(values.max()))
