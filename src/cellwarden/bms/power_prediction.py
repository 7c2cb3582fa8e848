"""State of power: the constant current each cell could carry for 2, 10 or 30 s without its
voltage crossing the operating limits, predicted from the two-RC model and the present state."""

from __future__ import annotations

import numpy as np

from cellwarden.bms.cell_model import CellPoint

HORIZONS_S = (2.0, 10.0, 30.0)


def current_limits(
    point: CellPoint,
    v1: np.ndarray,
    v2: np.ndarray,
    capacity_ah: float,
    voltage_min_v: float,
    voltage_max_v: float,
    horizons_s: tuple[float, ...] = HORIZONS_S,
) -> list[tuple[float, float]]:
    """Per horizon, the (charge, discharge) current magnitudes the weakest cell allows over it.

    With the OCV linear over the horizon, the voltage after t seconds at constant current I is
    OCV + v1·e^(-t/τ1) + v2·e^(-t/τ2) + I·(R0 + R1(1 − e^(-t/τ1)) + R2(1 − e^(-t/τ2))
    + dOCV/dSoC · t / (3600 Q)), which is solved for I at each limit (every horizon at once,
    one row each).
    """
    horizon_s = np.array(horizons_s, dtype=float)[:, None]
    d1, d2 = np.exp(-horizon_s / point.tau1_s), np.exp(-horizon_s / point.tau2_s)
    free = point.ocv_v + v1 * d1 + v2 * d2
    resistance = (
        point.r0_ohm
        + point.r1_ohm * (1 - d1)
        + point.r2_ohm * (1 - d2)
        + point.ocv_slope_v * horizon_s / (3600.0 * capacity_ah)
    )
    charge = np.maximum((voltage_max_v - free) / resistance, 0.0).min(axis=1)
    discharge = np.maximum((free - voltage_min_v) / resistance, 0.0).min(axis=1)
    return list(zip(charge.tolist(), discharge.tolist(), strict=True))
