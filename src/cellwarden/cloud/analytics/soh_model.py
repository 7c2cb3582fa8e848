"""The semi-empirical capacity model fitted per pack: SoH = q0 - a Scal^zc - b Scyc^zy.

Scal is calendar stress: days weighted by Arrhenius in the day's mean temperature and
exponentially in its mean SoC. Scyc is cycle stress: equivalent full cycles weighted by
Arrhenius. The exponents and activation energies are shared by a group of packs (chosen by
back-testing, see ``soh_forecast``); q0, a and b are fitted per pack by weighted least squares
with priors from the group (empirical Bayes), a and b kept non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix, filled, rolling_median

GAS_CONSTANT = 8.314462618
REFERENCE_K = 298.15
SOC_SENSITIVITY = 1.0  # calendar stress x e per unit SoC above 50 %
OUTLIER_SIGMAS = 4.0


@dataclass(frozen=True)
class Shape:
    """The group-level part of the model."""

    calendar_exponent: float
    cycle_exponent: float
    calendar_activation_j_per_mol: float
    cycle_activation_j_per_mol: float
    memory_days: float  # weight of an observation falls by e per this many days of age


def arrhenius_factor(temp_c: np.ndarray, activation: float) -> np.ndarray:
    return np.exp(-activation / GAS_CONSTANT * (1.0 / (temp_c + 273.15) - 1.0 / REFERENCE_K))


@dataclass
class DailyStress:
    """Per pack and day (absent days zero): calendar weight and cycles of the day, and what
    a pack had already been through when its history begins."""

    temp_c: np.ndarray
    soc: np.ndarray
    efc_per_day: np.ndarray
    efc_at_start: np.ndarray

    @classmethod
    def from_matrix(cls, matrix: HistoryMatrix) -> DailyStress:
        present = matrix.present
        temp = filled(matrix.column("temp_mean_c"), present)
        temp = np.where(np.isfinite(temp), temp, 25.0)
        soc = filled(matrix.column("soc_mean_pct"), present) / 100.0
        soc = np.where(np.isfinite(soc), soc, 0.5)
        efc_total = filled(matrix.column("efc_total"), present)
        efc_total = np.where(np.isfinite(efc_total), efc_total, 0.0)
        efc_per_day = np.diff(efc_total, axis=1, prepend=efc_total[:, :1])
        efc_per_day = np.where(present, np.maximum(efc_per_day, 0.0), 0.0)
        rows = np.arange(len(present))
        efc_at_start = efc_total[rows, matrix.first_day()]
        return cls(np.where(present, temp, 0.0), soc, efc_per_day, efc_at_start)

    def calendar_rate(self, activation: float, present: np.ndarray) -> np.ndarray:
        rate = arrhenius_factor(self.temp_c, activation) * np.exp(
            SOC_SENSITIVITY * (self.soc - 0.5)
        )
        return np.where(present, rate, 0.0)

    def cycle_rate(self, activation: float, present: np.ndarray) -> np.ndarray:
        return np.where(present, self.efc_per_day * arrhenius_factor(self.temp_c, activation), 0.0)


def clean_observations(soh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observations with outliers removed (far from a 15-day rolling median), and each pack's
    noise level estimated from day-to-day differences."""
    median = rolling_median(soh, 15)
    residual = soh - median
    sigma = 1.4826 * np.nanmedian(np.abs(residual - np.nanmedian(residual, 1, keepdims=True)), 1)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0.05), sigma, 0.5) * 1.1
    clean = np.where(np.abs(residual) > OUTLIER_SIGMAS * sigma[:, None], np.nan, soh)
    return clean, sigma


@dataclass
class Fit:
    """Per-pack parameters (q0, a, b), their covariance and the features used."""

    theta: np.ndarray  # packs x 3
    covariance: np.ndarray  # packs x 3 x 3
    calendar_stress: np.ndarray  # packs x days, cumulative, up to the cutoff
    cycle_stress: np.ndarray


def design(calendar: np.ndarray, cycle: np.ndarray, shape: Shape) -> np.ndarray:
    """Rows [1, -Scal^zc, -Scyc^zy] for cumulative stresses of any shape (on a new last axis)."""
    return np.stack(
        [np.ones_like(calendar), -(calendar**shape.calendar_exponent),
         -(cycle**shape.cycle_exponent)], axis=-1,
    )  # fmt: skip


def cumulative_stress(
    stress: DailyStress, present: np.ndarray, shape: Shape
) -> tuple[np.ndarray, np.ndarray]:
    calendar = np.cumsum(stress.calendar_rate(shape.calendar_activation_j_per_mol, present), 1)
    cycle = np.cumsum(stress.cycle_rate(shape.cycle_activation_j_per_mol, present), 1)
    return calendar, cycle + stress.efc_at_start[:, None]


