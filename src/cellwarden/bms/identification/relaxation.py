"""The relaxation fit: two RC pairs driven by a piecewise-constant current history.

The rest voltage after any current history is an OCV plus the two RC voltages the history
drives (exact for the two-RC model). The fit is a variable projection: for each pair of time
constants the fixed terms (OCV level, offsets) and the resistances follow by linear least
squares; the pair is searched on a logarithmic grid and refined (tau1 within 0.5–200 s, tau2
within 30 s – 5000 s and at least three times tau1, both resistances non-negative).
"""

from __future__ import annotations

import math

import numpy as np

from cellwarden.bms.identification.trace import GAP_S, Trace

SEGMENT_CURRENT_C = 0.01  # rows closer than this in current form one constant-current segment
TAU1_BOUNDS_S = (0.5, 200.0)
TAU2_BOUNDS_S = (30.0, 5000.0)
TAU_RATIO_MIN = 3.0


def segments(tr: Trace, first: int, last: int, capacity_ah: float) -> np.ndarray:
    """Constant-current segments (start_s, end_s, current_a) of rows first..last.

    Row n's current flows over (t[n-1], t[n]]; rest rows count as exactly zero current.
    After a gap (rows missing) a segment starts one usual interval before its first row: the
    current before it was the previous segment's.
    """
    threshold = SEGMENT_CURRENT_C * capacity_ah
    current = np.where(tr.rest, 0.0, tr.i)
    dt = np.diff(tr.t, prepend=tr.t[0])
    usual = float(np.median(dt[1:])) if dt.size > 1 else 0.0
    out = []
    start = first
    for row in range(first + 1, last + 2):
        if row <= last and abs(current[row] - current[start]) <= threshold:
            continue
        lead = min(dt[start], usual) if dt[start] > GAP_S else dt[start]
        span = lead + dt[start + 1 : row].sum()
        if span > 0 and current[start] != 0.0:
            charge = current[start] * lead + (current[start + 1 : row] * dt[start + 1 : row]).sum()
            out.append((tr.t[start] - lead, tr.t[row - 1], float(charge / span)))
        start = row
    return np.asarray(out, dtype=float).reshape(-1, 3)


def rc_basis(t: np.ndarray, segments: np.ndarray, taus: np.ndarray) -> np.ndarray:
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


def fit_two_rc(t, y, fixed, segments, tau2_max):
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
        g1, g2 = rc_basis(t, segments, grid1), rc_basis(t, segments, grid2)
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
