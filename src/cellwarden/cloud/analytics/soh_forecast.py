"""SoH forecast and end of life per pack, with p10/p90 bands, from the history up to a date.

1. Outliers are dropped and each pack's noise measured (``soh_model.clean_observations``).
2. For every pack type, the model shape (time and cycle exponents, activation energies, how
   fast old data is forgotten) is chosen from a grid by back-testing on the history itself:
   fitted up to one and two horizons before the as-of date, scored on the observed SoH at
   the end of each held-out horizon.
3. Each pack is fitted with that shape and priors from its group.
4. Its future stress repeats its last year (seasons included), or its last 60 days when it
   has less than a year.
5. The band combines the parameters' uncertainty with a model error proportional to the fade
   ahead, its size measured in the back-test; end-of-life dates come from draws of both.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix
from cellwarden.cloud.analytics.soh_model import (
    DailyStress,
    Fit,
    Shape,
    clean_observations,
    design,
    fit_packs,
    group_prior,
)
from cellwarden.telemetry.fleet_history import FleetHistory

SHAPES = tuple(
    Shape(*values)
    for values in itertools.product(
        (0.5, 0.75, 1.0), (0.5, 0.75, 1.0), (30e3, 60e3, 100e3), (0.0, 30e3), (np.inf, 365.0)
    )
)
Z_P90 = 1.2815515655446004
MIN_MODEL_ERROR = 0.05  # relative error of the fade ahead never taken below this
SCORE_BLOCK_DAYS = 15
SMALL_GROUP = 8  # groups smaller than this use the shapes chosen for the whole fleet
ENSEMBLE = 4  # shapes averaged per group
LONG_HORIZON_DAYS = 365  # the second back-test, for extrapolation to end of life
SEASON_HALF_WIDTH_DAYS = 15
DEFAULT_MODEL_ERROR = 0.3
FORECAST_COLUMNS = ("pack_id", "soh_pct_at_horizon", "soh_p10_pct", "soh_p90_pct", "eol_date",
                    "eol_p10_date", "eol_p90_date")  # fmt: skip


class ForecastError(ValueError):
    """A forecast that cannot be made (no rows up to the as-of date, bad settings)."""


@dataclass(frozen=True)
class ForecastSettings:
    horizon_days: int = 60
    eol_soh_pct: float = 80.0
    max_years: float = 10.0
    draws: int = 400
    seed: int = 0


@dataclass
class _Group:
    packs: np.ndarray
    members: list[tuple[Shape, float]]  # the best shapes of the back-test, with weights
    model_error: float  # sd of the model's error, relative to the fade over the horizon
    model_error_year: float  # the same a year ahead (end-of-life draws)


@dataclass
class _Member:
    """One shape's view of one pack: design rows from its last row on, and the fit."""

    weight: float
    x_ahead: np.ndarray
    x_history: np.ndarray
    theta: np.ndarray
    covariance: np.ndarray


def forecast(history: FleetHistory, as_of: date, settings: ForecastSettings) -> pd.DataFrame:
    """One row per pack: the forecast columns of docs/fleet-history.md and a few more
    (``soh_now_pct``, ``fade_pct_per_year``, ``model``)."""
    if settings.horizon_days < 1:
        raise ForecastError("the horizon is at least one day")
    known = history.up_to(pd.Timestamp(as_of))
    if known.rows.empty:
        raise ForecastError(f"the history has no rows on or before {as_of}")
    matrix = HistoryMatrix.from_history(known)
    origin = (pd.Timestamp(as_of) - matrix.dates[0]).days
    soh, sigma = clean_observations(matrix.column("soh_capacity_pct"))
    stress = DailyStress.from_matrix(matrix)
    groups = _choose_shapes(matrix, soh, sigma, stress, origin, settings.horizon_days)
    rng = np.random.default_rng(settings.seed)
    last = matrix.last_day()
    span = int(settings.max_years * 365.25) + origin - int(last.min()) + settings.horizon_days
    rows = []
    for group in groups:
        members: dict[int, list[_Member]] = {int(pack): [] for pack in group.packs}
        for shape, weight in group.members:
            fit = _fit_group(soh, sigma, stress, matrix.present, shape, origin, group.packs)
            calendar, cycle = projected_stress(fit, stress, matrix.present, shape, last, span)
            for pack in group.packs:
                members[int(pack)].append(_Member(
                    weight, design(calendar[pack], cycle[pack], shape),
                    design(fit.calendar_stress[pack, : last[pack] + 1],
                           fit.cycle_stress[pack, : last[pack] + 1], shape),
                    fit.theta[pack], fit.covariance[pack],
                ))  # fmt: skip
        for pack, pack_members in members.items():
            rows.append(_pack_forecast(matrix, pack_members, group, pack, origin, settings, rng))
    return pd.DataFrame(rows).sort_values("pack_id").reset_index(drop=True)


