"""R0 and the two RC pairs at every level of a pulse (HPPC) test.

A level is the set of pulses between two SoC steps (discharges of two minutes or more). Its
relaxation data are the rest after the step that brought the cell to the level (ending at
the level's SoC) and the rests between its pulses; ``relaxation.fit_two_rc`` fits R1, tau1,
R2, tau2 to them. The OCV moves a little with the charge the pulses move; that follows the
slope of a first OCV curve. Rests after a charge pulse get an OCV offset of their own (where
the OCV has hysteresis the pulse shifts it for good, which would otherwise pass for a slow RC
pair).

R0 comes from the voltage step across every current step of at least 0.2C between rows at
most 5 s apart, whether the step starts from rest or not: ΔV less what the level's RC pairs
and the OCV did meanwhile (the step taken at the middle of the interval, as the rows cannot
say when in it the current changed), over ΔI; the median per level. At 1 s sampling the RC
share is a few percent of R0; at 10 Hz it vanishes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cellwarden.bms.identification.relaxation import fit_two_rc, rc_basis, segments
from cellwarden.bms.identification.trace import Trace, run_duration, runs
from cellwarden.model.errors import ConfigError

EDGE_CURRENT_C = 0.2  # current steps at least this large give R0
EDGE_MAX_DT_S = 5.0  # ... when the rows either side are at most this far apart
STEP_MIN_S = 120.0  # a discharge at least this long is a SoC step between pulse levels
HISTORY_S = 4 * 3600.0  # current history before a fit window that drives its RC voltages
SLOW_FIT_MIN_REST_S = 600.0  # a rest this long after a level's step is needed to fit R2/tau2
RC_PARAMETERS = ("r1_ohm", "tau1_s", "r2_ohm", "tau2_s")


@dataclass
class LevelFit:
    """What one pulse level gave."""

    soc: float
    temp_c: float
    r0_ohm: float
    r1_ohm: float = math.nan
    tau1_s: float = math.nan
    r2_ohm: float = math.nan
    tau2_s: float = math.nan
    rms_mv: float = math.nan
    filled: list[str] = field(default_factory=list)  # parameters taken from neighbours


@dataclass(frozen=True)
class _Level:
    first: int  # the first pulse row
    last: int  # the last row before the next SoC step
    previous: tuple[int, int] | None  # the SoC step before (rows), if any


def levels(tr: Trace) -> list[_Level]:
    """Each pulse level of the trace."""
    active = runs(~tr.rest)
    steps = [(a, b) for a, b in active if tr.i[a] < 0 and run_duration(tr.t, a, b) >= STEP_MIN_S]
    pulses = [(a, b) for a, b in active if run_duration(tr.t, a, b) < STEP_MIN_S / 2]
    if not pulses:
        raise ConfigError("pulse trace: no current pulses found (steps shorter than 60 s)")
    found = []
    boundaries = [(-1, -1), *steps, (tr.t.size, tr.t.size)]
    for before, after in itertools.pairwise(boundaries):
        inside = [(a, b) for a, b in pulses if before[1] < a < after[0]]
        if inside:
            previous = before if before[0] >= 0 else None
            found.append(_Level(inside[0][0], after[0] - 1, previous))
    return found


def _edges(tr: Trace, level: _Level, capacity_ah: float) -> np.ndarray:
    """Rows r whose step from row r - 1 is a current edge R0 can be read from."""
    rows = np.arange(max(level.first, 1), level.last + 1)
    d_i = tr.i[rows] - tr.i[rows - 1]
    d_t = tr.t[rows] - tr.t[rows - 1]
    return rows[(np.abs(d_i) >= EDGE_CURRENT_C * capacity_ah) & (d_t <= EDGE_MAX_DT_S)]


def edge_resistance(
    tr: Trace, level: _Level, capacity_ah: float, fit: LevelFit | None, slope_v: float
) -> float:
    """The median R0 of the level's edges; with ``fit`` the RC pairs' share is taken off."""
    edges = _edges(tr, level, capacity_ah)
    if not edges.size:
        return math.nan
    i_old, i_new = tr.i[edges - 1], tr.i[edges]
    d_v = tr.v[edges] - tr.v[edges - 1] - slope_v * (tr.soc[edges] - tr.soc[edges - 1])
    if fit is not None:
        history = int(np.searchsorted(tr.t, tr.t[level.first] - HISTORY_S))
        segs = segments(tr, history, level.last, capacity_ah)
        dt = tr.t[edges] - tr.t[edges - 1]
        for r_ohm, tau_s in ((fit.r1_ohm, fit.tau1_s), (fit.r2_ohm, fit.tau2_s)):
            before = r_ohm * rc_basis(tr.t[edges - 1], segs, np.array([tau_s]))[0]
            whole, half = np.exp(-dt / tau_s), np.exp(-dt / (2.0 * tau_s))
            d_v -= before * (whole - 1.0) + r_ohm * (i_old * (half - whole) + i_new * (1 - half))
    return float(np.median(d_v / (i_new - i_old)))


def _fit_problem(tr: Trace, level: _Level, capacity_ah: float, slope_v: float):
    """The level's rest rows less the OCV's change with the charge moved (``slope_v`` per
    unit SoC), and the current history; None if too few rows."""
    first, last, previous = level.first, level.last, level.previous
    if previous is not None:
        data_first = previous[1] + 1
        rest_before = float(tr.t[max(first - 1, 0)] - tr.t[previous[1]])
    else:  # no step before: the last minute before the first pulse
        data_first = int(np.searchsorted(tr.t, tr.t[first] - 60.0))
        rest_before = 0.0
    rows = np.arange(data_first, last + 1)
    rows = rows[tr.rest[rows]]
    history_first = int(np.searchsorted(tr.t, tr.t[data_first] - HISTORY_S))
    segs = segments(tr, history_first, last, capacity_ah)
    if rows.size < 10 or segs.size == 0:
        return None
    y = tr.v[rows] - slope_v * (tr.soc[rows] - tr.soc[max(first - 1, 0)])
    active = np.flatnonzero(~tr.rest[: last + 1])
    before = np.searchsorted(active, rows) - 1
    after_charge = (before >= 0) & (tr.i[active[np.maximum(before, 0)]] > 0)
    fixed = np.column_stack([np.ones(rows.size), after_charge.astype(float)])
    if not after_charge.any() or after_charge.all():
        fixed = fixed[:, :1]
    return tr.t[rows], y - y.mean(), fixed, segs, rest_before


def analyse_pulses(
    tr: Trace, capacity_ah: float, ocv_slope: Callable[[float], float], template_ratios: dict
) -> list[LevelFit]:
    """R0 and the two RC pairs at every level, sorted by SoC; levels whose fit failed take
    their neighbours' values (or the template's ratios to R0 when none has any).

    ``ocv_slope(soc)`` is the OCV's slope per unit SoC (from a first OCV curve).
    """
    found = levels(tr)
    fits = []
    for level in found:
        before = max(level.first - 1, 0)
        slope = ocv_slope(float(tr.soc[before]))
        fit = LevelFit(
            soc=float(tr.soc[before]),
            temp_c=float(np.mean(tr.temp[level.first : level.last + 1])),
            r0_ohm=edge_resistance(tr, level, capacity_ah, None, slope),
        )
        problem = _fit_problem(tr, level, capacity_ah, slope)
        if problem is not None and problem[4] >= SLOW_FIT_MIN_REST_S:
            t, y, fixed, segs, rest_before = problem
            result = fit_two_rc(t, y, fixed, segs, tau2_max=rest_before)
            if result is not None:
                r1, tau1, r2, tau2, rms, on_bound = result
                fit.rms_mv = 1000 * rms
                if not on_bound and r2 > 0.02 * max(fit.r0_ohm, 1e-9):
                    fit.r1_ohm, fit.tau1_s, fit.r2_ohm, fit.tau2_s = r1, tau1, r2, tau2
        fits.append(fit)
    order = np.argsort([fit.soc for fit in fits])
    fits = [fits[n] for n in order]
    found = [found[n] for n in order]
    _fill(fits, template_ratios)
    for level, fit in zip(found, fits, strict=True):  # R0 again, the RC share taken off
        corrected = edge_resistance(tr, level, capacity_ah, fit, ocv_slope(fit.soc))
        if math.isfinite(corrected) and corrected > 0:
            fit.r0_ohm = corrected
    return fits


def _fill(fits: list[LevelFit], template_ratios: dict[str, float]) -> None:
    """Interpolate missing parameters from other levels, or use the template's ratios to R0
    (resistances) and values (time constants). ``fits`` must be sorted by SoC."""
    socs = np.array([fit.soc for fit in fits])
    r0 = np.array([fit.r0_ohm for fit in fits])
    good = np.isfinite(r0) & (r0 > 0)
    if not good.any():
        raise ConfigError(
            "pulse trace: no current step of 0.2C or more between rows at most "
            f"{EDGE_MAX_DT_S:g} s apart, so R0 cannot be read (log at 1 s or faster "
            "around the pulses)"
        )
    r0 = np.interp(socs, socs[good], r0[good])
    for index, fit in enumerate(fits):
        if not good[index]:
            fit.filled.append("r0_ohm")
        fit.r0_ohm = float(r0[index])
    for name in RC_PARAMETERS:
        values = np.array([getattr(fit, name) for fit in fits])
        known = ~np.isnan(values)
        for index, fit in enumerate(fits):
            if known[index]:
                continue
            if known.any():
                value = float(np.interp(fit.soc, socs[known], values[known]))
            else:
                ratio = template_ratios[name]
                value = ratio * fit.r0_ohm if name.startswith("r") else ratio
            setattr(fit, name, value)
            fit.filled.append(name)
