"""SoH forecast and end of life per pack, with p10/p90 bands, from the history up to a date.

1. Outliers are dropped and each pack's noise measured (``soh_model.clean_observations``).
2. For every pack type, the model shape (time and cycle exponents, activation energies, how
   fast old data is forgotten) is chosen from a grid by back-testing on the history itself:
   fitted up to many earlier days of the last year and scored on the observed SoH at the end
   of the held-out horizon, and, for the extrapolation to end of life, a year ahead. The
   ``ENSEMBLE`` best shapes are averaged.
3. Each pack is fitted with those shapes and priors from its group (empirical Bayes).
4. Its future stress follows its own past seasons (``stress_projection``).
5. The band combines the parameters' uncertainty, the ensemble's spread and a model error
   proportional to the fade ahead, its size measured in the back-tests; end-of-life dates
   come from draws of all three.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix, missing_values_expected
from cellwarden.cloud.analytics.soh_model import (
    DailyStress,
    Fit,
    Shape,
    ShapeFitter,
    clean_observations,
    design,
    group_prior,
)
from cellwarden.cloud.analytics.stress_projection import StressProjector
from cellwarden.telemetry.fleet_history import FleetHistory

SHAPES = tuple(
    Shape(*values)
    for values in itertools.product(
        (0.5, 0.75, 1.0),
        (0.5, 0.75, 1.0, 1.5, 2.0),
        (30e3, 60e3, 100e3),
        (0.0, 30e3),
        (np.inf, 365.0),
    )
)
Z_P90 = 1.2815515655446004
MIN_MODEL_ERROR = 0.05  # relative error of the fade ahead never taken below this
SCORE_BLOCK_DAYS = 15
SMALL_GROUP = 8  # groups smaller than this use the shapes chosen for the whole fleet
ENSEMBLE = 4  # shapes averaged per group
SHORT_ORIGINS = 12  # back-tests of the horizon, one every BACKTEST_STEP_DAYS
BACKTEST_STEP_DAYS = 30
LONG_HORIZON_DAYS = 365  # back-tests a year ahead, for the extrapolation to end of life
LONG_ORIGINS = 4
MIN_TRAINING_DAYS = 120
RECENT_FIT_DAYS = 90  # the departure from the model is measured over these last days
DEPARTURE_Z = 4.0
MIN_SOH_POINTS = 10  # a pack with fewer SoH estimates is not forecast (the reason is given)
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


class _Context:
    """What every fit of one forecast shares: the cleaned history, the stress, the type
    groups, and a stress projector per pair of activation energies."""

    def __init__(self, matrix: HistoryMatrix) -> None:
        self.matrix = matrix
        self.soh, self.sigma = clean_observations(matrix.column("soh_capacity_pct"))
        self.stress = DailyStress.from_matrix(matrix)
        self.groups = list(matrix.groups().values())
        self._projectors: dict[tuple[float, float], StressProjector] = {}

    def fitter(self, shape: Shape) -> ShapeFitter:
        return ShapeFitter(self.soh, self.sigma, self.stress, self.matrix.present, shape)

    def projector(self, shape: Shape) -> StressProjector:
        key = (shape.calendar_activation_j_per_mol, shape.cycle_activation_j_per_mol)
        if key not in self._projectors:
            self._projectors[key] = StressProjector(self.stress, self.matrix.present, *key)
        return self._projectors[key]

    def fit(self, fitter: ShapeFitter, cutoff: int) -> Fit:
        """Two passes: plain fits, then fits with each type group's priors."""
        first = fitter.fit(cutoff)
        mean, sd = group_prior(first.theta, self.groups, fitter.starts(cutoff))
        return fitter.fit(cutoff, mean, sd)

    def last_days(self, cutoff: int) -> np.ndarray:
        """Each pack's last day with a row, up to ``cutoff``."""
        window = self.matrix.present[:, : cutoff + 1]
        return window.shape[1] - 1 - np.argmax(window[:, ::-1], axis=1)


def forecast(history: FleetHistory, as_of: date, settings: ForecastSettings) -> pd.DataFrame:
    """One row per pack: the forecast columns of docs/fleet-history.md and a few more
    (``soh_now_pct``, ``fade_pct_per_year``, ``model``). Packs with too few SoH estimates are
    left out, with the reason in ``result.attrs["skipped"]``."""
    if settings.horizon_days < 1:
        raise ForecastError("the horizon is at least one day")
    known = history.up_to(pd.Timestamp(as_of))
    if known.rows.empty:
        raise ForecastError(f"the history has no rows on or before {as_of}")
    counts = known.rows.groupby("pack_id")["soh_capacity_pct"].count()
    skipped = {pack: f"only {count} SoH estimates up to {as_of} (at least {MIN_SOH_POINTS})"
               for pack, count in counts.items() if count < MIN_SOH_POINTS}  # fmt: skip
    if len(skipped) == len(counts):
        raise ForecastError(
            f"no pack has {MIN_SOH_POINTS} or more SoH estimates up to {as_of}: nothing to fit"
        )
    known = FleetHistory(known.rows[~known.rows["pack_id"].isin(skipped)], [])
    with missing_values_expected():
        matrix = HistoryMatrix.from_history(known, until=pd.Timestamp(as_of))
        result = _forecast(matrix, as_of, settings)
    result.attrs["skipped"] = skipped
    return result