class ShapeFitter:
    """Fits q0, a, b of every pack for one shape, at any cutoff day: the weighted normal
    equations are accumulated over the days once, so that a fit at another cutoff (the
    back-tests use many) costs one small solve per pack."""

    def __init__(self, soh: np.ndarray, sigma: np.ndarray, stress: DailyStress,
                 present: np.ndarray, shape: Shape) -> None:  # fmt: skip
        self.soh = soh
        self.shape = shape
        self.calendar, self.cycle = cumulative_stress(stress, present, shape)
        days = np.arange(soh.shape[1])
        self.usable = np.isfinite(soh)
        # weight exp(-(cutoff - day) / memory) = exp(-cutoff / memory) * exp(day / memory)
        self.growth = (
            np.exp(days / shape.memory_days)
            if np.isfinite(shape.memory_days)
            else np.ones(len(days))
        )
        weight = np.where(self.usable, 1.0, 0.0) * self.growth[None, :] / sigma[:, None] ** 2
        x = design(self.calendar, self.cycle, shape)
        y = np.where(self.usable, soh, 0.0)
        self.normals = np.cumsum(np.einsum("pd,pdi,pdj->pdij", weight, x, x), axis=1)
        self.rhs = np.cumsum(np.einsum("pd,pdi,pd->pdi", weight, x, y), axis=1)
        first = np.argmax(self.usable, axis=1)
        self.first = first
        early = self.usable & (days[None, :] < first[:, None] + 60)
        self.start = _row_medians(soh, early)

    def fit(self, cutoff: int, prior_mean: np.ndarray | None = None,
            prior_sd: np.ndarray | None = None) -> Fit:  # fmt: skip
        """Parameters from the days up to ``cutoff`` (inclusive); without a prior, q0 is held
        near the pack's first 60 days and a, b are free."""
        scale = 1.0 / self.growth[cutoff]
        normal = self.normals[:, cutoff] * scale
        rhs = self.rhs[:, cutoff] * scale
        packs = self.soh.shape[0]
        if prior_mean is None:
            start = self.starts(cutoff)
            prior_mean = np.stack([np.where(np.isfinite(start), start, 100.0),
                                   np.zeros(packs), np.zeros(packs)], axis=1)  # fmt: skip
            prior_sd = np.tile([3.0, 1e3, 1e3], (packs, 1))
        precision = 1.0 / prior_sd**2
        theta = _solve(normal, rhs, prior_mean, precision)
        for _ in range(2):  # a or b below zero: held at zero
            negative = theta[:, 1:] < 0
            if not negative.any():
                break
            precision[:, 1:] = np.where(negative, 1e12, precision[:, 1:])
            prior_mean = prior_mean.copy()
            prior_mean[:, 1:] = np.where(negative, 0.0, prior_mean[:, 1:])
            theta = _solve(normal, rhs, prior_mean, precision)
        theta[:, 1:] = np.maximum(theta[:, 1:], 0.0)
        covariance = np.linalg.inv(normal + precision[:, :, None] * np.eye(3)[None])
        return Fit(theta, covariance, self.calendar, self.cycle)

    def starts(self, cutoff: int) -> np.ndarray:
        """Median of each pack's first 60 days, as far as they lie up to ``cutoff``."""
        late = self.first + 60 > cutoff
        if not late.any():
            return self.start
        start = self.start.copy()
        days = np.arange(self.soh.shape[1])
        known = self.usable[late] & (days[None, :] <= cutoff)
        start[late] = _row_medians(self.soh[late], known)
        return start


def _row_medians(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([np.median(row[keep]) if keep.any() else np.nan
                     for row, keep in zip(values, mask, strict=True)])  # fmt: skip


def _solve(normal, rhs, prior_mean, precision) -> np.ndarray:
    matrix = normal + precision[:, :, None] * np.eye(3)[None]
    vector = rhs + precision * prior_mean
    return np.linalg.solve(matrix, vector[..., None])[..., 0]


def group_prior(theta: np.ndarray, groups: list[np.ndarray], start: np.ndarray):
    """Empirical-Bayes prior for q0, a, b from a first fit: q0 near each pack's start, a and
    b near the median of its group (wide enough for the group's spread)."""
    count = len(theta)
    mean = np.stack([np.where(np.isfinite(start), start, 100.0), np.zeros(count),
                     np.zeros(count)], axis=1)  # fmt: skip
    sd = np.tile([3.0, 1e3, 1e3], (count, 1))
    for packs in groups:
        for column in (1, 2):
            values = theta[packs, column]
            if len(values) < 5:
                continue
            centre = np.median(values)
            spread = 1.4826 * np.median(np.abs(values - centre))
            mean[packs, column] = centre
            sd[packs, column] = max(spread * 2.0, abs(centre) * 0.5, 1e-6)
    return mean, sd
