"""Fault prognosis: developing faults found in the daily diagnostics, before they trip.

Each detector turns a pack's daily history into one feature (higher is worse) and compares,
on every day and using only the days before it, the feature's recent level (median of the
last ``RECENT_DAYS``) with the pack's own baseline: median and spread of its reference
period (its first ``REFERENCE_DAYS`` days in service), as far as that lies ``GAP_DAYS`` or
more in the past. A fault that develops over months therefore cannot become its own baseline.
A pack is flagged when the rise is both far outside the baseline's noise and larger than
the detector's minimum, on ``PERSIST_DAYS`` days in a row. Because every day is judged
causally, the first flag date is the day a scheduled run would have raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix, missing_values_expected

RECENT_DAYS = 7
GAP_DAYS = 45
REFERENCE_DAYS = 180
MIN_BASELINE_DAYS = 30
PERSIST_DAYS = 3
EXPLAINED_BY = {"cooling": ("contactor", "resistance_growth")}  # extra heat has other causes
THERMAL_WINDOW_DAYS = 21
LOADED_C = 0.1  # days with an RMS current above this C-rate show the cooling at work


@dataclass(frozen=True)
class Detector:
    kind: str
    label: str
    unit: str
    feature: Callable[[HistoryMatrix], np.ndarray]  # packs x days, NaN where unknown
    min_rise: Callable[[HistoryMatrix], np.ndarray]  # per pack, in the feature's unit
    z_threshold: float = 6.0
    two_sided: bool = False  # a sensor offset is a fault in either direction
    smoothed: bool = False  # the feature is already a window's estimate (days correlated)
    # the feature's own standard error per day, where it has one (added to the noise)
    feature_error: Callable[[HistoryMatrix], np.ndarray] | None = None


def _column(name: str) -> Callable[[HistoryMatrix], np.ndarray]:
    return lambda matrix: matrix.column(name)


def _per_cell(name: str) -> Callable[[HistoryMatrix], np.ndarray]:
    def feature(matrix: HistoryMatrix) -> np.ndarray:
        cells = matrix.column("cell_count")
        return matrix.column(name) / np.where(np.isfinite(cells) & (cells > 0), cells, 1.0)

    return feature


def _constant(value: float) -> Callable[[HistoryMatrix], np.ndarray]:
    return lambda matrix: np.full(len(matrix.pack_ids), value)


def _of_capacity(share: float) -> Callable[[HistoryMatrix], np.ndarray]:
    def minimum(matrix: HistoryMatrix) -> np.ndarray:
        capacity = np.nanmedian(matrix.column("capacity_nominal_ah"), axis=1)
        return share * np.where(np.isfinite(capacity), capacity, 100.0)

    return minimum


def _relative(name: str) -> Callable[[HistoryMatrix], np.ndarray]:
    """log of the value: a rise by a factor is the same rise at any size."""

    def feature(matrix: HistoryMatrix) -> np.ndarray:
        values = matrix.column(name)
        return np.log(np.where(values > 0, values, np.nan))

    return feature


def thermal_resistance_fit(matrix: HistoryMatrix) -> tuple[np.ndarray, np.ndarray]:
    """log of the cooling's thermal resistance (up to a constant) and its standard error.

    Peak temperature - ambient = c + k x, with x = I_rms² / (SoH_R / 100) the heat proxy
    (independent of load, weather and cell ageing). The offset c, a property of the site and
    the pack's mounting, is fitted once over the pack's reference period (causally, like the
    baseline); k is then fitted through that offset over the loaded days of the last
    ``THERMAL_WINDOW_DAYS`` (at least half of them), which is far less noisy than fitting
    both over a few weeks of similar days."""
    rise = matrix.column("temp_max_c") - matrix.column("ambient_temp_c")
    soh_r = matrix.column("soh_resistance_pct")
    current = matrix.column("current_rms_a")
    heat = current**2 / np.where(soh_r > 0, soh_r / 100.0, np.nan)
    capacity = np.nanmedian(matrix.column("capacity_nominal_ah"), axis=1)[:, None]
    loaded = current > LOADED_C * np.where(np.isfinite(capacity), capacity, 0.0)
    ok = np.isfinite(rise) & np.isfinite(heat) & loaded
    x, y = np.where(ok, heat, 0.0), np.where(ok, rise, 0.0)
    offset = _reference_offset(matrix, ok, x, y)

    def window(values: np.ndarray) -> np.ndarray:
        sums = pd.DataFrame(values.T).rolling(THERMAL_WINDOW_DAYS, min_periods=1).sum()
        return sums.to_numpy().T

    n = window(ok.astype(float))
    excess = np.where(ok, y - offset, 0.0)
    sxx, sxy, syy = window(x * x), window(x * excess), window(excess * excess)
    slope = sxy / np.where(sxx > 0, sxx, np.nan)
    residual = np.maximum(syy - slope * sxy, 0.0) / np.maximum(n - 1, 1)
    slope_error = np.sqrt(residual / np.where(sxx > 0, sxx, np.nan))
    usable = (n >= THERMAL_WINDOW_DAYS // 2) & (sxx > 0) & (slope > 0) & np.isfinite(offset)
    return (np.log(np.where(usable, slope, np.nan)),
            np.where(usable, slope_error / np.where(usable, slope, 1.0), np.nan))  # fmt: skip


def _reference_offset(matrix, ok, x, y) -> np.ndarray:
    """Per pack and day: the intercept of rise against heat over the loaded days of the
    pack's reference period that lie ``GAP_DAYS`` or more in the past."""
    age = np.arange(ok.shape[1])[None, :] - matrix.first_day()[:, None]
    use = ok & (age < REFERENCE_DAYS)

    def past(values: np.ndarray) -> np.ndarray:
        summed = np.cumsum(np.where(use, values, 0.0), axis=1)
        return np.pad(summed, ((0, 0), (GAP_DAYS, 0)))[:, : ok.shape[1]]

    n, sx, sy, sxx, sxy = past(np.ones_like(x)), past(x), past(y), past(x * x), past(x * y)
    count = np.maximum(n, 1)
    variance = sxx - sx * sx / count
    slope = (sxy - sx * sy / count) / np.where(variance > 0, variance, np.nan)
    return np.where(n >= MIN_BASELINE_DAYS, (sy - slope * sx) / count, np.nan)