def _fit_group(soh, sigma, stress, present, shape, cutoff, packs) -> Fit:
    """Two passes: plain fits, then fits with the group's priors."""
    first = fit_packs(soh, sigma, stress, present, shape, cutoff)
    start = first.theta[:, 0]
    mean, sd = group_prior(first.theta, packs, start)
    return fit_packs(soh, sigma, stress, present, shape, cutoff, mean, sd)


def _choose_shapes(matrix, soh, sigma, stress, origin, horizon) -> list[_Group]:
    """The back-tested best shapes and the model errors of every pack type."""
    present = matrix.present
    short, long = {}, {}
    for shape in SHAPES:
        results = [_backtest(soh, sigma, stress, present, shape, cutoff, horizon)
                   for cutoff in (origin - horizon, origin - 2 * horizon)]  # fmt: skip
        short[shape] = tuple(np.concatenate(parts, axis=1) for parts in zip(*results, strict=True))
        long[shape] = _backtest(
            soh, sigma, stress, present, shape, origin - LONG_HORIZON_DAYS, LONG_HORIZON_DAYS
        )
    all_packs = np.arange(len(matrix.pack_ids))
    fleet_members = _best(short, long, all_packs) or [(SHAPES[0], 1.0)]
    groups = []
    for packs in matrix.groups().values():
        members = (
            _best(short, long, packs) if len(packs) >= SMALL_GROUP else None
        ) or fleet_members
        groups.append(_Group(packs, members, _model_error(short, members, packs),
                             _model_error(long, members, packs)))  # fmt: skip
    return groups


def _backtest(soh, sigma, stress, present, shape, cutoff, horizon):
    """Per pack: error of the predicted mean over the last days of the held-out horizon (with
    the stress projected as the forecast projects it), the observations' noise variance of
    that mean, the prediction's parameter variance and the predicted fade over the horizon
    (NaN where a pack cannot be scored)."""
    packs = soh.shape[0]
    if cutoff < 90:
        return tuple(np.full((1, packs), np.nan) for _ in range(4))
    fit = _fit_group(soh, sigma, stress, present, shape, cutoff, np.arange(packs))
    last = np.minimum(_last_days(present, cutoff), cutoff)
    calendar, cycle = projected_stress(
        fit, stress, present, shape, last, horizon + cutoff - last.min()
    )
    offsets = cutoff + horizon - last  # the block's last day, counted from each pack's last day
    block = offsets[:, None] - np.arange(SCORE_BLOCK_DAYS)[None, ::-1]
    rows = np.arange(packs)[:, None]
    x = design(calendar[rows, block], cycle[rows, block], shape)
    observed = soh[rows, np.minimum(cutoff + horizon - np.arange(SCORE_BLOCK_DAYS)[None, ::-1],
                                    soh.shape[1] - 1)]  # fmt: skip
    observed = np.where(cutoff + horizon < soh.shape[1], observed, np.nan)
    seen = np.isfinite(observed)
    counts = seen.sum(axis=1)
    x_mean = np.nanmean(np.where(seen[..., None], x, np.nan), axis=1)
    predicted = np.einsum("pi,pi->p", x_mean, fit.theta)
    x_now = design(calendar[:, 0], cycle[:, 0], shape)
    trained = np.isfinite(soh[:, : cutoff + 1]).sum(axis=1)
    valid = (counts >= 5) & (trained >= 60)
    error = np.where(valid, predicted - np.nanmean(observed, axis=1), np.nan)
    noise = np.where(valid, sigma**2 / np.maximum(counts, 1), np.nan)
    param = np.einsum("pi,pij,pj->p", x_mean, fit.covariance, x_mean)
    fade = np.einsum("pi,pi->p", x_now - x_mean, fit.theta)
    return error[None], noise[None], np.where(valid, param, np.nan)[None], fade[None]


def _last_days(present: np.ndarray, cutoff: int) -> np.ndarray:
    """Each pack's last day with a row, up to ``cutoff``."""
    window = present[:, : cutoff + 1]
    return window.shape[1] - 1 - np.argmax(window[:, ::-1], axis=1)


