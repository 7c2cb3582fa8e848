"""The OCV curve: its shape from a slow (C/20) test, its level from the rests.

1. The slow test's voltage less R0·I and the two RC voltages simulated along the whole trace
   with the identified parameters is a first OCV (a "pseudo-OCV"), smoothed by local linear
   regression on a SoC grid. A C/20 discharge still carries overpotential the two-RC circuit
   does not know (slow solid diffusion): the pseudo-OCV is a few to a few tens of millivolts
   off, by an amount that changes with SoC.
2. The end of every long rest (10 minutes or more: the pulse test's rests between levels,
   the rests after the full charge and after the slow discharge) is an OCV: within a
   millivolt or two after an hour, within 5–10 mV after ten minutes (on the DFN cells). The
   pseudo-OCV is moved onto these anchors: their offsets from it are interpolated in SoC
   (held beyond the outermost anchors) and added. The anchors fix the level, the slow test
   the shape between them.
3. A slow recharge gives the charge branch the same way, with the discharge branch's offsets
   mirrored (the same overpotential, the other sign; rests lie on the discharge branch).
   When it lies more than 5 mV above the discharge branch over 10–90 % SoC the cell has
   hysteresis and both branches are kept; otherwise the OCV is the mean of both.
4. Above the full charge's rest the curve rises in a straight line to the CV voltage at
   100 %. Below the end of the slow discharge (whose rested voltage is an anchor) it falls
   to the discharge's floor voltage at 0 % as a power of the charge left; where no rest
   follows the discharge it takes the base chemistry's shape, joined on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.bms.identification.pulses import LevelFit
from cellwarden.bms.identification.trace import REST_CURRENT_C, RestAnchor, Trace
from cellwarden.bms.trace_replay import interval_currents
from cellwarden.model.chemistry import Chemistry
from cellwarden.model.library import builtin_names, load_chemistry

PARAMETERS = ("r0_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")
HYSTERESIS_MIN_V = 0.005
OCV_WINDOW_SOC = 0.004  # half-width of the local regression for the OCV curve
GRID_STEP_SOC = 0.01
SLOW_MAX_C = 0.1  # rows of a slow test: currents up to C/10
EMPTY_EXPONENT = 0.7  # OCV - floor ~ (charge in the cell)^0.7 near empty (0.6-0.95 seen)
MAX_EMPTY_REMAINDER = 0.03


def ocv_grid(base: Chemistry) -> np.ndarray:
    """The identified curve's SoC points: every percent and the base chemistry's points."""
    points = np.concatenate([base.ocv_v.soc_points, np.arange(0, 1.0001, GRID_STEP_SOC)])
    return np.unique(np.round(points, 6))


def model_overpotential(tr: Trace, levels: list[LevelFit]) -> np.ndarray:
    """R0·I plus the two RC voltages along the trace, with the identified parameters."""
    socs = np.array([level.soc for level in levels])

    def table(name: str) -> np.ndarray:
        return np.interp(tr.soc, socs, np.array([getattr(lv, name) for lv in levels]))

    r0, r1, tau1, r2, tau2 = (table(name) for name in PARAMETERS)
    dt = np.diff(tr.t, prepend=tr.t[0])
    a1, a2 = np.exp(-dt / tau1), np.exp(-dt / tau2)
    flowing = interval_currents(tr.t, tr.i)
    b1, b2 = r1 * (1 - a1) * flowing, r2 * (1 - a2) * flowing
    v1 = v2 = 0.0
    out = np.empty(tr.t.size)
    for n in range(tr.t.size):
        v1 = a1[n] * v1 + b1[n]
        v2 = a2[n] * v2 + b2[n]
        out[n] = r0[n] * tr.i[n] + v1 + v2
    return out


def branches(tr: Trace, overpotential: np.ndarray, capacity_ah: float):
    """(soc, pseudo-OCV) points of the slow discharge rows and of the slow charge rows after
    the full charge (the charge to full before the test is no slow charge)."""
    ocv = tr.v - overpotential
    magnitude = np.abs(tr.i)
    slow = (magnitude > REST_CURRENT_C * capacity_ah) & (magnitude <= SLOW_MAX_C * capacity_ah)
    slow &= np.arange(tr.t.size) > tr.full_row
    discharge, charge = slow & (tr.i < 0), slow & (tr.i > 0)
    return (tr.soc[discharge], ocv[discharge]), (tr.soc[charge], ocv[charge])


def smooth_curve(
    soc: np.ndarray, ocv: np.ndarray, grid: np.ndarray, window: float = OCV_WINDOW_SOC
) -> np.ndarray:
    """Local linear regression at each grid point (NaN where the data do not reach)."""
    out = np.full(grid.size, np.nan)
    order = np.argsort(soc)
    soc, ocv = soc[order], ocv[order]
    for n, g in enumerate(grid):
        lo, hi = np.searchsorted(soc, [g - window, g + window])
        if hi - lo < 5 or soc[lo] > g + 0.002 or soc[hi - 1] < g - 0.002:
            continue
        x = soc[lo:hi] - g
        if np.ptp(x) < 1e-6:
            out[n] = ocv[lo:hi].mean()
            continue
        out[n] = np.polyfit(x, ocv[lo:hi], 1)[1]
    return out


def anchor_offsets(
    grid: np.ndarray, curve: np.ndarray, points: list[tuple[float, float]]
) -> np.ndarray | None:
    """The anchors' offsets from the curve, interpolated over the grid (None without any)."""
    known = ~np.isnan(curve)
    socs, offsets = [], []
    for soc, voltage in sorted(points):
        if known.any() and grid[known][0] <= soc <= grid[known][-1]:
            socs.append(soc)
            offsets.append(voltage - np.interp(soc, grid[known], curve[known]))
    if not socs:
        return None
    return np.interp(grid, socs, offsets)


