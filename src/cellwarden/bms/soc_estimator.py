"""State of charge by an extended Kalman filter that expects its model to be wrong,
vectorised across cells.

The two-RC model is never the cell: its kinetics are linear where a real cell's are not, its
two exponentials stand in for diffusion, its OCV table is a few millivolts off, and its
resistance is the one identified at one temperature on a new cell. The filter therefore
carries the model's errors as states of their own, so that a residual the errors can
explain does not move the SoC, while one they cannot (a wrong start) does, within seconds.

State per series cell (six values, a 6x6 covariance; all cells are rows of a few arrays):

- ``SOC``; ``V1``, ``V2``: the two RC voltages, driven by the current;
- ``DYNAMIC``: the slow part of the model error, what the RC pairs get wrong. A Gauss-Markov
  process forgotten over ``model_error_time_s``, whose spread is
  ``polarisation_error_fraction`` of the predicted RC voltage |v1 + v2|, growing at once
  when the load does;
- ``TABLE``: the OCV table's error (and the voltage sensor's offset), ``ocv_error_v``, with the
  hysteresis band's uncertainty for a cell with hysteresis. It does not fade with time but
  as the SoC moves on (over ``ocv_error_span_soc``): a long rest does not make the table
  right;
- ``RHO``: the cell's R0 over the model's. Currents of 0.2C and more show it
  (``RHO_MIN_CURRENT_C``; smaller ones, such as a balancing bleed, cannot tell it from the
  table error); it follows temperature and ageing the model has not seen, drifting back to
  1 over ``resistance_drift_time_s`` when nothing shows it.

The measurement is OCV(SoC) + v1 + v2 + DYNAMIC + TABLE + RHO·R0·I, with white noise
``voltage_noise_v`` plus ``ohmic_error_fraction`` of R0·|I| (the instantaneous model error:
the kinetics' non-linearity at high current). Prediction is Coulomb counting with the
calibrated current (its noise and gain error, ``current_gain_error``, add to the SoC's doubt).

Further safeguards:
- the SoC gain scales with the OCV slope: on a flat curve (the LFP plateau) the voltage hardly
  moves the SoC and Coulomb counting carries it;
- an update that would move the SoC by more than ``RELINEARISE_SOC`` is iterated, the model
  linearised again where it lands (an iterated EKF): one linearisation at a wrong SoC would
  misjudge the correction and collapse the SoC's doubt;
- a residual beyond ``INNOVATION_GATE`` standard deviations (a glitch) moves the state only
  as far as one at the gate would;
- after a long rest the dynamic errors are known to be gone, and at the end of a CV charge
  the SoC is read from the taper (``correct_at_rest``, ``mark_full``, called by
  ``bms.recalibration``).

``step`` runs compiled (``bms.soc_kernel``) where numba is installed, with the same float64
results to the last bit; the NumPy code here is its reference, and adds every sum in the
kernel's order (``_dot``). The state layout and the constants above live in the kernel module.
"""

from __future__ import annotations

import math

import numpy as np

from cellwarden.bms import soc_kernel as kernel
from cellwarden.bms.cell_model import CellModel, CellPoint
from cellwarden.bms.soc_kernel import (
    DYNAMIC,
    INNOVATION_GATE,
    ITERATIONS,
    RELINEARISE_SOC,
    RHO,
    RHO_BOUNDS,
    RHO_MIN_CURRENT_C,
    SOC,
    SOC_BOUNDS,
    STATES,
    TABLE,
    V1,
    V2,
    FilterNoise,
    FilterTransition,
)
from cellwarden.compiled import HAVE_NUMBA
from cellwarden.model.bms import EstimationSettings

REST_RELAXATION_V = 0.002  # relaxation a rested cell may still have left (rest re-anchoring)
FULL_SOC_SIGMA = 0.005
START_RELAXATION_V = 0.010  # a voltage at power-up may not have relaxed by this much


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over the last axis, added left to right: the compiled kernel's order (einsum and
    NumPy's reductions add in orders of their own)."""
    total = a[..., 0] * b[..., 0]
    for j in range(1, a.shape[-1]):
        total = total + a[..., j] * b[..., j]
    return total


