"""The SoC filter's hot loop compiled with numba, bit-identical to its NumPy reference.

Two pieces of the BMS main task have two implementations each: the cell-model lookup
(``CellModel.at``, a bilinear interpolation over SoC and temperature) and the filter step
(``SocEstimator.step``: the prediction and the iterated, gated Kalman correction of every
cell). The vectorised NumPy code in their own modules is the reference; the scalar loops here
compute the same float64 results to the last bit, so either may run (``use_numba``):

- transcendental functions (exp, expm1) are evaluated by NumPy for both and handed in
  (``FilterTransition``): NumPy's SIMD exp differs from libm's, which compiled code calls, in the
  last bit; so are squares of Python scalars (``FilterNoise``): ``x**2`` is ``pow``, not ``x*x``;
- every sum adds its terms in one stated order, left to right over the state index, and the
  reference spells that order out too (no einsum, no reduction in NumPy's own order);
- no fastmath: the compiler neither reorders nor fuses a multiply and an add;
- clips and maxima follow NumPy's rules for NaN and signed zeros (``clip``, ``clip_between``,
  ``maximum``, ``sign``).

The layouts (the filter's state columns, the model's table rows) and the filter's constants
live here so that both implementations read the same ones. The NamedTuples handed to the
kernels have names of their own on purpose: numba dispatches such an argument by its class's
name and field types, and a second class alike in both would send every call down numba's
slow path (tens of µs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cellwarden.compiled import njit

# --- the filter's state: columns of SocEstimator.x, rows and columns of its covariance ---
SOC, V1, V2, DYNAMIC, TABLE, RHO = range(6)
STATES = 6
SOC_BOUNDS = (-0.05, 1.05)
RHO_BOUNDS = (0.3, 3.0)
ITERATIONS = 6  # at most, for a large correction (iterated EKF)
RELINEARISE_SOC = 0.005  # an update that moves the SoC further is done again from there
INNOVATION_GATE = 4.0  # standard deviations
RHO_MIN_CURRENT_C = 0.2  # smaller currents (balancing, noise) do not inform the R0 scale

# --- the cell model: rows of its flat table (each a uniform SoC x temperature grid) ---
(OCV_DISCHARGE, OCV_CHARGE, R0, R1, TAU1, R2, TAU2, ENERGY) = range(8)
OVERCHARGE_SLOPE_V = 3.0  # gentle: a steep wall here makes the filter overshoot at start-up
DEEP_DISCHARGE_SLOPE_V = 10.0
POINT_QUANTITIES = 9  # a CellPoint's fields, in their order: the rows of ``cell_points``
NAN_STATE = "cell model looked up at a NaN state of charge or temperature"


class CellTables(NamedTuple):
    """The cell model's tables as the compiled lookup reads them."""

    points: np.ndarray  # (grid point, quantity): temperature-major, columns OCV_DISCHARGE..
    soc_points: int  # uniform over 0..1
    temp_points: int
    temp_first_c: float
    temp_step_c: float


class FilterTransition(NamedTuple):
    """One step's prediction factors per cell, evaluated by NumPy for both implementations."""

    gain: np.ndarray  # SoC per ampere over the step
    moved: np.ndarray  # SoC counted over the step
    a1: np.ndarray  # the RC voltages' decays
    a2: np.ndarray
    table_keep: np.ndarray  # what the table error keeps as the SoC moves on
    hyst_step: np.ndarray  # the part of the way to its branch the hysteresis goes
    forget: float  # what the dynamic error keeps
    rho_keep: float  # what the R0 scale's deviation from 1 keeps
    hysteresis: bool  # the model has hysteresis (else the state stays put)


class FilterNoise(NamedTuple):
    """One step's noise terms from the settings, squares taken once by Python."""

    soc_process: float  # soc_process_noise · dt
    current_noise_a: float  # the current sensor's
    current_gain_error: float
    rc_process_v2: float  # rc_process_noise_v² · dt
    rho_process: float  # (1 - rho_keep²) · resistance_sigma²
    dynamic_refill: float  # 1 - forget²
    polarisation_fraction: float
    ocv_error_v2: float  # ocv_error_v²
    white_v2: float  # voltage_noise_v²
    ohmic_error_fraction: float