def join_base(grid: np.ndarray, curve: np.ndarray, base: Chemistry, temp_c: float) -> np.ndarray:
    """Fill the uncovered ends with the base chemistry's shape, joined to the curve."""
    base_curve = base.ocv_v.lookup(grid, temp_c)
    known = np.flatnonzero(~np.isnan(curve))
    out = curve.copy()
    low, high = known[0], known[-1]
    out[:low] = base_curve[:low] + (curve[low] - base_curve[low])
    out[high + 1 :] = base_curve[high + 1 :] + (curve[high] - base_curve[high])
    inner = np.isnan(out)
    out[inner] = np.interp(grid[inner], grid[~inner], out[~inner])
    return np.maximum.accumulate(out)


def empty_remainder(
    end: tuple[float, float], anchors: list[tuple[float, float]], floor_v: float
) -> float:
    """The SoC still in the cell where a slow discharge stopped at ``floor_v``.

    Near empty the OCV rises from the floor as a power of the charge in the cell
    (``EMPTY_EXPONENT``, as NMC and LFP cells against graphite do). Two rested voltages fix
    where that power law starts: ``end`` (SoC, OCV) after the discharge, and the lowest of
    ``anchors`` (SoC, OCV) at least 1 % above it.
    """
    end_soc, end_v = end
    above = sorted((soc, v) for soc, v in anchors if soc > end_soc + 0.01)
    if not above or end_v <= floor_v:
        return 0.0
    soc, voltage = above[0]
    height = (voltage - floor_v) / (end_v - floor_v)
    if height <= 1.0:
        return 0.0
    ratio = height ** (1.0 / EMPTY_EXPONENT)
    start = (ratio * end_soc - soc) / (ratio - 1.0)
    return float(np.clip(end_soc - start, 0.0, MAX_EMPTY_REMAINDER))


def to_empty(grid: np.ndarray, curve: np.ndarray, end_soc: float, floor_v: float):
    """Below ``end_soc`` (where the slow discharge stopped) the curve falls to the floor
    voltage at 0 % along the same power law."""
    out = curve.copy()
    if end_soc <= 0.0:
        return out
    known = ~np.isnan(curve)
    start = float(np.interp(end_soc, grid[known], curve[known]))
    below = grid < end_soc
    out[below] = floor_v + (start - floor_v) * (grid[below] / end_soc) ** EMPTY_EXPONENT
    return out


def to_full(grid: np.ndarray, curve: np.ndarray, full_soc: float, cv_voltage_v: float):
    """Above ``full_soc`` (where the lab's full charge left the cell) the curve rises in a
    straight line to the CV voltage at 100 %."""
    if not np.isfinite(cv_voltage_v) or full_soc >= 1.0:
        return curve
    out = curve.copy()
    start = float(np.interp(full_soc, grid, curve))
    above = grid > full_soc
    out[above] = start + (cv_voltage_v - start) * (grid[above] - full_soc) / (1.0 - full_soc)
    return out


@dataclass
class OcvResult:
    """The identified curve(s) on the grid, with what the fit saw."""

    discharge_v: np.ndarray  # the OCV (the discharge branch where there is hysteresis)
    charge_v: np.ndarray | None  # the charge branch, where there is hysteresis
    gap_v: float | None  # median charge-discharge gap over 10–90 % (None without a recharge)
    anchors: int


def identify_ocv(
    grid: np.ndarray,
    discharge_points: tuple[np.ndarray, np.ndarray],
    charge_points: tuple[np.ndarray, np.ndarray],
    anchors: list[tuple[float, RestAnchor]],
) -> OcvResult:
    """The OCV branches on ``grid`` (NaN where nothing reaches), anchored on the rests.

    ``anchors`` are (SoC, rest anchor) pairs of both traces.
    """
    discharge = smooth_curve(*discharge_points, grid)
    charge = smooth_curve(*charge_points, grid) if charge_points[0].size else None
    on_discharge = [(soc, a.voltage_v) for soc, a in anchors if not a.after_charge]
    everything = [(soc, a.voltage_v) for soc, a in anchors]
    shift = anchor_offsets(grid, discharge, on_discharge)
    shift = np.zeros(grid.size) if shift is None else shift
    if charge is None:
        all_shift = anchor_offsets(grid, discharge, everything)
        final = discharge + (shift if all_shift is None else all_shift)
        return OcvResult(final, None, None, len(everything))
    raised, lowered = discharge + shift, charge - shift
    middle = (grid >= 0.1) & (grid <= 0.9) & ~np.isnan(raised) & ~np.isnan(lowered)
    gap = float(np.median(lowered[middle] - raised[middle])) if middle.sum() >= 5 else None
    if gap is not None and gap > HYSTERESIS_MIN_V:
        return OcvResult(raised, lowered, gap, len(everything))
    both = ~np.isnan(raised) & ~np.isnan(lowered)
    mean = np.where(both, 0.5 * (raised + lowered), raised)
    return OcvResult(mean, None, gap, len(everything))


def guess_chemistry(soc: np.ndarray, ocv: np.ndarray) -> str:
    """The built-in chemistry whose 25 °C OCV is closest over 10–90 % SoC."""
    inside = (soc > 0.1) & (soc < 0.9)
    if inside.sum() < 5:
        inside = np.ones_like(soc, dtype=bool)
    scores = {}
    for name in builtin_names("chemistries"):
        chem = load_chemistry(name)
        reference = chem.ocv_v.lookup(soc[inside], 25.0)
        scores[chem.name] = float(np.sqrt(np.mean((ocv[inside] - reference) ** 2)))
    return min(scores, key=scores.get)
