"""Two-dimensional lookup tables over state of charge and temperature."""

from __future__ import annotations

import itertools

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator


def _strictly_increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


class Table2D(BaseModel):
    """Values on a grid: one row per temperature, one column per state of charge.

    Lookups interpolate linearly and hold the edge values outside the grid.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    soc_points: list[float]
    temp_points_c: list[float]
    values: list[list[float]]

    @model_validator(mode="after")
    def _check_grid(self) -> Table2D:
        if len(self.soc_points) < 2 or not _strictly_increasing(self.soc_points):
            raise ValueError("soc_points must hold at least 2 strictly increasing values")
        if self.soc_points[0] < 0.0 or self.soc_points[-1] > 1.0:
            raise ValueError(
                f"soc_points must lie within 0..1 (got {self.soc_points[0]}..{self.soc_points[-1]})"
            )
        if not self.temp_points_c or not _strictly_increasing(self.temp_points_c):
            raise ValueError("temp_points_c must hold strictly increasing values")
        if len(self.values) != len(self.temp_points_c):
            raise ValueError(
                f"values has {len(self.values)} rows but there are "
                f"{len(self.temp_points_c)} temp_points_c"
            )
        for row_index, row in enumerate(self.values):
            if len(row) != len(self.soc_points):
                raise ValueError(
                    f"values row {row_index} has {len(row)} entries but there are "
                    f"{len(self.soc_points)} soc_points"
                )
        if not np.all(np.isfinite(np.asarray(self.values))):
            raise ValueError("values must be finite numbers")
        return self

    def as_array(self) -> np.ndarray:
        """The values as a (temperature, soc) array."""
        return np.asarray(self.values, dtype=float)

    def resample(self, soc_grid: np.ndarray, temp_grid_c: np.ndarray) -> np.ndarray:
        """Values bilinearly resampled onto new grids, as a (temperature, soc) array."""
        by_soc = np.array([np.interp(soc_grid, self.soc_points, row) for row in self.values])
        return np.array(
            [np.interp(temp_grid_c, self.temp_points_c, by_soc[:, j]) for j in range(soc_grid.size)]
        ).T

    def lookup(self, soc: np.ndarray | float, temp_c: np.ndarray | float) -> np.ndarray:
        """Bilinear interpolation at the given points (arrays broadcast together)."""
        soc_arr, temp_arr = np.broadcast_arrays(np.asarray(soc, float), np.asarray(temp_c, float))
        table = self.as_array()
        soc_axis = np.asarray(self.soc_points)
        temp_axis = np.asarray(self.temp_points_c)
        by_temp = np.stack([np.interp(soc_arr, soc_axis, row) for row in table])
        if temp_axis.size == 1:
            return by_temp[0]
        position = np.clip(np.interp(temp_arr, temp_axis, np.arange(temp_axis.size)), 0, None)
        lower = np.minimum(np.floor(position).astype(int), temp_axis.size - 2)
        weight = position - lower
        picked_low = np.take_along_axis(by_temp, lower[None, ...], axis=0)[0]
        picked_high = np.take_along_axis(by_temp, (lower + 1)[None, ...], axis=0)[0]
        return picked_low * (1.0 - weight) + picked_high * weight
