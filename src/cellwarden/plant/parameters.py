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


def refresh_impedance(
    cp: np.ndarray,
    impedance: np.ndarray,
    cell_type: np.ndarray,
    soc: np.ndarray,
    temp_c: np.ndarray,
    resistance_scale: np.ndarray,
    dt_s: float,
) -> None:
    """Look up every cell's circuit at its SoC and temperature and discretise it for dt_s."""
    values = [k.bilinear_numpy(impedance[f], cell_type, soc, temp_c) for f in range(5)]
    r0, r1, tau1, r2, tau2 = values
    cp[k.R0] = r0 * resistance_scale
    cp[k.R1] = r1 * resistance_scale
    cp[k.R2] = r2 * resistance_scale
    for rate_row, mean_row, tau in ((k.A1, k.G1, tau1), (k.A2, k.G2, tau2)):
        ratio = dt_s / np.maximum(tau, 1e-6)
        cp[rate_row] = np.exp(-ratio)
        cp[mean_row] = -np.expm1(-ratio) / ratio
    effective = cp[k.R0] + cp[k.R1] * (1.0 - cp[k.G1]) + cp[k.R2] * (1.0 - cp[k.G2])
    cp[k.COND] = 1.0 / effective


def refresh_thermal(cp: np.ndarray, dt_s: float) -> None:
    """Decay factor of each cell's exact thermal relaxation over dt_s."""
    g_sum = cp[k.COOL_G] + cp[k.NB_LEFT] + cp[k.NB_RIGHT]
    cp[k.THERM_DECAY] = np.exp(-dt_s * g_sum / cp[k.HEAT_CAP])