DETECTORS = (
    Detector("self_discharge", "cell self-discharge (rest drift)", "mV/day",
             _column("rest_drift_mv_per_day"), _constant(0.3)),
    Detector("self_discharge", "cell self-discharge (balancing effort)", "Ah/day per cell",
             _per_cell("balancing_ah"), _constant(0.02)),
    Detector("resistance_growth", "cell resistance growth (worst/median)", "ratio",
             _column("resistance_max_ratio"), _constant(0.12)),
    Detector("cooling", "cooling degradation (thermal resistance)", "log ratio",
             lambda matrix: thermal_resistance_fit(matrix)[0], _constant(np.log(1.1)),
             z_threshold=4.0, smoothed=True,
             feature_error=lambda matrix: thermal_resistance_fit(matrix)[1]),
    Detector("current_sensor", "current sensor drift (path-open reading)", "A",
             _column("current_offset_a"), _of_capacity(0.006), two_sided=True),
    Detector("voltage_sensor", "voltage sensor drift (cell sum vs pack)", "mV",
             _column("voltage_mismatch_mv"), _constant(15.0), two_sided=True),
    Detector("contactor", "contactor wear (contact resistance)", "log ratio",
             _relative("contactor_resistance_mohm"), _constant(np.log(1.3))),
)  # fmt: skip


@dataclass
class DetectorTrace:
    """One detector over the whole history: the flag per pack and day, and what it saw."""

    detector: Detector
    flagged: np.ndarray
    recent: np.ndarray
    baseline: np.ndarray


