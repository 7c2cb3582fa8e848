"""Future ageing stress of every pack, from its own past: the seasons it has lived through.

A pack with a year of history or more gets, for each future day, the mean stress of the same
days (within +-``SEASON_HALF_WIDTH_DAYS``) of every past year it has; a younger pack gets its
last 60 days' mean. One projector serves one pair of activation energies; projections from
the same last days are computed once (the back-tests ask many shapes for the same ones).
"""

from __future__ import annotations

import numpy as np

from cellwarden.cloud.analytics.soh_model import DailyStress

SEASON_HALF_WIDTH_DAYS = 15
RECENT_DAYS = 60


class StressProjector:
    def __init__(self, stress: DailyStress, present: np.ndarray,
                 calendar_activation: float, cycle_activation: float) -> None:  # fmt: skip
        self.present = present
        self.rates = (stress.calendar_rate(calendar_activation, present),
                      stress.cycle_rate(cycle_activation, present))  # fmt: skip
        self.smoothed = tuple(_centred_mean(rate, present) for rate in self.rates)
        self.history_days = np.cumsum(present, axis=1)
        self._cache: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray]] = {}

    def future_rates(self, last: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
        """Calendar and cycle stress of each of the ``days`` days after each pack's ``last``."""
        key = (last.tobytes(), days)
        if key not in self._cache:
            self._cache[key] = tuple(
                self._future(rate, smooth, last, days)
                for rate, smooth in zip(self.rates, self.smoothed, strict=True)
            )
        return self._cache[key]

    def _future(self, rate, smoothed, last, days) -> np.ndarray:
        smooth, smooth_ok = smoothed
        packs, history = self.present.shape
        rows = np.arange(packs)[:, None]
        ahead = np.arange(days)[None, :]
        total = np.zeros((packs, days))
        weight = np.zeros((packs, days))
        for years_back in range(1, history // 365 + 1):
            # the same day of the year, years_back years before the first year ahead
            source = last[:, None] + 1 + ahead % 365 - 365 * years_back
            # whole +-half-width windows only: none reaches past the last day
            ok = (source >= 0) & (source <= last[:, None] - SEASON_HALF_WIDTH_DAYS)
            source = np.clip(source, 0, history - 1)
            ok &= smooth_ok[rows, source]
            total += np.where(ok, smooth[rows, source], 0.0)
            weight += ok
        recent = np.arange(-RECENT_DAYS + 1, 1)[None, :] + last[:, None]
        recent_ok = (recent >= 0) & self.present[rows, np.maximum(recent, 0)]
        mean = np.where(recent_ok, rate[rows, np.maximum(recent, 0)], 0.0).sum(axis=1)
        mean /= np.maximum(recent_ok.sum(axis=1), 1)
        yearly = self.history_days[rows[:, 0], last] >= 365
        return np.where(
            yearly[:, None] & (weight > 0), total / np.maximum(weight, 1), mean[:, None]
        )

    def project(self, calendar_now: np.ndarray, cycle_now: np.ndarray, last: np.ndarray,
                days: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Cumulative calendar and cycle stress from each pack's ``last`` day (column 0, where
        they are ``calendar_now`` and ``cycle_now``) for ``days`` more days."""
        calendar_rate, cycle_rate = self.future_rates(last, days)
        zeros = np.zeros((len(last), 1))
        calendar = calendar_now[:, None] + np.concatenate([zeros, np.cumsum(calendar_rate, 1)], 1)
        cycle = cycle_now[:, None] + np.concatenate([zeros, np.cumsum(cycle_rate, 1)], 1)
        return calendar, cycle


def _centred_mean(rate: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the present days within +-SEASON_HALF_WIDTH_DAYS of each day, and where there
    are any."""
    half = SEASON_HALF_WIDTH_DAYS
    width = 2 * half + 1
    values = np.pad(np.where(present, rate, 0.0), ((0, 0), (half + 1, half)))
    counted = np.pad(present.astype(float), ((0, 0), (half + 1, half)))
    sums, numbers = np.cumsum(values, axis=1), np.cumsum(counted, axis=1)
    window_sum = sums[:, width:] - sums[:, :-width]
    window_count = numbers[:, width:] - numbers[:, :-width]
    return window_sum / np.maximum(window_count, 1), window_count > 0