def projected_stress(fit: Fit, stress: DailyStress, present, shape: Shape, last, days: int):
    """Cumulative calendar and cycle stress from each pack's last day (column 0) for ``days``
    more days. A pack with a year of history or more gets its seasons: each future day's
    stress is the mean of the same days (within +-15) of every past year it has; a younger
    pack gets its last 60 days' mean."""
    rows = np.arange(len(last))[:, None]
    history_days = np.cumsum(present, axis=1)[rows[:, 0], last]
    yearly = history_days >= 365
    recent = np.arange(-59, 1)[None, :] + last[:, None]
    recent_ok = (recent >= 0) & present[rows, np.maximum(recent, 0)]
    counts = np.maximum(recent_ok.sum(axis=1), 1)
    ahead = np.arange(1, days + 1)[None, :]

    def future(rate: np.ndarray) -> np.ndarray:
        smooth, smooth_ok = _centred_mean(rate, present, SEASON_HALF_WIDTH_DAYS)
        total = np.zeros((len(last), days))
        weight = np.zeros((len(last), days))
        for years_back in range(1, present.shape[1] // 365 + 1):
            source = last[:, None] - 365 * years_back + (ahead - 1) % 365 + 1
            source = source - 365 * ((ahead - 1) // 365)
            ok = (source >= 0) & (source <= last[:, None])
            source = np.clip(source, 0, present.shape[1] - 1)
            ok &= smooth_ok[rows, source]
            total += np.where(ok, smooth[rows, source], 0.0)
            weight += ok
        seasonal = total / np.maximum(weight, 1)
        mean = np.where(recent_ok, rate[rows, np.maximum(recent, 0)], 0.0).sum(axis=1) / counts
        return np.where(yearly[:, None] & (weight > 0), seasonal, mean[:, None])

    calendar_rate = stress.calendar_rate(shape.calendar_activation_j_per_mol, present)
    cycle_rate = stress.cycle_rate(shape.cycle_activation_j_per_mol, present)
    zeros = np.zeros((len(last), 1))
    calendar = fit.calendar_stress[rows[:, 0], last][:, None] + np.concatenate(
        [zeros, np.cumsum(future(calendar_rate), axis=1)], axis=1
    )
    cycle = fit.cycle_stress[rows[:, 0], last][:, None] + np.concatenate(
        [zeros, np.cumsum(future(cycle_rate), axis=1)], axis=1
    )
    return calendar, cycle


def _centred_mean(rate: np.ndarray, present: np.ndarray, half_width: int):
    """Mean of the present days within +-half_width of each day, and where there are any."""
    values = np.where(present, rate, 0.0)
    width = 2 * half_width + 1
    padded = np.pad(values, ((0, 0), (half_width + 1, half_width)))
    counted = np.pad(present.astype(float), ((0, 0), (half_width + 1, half_width)))
    sums = np.cumsum(padded, axis=1)
    numbers = np.cumsum(counted, axis=1)
    window_sum = sums[:, width:] - sums[:, :-width]
    window_count = numbers[:, width:] - numbers[:, :-width]
    return window_sum / np.maximum(window_count, 1), window_count > 0


def _best(short, long, packs) -> list[tuple[Shape, float]] | None:
    """The ``ENSEMBLE`` best shapes for these packs, weighted by the inverse of their score:
    the mean squared back-test error relative to the mean squared fade, over the forecast's
    horizon plus (where the history is long enough) over a year (None when too few packs
    could be scored)."""
    scores = []
    for shape in short:
        score = _relative_error(short[shape], packs)
        if not np.isfinite(score):
            continue
        year = _relative_error(long[shape], packs)
        scores.append((score + (year if np.isfinite(year) else 0.0), shape))
    if not scores:
        return None
    scores.sort(key=lambda item: item[0])
    best = scores[:ENSEMBLE]
    inverse = np.array([1.0 / max(score, 1e-12) for score, _shape in best])
    return [(shape, float(w)) for (_score, shape), w in zip(best, inverse / inverse.sum(),
                                                            strict=True)]  # fmt: skip


def _relative_error(scored, packs) -> float:
    errors, _noise, _param, fade = (values[:, packs] for values in scored)
    ok = np.isfinite(errors) & np.isfinite(fade)
    if ok.sum() < min(5, len(packs)):
        return float("nan")
    return float(np.mean(errors[ok] ** 2) / max(np.mean(fade[ok] ** 2), 1e-12))


def _model_error(scored, members, packs) -> float:
    """Method of moments on the ensemble's back-test: what its errors' spread has beyond the
    observations' noise and the parameters' uncertainty, relative to the predicted fade."""
    parts = [tuple(values[:, packs] for values in scored[shape]) for shape, _w in members]
    weights = [weight for _shape, weight in members]
    errors, noise, param, fade = (
        sum(w * part[i] for w, part in zip(weights, parts, strict=True)) for i in range(4)
    )
    ok = np.isfinite(errors) & np.isfinite(fade)
    if ok.sum() < 5:
        return DEFAULT_MODEL_ERROR
    excess = np.mean(errors[ok] ** 2 - noise[ok] - param[ok])
    scale = np.mean(fade[ok] ** 2)
    if scale <= 0:
        return DEFAULT_MODEL_ERROR
    return float(max(np.sqrt(max(excess, 0.0) / scale), MIN_MODEL_ERROR))


def _pack_forecast(matrix, members, group, pack, origin, settings, rng) -> dict:
    last = int(matrix.last_day()[pack])
    now = origin - last  # days ahead of the pack's last row
    horizon_end = now + settings.horizon_days
    paths = np.array([member.x_ahead @ member.theta for member in members])
    weights = np.array([member.weight for member in members])
    path = weights @ paths
    centre = path[horizon_end]
    fade_ahead = path[now] - centre
    param_var = sum(m.weight * (m.x_ahead[horizon_end] @ m.covariance @ m.x_ahead[horizon_end])
                    for m in members)  # fmt: skip
    between_var = weights @ (paths[:, horizon_end] - centre) ** 2
    spread = np.sqrt(param_var + between_var + (group.model_error * fade_ahead) ** 2)

    drawn = []
    for member in members:
        count = max(round(settings.draws * member.weight), 1)
        thetas = rng.multivariate_normal(member.theta, member.covariance, count, method="cholesky")
        thetas[:, 1:] = np.maximum(thetas[:, 1:], 0.0)
        factor = rng.normal(1.0, group.model_error_year, count)[:, None]
        level = thetas @ member.x_ahead[now]
        drawn.append(level[:, None] - factor * (level[:, None] - thetas @ member.x_ahead[now:].T))
    eol_days = _first_below(np.concatenate(drawn), settings.eol_soh_pct)
    mean_eol = _first_below(path[None, now:], settings.eol_soh_pct)[0]
    if path[now] <= settings.eol_soh_pct:  # already past: when the fitted path crossed
        fitted = sum(m.weight * (m.x_history @ m.theta) for m in members)
        crossed = np.flatnonzero(fitted <= settings.eol_soh_pct)
        mean_eol = float(crossed[0] - origin) if len(crossed) else 0.0
    never = 1e9  # a draw that never reaches EoL sorts last
    p10, p90 = np.quantile(np.where(np.isfinite(eol_days), eol_days, never), [0.1, 0.9])
    as_of = matrix.dates[0] + pd.Timedelta(days=origin)
    limit_days = settings.max_years * 365.25

    def eol_date(days_ahead: float) -> str:
        if not np.isfinite(days_ahead) or days_ahead > limit_days:
            return ""
        return (as_of + pd.Timedelta(days=round(days_ahead))).date().isoformat()

    year_ahead = min(now + 365, len(path) - 1)
    return {
        "pack_id": matrix.pack_ids[pack],
        "soh_pct_at_horizon": round(float(centre), 3),
        "soh_p10_pct": round(float(centre - Z_P90 * spread), 3),
        "soh_p90_pct": round(float(centre + Z_P90 * spread), 3),
        "eol_date": eol_date(mean_eol),
        "eol_p10_date": eol_date(p10),
        "eol_p90_date": eol_date(p90),
        "soh_now_pct": round(float(path[now]), 3),
        "fade_pct_per_year": round(
            float((path[now] - path[year_ahead]) * 365.0 / max(year_ahead - now, 1)), 3
        ),
        "model": _describe(group.members[0][0]),
    }


def _first_below(paths: np.ndarray, threshold: float) -> np.ndarray:
    """Days until each path first reaches the threshold (inf when it never does)."""
    below = paths <= threshold
    first = np.argmax(below, axis=1).astype(float)
    return np.where(below.any(axis=1), first, np.inf)


def _describe(shape: Shape) -> str:
    memory = "all" if not np.isfinite(shape.memory_days) else f"{shape.memory_days:.0f} d"
    return (
        f"t^{shape.calendar_exponent:g} (Ea {shape.calendar_activation_j_per_mol / 1e3:.0f} kJ) "
        f"+ EFC^{shape.cycle_exponent:g} (Ea {shape.cycle_activation_j_per_mol / 1e3:.0f} kJ), "
        f"memory {memory}"
    )
