"""Full-charge recognition needs a real CV taper; a rest re-anchors without double counting."""

from __future__ import annotations

import numpy as np

from cellwarden.bms.cell_model import CellModel
from cellwarden.bms.recalibration import Recalibration
from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.model.bms import EstimationSettings
from cellwarden.model.library import load_cell

CELL = load_cell("nmc-21700-5ah")
LIMIT_V = CELL.effective_limits.cell_voltage_v.upper.mol
CAPACITY_AH = CELL.capacity_ah


def _run(currents_a: list[float], voltages_v: list[float]) -> list[bool]:
    """Feed 1 s samples to a recalibration over a started estimator; the rows marked full."""
    settings = EstimationSettings()
    estimator = SocEstimator(CellModel(CELL), 1, settings, 0.005)
    estimator.start(np.array([voltages_v[0]]), np.array([25.0]), 0.0, True)
    recalibration = Recalibration(estimator, settings, CAPACITY_AH, LIMIT_V)
    temp = np.array([25.0])
    return [
        recalibration.update(1.0, current, np.array([voltage]), temp).full is not None
        for current, voltage in zip(currents_a, voltages_v, strict=True)
    ]


def test_a_cc_cv_charge_is_recognised_once_at_its_taper():
    taper = [2.5 * np.exp(-n / 60.0) for n in range(300)]  # C/2 falling to ~C/700
    currents = [2.5] * 60 + taper + [0.0] * 60
    voltages = [LIMIT_V - 0.05] * 30 + [LIMIT_V] * (len(currents) - 30)
    marked = _run(currents, voltages)
    assert sum(marked) == 1
    row = marked.index(True)
    assert currents[row] < 0.05 * CAPACITY_AH  # below the taper current: not before


def test_regenerative_braking_near_the_top_is_not_a_full_charge():
    """Minutes of small, steady regeneration at the limit, then stopping: no taper."""
    currents = ([-2.0] * 20 + [0.2] * 45) * 4 + [0.0] * 60
    voltages = [LIMIT_V - 0.05 if c < 0 else LIMIT_V - 0.01 for c in currents]
    assert not any(_run(currents, voltages))


def test_a_charge_stopped_at_the_limit_before_any_taper_is_not_full():
    currents = [2.5] * 120 + [0.0] * 60
    voltages = [LIMIT_V - 0.02] * len(currents)
    assert not any(_run(currents, voltages))


def test_a_long_rest_pins_the_soc_down_where_the_curve_is_steep():
    settings = EstimationSettings(rest_time_s=60.0)
    model = CellModel(CELL)
    estimator = SocEstimator(model, 2, settings, 0.005)
    voltages = model.at(np.array([0.9, 0.5]), np.array([25.0, 25.0])).ocv_v
    estimator.start(voltages, np.full(2, 25.0), 0.0, True)
    estimator.soc = np.array([0.8, 0.4])  # both 10 points off
    recalibration = Recalibration(estimator, settings, CAPACITY_AH, LIMIT_V)
    for _ in range(59):
        assert recalibration.update(1.0, 0.0, voltages, np.full(2, 25.0)).at_rest is None
    done = recalibration.update(1.0, 0.0, voltages, np.full(2, 25.0))
    assert done.at_rest is not None and done.at_rest.all()
    np.testing.assert_allclose(done.soc, [0.9, 0.5], atol=0.005)  # read from the voltage
    # the reading does not move the filter by itself (it is no new information) ...
    np.testing.assert_allclose(estimator.soc, [0.8, 0.4])
    # ... but with the cell known to be relaxed, its voltage soon does
    for _ in range(30):
        point = model.at(estimator.soc, np.full(2, 25.0), estimator.hyst)
        estimator.step(1.0, np.zeros(2), np.zeros(2), voltages, np.full(2, 25.0), point)
    np.testing.assert_allclose(estimator.soc, [0.9, 0.5], atol=0.01)
    assert estimator.soc_sigma.max() < 0.02
