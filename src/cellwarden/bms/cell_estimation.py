"""What the BMS estimates of every series cell: SoC (``soc_estimator``), its re-anchoring after
a long rest and at a full charge (``recalibration``), capacity and resistance (``health``).

One composition serves the string BMS (``string_bms``) and the replay of recorded traces
(``trace_replay``), so that a replay runs exactly what the BMS runs. The capacity it learns
is the one it counts charge with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.bms.cell_model import CellModel, CellPoint
from cellwarden.bms.health import CapacityEstimator, ResistanceEstimator, rest_anchors
from cellwarden.bms.recalibration import Recalibrated, Recalibration
from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.model.bms import EstimationSettings


@dataclass(frozen=True)
class EstimationStep:
    """One update's model point (at the state before it) and any re-anchoring it did."""

    point: CellPoint
    recalibrated: Recalibrated


class CellEstimation:
    """SoC, capacity and resistance of ``cell_count`` series cells."""

    def __init__(
        self,
        model: CellModel,
        cell_count: int,
        settings: EstimationSettings,
        current_noise_a: float,
        upper_mol_v: float,
    ) -> None:
        self.model = model
        self.estimator = SocEstimator(model, cell_count, settings, current_noise_a)
        self.recalibration = Recalibration(self.estimator, settings, model.capacity_ah, upper_mol_v)
        self.capacity = CapacityEstimator(model, cell_count)
        self.resistance = ResistanceEstimator(model, cell_count)

    def configure(self, settings: EstimationSettings) -> None:
        """Take new settings while running."""
        self.estimator.settings = settings
        self.recalibration.configure(settings)

    def update(
        self,
        dt_s: float,
        mean_current_a: float,
        current_a: float,
        cell_voltage_v: np.ndarray,
        temp_c: np.ndarray,
        valid: np.ndarray,
        bleed_a: np.ndarray | float,
        charge_counted_ah: float,
    ) -> EstimationStep | None:
        """One main-task update (None until every cell's voltage has been read once).

        ``mean_current_a`` is the string current over the interval, ``current_a`` the latest
        sample; ``bleed_a`` the balancing current each cell loses; ``valid`` the channels whose
        voltage can be trusted (the others are only counted); ``charge_counted_ah`` the
        string's charge counted so far (for the capacity).
        """
        estimator = self.estimator
        complete = not np.isnan(cell_voltage_v).any()  # every channel has data
        if not estimator.started:
            if complete:
                resting = abs(mean_current_a) < self.recalibration.rest_a
                estimator.start(cell_voltage_v, temp_c, current_a, resting)
            return None
        point = self.model.at(estimator.soc, temp_c, estimator.hyst)
        if valid.all():
            self.resistance.observe(cell_voltage_v, current_a, point.r0_ohm, dt_s)
            estimator.step(dt_s, mean_current_a - bleed_a, current_a - bleed_a, cell_voltage_v,
                           temp_c, point)  # fmt: skip
        else:
            counted = (mean_current_a - bleed_a) * dt_s / (3600.0 * estimator.capacity_ah)
            estimator.soc = estimator.soc + counted
        done = Recalibrated(None, None, None)
        if complete:
            done = self.recalibration.update(dt_s, mean_current_a, cell_voltage_v, temp_c)
            if done.full is not None:
                self.capacity.anchor(done.soc, charge_counted_ah, done.full)
            if done.at_rest is not None:
                anchors = rest_anchors(done.soc, done.at_rest)
                self.capacity.anchor(done.soc, charge_counted_ah, anchors)
            estimator.capacity_ah = self.capacity.capacity_ah
        return EstimationStep(point, done)
