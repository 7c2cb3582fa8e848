"""Time series of a run at the log rate: pack-level columns, and per-cell ones for small systems."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cellwarden.plant import kernel as k
from cellwarden.plant.system_plant import SystemPlant

PER_CELL_LIMIT = 512  # systems up to this many cells also log every cell


class Recorder:
    """Collects one row per log tick; a row at time t holds the plant step that ends at t."""

    def __init__(
        self,
        plant: SystemPlant,
        per_cell: bool | None = None,
        telemetry: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.plant = plant
        self.telemetry = telemetry
        self.per_cell = plant.layout.cell_count <= PER_CELL_LIMIT if per_cell is None else per_cell
        self.rows: list[dict[str, float]] = []
        self.cell_rows: list[np.ndarray] = []
        self.cell_times: list[float] = []

    def record(self) -> None:
        plant = self.plant
        voltage = plant.cell_voltage_v
        temp = plant.cell_temp_c
        soc = plant.soc
        string_current = plant.string_current_a
        row = {
            "time_s": plant.time_s,
            "bus_voltage_v": plant.bus_voltage_v,
            "pack_voltage_v": float(plant.string_voltage_v.max()),
            "pack_current_a": float(plant.bs[k.B_CURRENT].sum()),
            "load_current_a": plant.load_current_a,
            "charger_current_a": plant.charger_current_a,
            "cell_voltage_min_v": float(voltage.min()),
            "cell_voltage_mean_v": float(voltage.mean()),
            "cell_voltage_max_v": float(voltage.max()),
            "cell_temp_min_c": float(temp.min()),
            "cell_temp_mean_c": float(temp.mean()),
            "cell_temp_max_c": float(temp.max()),
            "soc_min_pct": 100.0 * float(soc.min()),
            "soc_mean_pct": 100.0 * float(soc.mean()),
            "soc_max_pct": 100.0 * float(soc.max()),
        }
        if self.telemetry is not None:
            row.update(self.telemetry())
        if string_current.size > 1:
            for index, current in enumerate(string_current):
                row[f"string{index + 1}_current_a"] = float(current)
        self.rows.append(row)
        if self.per_cell:
            self.cell_times.append(plant.time_s)
            self.cell_rows.append(np.concatenate([voltage, temp, soc]).astype(np.float32))

    def pack_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def cell_frame(self) -> pd.DataFrame | None:
        """Per-cell columns ``v_<label>``, ``t_<label>``, ``soc_<label>``, or None."""
        if not self.per_cell or not self.cell_rows:
            return None
        layout = self.plant.layout
        labels = [layout.position(i).label() for i in range(layout.cell_count)]
        columns = [f"{kind}_{label}" for kind in ("v", "t", "soc") for label in labels]
        frame = pd.DataFrame(np.vstack(self.cell_rows), columns=columns)
        frame.insert(0, "time_s", self.cell_times)
        return frame
