"""Cell-type tables on the kernel's uniform grid, and the per-cell parameter refresh."""

from __future__ import annotations

import numpy as np

from cellwarden.model.cell import CellSpec
from cellwarden.model.tables import Table2D
from cellwarden.plant import kernel as k

IMPEDANCE_FIELDS = ("r0_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")
_RESISTANCES = {"r0_ohm", "r1_ohm", "r2_ohm"}


def _on_grid(table: Table2D) -> np.ndarray:
    return table.resample(k.soc_grid(), k.temp_grid_c())


def ocv_tables(cell_types: tuple[CellSpec, ...]) -> np.ndarray:
    """(type, {mid, half-gap}, T, SoC): OCV = mid + hysteresis_state * half_gap."""
    stack = np.empty((len(cell_types), 2, k.N_TEMP_GRID, k.N_SOC_GRID))
    for index, cell in enumerate(cell_types):
        discharge = _on_grid(cell.chemistry.ocv_v)
        charge = (
            discharge
            if cell.chemistry.ocv_charge_v is None
            else _on_grid(cell.chemistry.ocv_charge_v)
        )
        stack[index, 0] = 0.5 * (charge + discharge)
        stack[index, 1] = 0.5 * (charge - discharge)
    return stack


def impedance_tables(cell_types: tuple[CellSpec, ...]) -> np.ndarray:
    """(field, type, T, SoC) for r0, r1, tau1, r2, tau2 of every cell type.

    A scalar parameter is its 25 °C / 50 % value times the chemistry's shape factor.
    """
    stack = np.empty((len(IMPEDANCE_FIELDS), len(cell_types), k.N_TEMP_GRID, k.N_SOC_GRID))
    for t, cell in enumerate(cell_types):
        for f, name in enumerate(IMPEDANCE_FIELDS):
            value = getattr(cell, name)
            if isinstance(value, Table2D):
                stack[f, t] = _on_grid(value)
            else:
                shape = (
                    cell.chemistry.resistance_factor
                    if name in _RESISTANCES
                    else cell.chemistry.time_constant_factor
                )
                stack[f, t] = value * _on_grid(shape)
    return stack