def _forecast(matrix: HistoryMatrix, as_of: date, settings: ForecastSettings) -> pd.DataFrame:
    origin = (pd.Timestamp(as_of) - matrix.dates[0]).days
    context = _Context(matrix)
    groups = _choose_shapes(context, origin, settings.horizon_days)
    rng = np.random.default_rng(settings.seed)
    last = matrix.last_day()
    span = int(settings.max_years * 365.25) + origin - int(last.min()) + settings.horizon_days
    members: dict[int, list[_Member]] = {}
    for shape in sorted({shape for group in groups for shape, _w in group.members}, key=str):
        fit = context.fit(context.fitter(shape), origin)
        rows = np.arange(len(last))
        calendar, cycle = context.projector(shape).project(
            fit.calendar_stress[rows, last], fit.cycle_stress[rows, last], last, span
        )
        for group in groups:
            weight = dict(group.members).get(shape)
            if weight is None:
                continue
            for pack in group.packs:
                members.setdefault(int(pack), []).append(_Member(
                    weight, design(calendar[pack], cycle[pack], shape),
                    design(fit.calendar_stress[pack, : last[pack] + 1],
                           fit.cycle_stress[pack, : last[pack] + 1], shape),
                    fit.theta[pack], fit.covariance[pack],
                ))  # fmt: skip
    rows = [
        _pack_forecast(context, members[int(pack)], group, int(pack), origin, settings, rng)
        for group in groups
        for pack in group.packs
    ]
    return pd.DataFrame(rows).sort_values("pack_id").reset_index(drop=True)


def _choose_shapes(context: _Context, origin: int, horizon: int) -> list[_Group]:
    """The back-tested best shapes and the model errors of every pack type."""
    short_cutoffs = [origin - horizon - BACKTEST_STEP_DAYS * k for k in range(SHORT_ORIGINS)]
    long_cutoffs = [origin - LONG_HORIZON_DAYS - 2 * BACKTEST_STEP_DAYS * k
                    for k in range(LONG_ORIGINS)]  # fmt: skip
    short, long = {}, {}
    for shape in SHAPES:
        fitter = context.fitter(shape)
        short[shape] = _backtests(context, fitter, short_cutoffs, horizon)
        long[shape] = _backtests(context, fitter, long_cutoffs, LONG_HORIZON_DAYS)
    all_packs = np.arange(len(context.matrix.pack_ids))
    fleet_members = _best(short, long, all_packs) or [(SHAPES[0], 1.0)]
    groups = []
    for packs in context.groups:
        members = (
            _best(short, long, packs) if len(packs) >= SMALL_GROUP else None
        ) or fleet_members
        groups.append(_Group(packs, members, _model_error(short, members, packs),
                             _model_error(long, members, packs)))  # fmt: skip
    return groups


def _backtests(context: _Context, fitter: ShapeFitter, cutoffs: list[int], horizon: int):
    """Per back-test and pack (rows, columns): the error of the predicted mean over the last
    days of the held-out horizon (the stress projected as the forecast projects it), the
    observations' noise variance of that mean, the prediction's parameter variance and the
    predicted fade over the horizon (NaN where a pack cannot be scored)."""
    soh, sigma = context.soh, context.sigma
    packs, days = soh.shape
    results = [np.full((len(cutoffs), packs), np.nan) for _ in range(4)]
    rows = np.arange(packs)
    for index, cutoff in enumerate(cutoffs):
        if cutoff < MIN_TRAINING_DAYS or cutoff + horizon >= days:
            continue
        fit = context.fit(fitter, cutoff)
        last = context.last_days(cutoff)
        span = horizon + cutoff - int(last.min())
        calendar, cycle = context.projector(fitter.shape).project(
            fit.calendar_stress[rows, last], fit.cycle_stress[rows, last], last, span
        )
        block_end = cutoff + horizon
        block = min(SCORE_BLOCK_DAYS, horizon)  # never reaching back into the training days
        offsets = block_end - last[:, None] - np.arange(block)[None, ::-1]
        x = design(calendar[rows[:, None], offsets], cycle[rows[:, None], offsets], fitter.shape)
        observed = soh[:, block_end - block + 1 : block_end + 1]
        seen = np.isfinite(observed)
        counts = seen.sum(axis=1)
        x_mean = np.nanmean(np.where(seen[..., None], x, np.nan), axis=1)
        predicted = np.einsum("pi,pi->p", x_mean, fit.theta)
        x_now = design(calendar[:, 0], cycle[:, 0], fitter.shape)
        trained = np.isfinite(soh[:, : cutoff + 1]).sum(axis=1)
        valid = (counts >= min(5, block)) & (trained >= 60)
        results[0][index] = np.where(valid, predicted - np.nanmean(observed, axis=1), np.nan)
        results[1][index] = np.where(valid, sigma**2 / np.maximum(counts, 1), np.nan)
        results[2][index] = np.where(
            valid, np.einsum("pi,pij,pj->p", x_mean, fit.covariance, x_mean), np.nan
        )
        results[3][index] = np.einsum("pi,pi->p", x_now - x_mean, fit.theta)
    return tuple(results)


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