class SocEstimator:
    """EKF over all series cells of a string; ``use_numba`` runs ``step`` compiled
    (bit-identical)."""

    def __init__(
        self,
        model: CellModel,
        cell_count: int,
        settings: EstimationSettings,
        current_noise_a: float,
        use_numba: bool = HAVE_NUMBA,
    ) -> None:
        self.use_numba = use_numba
        self.model = model
        self.settings = settings
        self.current_noise_a = current_noise_a
        self.capacity_ah = np.full(cell_count, model.capacity_ah)
        self.x = np.zeros((cell_count, STATES))
        self.x[:, SOC] = np.nan
        self.x[:, RHO] = 1.0
        self.hyst = np.zeros(cell_count)
        self.covariance = np.zeros((cell_count, STATES, STATES))
        self._dynamic_var = np.zeros(cell_count)  # the errors' present spreads, squared
        self._table_var = np.zeros(cell_count)

    @property
    def soc(self) -> np.ndarray:
        return self.x[:, SOC]

    @soc.setter
    def soc(self, value: np.ndarray) -> None:
        self.x[:, SOC] = value

    @property
    def v1(self) -> np.ndarray:
        return self.x[:, V1]

    @property
    def v2(self) -> np.ndarray:
        return self.x[:, V2]

    @property
    def started(self) -> bool:
        return not math.isnan(self.x[0, SOC])

    def start(
        self, cell_voltage_v: np.ndarray, temp_c: np.ndarray, current_a: float, resting: bool
    ) -> None:
        """Power-up: the voltages read as open-circuit voltages give the first SoC, and the
        first updates weigh them. At rest the voltage may not have fully relaxed
        (``START_RELAXATION_V``); under load the RC pairs carry voltages of their own, up to
        their resistance times 1C or the present current."""
        s = self.settings
        self.soc = np.clip(self.model.soc_from_ocv(cell_voltage_v, temp_c, self.hyst), 0.0, 1.0)
        point = self.model.at(self.soc, temp_c, self.hyst)
        self._table_var = self._table_spread(point)
        self._dynamic_var[:] = START_RELAXATION_V**2
        p = self.covariance
        p[:] = 0.0
        p[:, SOC, SOC] = s.initial_soc_sigma**2
        # under load the current before power-up is unknown: allow for up to 1C or the present
        load_a = 0.0 if resting else max(abs(current_a), self.model.capacity_ah)
        p[:, V1, V1] = START_RELAXATION_V**2 + (point.r1_ohm * load_a) ** 2
        p[:, V2, V2] = START_RELAXATION_V**2 + (point.r2_ohm * load_a) ** 2
        p[:, DYNAMIC, DYNAMIC] = START_RELAXATION_V**2
        p[:, TABLE, TABLE] = self._table_var
        p[:, RHO, RHO] = s.resistance_sigma**2

    def _table_spread(self, point: CellPoint) -> np.ndarray:
        """The OCV table's error (and the sensor's), squared, with the hysteresis band's doubt."""
        doubt = np.abs(point.half_gap_v) * (1.0 - np.abs(self.hyst))
        return self.settings.ocv_error_v**2 + doubt**2

    def step(
        self,
        dt_s: float,
        mean_current_a: np.ndarray,
        current_a: np.ndarray,
        cell_voltage_v: np.ndarray,
        temp_c: np.ndarray,
        point: CellPoint,
    ) -> None:
        """Predict over ``dt_s`` by Coulomb counting, then correct with the measured voltages.

        Currents are per cell (the string current less any balancing bleed). ``point`` is the
        model at the state before the step; the OCV after it follows from the slope and the
        hysteresis change (exact inside one 0.5 % table cell).
        """
        transition, noise = self._transition(dt_s, mean_current_a, point)
        if not self.use_numba:
            ocv = self._predict(transition, noise, mean_current_a, point)
            self._correct(cell_voltage_v, current_a, ocv, point, temp_c, noise)
            return
        shape = (self.x.shape[0],)
        per_cell = (mean_current_a, current_a, cell_voltage_v, temp_c, self.capacity_ah,
                    point.ocv_v, point.ocv_slope_v, point.half_gap_v, point.r0_ohm,
                    point.r1_ohm, point.r2_ohm)  # fmt: skip
        kernel.filter_step(
            self.x, self.covariance, self.hyst, self._dynamic_var, self._table_var,
            self.model.tables, *(kernel.cell_array(value, shape) for value in per_cell),
            transition, noise,
        )  # fmt: skip

    def _transition(
        self, dt_s: float, mean_current_a: np.ndarray, point: CellPoint
    ) -> tuple[FilterTransition, FilterNoise]:
        """The step's decays and noise terms, for both implementations (NumPy's exp and Python's
        squares, so that both use the very same numbers)."""
        s = self.settings
        gain = dt_s / (3600.0 * self.capacity_ah)
        moved = mean_current_a * gain
        forget = float(np.exp(-dt_s / s.model_error_time_s))
        rho_keep = float(np.exp(-dt_s / s.resistance_drift_time_s))
        rate = self.model.hysteresis_rate
        hyst_step = np.zeros_like(gain)
        if rate > 0:
            hyst_step = -np.expm1(-rate * np.abs(mean_current_a) * gain)
        transition = FilterTransition(
            gain=gain,
            moved=moved,
            a1=np.exp(-dt_s / point.tau1_s),
            a2=np.exp(-dt_s / point.tau2_s),
            table_keep=np.exp(-np.abs(moved) / s.ocv_error_span_soc),
            hyst_step=hyst_step,
            forget=forget,
            rho_keep=rho_keep,
            hysteresis=rate > 0,
        )
        noise = FilterNoise(
            soc_process=s.soc_process_noise * dt_s,
            current_noise_a=self.current_noise_a,
            current_gain_error=s.current_gain_error,
            rc_process_v2=s.rc_process_noise_v**2 * dt_s,
            rho_process=(1.0 - rho_keep**2) * s.resistance_sigma**2,
            dynamic_refill=1.0 - forget**2,
            polarisation_fraction=s.polarisation_error_fraction,
            ocv_error_v2=s.ocv_error_v**2,
            white_v2=s.voltage_noise_v**2,
            ohmic_error_fraction=s.ohmic_error_fraction,
        )
        return transition, noise

    def _predict(
        self, t: FilterTransition, noise: FilterNoise, mean_current_a: np.ndarray, point: CellPoint
    ) -> np.ndarray:
        """Coulomb counting and the RC and error states' decay, with the covariance's; returns
        the OCV after the step (``soc_kernel._predict`` per cell)."""
        x, p = self.x, self.covariance
        x[:, SOC] += t.moved
        x[:, V1] = t.a1 * x[:, V1] + point.r1_ohm * (1.0 - t.a1) * mean_current_a
        x[:, V2] = t.a2 * x[:, V2] + point.r2_ohm * (1.0 - t.a2) * mean_current_a
        x[:, DYNAMIC] *= t.forget
        x[:, TABLE] *= t.table_keep
        x[:, RHO] = 1.0 + t.rho_keep * (x[:, RHO] - 1.0)
        hyst_before = self.hyst.copy()
        if t.hysteresis:
            self.hyst += (np.sign(mean_current_a) - self.hyst) * t.hyst_step
        # P = F P F^T with F diagonal, plus process noise
        ones = np.ones_like(t.a1)
        decay = np.stack(
            [ones, t.a1, t.a2, t.forget * ones, t.table_keep, t.rho_keep * ones], axis=1
        )
        p *= decay[:, :, None] * decay[:, None, :]
        counted = (noise.current_noise_a * t.gain) ** 2 + (noise.current_gain_error * t.moved) ** 2
        p[:, SOC, SOC] += noise.soc_process + counted
        p[:, V1, V1] += noise.rc_process_v2
        p[:, V2, V2] += noise.rc_process_v2
        p[:, RHO, RHO] += noise.rho_process
        # each error's spread: it is forgotten slowly (the dynamic one in time, the table's as
        # the SoC moves on), and grows at once when its cause does
        dynamic_var = (noise.polarisation_fraction * (x[:, V1] + x[:, V2])) ** 2
        table_var = self._table_spread(point)
        p[:, DYNAMIC, DYNAMIC] += noise.dynamic_refill * dynamic_var + np.maximum(
            dynamic_var - self._dynamic_var, 0.0
        )
        p[:, TABLE, TABLE] += (1.0 - t.table_keep**2) * table_var + np.maximum(
            table_var - self._table_var, 0.0
        )
        self._dynamic_var, self._table_var = dynamic_var, table_var
        return (point.ocv_v + point.ocv_slope_v * t.moved
                + (self.hyst - hyst_before) * point.half_gap_v)  # fmt: skip

    def _correct(
        self, cell_voltage_v, current_a, ocv, point: CellPoint, temp_c, noise: FilterNoise
    ) -> None:
        """The Kalman update with H = [dOCV/dSoC, 1, 1, 1, 1, R0·I], gated against outliers.

        Where the update moves the SoC by more than ``RELINEARISE_SOC`` (a wrong start) it is
        iterated, the model linearised again at the updated SoC each time: one linearisation
        at a wrong SoC would both misjudge the correction and collapse the SoC's doubt.
        """
        prior, p = self.x.copy(), self.covariance
        state = prior
        for iteration in range(ITERATIONS):
            if iteration:
                point = self.model.at(state[:, SOC], temp_c, self.hyst)
                ocv = point.ocv_v
            ohmic = point.r0_ohm * current_a
            ones = np.ones_like(point.ocv_slope_v)
            shows_r0 = np.abs(current_a) >= RHO_MIN_CURRENT_C * self.capacity_ah
            h = np.stack([point.ocv_slope_v, ones, ones, ones, ones, ohmic * shows_r0], axis=1)
            predicted = (ocv + state[:, V1] + state[:, V2] + state[:, DYNAMIC] + state[:, TABLE]
                         + state[:, RHO] * ohmic)  # fmt: skip
            innovation = cell_voltage_v - predicted - _dot(h, prior - state)
            ohmic_error = noise.ohmic_error_fraction * ohmic
            gain, ph, spread = self._gain(h, noise.white_v2 + ohmic_error**2)
            limit = INNOVATION_GATE * np.sqrt(spread)
            moved_from = state[:, SOC]
            state = prior + gain * np.clip(innovation, -limit, limit)[:, None]
            state[:, SOC] = np.clip(state[:, SOC], *SOC_BOUNDS)
            state[:, RHO] = np.clip(state[:, RHO], *RHO_BOUNDS)
            if (np.abs(state[:, SOC] - moved_from) <= RELINEARISE_SOC).all():
                break
        self.x[:] = state
        self.covariance = p - gain[:, :, None] * ph[:, None, :]

    def _gain(self, h: np.ndarray, noise: np.ndarray):
        """Kalman gain, P·H and the innovation's variance for a scalar measurement per cell."""
        ph = _dot(self.covariance, h[:, None, :])
        spread = _dot(h, ph) + noise
        return ph / spread[:, None], ph, spread

    def _update(self, h: np.ndarray, innovation: np.ndarray, noise: np.ndarray) -> None:
        """A linear scalar-measurement Kalman update per cell."""
        gain, ph, _ = self._gain(h, noise)
        self.x += gain * innovation[:, None]
        self.covariance = self.covariance - gain[:, :, None] * ph[:, None, :]

    def _anchor_soc(self, cells: np.ndarray, soc: np.ndarray, sigma: np.ndarray) -> None:
        """Fuse an independent SoC reading (value, standard deviation) into ``cells``' state."""
        h = np.zeros(self.x.shape)
        h[:, SOC] = cells
        noise = np.where(cells, sigma**2, 1.0)
        self._update(h, np.where(cells, soc - self.soc, 0.0), noise)
        self.x[:, SOC] = np.clip(self.x[:, SOC], *SOC_BOUNDS)

    def correct_at_rest(
        self, cell_voltage_v: np.ndarray, temp_c: np.ndarray, min_slope: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """After a long rest the cell has relaxed: its RC voltages and the dynamic model error
        are gone (to ``REST_RELAXATION_V``), so the voltage speaks for the SoC and the table
        alone. Returns the cells whose SoC that pins down (the curve steep enough) and the
        SoC their voltage reads."""
        h = np.zeros(self.x.shape)
        h[:, [V1, V2, DYNAMIC]] = 1.0
        dynamic = self.x[:, V1] + self.x[:, V2] + self.x[:, DYNAMIC]
        self._update(h, -dynamic, np.full(dynamic.shape, REST_RELAXATION_V**2))
        rest_soc = self.model.soc_from_ocv(cell_voltage_v, temp_c, self.hyst)
        steep = self.model.at(rest_soc, temp_c, self.hyst).ocv_slope_v >= min_slope
        return steep, rest_soc

    def mark_full(
        self, cells: np.ndarray, cell_voltage_v: np.ndarray, current_a: float, temp_c: np.ndarray
    ) -> np.ndarray:
        """Cells at the end of a CV charge: their OCV is the voltage less the taper current
        times the cell's taper resistance, and they sit on the charge branch. Returns the SoC
        that reads."""
        self.hyst = np.where(cells, 1.0, self.hyst)
        ocv = cell_voltage_v - self.model.taper_resistance_ohm * current_a
        full = self.model.soc_from_ocv(ocv, temp_c, self.hyst)
        self._anchor_soc(cells, full, np.full(self.soc.shape, FULL_SOC_SIGMA))
        return full

    @property
    def soc_sigma(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.covariance[:, SOC, SOC], 0.0))
