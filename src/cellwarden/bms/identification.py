"""Identify a cell's two-RC model from a pulse (HPPC) trace and a slow-discharge trace.

What the fit does (traces as described in ``trace_replay``; positive current charges):

1. Current offset: the median current over a trace's rests (|I| below 0.5 % of 1C for at
   least a minute) is its sensor's offset; it is taken off every current of that trace (a
   trace without rests takes the other's).
2. State of charge by Coulomb counting with the given capacity from full: 100 % at the end of
   the last charge that comes before the first discharge of each trace (the CC-CV to full), or
   at the trace's first row when it holds no such charge.
3. R0 from the voltage jumps at the edges of the pulses (ΔV/ΔI between the rows either side of
   a current step of at least 0.2C, sampled no more than 0.5 s apart); the median per level.
4. R1, tau1, R2, tau2 per level by least squares on the rest rows from the end of the SoC
   step that brought the cell to the level to the level's last pulse rest: the rest voltage is
   an OCV plus the two RC voltages driven by the whole current history (the 10 % step and its
   hour of rest carry most of the information; the relaxation ends at the level's SoC).
   The fit is a variable projection: for each pair of time constants the OCV term and the
   resistances follow by linear least squares; the pair is searched on a logarithmic grid
   and refined (tau1 within 0.5–200 s, tau2 within 30 s – 5000 s and at least three times
   tau1, both resistances non-negative).
   The OCV's change between the rests (the pulses move a little charge) follows the slope of
   a first OCV curve from the slow trace; the rests after a charge pulse get an OCV offset of
   their own (a hysteresis shift that never relaxes would otherwise pass for a slow RC
   pair). A level whose fit fails or ends on a bound, or that has no long rest before its
   pulses (the first, at full), takes its neighbours' values (interpolated in SoC); with no
   usable level at all, the ratios of a built-in template cell are used.
5. OCV from the slow trace: the terminal voltage less R0·I and the two RC voltages simulated
   with the identified parameters along the trace (exact for the two-RC model; at C/20 this
   is close to V + |I|·(R0 + R1 + R2) once the RC pairs have settled), smoothed by local
   linear regression on a SoC grid and made non-decreasing. If the trace also holds a slow
   charge, the charge branch is identified the same way: when it lies more than 5 mV above
   the discharge branch over 10–90 % SoC the cell has hysteresis (both branches are kept, with
   the base chemistry's hysteresis rate), otherwise the OCV is the mean of both branches
   (which cancels any error left in the resistance). SoC ranges the trace does not reach take
   the base chemistry's curve shape, joined to the identified curve.

The result is a CellSpec-compatible cell: the capacity as given, r0/r1/tau1/r2/tau2 as tables
over the levels' SoC, an inline chemistry copied from the base chemistry (given, or the
built-in one whose OCV is closest) with the identified OCV, and mass and thermal data from the
built-in cell of that chemistry closest in capacity (scaled: mass with capacity, heat paths
with capacity^(2/3)); those are not identified. A test at one temperature cannot show how the
cell changes with temperature: by default the tables take the base chemistry's temperature
dependence around the identified values (resistances and time constants relative, OCV
additive); ``temperature_from_base=False`` writes the test temperature's row alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellwarden.bms.trace_replay import check_trace
from cellwarden.model.cell import CellSpec
from cellwarden.model.chemistry import Chemistry
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import builtin_names, cell_from_dict, load_cell, load_chemistry
from cellwarden.model.tables import Table2D

REST_CURRENT_C = 0.005  # |I| below this share of 1C is rest
MIN_REST_FOR_OFFSET_S = 60.0
EDGE_CURRENT_C = 0.2  # current steps at least this large give R0
EDGE_MAX_DT_S = 0.5
MIN_MOVE_SOC = 0.0005  # a discharge must move this much to end "full" (not a blip)
STEP_MIN_S = 120.0  # a discharge at least this long is a SoC step between pulse levels
SEGMENT_CURRENT_C = 0.01  # rows closer than this in current form one constant-current segment
HISTORY_S = 4 * 3600.0  # current history before a fit window that drives its RC voltages
TAU1_BOUNDS_S = (0.5, 200.0)
TAU2_BOUNDS_S = (30.0, 5000.0)
TAU_RATIO_MIN = 3.0
SLOW_FIT_MIN_REST_S = 600.0  # a rest this long after a level's step is needed to fit R2/tau2
HYSTERESIS_MIN_V = 0.005
OCV_WINDOW_SOC = 0.004  # half-width of the local regression for the OCV curve
DEFAULT_HYSTERESIS_RATE = 30.0
PARAMETERS = ("r0_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")


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


@dataclass
class Identification:
    """An identified cell: the TOML content, the validated spec and what the fit saw."""

    data: dict[str, Any]
    cell: CellSpec
    levels: list[LevelFit]
    base_chemistry: str
    test_temp_c: float
    current_offset_a: tuple[float, float]  # of the pulse and the slow trace
    discharge_capacity_ah: float
    hysteresis: bool
    ocv_soc: np.ndarray
    ocv_v: np.ndarray
    notes: list[str]

    def toml(self) -> str:
        """The cell as a TOML document with a commented header."""
        header = [
            f"# {self.cell.name}: identified by `cellwarden identify`",
            f"# base chemistry {self.base_chemistry}; test temperature {self.test_temp_c:.1f} °C; "
            f"current offsets removed: pulse {1000 * self.current_offset_a[0]:.2f} mA, "
            f"slow {1000 * self.current_offset_a[1]:.2f} mA",
            f"# capacity from full to the lower voltage limit in the slow test: "
            f"{self.discharge_capacity_ah:.3f} Ah (capacity_ah below is the one given)",
            "# level SoC %, R0 mOhm, R1 mOhm, tau1 s, R2 mOhm, tau2 s, fit rms mV"
            " (* = from neighbours):",
        ]
        for level in self.levels:
            mark = "*" if level.filled else " "
            header.append(
                f"#  {100 * level.soc:6.1f} {1000 * level.r0_ohm:8.3f} {1000 * level.r1_ohm:8.3f}"
                f" {level.tau1_s:7.1f} {1000 * level.r2_ohm:8.3f} {level.tau2_s:7.0f}"
                f" {level.rms_mv:6.2f} {mark}"
            )
        header += [f"# note: {note}" for note in self.notes]
        header.append("# mass and thermal data are not identified: they come from a built-in cell")
        return "\n".join(header) + "\n\n" + to_toml(self.data)

    def write(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(self.toml(), encoding="utf-8")
        return path


# --- TOML output ------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"cannot write {number} to TOML")
        return repr(round(number, 10))
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], list | tuple):
            rows = ",\n".join(f"    {_toml_value(row)}" for row in value)
            return f"[\n{rows},\n]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for nested dicts of numbers, strings and (nested) lists."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict) and v is not None]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"{key} = {_toml_value(value)}" for key, value in scalars]
    text = "\n".join(lines)
    for key, table in tables:
        name = f"{prefix}.{key}" if prefix else key
        body = to_toml(table, name)
        text += f"\n\n[{name}]\n{body}" if body.strip() else ""
    return text.strip("\n") + "\n" if not prefix else text.strip("\n")


# --- trace preparation ------------------------------------------------------------------------
@dataclass
class _Trace:
    """A checked trace with its offset-corrected current, charge and SoC."""

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    temp: np.ndarray
    rest: np.ndarray
    charge_as: np.ndarray  # cumulative, at each row
    soc: np.ndarray


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row index of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _run_duration(t: np.ndarray, first: int, last: int) -> float:
    start = t[first - 1] if first > 0 else t[first]
    return float(t[last] - start)


def _rest_rows(i: np.ndarray, capacity_ah: float) -> np.ndarray:
    return np.abs(i) < REST_CURRENT_C * capacity_ah


def estimate_offset(frame: pd.DataFrame, capacity_ah: float) -> float | None:
    """The median current over the trace's rests of a minute or more (None without any)."""
    t, i = frame["time_s"].to_numpy(), frame["current_a"].to_numpy()
    rest = _rest_rows(i, capacity_ah)
    samples = [
        i[first + 1 : last + 1]
        for first, last in _runs(rest)
        if _run_duration(t, first, last) >= MIN_REST_FOR_OFFSET_S
    ]
    samples = [s for s in samples if s.size]
    return float(np.median(np.concatenate(samples))) if samples else None