def cell_array(value: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` broadcast to ``shape``, flat, contiguous, writable float64: the one array type
    the kernels are compiled for."""
    array = np.asarray(value, dtype=float)
    if array.shape != shape or not array.flags.writeable:
        return np.broadcast_to(array, shape).flatten()
    return np.ascontiguousarray(array).reshape(-1)


# --- NumPy's elementwise rules, one value at a time --------------------------------------------
@njit(cache=True, inline="always")
def clip(value: float, low: float, high: float) -> float:
    """``np.clip`` with scalar bounds: a value beyond a bound is the bound, any other (NaN,
    either zero) itself."""
    if value < low:
        return low
    if value > high:
        return high
    return value


@njit(cache=True, inline="always")
def clip_between(value: float, low: float, high: float) -> float:
    """``np.clip`` with array bounds: NaN in the value or a bound gives NaN."""
    above = value if (value != value or value > low) else low
    return above if (above != above or above < high) else high


@njit(cache=True, inline="always")
def maximum(a: float, b: float) -> float:
    """``np.maximum``: NaN if either is; of equal values (two zeros) the second."""
    return a if (a != a or a > b) else b


@njit(cache=True, inline="always")
def sign(value: float) -> float:
    """``np.sign``: -1, 0 (for either zero) or 1; NaN stays NaN."""
    if value > 0.0:
        return 1.0
    if value < 0.0:
        return -1.0
    return 0.0 if value == 0.0 else value


# --- the cell model ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _bilinear(tables: CellTables, row: int, base: int, fx: float, fy: float) -> tuple[float, float]:
    """One quantity at (SoC fraction ``fx``, temperature fraction ``fy``) of the grid square
    whose low corner is ``base``; with its rise across the square in SoC."""
    points, n_soc = tables.points, tables.soc_points
    gy = 1.0 - fy
    low = gy * points[base, row] + fy * points[base + n_soc, row]
    high = gy * points[base + 1, row] + fy * points[base + n_soc + 1, row]
    return low + fx * (high - low), high - low


@njit(cache=True, inline="always")
def point_at(tables: CellTables, soc: float, temp_c: float, hyst: float) -> tuple[float, ...]:
    """One cell's ``CellPoint`` quantities, in its field order: ``CellModel.at`` (the
    reference) operation for operation."""
    if soc != soc or temp_c != temp_c:
        raise ValueError(NAN_STATE)
    n_soc, n_temp = tables.soc_points, tables.temp_points
    x = clip(soc, 0.0, 1.0) * (n_soc - 1)
    j = min(int(x), n_soc - 2)
    fx = x - j
    y = clip((temp_c - tables.temp_first_c) / tables.temp_step_c, 0.0, n_temp - 1.0)
    k = min(int(y), n_temp - 2)
    fy = y - k
    base = k * n_soc + j
    discharge, discharge_rise = _bilinear(tables, OCV_DISCHARGE, base, fx, fy)
    charge, charge_rise = _bilinear(tables, OCV_CHARGE, base, fx, fy)
    discharge_slope = discharge_rise * (n_soc - 1)
    charge_slope = charge_rise * (n_soc - 1)
    ocv = 0.5 * (discharge + charge) + 0.5 * hyst * (charge - discharge)
    ocv_slope = 0.5 * (discharge_slope + charge_slope) + 0.5 * hyst * (
        charge_slope - discharge_slope
    )
    over, under = soc > 1.0, soc < 0.0
    ocv = ocv + ((soc - 1.0) * OVERCHARGE_SLOPE_V if over else 0.0)
    ocv = ocv + (soc * DEEP_DISCHARGE_SLOPE_V if under else 0.0)
    if over:
        ocv_slope = OVERCHARGE_SLOPE_V
    elif under:
        ocv_slope = DEEP_DISCHARGE_SLOPE_V
    return (
        ocv,
        ocv_slope,
        0.5 * (charge - discharge),
        _bilinear(tables, R0, base, fx, fy)[0],
        _bilinear(tables, R1, base, fx, fy)[0],
        _bilinear(tables, TAU1, base, fx, fy)[0],
        _bilinear(tables, R2, base, fx, fy)[0],
        _bilinear(tables, TAU2, base, fx, fy)[0],
        _bilinear(tables, ENERGY, base, fx, fy)[0],
    )


@njit(cache=True)
def cell_points(
    tables: CellTables, soc: np.ndarray, temp_c: np.ndarray, hyst: np.ndarray
) -> np.ndarray:
    """``point_at`` for every cell: (``POINT_QUANTITIES``, cells)."""
    out = np.empty((POINT_QUANTITIES, soc.size))
    for cell in range(soc.size):
        values = point_at(tables, soc[cell], temp_c[cell], hyst[cell])
        for row in range(POINT_QUANTITIES):
            out[row, cell] = values[row]
    return out


# --- the filter -------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _predict(
    cell: int,
    x: np.ndarray,
    p: np.ndarray,
    hyst: np.ndarray,
    dynamic_var: np.ndarray,
    table_var: np.ndarray,
    mean_current_a: float,
    r1_ohm: float,
    r2_ohm: float,
    half_gap_v: float,
    t: FilterTransition,
    noise: FilterNoise,
) -> float:
    """One cell's prediction (``SocEstimator._predict``); returns its OCV's change by it."""
    a1, a2, table_keep = t.a1[cell], t.a2[cell], t.table_keep[cell]
    gain, moved = t.gain[cell], t.moved[cell]
    x[cell, SOC] += moved
    x[cell, V1] = a1 * x[cell, V1] + r1_ohm * (1.0 - a1) * mean_current_a
    x[cell, V2] = a2 * x[cell, V2] + r2_ohm * (1.0 - a2) * mean_current_a
    x[cell, DYNAMIC] *= t.forget
    x[cell, TABLE] *= table_keep
    x[cell, RHO] = 1.0 + t.rho_keep * (x[cell, RHO] - 1.0)
    hyst_before = hyst[cell]
    if t.hysteresis:
        hyst[cell] += (sign(mean_current_a) - hyst[cell]) * t.hyst_step[cell]
    decay = (1.0, a1, a2, t.forget, table_keep, t.rho_keep)
    for i in range(STATES):
        for j in range(STATES):
            p[cell, i, j] *= decay[i] * decay[j]
    counted = noise.current_noise_a * gain
    gain_error = noise.current_gain_error * moved
    p[cell, SOC, SOC] += noise.soc_process + (counted * counted + gain_error * gain_error)
    p[cell, V1, V1] += noise.rc_process_v2
    p[cell, V2, V2] += noise.rc_process_v2
    p[cell, RHO, RHO] += noise.rho_process
    polarisation = noise.polarisation_fraction * (x[cell, V1] + x[cell, V2])
    new_dynamic = polarisation * polarisation
    doubt = abs(half_gap_v) * (1.0 - abs(hyst[cell]))
    new_table = noise.ocv_error_v2 + doubt * doubt
    p[cell, DYNAMIC, DYNAMIC] += noise.dynamic_refill * new_dynamic + maximum(
        new_dynamic - dynamic_var[cell], 0.0
    )
    p[cell, TABLE, TABLE] += (1.0 - table_keep * table_keep) * new_table + maximum(
        new_table - table_var[cell], 0.0
    )
    dynamic_var[cell], table_var[cell] = new_dynamic, new_table
    return (hyst[cell] - hyst_before) * half_gap_v


@njit(cache=True)
def filter_step(
    x: np.ndarray,
    covariance: np.ndarray,
    hyst: np.ndarray,
    dynamic_var: np.ndarray,
    table_var: np.ndarray,
    tables: CellTables,
    mean_current_a: np.ndarray,
    current_a: np.ndarray,
    cell_voltage_v: np.ndarray,
    temp_c: np.ndarray,
    capacity_ah: np.ndarray,
    ocv_v: np.ndarray,
    ocv_slope_v: np.ndarray,
    half_gap_v: np.ndarray,
    r0_ohm: np.ndarray,
    r1_ohm: np.ndarray,
    r2_ohm: np.ndarray,
    t: FilterTransition,
    noise: FilterNoise,
) -> None:
    """``SocEstimator.step`` for every cell, updating the state arrays (the first five) in
    place; ``ocv_v`` to ``r2_ohm`` are the model at the state before the step."""
    cells = x.shape[0]
    ocv_after_v = np.empty(cells)
    for cell in range(cells):
        hysteresis_v = _predict(
            cell, x, covariance, hyst, dynamic_var, table_var, mean_current_a[cell],
            r1_ohm[cell], r2_ohm[cell], half_gap_v[cell], t, noise,
        )  # fmt: skip
        ocv_after_v[cell] = ocv_v[cell] + ocv_slope_v[cell] * t.moved[cell] + hysteresis_v
    # the iterated correction (SocEstimator._correct): every cell again while any moved far
    prior = x.copy()
    gains, phs = np.empty((cells, STATES)), np.empty((cells, STATES))
    h, ph = np.empty(STATES), np.empty(STATES)
    for iteration in range(ITERATIONS):
        settled = True
        for cell in range(cells):
            if iteration:
                relinearised = point_at(tables, x[cell, SOC], temp_c[cell], hyst[cell])
                ocv, slope, r0 = relinearised[0], relinearised[1], relinearised[3]
            else:
                ocv, slope, r0 = ocv_after_v[cell], ocv_slope_v[cell], r0_ohm[cell]
            ohmic = r0 * current_a[cell]
            shows_r0 = abs(current_a[cell]) >= RHO_MIN_CURRENT_C * capacity_ah[cell]
            h[SOC], h[V1], h[V2], h[DYNAMIC], h[TABLE] = slope, 1.0, 1.0, 1.0, 1.0
            h[RHO] = ohmic * (1.0 if shows_r0 else 0.0)
            predicted = (ocv + x[cell, V1] + x[cell, V2] + x[cell, DYNAMIC] + x[cell, TABLE]
                         + x[cell, RHO] * ohmic)  # fmt: skip
            linearised = h[0] * (prior[cell, 0] - x[cell, 0])
            for j in range(1, STATES):
                linearised = linearised + h[j] * (prior[cell, j] - x[cell, j])
            innovation = cell_voltage_v[cell] - predicted - linearised
            ohmic_error = noise.ohmic_error_fraction * ohmic
            for i in range(STATES):
                total = covariance[cell, i, 0] * h[0]
                for j in range(1, STATES):
                    total = total + covariance[cell, i, j] * h[j]
                ph[i] = total
            spread = h[0] * ph[0]
            for j in range(1, STATES):
                spread = spread + h[j] * ph[j]
            spread = spread + (noise.white_v2 + ohmic_error * ohmic_error)
            limit = INNOVATION_GATE * math.sqrt(spread)
            gated = clip_between(innovation, -limit, limit)
            moved_from = x[cell, SOC]
            for j in range(STATES):
                gains[cell, j] = ph[j] / spread
                phs[cell, j] = ph[j]
                x[cell, j] = prior[cell, j] + gains[cell, j] * gated
            x[cell, SOC] = clip(x[cell, SOC], SOC_BOUNDS[0], SOC_BOUNDS[1])
            x[cell, RHO] = clip(x[cell, RHO], RHO_BOUNDS[0], RHO_BOUNDS[1])
            if not abs(x[cell, SOC] - moved_from) <= RELINEARISE_SOC:
                settled = False
        if settled:
            break
    for cell in range(cells):
        for i in range(STATES):
            for j in range(STATES):
                covariance[cell, i, j] = covariance[cell, i, j] - gains[cell, i] * phs[cell, j]