def _recent_departure(context: _Context, members, pack: int, last: int):
    """Level and trend (per day) of the observations' departure from the fitted path over
    the pack's last ``RECENT_FIT_DAYS``, with their variances; zeros unless the departure is
    significant (the model's family no longer follows the pack, e.g. after a knee)."""
    fitted = sum(m.weight * (m.x_history @ m.theta) for m in members)
    start = max(last - RECENT_FIT_DAYS + 1, 0)
    observed = context.soh[pack, start : last + 1]
    seen = np.isfinite(observed)
    if seen.sum() < RECENT_FIT_DAYS // 3:
        return 0.0, 0.0, 0.0, 0.0
    days = (np.arange(start, last + 1) - last)[seen]
    residual = observed[seen] - fitted[start : last + 1][seen]
    design_matrix = np.stack([np.ones_like(days, dtype=float), days], axis=1)
    covariance = np.linalg.inv(design_matrix.T @ design_matrix) * context.sigma[pack] ** 2
    level, trend = np.linalg.lstsq(design_matrix, residual, rcond=None)[0]
    z_level = level / np.sqrt(covariance[0, 0])
    z_trend = trend / np.sqrt(covariance[1, 1])
    if max(abs(z_level), abs(z_trend)) < DEPARTURE_Z:
        return 0.0, 0.0, 0.0, 0.0
    return float(level), float(trend), float(covariance[0, 0]), float(covariance[1, 1])


def _pack_forecast(context, members, group, pack, origin, settings, rng) -> dict:
    matrix = context.matrix
    last = int(matrix.last_day()[pack])
    now = origin - last  # days ahead of the pack's last row
    horizon_end = now + settings.horizon_days
    level, trend, level_var, trend_var = _recent_departure(context, members, pack, last)
    ahead = np.arange(len(members[0].x_ahead))
    departure = level + trend * ahead
    paths = np.array([member.x_ahead @ member.theta for member in members]) + departure
    weights = np.array([member.weight for member in members])
    path = weights @ paths
    centre = path[horizon_end]
    fade_ahead = path[now] - centre
    param_var = sum(m.weight * (m.x_ahead[horizon_end] @ m.covariance @ m.x_ahead[horizon_end])
                    for m in members)  # fmt: skip
    param_var += level_var + trend_var * horizon_end**2
    between_var = weights @ (paths[:, horizon_end] - centre) ** 2
    spread = np.sqrt(param_var + between_var + (group.model_error * fade_ahead) ** 2)

    drawn = []
    for member in members:
        count = max(round(settings.draws * member.weight), 1)
        thetas = rng.multivariate_normal(member.theta, member.covariance, count, method="cholesky")
        thetas[:, 1:] = np.maximum(thetas[:, 1:], 0.0)
        factor = rng.normal(1.0, group.model_error_year, count)[:, None]
        start = thetas @ member.x_ahead[now] + departure[now]
        model = thetas @ member.x_ahead[now:].T + departure[None, now:]
        drawn.append(start[:, None] - factor * (start[:, None] - model))
    eol_days = _first_below(np.concatenate(drawn), settings.eol_soh_pct)
    mean_eol = _first_below(path[None, now:], settings.eol_soh_pct)[0]
    never = 1e9  # a draw that never reaches EoL sorts last
    p10, p90 = np.quantile(np.where(np.isfinite(eol_days), eol_days, never), [0.1, 0.9])
    if path[now] <= settings.eol_soh_pct:  # already past: the day the fitted path crossed
        fitted = sum(m.weight * (m.x_history @ m.theta) for m in members)
        crossed = np.flatnonzero(fitted <= settings.eol_soh_pct)
        mean_eol = p10 = p90 = float(crossed[0] - origin) if len(crossed) else 0.0
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
