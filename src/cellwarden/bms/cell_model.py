"""The BMS's own model of its series cells: OCV, hysteresis and the two-RC circuit.

It is built from the cell's configuration (nominal values), never from the plant: the real
cells differ from it by their spread, their ageing and whatever the datasheet got wrong.
All tables sit on one uniform grid, so one lookup gives every quantity of every cell. The
lookup runs compiled (``bms.soc_kernel``, the same numbers to the last bit) where numba is
installed; the NumPy code here is its reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.bms import soc_kernel as kernel
from cellwarden.bms.soc_kernel import (
    DEEP_DISCHARGE_SLOPE_V,
    ENERGY,
    NAN_STATE,
    OCV_CHARGE,
    OCV_DISCHARGE,
    OVERCHARGE_SLOPE_V,
    R0,
    R1,
    R2,
    TAU1,
    TAU2,
)
from cellwarden.compiled import HAVE_NUMBA
from cellwarden.model.cell import CellSpec
from cellwarden.model.tables import Table2D

SOC_POINTS = 201  # uniform SoC grid, 0.5 % apart
TEMP_STEP_C = 5.0  # uniform temperature grid from -40 to 85 °C


def _scaled(cell: CellSpec, name: str) -> Table2D:
    value = getattr(cell, name)
    if isinstance(value, Table2D):
        return value
    shape = (
        cell.chemistry.time_constant_factor
        if name.startswith("tau")
        else cell.chemistry.resistance_factor
    )
    return Table2D(
        soc_points=shape.soc_points,
        temp_points_c=shape.temp_points_c,
        values=(np.asarray(shape.values) * value).tolist(),
    )


@dataclass(frozen=True)
class CellPoint:
    """Every model quantity of every cell at one (SoC, temperature, hysteresis) state."""

    ocv_v: np.ndarray
    ocv_slope_v: np.ndarray  # per unit SoC
    half_gap_v: np.ndarray  # half the distance between the charge and discharge branches
    r0_ohm: np.ndarray
    r1_ohm: np.ndarray
    tau1_s: np.ndarray
    r2_ohm: np.ndarray
    tau2_s: np.ndarray
    energy_wh: np.ndarray  # released down to empty at low current


class CellModel:
    """Vectorised lookups for a series element of ``parallel`` cells; ``use_numba`` runs the
    lookup compiled (bit-identical)."""

    def __init__(self, cell: CellSpec, parallel: int = 1, use_numba: bool = HAVE_NUMBA) -> None:
        self.use_numba = use_numba
        self.cell = cell
        self.parallel = parallel
        self.capacity_ah = cell.capacity_ah * parallel
        chem = cell.chemistry
        self.hysteresis_rate = chem.hysteresis_rate
        self.soc_grid = np.linspace(0.0, 1.0, SOC_POINTS)
        self.temp_grid_c = np.arange(-40.0, 85.1, TEMP_STEP_C)

        def on_grid(table: Table2D) -> np.ndarray:
            return table.resample(self.soc_grid, self.temp_grid_c)

        discharge = on_grid(chem.ocv_v)
        charge = on_grid(chem.ocv_charge_v or chem.ocv_v)
        mid = 0.5 * (discharge + charge)
        steps = 0.5 * (mid[:, 1:] + mid[:, :-1]) * np.diff(self.soc_grid)
        energy = np.concatenate([np.zeros((mid.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
        circuit = [
            on_grid(_scaled(cell, name))
            for name in ("r0_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")
        ]
        self._stack = np.stack([discharge, charge, *circuit, energy])
        self._stack[[R0, R1, R2]] /= parallel
        self._stack[ENERGY] *= self.capacity_ah
        # for lookups: each quantity's grid flattened (temperature-major), and the flat offsets
        # of a grid square's corners (k, j), (k + 1, j), (k, j + 1), (k + 1, j + 1)
        n_soc = self.soc_grid.size
        self._flat = self._stack.reshape(self._stack.shape[0], -1)
        self._corner_offsets = np.array([0, n_soc, 1, n_soc + 1])
        # the compiled lookup reads the same numbers grid point by grid point: a cell's
        # quantities at one corner then share a cache line
        self.tables = kernel.CellTables(
            np.ascontiguousarray(self._flat.T),
            n_soc,
            self.temp_grid_c.size,
            float(self.temp_grid_c[0]),
            TEMP_STEP_C,
        )
        if cell.taper_resistance_ohm is not None:
            self.taper_resistance_ohm = cell.taper_resistance_ohm / parallel
        else:
            full = self.at(np.array([1.0]), np.array([25.0]), 1.0)
            self.taper_resistance_ohm = float((full.r0_ohm + full.r1_ohm + full.r2_ohm)[0])

    def at(self, soc: np.ndarray, temp_c: np.ndarray, hyst: np.ndarray | float = 0.0) -> CellPoint:
        """All quantities at each cell's state, from one bilinear lookup (compiled or NumPy).

        A NaN SoC or temperature is an error (``ValueError``)."""
        if not self.use_numba:
            return self._at_numpy(soc, temp_c, hyst)
        soc, temp_c, hyst = (np.asarray(v, dtype=float) for v in (soc, temp_c, hyst))
        shape = soc.shape
        if temp_c.shape != shape or hyst.shape != shape:
            shape = np.broadcast_shapes(shape, temp_c.shape, hyst.shape)
        values = kernel.cell_points(
            self.tables,
            kernel.cell_array(soc, shape),
            kernel.cell_array(temp_c, shape),
            kernel.cell_array(hyst, shape),
        )
        return CellPoint(*values.reshape((kernel.POINT_QUANTITIES, *shape)))

    def _at_numpy(self, soc: np.ndarray, temp_c: np.ndarray, hyst: np.ndarray | float) -> CellPoint:
        """``at`` vectorised with NumPy: the reference of ``soc_kernel.point_at``."""
        soc = np.asarray(soc, float)
        n_soc, n_temp = self.soc_grid.size, self.temp_grid_c.size
        x = np.clip(soc, 0.0, 1.0) * (n_soc - 1)
        y = np.clip(
            (np.asarray(temp_c, float) - self.temp_grid_c[0]) / TEMP_STEP_C, 0.0, n_temp - 1.0
        )
        if np.isnan(x).any() or np.isnan(y).any():
            raise ValueError(NAN_STATE)
        j = np.minimum(x.astype(np.int64), n_soc - 2)
        fx = x - j
        k = np.minimum(y.astype(np.int64), n_temp - 2)
        fy = y - k
        # the four corners of every cell's grid square, gathered in one go from the flat table
        corners = self._flat.take(np.add.outer(self._corner_offsets, k * n_soc + j), axis=1)
        gy = 1 - fy
        low = gy * corners[:, 0] + fy * corners[:, 1]
        high = gy * corners[:, 2] + fy * corners[:, 3]
        value = low + fx * (high - low)
        slope = (high - low) * (n_soc - 1)
        hyst = np.asarray(hyst, float)
        ocv = 0.5 * (value[OCV_DISCHARGE] + value[OCV_CHARGE]) + 0.5 * hyst * (
            value[OCV_CHARGE] - value[OCV_DISCHARGE]
        )
        ocv_slope = 0.5 * (slope[OCV_DISCHARGE] + slope[OCV_CHARGE]) + 0.5 * hyst * (
            slope[OCV_CHARGE] - slope[OCV_DISCHARGE]
        )
        over, under = soc > 1.0, soc < 0.0
        ocv = ocv + np.where(over, (soc - 1.0) * OVERCHARGE_SLOPE_V, 0.0)
        ocv = ocv + np.where(under, soc * DEEP_DISCHARGE_SLOPE_V, 0.0)
        ocv_slope = np.where(
            over, OVERCHARGE_SLOPE_V, np.where(under, DEEP_DISCHARGE_SLOPE_V, ocv_slope)
        )
        return CellPoint(
            ocv_v=ocv,
            ocv_slope_v=ocv_slope,
            half_gap_v=0.5 * (value[OCV_CHARGE] - value[OCV_DISCHARGE]),
            r0_ohm=value[R0],
            r1_ohm=value[R1],
            tau1_s=value[TAU1],
            r2_ohm=value[R2],
            tau2_s=value[TAU2],
            energy_wh=value[ENERGY],
        )

    def soc_from_ocv(self, ocv_v: np.ndarray, temp_c: np.ndarray, hyst: np.ndarray | float):
        """Inverse of the OCV within 0..1 (OCV rises with SoC), vectorised over cells."""
        grid = self.soc_grid
        shape = np.shape(ocv_v)
        temp = np.broadcast_to(np.asarray(temp_c, float), shape).ravel()
        h = np.broadcast_to(np.asarray(hyst, float), shape).ravel()
        cells = temp.size
        curves = self.at(
            np.broadcast_to(grid, (cells, grid.size)).ravel(),
            np.repeat(temp, grid.size),
            np.repeat(h, grid.size),
        ).ocv_v.reshape(cells, grid.size)
        target = np.asarray(ocv_v, float).ravel()[:, None]
        j = np.clip((curves < target).sum(axis=1) - 1, 0, grid.size - 2)
        rows = np.arange(cells)
        low, high = curves[rows, j], curves[rows, j + 1]
        fraction = np.clip((target[:, 0] - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
        return grid[j] + fraction * (grid[j + 1] - grid[j])