def _prepare(frame: pd.DataFrame, capacity_ah: float, offset_a: float) -> _Trace:
    t = frame["time_s"].to_numpy(dtype=float)
    i = frame["current_a"].to_numpy(dtype=float) - offset_a
    rest = _rest_rows(i, capacity_ah)
    dt = np.diff(t, prepend=t[0])
    charge_as = np.cumsum(i * dt)
    # full: the end of the last charge before the first discharge (else the first row); a
    # discharge counts when it moves at least MIN_MOVE_SOC (not a blip at power-up)
    first_discharge = t.size
    for first, last in _runs(i < -REST_CURRENT_C * capacity_ah):
        moved_as = charge_as[first - 1 if first else 0] - charge_as[last]
        if moved_as >= MIN_MOVE_SOC * 3600.0 * capacity_ah:
            first_discharge = first
            break
    charging = np.flatnonzero(i[:first_discharge] > REST_CURRENT_C * capacity_ah)
    full_row = int(charging[-1]) if charging.size else 0
    soc = 1.0 + (charge_as - charge_as[full_row]) / (3600.0 * capacity_ah)
    return _Trace(
        t, i, frame["voltage_v"].to_numpy(float), frame["temp_c"].to_numpy(float), rest,
        charge_as, soc,
    )  # fmt: skip


