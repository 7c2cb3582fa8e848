"""State of charge by an extended Kalman filter on the two-RC model, vectorised across cells.

Each series cell has the state [SoC, v1, v2] and a 3x3 covariance; all cells' filters are the
rows of a few arrays (no per-cell objects). Prediction is Coulomb counting with the calibrated
current; the update compares the measured cell voltage with the model's. The SoC gain scales
with the OCV slope, so where the curve is flat (the LFP plateau) the voltage hardly moves the
SoC estimate and Coulomb counting carries it; the OCV model error (hysteresis) enters the
measurement noise so that flat, uncertain regions weigh even less.
"""

from __future__ import annotations

import numpy as np

from cellwarden.bms.cell_model import CellModel, CellPoint
from cellwarden.model.bms import EstimationSettings

SOC_BOUNDS = (-0.05, 1.05)
MODEL_ERROR_V = 0.002  # OCV table error the filter allows for besides hysteresis


class SocEstimator:
    """EKF over all series cells of a string."""

    def __init__(
        self,
        model: CellModel,
        cell_count: int,
        settings: EstimationSettings,
        current_noise_a: float,
    ) -> None:
        self.model = model
        self.settings = settings
        self.current_noise_a = current_noise_a
        self.soc = np.full(cell_count, np.nan)
        self.v1 = np.zeros(cell_count)
        self.v2 = np.zeros(cell_count)
        self.hyst = np.zeros(cell_count)
        self.covariance = np.zeros((cell_count, 3, 3))
        self.innovation_v = np.zeros(cell_count)

    @property
    def started(self) -> bool:
        return not np.isnan(self.soc[0])

    def start(self, cell_voltage_v: np.ndarray, temp_c: np.ndarray) -> None:
        """Power-up: take the voltages as open-circuit (no better knowledge) with wide doubt."""
        self.soc = np.clip(self.model.soc_from_ocv(cell_voltage_v, temp_c, self.hyst), 0.0, 1.0)
        sigma = self.settings.initial_soc_sigma
        self.covariance[:] = np.diag([sigma**2, 0.01**2, 0.01**2])

    def step(
        self,
        dt_s: float,
        mean_current_a: np.ndarray,
        current_a: np.ndarray,
        cell_voltage_v: np.ndarray,
        point: CellPoint,
    ) -> None:
        """Predict over ``dt_s`` by Coulomb counting, then correct with the measured voltages.

        Currents are per cell (the string current less any balancing bleed). ``point`` is the
        model at the state before the step; the OCV after it follows from the slope and the
        hysteresis change (exact inside one 0.5 % table cell).
        """
        model = self.model
        a1, a2 = np.exp(-dt_s / point.tau1_s), np.exp(-dt_s / point.tau2_s)
        gain = dt_s / (3600.0 * model.capacity_ah)
        moved = mean_current_a * gain
        self.soc = self.soc + moved
        self.v1 = a1 * self.v1 + point.r1_ohm * (1.0 - a1) * mean_current_a
        self.v2 = a2 * self.v2 + point.r2_ohm * (1.0 - a2) * mean_current_a
        hyst_before = self.hyst.copy()
        if model.hysteresis_rate > 0:
            step = -np.expm1(-model.hysteresis_rate * np.abs(mean_current_a) * gain)
            self.hyst += (np.sign(mean_current_a) - self.hyst) * step
        # P = F P F^T with F = diag(1, a1, a2), plus process noise
        p = self.covariance
        decay = np.stack([np.ones_like(a1), a1, a2], axis=1)
        p *= decay[:, :, None] * decay[:, None, :]
        s = self.settings
        p[:, 0, 0] += s.soc_process_noise * dt_s + (self.current_noise_a * gain) ** 2
        p[:, 1, 1] += s.rc_process_noise_v**2 * dt_s
        p[:, 2, 2] += s.rc_process_noise_v**2 * dt_s
        ocv = point.ocv_v + point.ocv_slope_v * moved + (self.hyst - hyst_before) * point.half_gap_v
        self._correct(cell_voltage_v, current_a, ocv, point)

    def _correct(self, cell_voltage_v, current_a, ocv, point: CellPoint) -> None:
        """The Kalman update with H = [dOCV/dSoC, 1, 1]."""
        predicted = ocv + self.v1 + self.v2 + point.r0_ohm * current_a
        ones = np.ones_like(point.ocv_slope_v)
        h = np.stack([point.ocv_slope_v, ones, ones], axis=1)
        p = self.covariance
        ph = np.einsum("nij,nj->ni", p, h)
        ocv_doubt = np.abs(point.half_gap_v) * (1.0 - np.abs(self.hyst)) + MODEL_ERROR_V
        s = np.einsum("ni,ni->n", h, ph) + self.settings.voltage_noise_v**2 + ocv_doubt**2
        k = ph / s[:, None]
        self.innovation_v = cell_voltage_v - predicted
        self.soc = np.clip(self.soc + k[:, 0] * self.innovation_v, *SOC_BOUNDS)
        self.v1 = self.v1 + k[:, 1] * self.innovation_v
        self.v2 = self.v2 + k[:, 2] * self.innovation_v
        self.covariance = p - np.einsum("ni,nj->nij", k, ph)

    def correct_at_rest(self, cell_voltage_v: np.ndarray, temp_c: np.ndarray, min_slope: float):
        """After a long rest the voltage is the OCV: reset SoC where the curve is steep enough."""
        self.v1[:] = 0.0
        self.v2[:] = 0.0
        rest_soc = self.model.soc_from_ocv(cell_voltage_v, temp_c, self.hyst)
        steep = self.model.at(rest_soc, temp_c, self.hyst).ocv_slope_v >= min_slope
        self.soc = np.where(steep, rest_soc, self.soc)
        self.covariance[steep] = np.diag([0.01**2, 1e-6, 1e-6])
        return steep

    def mark_full(self, cells: np.ndarray) -> None:
        """A cell recognised full at the end of a CV charge is at 100 %."""
        self.soc = np.where(cells, 1.0, self.soc)
        self.v1 = np.where(cells, 0.0, self.v1)
        self.v2 = np.where(cells, 0.0, self.v2)
        self.hyst = np.where(cells, 1.0, self.hyst)
        self.covariance[cells] = np.diag([0.005**2, 1e-6, 1e-6])

    @property
    def soc_sigma(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.covariance[:, 0, 0], 0.0))
