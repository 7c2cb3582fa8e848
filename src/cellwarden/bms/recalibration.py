"""When the SoC estimate can be pinned down: after a long rest (the cell has relaxed, its
voltage is the OCV, which pins the SoC where the curve is steep enough) and at the end of a
CV charge (the cells at the limit are full, short of 100 % by the taper's overpotential).
Each moment also gives a SoC read independently of the charge counted: the capacity is
measured between two such readings.

A CV charge is recognised only when it is one: the string has been charging for at least
``CV_MIN_S`` with some cell within ``CV_WINDOW_V`` of the upper limit while the current
tapered (fell by ``TAPER_FALL`` or more, to below ``TAPER_SEEN`` times
``full_charge_current_c``), and the current is now below ``full_charge_current_c``, charging on
or stopped. Regenerative
braking near the top, or a charger's first seconds at the limit, is not a full charge."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.model.bms import EstimationSettings

MIN_OCV_SLOPE_V = 0.3  # V per unit SoC: where rest voltages pin SoC down
CV_WINDOW_V = 0.03  # within this of the charge limit a cell counts as in CV
CV_MIN_S = 30.0  # charging at the limit at least this long before the taper counts
TAPER_SEEN = 2.0  # ... with the current seen below this many taper currents
TAPER_FALL = 2.0  # ... after falling by this factor at least


@dataclass(frozen=True)
class Recalibrated:
    """Cells whose SoC a rest voltage just pinned down, or recognised full (or None), and the
    SoC each cell's voltage read at that moment (or None)."""

    at_rest: np.ndarray | None
    full: np.ndarray | None
    soc: np.ndarray | None


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
        self._cv_s = 0.0  # time charging at the limit, and the current's range meanwhile
        self._cv_min_a, self._cv_max_a = math.inf, 0.0
        self._cv_last: tuple[np.ndarray, float] = (np.zeros(0), 0.0)

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
        at_rest = full = soc = None
        # rest is judged on the interval's mean current: single noisy samples do not break it
        self._rest_s = self._rest_s + dt_s if abs(mean_current_a) < self.rest_a else 0.0
        if self._rest_s >= self.settings.rest_time_s and not self._rest_corrected:
            at_rest, soc = self.estimator.correct_at_rest(cell_voltage_v, temp_c, MIN_OCV_SLOPE_V)
            self._rest_corrected = True
        elif self._rest_s == 0.0:
            self._rest_corrected = False
        at_limit = (cell_voltage_v >= self.upper_mol_v - CV_WINDOW_V).any()
        if at_limit and mean_current_a > self.rest_a:  # charging at the limit
            self._cv_s += dt_s
            self._cv_min_a = min(self._cv_min_a, mean_current_a)
            self._cv_max_a = max(self._cv_max_a, mean_current_a)
            self._cv_last = (cell_voltage_v.copy(), mean_current_a)
        elif not at_limit or mean_current_a < -self.taper_a:
            self._cv_s, self._cv_min_a, self._cv_max_a = 0.0, math.inf, 0.0
        tapered = (
            self._cv_min_a < TAPER_SEEN * self.taper_a
            and self._cv_max_a >= TAPER_FALL * self._cv_min_a
        )
        if (
            self._cv_s >= CV_MIN_S
            and tapered
            and mean_current_a < self.taper_a
            and not self._full_marked
        ):
            voltage_v, current_a = self._cv_last  # the taper's last moment
            full = voltage_v >= self.upper_mol_v - CV_WINDOW_V
            soc = self.estimator.mark_full(full, voltage_v, current_a, temp_c)
            self._full_marked = True
        elif mean_current_a < -self.taper_a:
            self._full_marked = False
        return Recalibrated(at_rest, full, soc)