# --- relaxation fit ---------------------------------------------------------------------------
def _segments(tr: _Trace, first: int, last: int, capacity_ah: float) -> np.ndarray:
    """Constant-current segments (start_s, end_s, current_a) of rows first..last.

    Row n's current flows over (t[n-1], t[n]]; rest rows count as exactly zero current.
    """
    threshold = SEGMENT_CURRENT_C * capacity_ah
    current = np.where(tr.rest, 0.0, tr.i)
    dt = np.diff(tr.t, prepend=tr.t[0])
    out = []
    start = first
    for row in range(first + 1, last + 2):
        if row <= last and abs(current[row] - current[start]) <= threshold:
            continue
        span = dt[start:row].sum()
        if span > 0 and current[start] != 0.0:
            mean = float((current[start:row] * dt[start:row]).sum() / span)
            out.append((tr.t[start] - dt[start], tr.t[row - 1], mean))
        start = row
    return np.asarray(out, dtype=float).reshape(-1, 3)


def _rc_basis(t: np.ndarray, segments: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Unit-resistance RC voltage at times t for each tau: shape (len(taus), len(t))."""
    start, end, current = segments[:, 0], segments[:, 1], segments[:, 2]
    after_end = np.maximum(t[:, None] - end[None, :], 0.0)
    after_start = np.maximum(t[:, None] - start[None, :], 0.0)
    out = np.empty((taus.size, t.size))
    for n, tau in enumerate(taus):
        out[n] = (np.exp(-after_end / tau) - np.exp(-after_start / tau)) @ current
    return out


def _solve_grid(y, fixed, g1, g2):
    """Least squares of y on [fixed, g1[a], g2[b]] for every (a, b): θ and SSE arrays."""
    n_fixed = fixed.shape[1]
    k1, k2 = g1.shape[0], g2.shape[0]
    size = n_fixed + 2
    gram = np.empty((k1, k2, size, size))
    rhs = np.empty((k1, k2, size))
    ff, f1, f2 = fixed.T @ fixed, fixed.T @ g1.T, fixed.T @ g2.T
    gram[:, :, :n_fixed, :n_fixed] = ff
    gram[:, :, :n_fixed, n_fixed] = f1.T[:, None, :]
    gram[:, :, n_fixed, :n_fixed] = f1.T[:, None, :]
    gram[:, :, :n_fixed, n_fixed + 1] = f2.T[None, :, :]
    gram[:, :, n_fixed + 1, :n_fixed] = f2.T[None, :, :]
    gram[:, :, n_fixed, n_fixed] = np.einsum("an,an->a", g1, g1)[:, None]
    gram[:, :, n_fixed + 1, n_fixed + 1] = np.einsum("bn,bn->b", g2, g2)[None, :]
    cross = g1 @ g2.T
    gram[:, :, n_fixed, n_fixed + 1] = cross
    gram[:, :, n_fixed + 1, n_fixed] = cross
    rhs[:, :, :n_fixed] = fixed.T @ y
    rhs[:, :, n_fixed] = (g1 @ y)[:, None]
    rhs[:, :, n_fixed + 1] = (g2 @ y)[None, :]
    scale = np.sqrt(np.maximum(np.einsum("abii->abi", gram), 1e-30))
    scaled = gram / (scale[..., :, None] * scale[..., None, :]) + 1e-12 * np.eye(size)
    theta = np.linalg.solve(scaled, (rhs / scale)[..., None])[..., 0] / scale
    sse = (
        y @ y
        - 2 * np.einsum("abi,abi->ab", theta, rhs)
        + np.einsum("abi,abij,abj->ab", theta, gram, theta)
    )
    return theta, sse


def _fit_two_rc(t, y, fixed, segments, tau2_max):
    """Variable projection over (tau1, tau2): (r1, tau1, r2, tau2, rms, on_bound) or None."""
    lo1, hi1 = TAU1_BOUNDS_S
    lo2, hi2 = TAU2_BOUNDS_S[0], min(TAU2_BOUNDS_S[1], tau2_max)
    if hi2 <= lo2:
        return None
    grid1 = np.geomspace(lo1, hi1, 32)
    grid2 = np.geomspace(lo2, hi2, 32)
    best = None
    n_fixed = fixed.shape[1]
    for _ in range(4):
        g1, g2 = _rc_basis(t, segments, grid1), _rc_basis(t, segments, grid2)
        theta, sse = _solve_grid(y, fixed, g1, g2)
        r1, r2 = theta[..., n_fixed], theta[..., n_fixed + 1]
        bad = (r1 < 0) | (r2 < 0) | (grid2[None, :] < TAU_RATIO_MIN * grid1[:, None])
        sse = np.where(bad, np.inf, sse)
        if not np.isfinite(sse).any():
            return None
        a, b = np.unravel_index(np.argmin(sse), sse.shape)
        best = (r1[a, b], grid1[a], r2[a, b], grid2[b], sse[a, b])
        step1 = (grid1[1] / grid1[0]) ** 1.5
        step2 = (grid2[1] / grid2[0]) ** 1.5
        grid1 = np.geomspace(max(lo1, grid1[a] / step1), min(hi1, grid1[a] * step1), 15)
        grid2 = np.geomspace(max(lo2, grid2[b] / step2), min(hi2, grid2[b] * step2), 15)
    r1, tau1, r2, tau2, sse = best
    rms = math.sqrt(max(sse, 0.0) / y.size)
    on_bound = tau1 <= lo1 * 1.05 or tau1 >= hi1 / 1.05 or tau2 <= lo2 * 1.05 or tau2 >= hi2 / 1.05
    return float(r1), float(tau1), float(r2), float(tau2), rms, on_bound


# --- the pulse trace --------------------------------------------------------------------------
def _levels(tr: _Trace) -> list[tuple[int, int, tuple[int, int] | None]]:
    """Each pulse level: (first pulse row, last row before the next SoC step, previous step).

    A level's relaxation data are the rest after the SoC step that brought the cell to the
    level (ending at the level's SoC) and the rests between its pulses.
    """
    runs = _runs(~tr.rest)
    steps = [(a, b) for a, b in runs if tr.i[a] < 0 and _run_duration(tr.t, a, b) >= STEP_MIN_S]
    pulses = [(a, b) for a, b in runs if _run_duration(tr.t, a, b) < STEP_MIN_S / 2]
    if not pulses:
        raise ConfigError("pulse trace: no current pulses found (steps shorter than 60 s)")
    levels = []
    boundaries = [(-1, -1), *steps, (tr.t.size, tr.t.size)]
    for before, after in itertools.pairwise(boundaries):
        inside = [(a, b) for a, b in pulses if before[1] < a < after[0]]
        if inside:
            previous = before if before[0] >= 0 else None
            levels.append((inside[0][0], after[0] - 1, previous))
    return levels


def _edge_resistance(tr: _Trace, first: int, last: int, capacity_ah: float) -> float:
    rows = np.arange(max(first, 1), last + 1)
    d_i = tr.i[rows] - tr.i[rows - 1]
    d_t = tr.t[rows] - tr.t[rows - 1]
    big = np.abs(d_i) >= EDGE_CURRENT_C * capacity_ah
    for limit in (EDGE_MAX_DT_S, 2.0):
        pick = big & (d_t <= limit)
        if pick.any():
            d_v = tr.v[rows[pick]] - tr.v[rows[pick] - 1]
            return float(np.median(d_v / d_i[pick]))
    return math.nan


def _fit_level(tr: _Trace, first: int, last: int, previous, capacity_ah: float, slope_v: float):
    """The level's rest rows less the OCV's change with the charge moved (``slope_v`` per
    unit SoC), and the current history; None if too few rows."""
    if previous is not None:
        data_first = previous[1] + 1
        rest_before = float(tr.t[max(first - 1, 0)] - tr.t[previous[1]])
    else:  # no step before: the last minute before the first pulse
        data_first = int(np.searchsorted(tr.t, tr.t[first] - 60.0))
        rest_before = 0.0
    rows = np.arange(data_first, last + 1)
    rows = rows[tr.rest[rows]]
    history_first = int(np.searchsorted(tr.t, tr.t[data_first] - HISTORY_S))
    segments = _segments(tr, history_first, last, capacity_ah)
    if rows.size < 10 or segments.size == 0:
        return None
    y = tr.v[rows] - slope_v * (tr.soc[rows] - tr.soc[max(first - 1, 0)])
    # rests after a charge pulse get an OCV offset of their own: where the OCV has hysteresis
    # the pulse moves it towards the charge branch, a shift that does not relax
    active = np.flatnonzero(~tr.rest[: last + 1])
    before = np.searchsorted(active, rows) - 1
    after_charge = (before >= 0) & (tr.i[active[np.maximum(before, 0)]] > 0)
    fixed = np.column_stack([np.ones(rows.size), after_charge.astype(float)])
    if not after_charge.any() or after_charge.all():
        fixed = fixed[:, :1]
    return {
        "t": tr.t[rows],
        "y": y - y.mean(),
        "fixed": fixed,
        "segments": segments,
        "rest_before": rest_before,
    }


def analyse_pulses(tr: _Trace, capacity_ah: float, ocv_slope) -> list[LevelFit]:
    """R0 and the two RC pairs at every pulse level (fall-backs not applied yet).

    ``ocv_slope(soc)`` is the OCV's slope per unit SoC (from the slow trace): the rests
    around a level's pulses lie at slightly different SoC.
    """
    fits: list[LevelFit] = []
    for first, last, previous in _levels(tr):
        before = max(first - 1, 0)
        level = LevelFit(
            soc=float(tr.soc[before]),
            temp_c=float(np.mean(tr.temp[first : last + 1])),
            r0_ohm=_edge_resistance(tr, first, last, capacity_ah),
        )
        slope = float(ocv_slope(tr.soc[before]))
        problem = _fit_level(tr, first, last, previous, capacity_ah, slope)
        if problem is not None and problem["rest_before"] >= SLOW_FIT_MIN_REST_S:
            result = _fit_two_rc(
                problem["t"], problem["y"], problem["fixed"], problem["segments"],
                tau2_max=problem["rest_before"],
            )  # fmt: skip
            if result is not None:
                r1, tau1, r2, tau2, rms, on_bound = result
                level.rms_mv = 1000 * rms
                if not on_bound and r2 > 0.02 * max(level.r0_ohm, 1e-9):
                    level.r1_ohm, level.tau1_s, level.r2_ohm, level.tau2_s = r1, tau1, r2, tau2
        fits.append(level)
    return fits


def _fill(levels: list[LevelFit], template: CellSpec) -> None:
    """Interpolate missing parameters from other levels, or use the template's ratios.

    ``levels`` must be sorted by SoC.
    """
    socs = np.array([level.soc for level in levels])
    r0 = np.array([level.r0_ohm for level in levels])
    good = np.isfinite(r0) & (r0 > 0)
    if not good.any():
        raise ConfigError("pulse trace: no current steps of 0.2C or more to measure R0 from")
    r0 = np.interp(socs, socs[good], r0[good])
    ratios = {
        "r1_ohm": _scalar(template.r1_ohm) / _scalar(template.r0_ohm),
        "r2_ohm": _scalar(template.r2_ohm) / _scalar(template.r0_ohm),
        "tau1_s": _scalar(template.tau1_s),
        "tau2_s": _scalar(template.tau2_s),
    }
    for index, level in enumerate(levels):
        if not good[index]:
            level.filled.append("r0_ohm")
        level.r0_ohm = float(r0[index])
    for name in ("r1_ohm", "tau1_s", "r2_ohm", "tau2_s"):
        values = np.array([getattr(level, name) for level in levels])
        known = ~np.isnan(values)
        for index, level in enumerate(levels):
            if known[index]:
                continue
            if known.any():
                value = float(np.interp(level.soc, socs[known], values[known]))
            else:
                ratio = ratios[name]
                value = ratio * level.r0_ohm if name.startswith("r") else ratio
            setattr(level, name, value)
            level.filled.append(name)


def _scalar(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return float(value.lookup(0.5, 25.0))


# --- the slow trace: OCV --------------------------------------------------------------------
def _model_overpotential(tr: _Trace, levels: list[LevelFit]) -> np.ndarray:
    """R0·I plus the two RC voltages along the trace, with the identified tables."""
    socs = np.array([level.soc for level in levels])
    order = np.argsort(socs)
    s = socs[order]

    def table(name: str) -> np.ndarray:
        return np.interp(tr.soc, s, np.array([getattr(lv, name) for lv in levels])[order])

    r0, r1, tau1, r2, tau2 = (table(name) for name in PARAMETERS)
    dt = np.diff(tr.t, prepend=tr.t[0])
    a1, a2 = np.exp(-dt / tau1), np.exp(-dt / tau2)
    b1, b2 = r1 * (1 - a1) * tr.i, r2 * (1 - a2) * tr.i
    v1 = v2 = 0.0
    out = np.empty(tr.t.size)
    for n in range(tr.t.size):
        v1 = a1[n] * v1 + b1[n]
        v2 = a2[n] * v2 + b2[n]
        out[n] = r0[n] * tr.i[n] + v1 + v2
    return out


def _smooth_curve(
    soc: np.ndarray, ocv: np.ndarray, grid: np.ndarray, window: float = OCV_WINDOW_SOC
) -> np.ndarray:
    """Local linear regression at each grid point (NaN where the data do not reach)."""
    out = np.full(grid.size, np.nan)
    for n, g in enumerate(grid):
        near = np.abs(soc - g) <= window
        if near.sum() < 5 or soc[near].min() > g + 0.002 or soc[near].max() < g - 0.002:
            continue
        x = soc[near] - g
        if np.ptp(x) < 1e-6:
            out[n] = ocv[near].mean()
            continue
        out[n] = np.polyfit(x, ocv[near], 1)[1]
    return out


def _ocv_grid(base: Chemistry) -> np.ndarray:
    return np.unique(
        np.round(np.concatenate([base.ocv_v.soc_points, np.arange(0, 1.0001, 0.025)]), 6)
    )


def _join_base(grid: np.ndarray, curve: np.ndarray, base: Chemistry, temp_c: float) -> np.ndarray:
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


def _branches(tr: _Trace, overpotential: np.ndarray, capacity_ah: float):
    """(soc, ocv) points of the discharge and the charge rows."""
    ocv = tr.v - overpotential
    threshold = REST_CURRENT_C * capacity_ah
    discharge, charge = tr.i < -threshold, tr.i > threshold
    return (tr.soc[discharge], ocv[discharge]), (tr.soc[charge], ocv[charge])


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


def template_cell(chemistry: Chemistry, capacity_ah: float) -> CellSpec:
    """The built-in cell of the chemistry closest in capacity (any cell if none has it)."""
    cells = [load_cell(name) for name in builtin_names("cells")]
    same = [c for c in cells if c.chemistry.name == chemistry.name] or cells
    return min(same, key=lambda c: abs(math.log(c.capacity_ah / capacity_ah)))


# --- the whole identification -----------------------------------------------------------------
def _table(
    socs: np.ndarray,
    values: np.ndarray,
    temp_c: float,
    digits: int,
    shape: Table2D | None = None,
    additive: bool = False,
) -> dict[str, Any]:
    """A table at the test temperature, or over ``shape``'s temperatures following its
    temperature dependence (relative for resistances and time constants, additive for OCV)."""
    if shape is None:
        temps, rows = [round(float(temp_c), 1)], [values]
    else:
        temps = list(shape.temp_points_c)
        at_test = shape.lookup(socs, temp_c)
        rows = []
        for temp in temps:
            here = shape.lookup(socs, temp)
            row = values + (here - at_test) if additive else values * here / at_test
            rows.append(np.maximum.accumulate(row) if additive else row)
    return {
        "soc_points": [round(float(s), 4) for s in socs],
        "temp_points_c": temps,
        "values": [[round(float(v), digits) for v in row] for row in rows],
    }


def identify(
    pulse: pd.DataFrame,
    slow: pd.DataFrame,
    capacity_ah: float,
    *,
    chemistry: str | None = None,
    name: str = "identified-cell",
    temperature_from_base: bool = True,
) -> Identification:
    """Fit a cell from a pulse trace and a slow-discharge trace (see the module docstring).

    With ``temperature_from_base`` the tables get the base chemistry's temperature rows,
    scaled to the identified values at the test temperature; without it they hold the test
    temperature's row alone (the BMS then uses those values at every temperature).
    """
    if not capacity_ah > 0:
        raise ConfigError(f"capacity must be positive (got {capacity_ah})")
    pulse = check_trace(pulse, "pulse trace")
    slow = check_trace(slow, "slow-discharge trace")
    notes: list[str] = []
    pulse_offset = estimate_offset(pulse, capacity_ah)
    slow_offset = estimate_offset(slow, capacity_ah)
    pulse_offset = pulse_offset if pulse_offset is not None else (slow_offset or 0.0)
    slow_offset = slow_offset if slow_offset is not None else pulse_offset
    pulse_tr = _prepare(pulse, capacity_ah, pulse_offset)
    slow_tr = _prepare(slow, capacity_ah, slow_offset)
    if not (slow_tr.i < -REST_CURRENT_C * capacity_ah).any():
        raise ConfigError("slow-discharge trace: it holds no discharge")

    # a first OCV (IR taken off with three times the median R0 of the pulse edges): it gives
    # the chemistry and the OCV slope the relaxation fits need
    r0_edges = [
        _edge_resistance(pulse_tr, first, last, capacity_ah) for first, last, _ in _levels(pulse_tr)
    ]
    r0_guess = float(np.nanmedian(r0_edges)) if np.isfinite(r0_edges).any() else 0.0
    (d_soc, d_v), _ = _branches(slow_tr, 3.0 * r0_guess * slow_tr.i, capacity_ah)
    if d_soc.size < 10:
        raise ConfigError("slow-discharge trace: too few discharge rows to build an OCV curve")
    if chemistry is None:
        chemistry = guess_chemistry(d_soc, d_v)
        notes.append(f"chemistry guessed from the OCV: {chemistry}")
    slope_grid = np.linspace(0.0, 1.0, 101)
    rough = _smooth_curve(d_soc, d_v, slope_grid, window=0.02)
    known = ~np.isnan(rough)
    rough = np.interp(slope_grid, slope_grid[known], rough[known])
    slopes = np.gradient(rough, slope_grid)

    def ocv_slope(soc: float) -> float:
        return float(np.interp(soc, slope_grid, slopes))

    levels = sorted(analyse_pulses(pulse_tr, capacity_ah, ocv_slope), key=lambda lv: lv.soc)
    base = load_chemistry(chemistry)
    template = template_cell(base, capacity_ah)
    _fill(levels, template)
    filled = [f"{100 * lv.soc:.0f} %: {', '.join(lv.filled)}" for lv in levels if lv.filled]
    if filled:
        notes.append("parameters from neighbouring levels or the template at " + "; ".join(filled))

    test_temp = float(np.mean([level.temp_c for level in levels]))
    overpotential = _model_overpotential(slow_tr, levels)
    (d_soc, d_v), (c_soc, c_v) = _branches(slow_tr, overpotential, capacity_ah)
    grid = _ocv_grid(base)
    discharge = _smooth_curve(d_soc, d_v, grid)
    if np.isnan(discharge).all():
        raise ConfigError("slow-discharge trace: too few discharge rows to build an OCV curve")
    charge = _smooth_curve(c_soc, c_v, grid) if c_soc.size else np.full(grid.size, np.nan)
    middle = (grid >= 0.1) & (grid <= 0.9) & ~np.isnan(discharge) & ~np.isnan(charge)
    hysteresis = False
    if middle.sum() >= 5:
        gap = float(np.median(charge[middle] - discharge[middle]))
        hysteresis = gap > HYSTERESIS_MIN_V
        notes.append(f"slow charge found: median charge-discharge OCV gap {1000 * gap:.1f} mV")
        if not hysteresis:
            both = ~np.isnan(discharge) & ~np.isnan(charge)
            discharge = np.where(both, 0.5 * (discharge + charge), discharge)
    ocv = _join_base(grid, discharge, base, test_temp)
    ocv_charge = None
    if hysteresis:
        ocv_charge = np.maximum(_join_base(grid, charge, base, test_temp), ocv)

    socs = np.clip([level.soc for level in levels], 0.0, 1.0)
    keep = np.concatenate([[True], np.diff(np.round(socs, 4)) > 0])
    socs = socs[keep]
    if socs.size < 2:
        raise ConfigError("pulse trace: pulses at two or more SoC levels are needed")
    use_base = temperature_from_base
    chem = base.model_dump(exclude_none=True)
    chem["name"] = f"{base.name} (identified)"
    chem["ocv_v"] = _table(grid, ocv, test_temp, 5, base.ocv_v if use_base else None, True)
    chem.pop("ocv_charge_v", None)
    chem["hysteresis_rate"] = 0.0
    if ocv_charge is not None:
        shape = (base.ocv_charge_v or base.ocv_v) if use_base else None
        table = _table(grid, ocv_charge, test_temp, 5, shape, True)
        # the charge branch must not lie below the discharge branch at any temperature
        below = np.asarray(chem["ocv_v"]["values"])
        if table["temp_points_c"] == chem["ocv_v"]["temp_points_c"]:
            table["values"] = np.maximum(np.asarray(table["values"]), below).tolist()
        chem["ocv_charge_v"] = table
        chem["hysteresis_rate"] = base.hysteresis_rate or DEFAULT_HYSTERESIS_RATE
    scale = capacity_ah / template.capacity_ah
    data: dict[str, Any] = {
        "name": name,
        "capacity_ah": float(capacity_ah),
        "mass_kg": round(template.mass_kg * scale, 4),
        "specific_heat_j_per_kg_k": template.specific_heat_j_per_kg_k,
        "cooling_conductance_w_per_k": round(
            template.cooling_conductance_w_per_k * scale ** (2 / 3), 5
        ),
        "neighbour_conductance_w_per_k": round(
            template.neighbour_conductance_w_per_k * scale ** (2 / 3), 5
        ),
        "self_discharge_pct_per_month": template.self_discharge_pct_per_month,
    }
    for parameter in PARAMETERS:
        values = np.array([getattr(level, parameter) for level in levels])[keep]
        tau = parameter.startswith("tau")
        factor = base.time_constant_factor if tau else base.resistance_factor
        data[parameter] = _table(
            socs, values, test_temp, 2 if tau else 7, factor if use_base else None
        )
    data["chemistry"] = chem
    cell = cell_from_dict(data, f"identified cell {name!r}")
    discharged = slow_tr.soc[slow_tr.i < -REST_CURRENT_C * capacity_ah]
    return Identification(
        data=data,
        cell=cell,
        levels=levels,
        base_chemistry=base.name,
        test_temp_c=test_temp,
        current_offset_a=(pulse_offset, slow_offset),
        discharge_capacity_ah=float((1.0 - discharged.min()) * capacity_ah),
        hysteresis=hysteresis,
        ocv_soc=grid,
        ocv_v=ocv,
        notes=notes,
    )
