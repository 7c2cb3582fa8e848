"""A fleet history as pack x day arrays, the shape every analysis works on."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellwarden.telemetry.fleet_history import NUMERIC_COLUMNS, FleetHistory, HistoryError

MAX_SPAN_DAYS = 25 * 365  # a longer span is a wrong date, and would not fit in memory


@dataclass
class HistoryMatrix:
    """``values[column]`` is packs x days (NaN where a pack has no row or no value);
    ``present`` marks the days a pack has a row."""

    pack_ids: list[str]
    dates: pd.DatetimeIndex
    values: dict[str, np.ndarray]
    present: np.ndarray
    pack_type: np.ndarray  # per pack ("" where the history does not say)
    site: np.ndarray

    @classmethod
    def from_history(
        cls, history: FleetHistory, until: pd.Timestamp | None = None
    ) -> HistoryMatrix:
        """Days from the first row to the last (or to ``until``, when that is later)."""
        rows = history.rows
        if rows.empty:
            raise HistoryError("the history has no usable rows")
        pack_ids = sorted(rows["pack_id"].unique())
        first, last = rows["date"].min(), rows["date"].max()
        if until is not None:
            last = max(last, until)
        if (last - first).days > MAX_SPAN_DAYS:
            raise HistoryError(
                f"the history spans {first.date()} to {last.date()}, more than "
                f"{MAX_SPAN_DAYS // 365} years: is a date wrong?"
            )
        dates = pd.date_range(first, last, freq="D")
        pack_index = pd.Index(pack_ids).get_indexer(rows["pack_id"])
        day_index = ((rows["date"] - first).dt.days).to_numpy()
        shape = (len(pack_ids), len(dates))
        present = np.zeros(shape, dtype=bool)
        present[pack_index, day_index] = True
        values = {}
        for name in NUMERIC_COLUMNS:
            matrix = np.full(shape, np.nan)
            matrix[pack_index, day_index] = rows[name].to_numpy(dtype=float)
            values[name] = matrix
        firsts = rows.groupby("pack_id", sort=True).first()
        return cls(
            pack_ids, dates, values, present,
            firsts["pack_type"].to_numpy(dtype=str), firsts["site"].to_numpy(dtype=str),
        )  # fmt: skip

    def column(self, name: str) -> np.ndarray:
        return self.values[name]

    def first_day(self) -> np.ndarray:
        """Index of each pack's first row."""
        return np.argmax(self.present, axis=1)

    def last_day(self) -> np.ndarray:
        return self.present.shape[1] - 1 - np.argmax(self.present[:, ::-1], axis=1)

    def groups(self) -> dict[str, np.ndarray]:
        """Pack indices by pack type (one group "" when the history has no types)."""
        return {name: np.flatnonzero(self.pack_type == name) for name in np.unique(self.pack_type)}


def filled(matrix: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Missing values of present days carried forward (then backward) per pack; each pack's
    mean where it has none at all; absent days stay NaN."""
    frame = pd.DataFrame(matrix.T)
    out = frame.ffill().bfill().to_numpy().T
    means = np.nanmean(np.where(np.isfinite(matrix), matrix, np.nan), axis=1)
    fallback = np.where(np.isfinite(means), means, np.nanmean(matrix))
    out = np.where(np.isnan(out), fallback[:, None], out)
    return np.where(present, out, np.nan)


def rolling_median(matrix: np.ndarray, window: int) -> np.ndarray:
    """Trailing median over ``window`` days per pack (NaN ignored; needs half the window)."""
    frame = pd.DataFrame(matrix.T)
    return frame.rolling(window, min_periods=max(1, window // 2)).median().to_numpy().T


@contextmanager
def missing_values_expected() -> Iterator[None]:
    """Silence NumPy's warnings about reductions over packs or days without any value: a pack
    with no reading of a column is a normal case here (its result is NaN, then handled)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", r"(All-NaN slice|Mean of empty slice)", RuntimeWarning)
        yield