def run_detector(detector: Detector, matrix: HistoryMatrix) -> DetectorTrace:
    values = detector.feature(matrix)
    frame = pd.DataFrame(values.T)
    recent = frame.rolling(RECENT_DAYS, min_periods=RECENT_DAYS // 2 + 1).median()
    age = np.arange(values.shape[1])[None, :] - matrix.first_day()[:, None]
    reference = pd.DataFrame(np.where(age < REFERENCE_DAYS, values, np.nan).T)
    past = reference.shift(GAP_DAYS).expanding(min_periods=MIN_BASELINE_DAYS)
    baseline = past.median()
    spread = (past.quantile(0.75) - past.quantile(0.25)) / 1.349
    recent, baseline, spread = (part.to_numpy().T for part in (recent, baseline, spread))
    rise = recent - baseline
    if detector.two_sided:
        rise = np.abs(rise)
    # the recent median's noise: the daily spread over about sqrt(RECENT_DAYS / 1.57) for
    # independent days, all of it for a feature that is a window's estimate already
    recent_noise = spread if detector.smoothed else spread * np.sqrt(1.57 / RECENT_DAYS)
    noise = recent_noise + spread / np.sqrt(MIN_BASELINE_DAYS / 1.57)
    if detector.feature_error is not None:
        noise = np.hypot(noise, detector.feature_error(matrix))
    minimum = detector.min_rise(matrix)[:, None]
    raw = (rise > detector.z_threshold * noise) & (rise > minimum)
    raw &= np.isfinite(rise) & np.isfinite(noise)
    streak = pd.DataFrame(raw.T.astype(float)).rolling(PERSIST_DAYS).sum().to_numpy().T
    return DetectorTrace(detector, streak >= PERSIST_DAYS, recent, baseline)


def prognose(matrix: HistoryMatrix) -> pd.DataFrame:
    """Every pack's developing faults as of the history's last day: one row per pack and
    fault kind flagged on that day, with the first day of the flag and the reason."""
    rows = []
    for trace in _traces(matrix):
        last = trace.flagged[:, -1]
        for pack in np.flatnonzero(last):
            rows.append(_flag_row(matrix, trace, pack, _streak_start(trace.flagged[pack])))
    return _one_per_kind(pd.DataFrame(rows, columns=FLAG_COLUMNS))


def first_flags(matrix: HistoryMatrix) -> pd.DataFrame:
    """The first day each pack was flagged for each fault kind over the whole history (what
    scheduled runs would have raised first), with the reason of that day."""
    rows = []
    for trace in _traces(matrix):
        for pack in np.flatnonzero(trace.flagged.any(axis=1)):
            rows.append(_flag_row(matrix, trace, pack, int(np.argmax(trace.flagged[pack]))))
    return _one_per_kind(pd.DataFrame(rows, columns=FLAG_COLUMNS))


def _traces(matrix: HistoryMatrix) -> list[DetectorTrace]:
    with missing_values_expected():
        return [run_detector(detector, matrix) for detector in DETECTORS]


FLAG_COLUMNS = ("pack_id", "fault_kind", "first_flag_date", "reason", "recent", "baseline")


def _flag_row(matrix, trace: DetectorTrace, pack: int, day: int) -> dict:
    detector = trace.detector
    recent, baseline = trace.recent[pack, day], trace.baseline[pack, day]
    shown_recent, shown_baseline, unit = recent, baseline, detector.unit
    if unit == "log ratio":
        shown_recent, shown_baseline, unit = np.exp(recent - baseline), 1.0, "x baseline"
    return {
        "pack_id": matrix.pack_ids[pack],
        "fault_kind": detector.kind,
        "first_flag_date": matrix.dates[day].date().isoformat(),
        "reason": f"{detector.label}: {shown_recent:.3g} {unit} against a baseline of "
        f"{shown_baseline:.3g}",
        "recent": float(shown_recent),
        "baseline": float(shown_baseline),
    }


def _streak_start(flags: np.ndarray) -> int:
    unflagged = np.flatnonzero(~flags)
    return int(unflagged[-1] + 1) if len(unflagged) else 0


def _one_per_kind(flags: pd.DataFrame) -> pd.DataFrame:
    """Where two detectors see the same fault, the earlier flag (reasons joined)."""
    if flags.empty:
        return flags
    flags = flags.sort_values(["pack_id", "fault_kind", "first_flag_date"])
    reasons = flags.groupby(["pack_id", "fault_kind"])["reason"].agg("; ".join)
    first = flags.groupby(["pack_id", "fault_kind"], as_index=False).first()
    first["reason"] = reasons.to_numpy()
    return _unexplained(first).sort_values(["first_flag_date", "pack_id"]).reset_index(drop=True)


def _unexplained(flags: pd.DataFrame) -> pd.DataFrame:
    """Without the flags another fault of the same pack, flagged no later, explains: a worn
    contactor or a cell's resistance heats the pack as a failing cooling would."""
    keep = np.ones(len(flags), dtype=bool)
    for index, flag in enumerate(flags.itertuples()):
        causes = EXPLAINED_BY.get(flag.fault_kind, ())
        earlier = flags[(flags["pack_id"] == flag.pack_id) & flags["fault_kind"].isin(causes)
                        & (flags["first_flag_date"] <= flag.first_flag_date)]  # fmt: skip
        keep[index] = earlier.empty
    return flags[keep]
