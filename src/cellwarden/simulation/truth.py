"""Ground-truth referee: extremes of every cell and time spent beyond the maximum safety limits.

The plant's kernel keeps the watch at every step (voltages) and every thermal update
(temperatures); this monitor reads it out and logs when a cell first goes beyond a limit. It
reads the plant directly — it is the referee, never part of the BMS.
"""

from __future__ import annotations

import numpy as np

from cellwarden.plant import kernel as k
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.events import EventLog


class GroundTruthMonitor:
    """Reads the kernel's truth watch and raises an event when a cell first leaves its limits."""

    def __init__(self, plant: SystemPlant, events: EventLog) -> None:
        self.plant = plant
        self.events = events
        self._reported = np.zeros(plant.layout.cell_count, dtype=bool)

    @property
    def seconds_beyond_msl(self) -> np.ndarray:
        """Per cell: time its voltage or temperature spent beyond a maximum safety limit."""
        plant = self.plant
        voltage_s = plant.gs[k.G_BEYOND_S, plant.layout.cell_group]
        return voltage_s + plant.cs[k.TEMP_BEYOND_S]

    @property
    def cell_voltage_range_v(self) -> tuple[float, float]:
        gs = self.plant.gs
        return float(gs[k.G_V_MIN_SEEN].min()), float(gs[k.G_V_MAX_SEEN].max())

    @property
    def cell_temp_range_c(self) -> tuple[float, float]:
        cs = self.plant.cs
        return float(cs[k.TEMP_MIN_SEEN].min()), float(cs[k.TEMP_MAX_SEEN].max())

    def observe(self) -> None:
        """Log cells that went beyond a maximum safety limit since the last look."""
        plant = self.plant
        newly = (self.seconds_beyond_msl > 0) & ~self._reported
        for cell in np.flatnonzero(newly):
            position = plant.layout.position(int(cell)).label()
            self.events.add(
                plant.time_s,
                "truth",
                "TRUTH_BEYOND_MSL",
                f"cell {position} went beyond a maximum safety limit",
                cell=int(cell),
                voltage_v=float(plant.cell_voltage_v[cell]),
                temp_c=float(plant.cell_temp_c[cell]),
            )
        self._reported |= newly
