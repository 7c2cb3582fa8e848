"""State of power: the current each horizon allows brings the weakest cell to its voltage
limit at the end of the horizon, and no cell beyond it. Checked by integrating the two-RC
model step by step (an independent solution of the same equations) from each cell's state."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cellwarden.bms.cell_model import CellModel
from cellwarden.bms.power_prediction import HORIZONS_S, current_limits
from cellwarden.model.library import load_cell

CELL = "lfp-prismatic-280ah"
STEPS = 20_000


def _voltage_after(point, v1, v2, capacity_ah, current_a, horizon_s):
    """Each cell's terminal voltage after ``horizon_s`` at ``current_a`` (positive charges),
    by exponential-Euler steps of the RC pairs and the OCV moving with the charge counted."""
    dt_s = horizon_s / STEPS
    for _ in range(STEPS):
        v1 = v1 + (point.r1_ohm * current_a - v1) * (1 - np.exp(-dt_s / point.tau1_s))
        v2 = v2 + (point.r2_ohm * current_a - v2) * (1 - np.exp(-dt_s / point.tau2_s))
    ocv = point.ocv_v + point.ocv_slope_v * current_a * horizon_s / (3600.0 * capacity_ah)
    return ocv + v1 + v2 + point.r0_ohm * current_a


@pytest.mark.parametrize("seed", range(3))
def test_each_horizons_current_brings_the_weakest_cell_to_its_limit(seed):
    rng = np.random.default_rng(seed)
    cell = load_cell(CELL)
    model = CellModel(cell)
    cells = 12
    soc, temp_c = rng.uniform(0.1, 0.9, cells), rng.uniform(0.0, 40.0, cells)
    point = model.at(soc, temp_c)
    v1, v2 = rng.normal(0.0, 0.01, cells), rng.normal(0.0, 0.01, cells)
    volts = cell.effective_limits.cell_voltage_v
    low_v, high_v = volts.lower.mol, volts.upper.mol
    limits = current_limits(point, v1, v2, model.capacity_ah, low_v, high_v)
    assert len(limits) == len(HORIZONS_S)
    for horizon_s, (charge_a, discharge_a) in zip(HORIZONS_S, limits, strict=True):
        assert charge_a > 0 and discharge_a > 0
        charged = _voltage_after(point, v1, v2, model.capacity_ah, charge_a, horizon_s)
        assert charged.max() == pytest.approx(high_v, abs=1e-4)
        assert (charged <= high_v + 1e-4).all()
        drained = _voltage_after(point, v1, v2, model.capacity_ah, -discharge_a, horizon_s)
        assert drained.min() == pytest.approx(low_v, abs=1e-4)
        assert (drained >= low_v - 1e-4).all()
    # a longer horizon never allows more (the RC pairs charge up, the OCV moves on)
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in itertools.pairwise(limits))


def test_a_cell_already_past_a_limit_allows_nothing_that_way():
    cell = load_cell(CELL)
    model = CellModel(cell)
    point = model.at(np.array([0.5, 0.5]), np.array([25.0, 25.0]))
    volts = cell.effective_limits.cell_voltage_v
    v1 = np.array([0.0, volts.upper.mol])  # the second cell's RC voltage alone is past the top
    (charge_a, discharge_a), *_ = current_limits(
        point, v1, np.zeros(2), model.capacity_ah, volts.lower.mol, volts.upper.mol
    )
    assert charge_a == 0.0 and discharge_a > 0.0
