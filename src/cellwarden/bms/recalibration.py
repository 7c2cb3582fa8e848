"""When the SoC estimate can be pinned down: after a long rest (the voltage is the OCV, where
the curve is steep enough) and at the end of a CV charge (the cells at the limit are full)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.model.bms import EstimationSettings

MIN_OCV_SLOPE_V = 0.3  # V per unit SoC: where rest voltages pin SoC down
CV_WINDOW_V = 0.03  # within this of the charge limit a cell counts as in CV


@dataclass(frozen=True)
class Recalibrated:
    """Cells whose SoC was just set from a rest voltage, or recognised full (or None)."""

    at_rest: np.ndarray | None
    full: np.ndarray | None


class Recalibration:
    """Watches rest time and CV taper; corrects the estimator when either says so."""

    def __init__(
        self,
        estimator: SocEstimator,
        settings: EstimationSettings,
        capacity_ah: float,
        upper_mol_v: float,
    ) -> None:
        self.estimator = estimator
        self.capacity_ah = capacity_ah
        self.configure(settings)
        self.upper_mol_v = upper_mol_v
        self._rest_s = 0.0
        self._rest_corrected = False
        self._full_marked = False

    def configure(self, settings: EstimationSettings) -> None:
        """Take (new) settings; the rest and taper currents follow."""
        self.settings = settings
        self.rest_a = settings.rest_current_c * self.capacity_ah
        self.taper_a = settings.full_charge_current_c * self.capacity_ah

    def update(
        self,
        dt_s: float,
        mean_current_a: float,
        cell_voltage_v: np.ndarray,
        temp_c: np.ndarray,
    ) -> Recalibrated:
        at_rest = full = None
        # rest is judged on the interval's mean current: single noisy samples do not break it
        self._rest_s = self._rest_s + dt_s if abs(mean_current_a) < self.rest_a else 0.0
        if self._rest_s >= self.settings.rest_time_s and not self._rest_corrected:
            at_rest = self.estimator.correct_at_rest(cell_voltage_v, temp_c, MIN_OCV_SLOPE_V)
            self._rest_corrected = True
        elif self._rest_s == 0.0:
            self._rest_corrected = False
        at_limit = cell_voltage_v >= self.upper_mol_v - CV_WINDOW_V
        if at_limit.any() and 0.0 < mean_current_a < self.taper_a and not self._full_marked:
            self.estimator.mark_full(at_limit)
            full = at_limit
            self._full_marked = True
        elif mean_current_a < -self.taper_a:
            self._full_marked = False
        return Recalibrated(at_rest, full)
