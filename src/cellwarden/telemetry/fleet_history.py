"""The fleet history format: one row per pack per day, as CSV or Parquet.

The fleet simulator writes it, the cloud exports and imports it and the analytics read it.
``docs/fleet-history.md`` is the user's description. Reading is tolerant where it can be
(unknown columns are ignored, optional ones may be missing, an empty cell is a missing value)
and exact where it must be: every row that cannot be used is reported with its line and reason
and left out, the rest is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KEY_COLUMNS = ("pack_id", "date")
REQUIRED_COLUMNS = (
    *KEY_COLUMNS, "soh_capacity_pct", "soh_resistance_pct", "efc_total", "temp_mean_c",
    "temp_max_c", "soc_mean_pct", "dod_mean_pct", "throughput_ah",
)  # fmt: skip
TEXT_COLUMNS = ("pack_type", "site")
# the day's negative events: trips of the BMS's diagnostic trouble codes, by kind
EVENT_COUNT_COLUMNS = (
    "deep_discharge_events", "overcharge_events", "over_temp_events", "latched_safety_events",
)  # fmt: skip
OPTIONAL_NUMERIC_COLUMNS = (
    "ambient_temp_c", "current_rms_a", "current_peak_a", "capacity_nominal_ah",
    "cell_count", "balancing_ah", "rest_drift_mv_per_day", "resistance_max_ratio",
    "current_offset_a", "voltage_mismatch_mv", "contactor_resistance_mohm", "protection_trips",
    # for the battery passport and the second-life assessment
    "cell_voltage_spread_mv", "energy_charged_kwh", "energy_discharged_kwh", *EVENT_COUNT_COLUMNS,
)  # fmt: skip
NUMERIC_COLUMNS = REQUIRED_COLUMNS[2:] + OPTIONAL_NUMERIC_COLUMNS
ALL_COLUMNS = REQUIRED_COLUMNS + TEXT_COLUMNS + OPTIONAL_NUMERIC_COLUMNS
# a value outside these bounds is a bad row, not a reading
PLAUSIBLE_RANGES = {
    "soh_capacity_pct": (0.0, 150.0), "soh_resistance_pct": (0.0, 300.0),
    "efc_total": (0.0, 1e6), "temp_mean_c": (-60.0, 150.0), "temp_max_c": (-60.0, 150.0),
    "soc_mean_pct": (0.0, 100.0), "dod_mean_pct": (0.0, 100.0), "throughput_ah": (0.0, 1e7),
    "cell_voltage_spread_mv": (0.0, 5000.0), "energy_charged_kwh": (0.0, 1e7),
    "energy_discharged_kwh": (0.0, 1e7),
    **dict.fromkeys(EVENT_COUNT_COLUMNS, (0.0, 1e5)),
}  # fmt: skip


FIRST_DATE, LAST_DATE = pd.Timestamp("1990-01-01"), pd.Timestamp("2099-12-31")


class HistoryError(ValueError):
    """A history file that cannot be read at all (missing, unknown format, no key columns)."""


@dataclass(frozen=True)
class RowProblem:
    line: int  # 1-based data line in the file (a Parquet row's index + 1)
    reason: str


@dataclass
class FleetHistory:
    """The usable rows, sorted by pack and date, and the problems of the rows left out."""

    rows: pd.DataFrame
    problems: list[RowProblem]
    columns: frozenset[str] = frozenset(ALL_COLUMNS)  # the known columns the source had

    def up_to(self, as_of: pd.Timestamp) -> FleetHistory:
        """Only the rows dated on or before ``as_of``."""
        kept = self.rows[self.rows["date"] <= as_of].reset_index(drop=True)
        return FleetHistory(kept, [], self.columns)


def read_history(path: str | Path) -> FleetHistory:
    """Read a ``.csv`` or ``.parquet`` history file."""
    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"{path}: no such history file")
    try:
        if path.suffix.lower() == ".parquet":
            raw = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise HistoryError(f"{path}: a history file ends in .csv or .parquet")
    except HistoryError:
        raise
    except Exception as error:
        raise HistoryError(f"{path}: cannot be read as history: {error}") from error
    return parse_history(raw, str(path))


def parse_history(raw: pd.DataFrame, source: str = "history") -> FleetHistory:
    """Typed, checked rows from a frame of any column types (text from CSV included)."""
    missing = [name for name in KEY_COLUMNS if name not in raw.columns]
    if missing:
        raise HistoryError(f"{source}: required column(s) missing: {', '.join(missing)}")
    frame = pd.DataFrame(index=raw.index)
    problems: dict[int, str] = {}

    def note(mask: pd.Series, reason: str) -> None:
        for index in raw.index[mask.to_numpy()]:
            problems.setdefault(int(index), reason)

    pack_ids = raw["pack_id"].astype(str).str.strip()
    note(raw["pack_id"].isna() | (pack_ids == ""), "empty pack_id")
    frame["pack_id"] = pack_ids
    text = raw["date"].astype(str).str.strip()
    well_formed = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.+\-Z]*)?").fillna(False)
    dates = pd.to_datetime(text.str[:10].where(well_formed), format="%Y-%m-%d", errors="coerce")
    note(dates.isna(), "date is not YYYY-MM-DD")
    note((dates < FIRST_DATE) | (dates > LAST_DATE),
         f"date outside {FIRST_DATE.date()}..{LAST_DATE.date()}")  # fmt: skip
    frame["date"] = dates
    for name in NUMERIC_COLUMNS:
        if name not in raw.columns:
            frame[name] = np.nan
            continue
        if pd.api.types.is_numeric_dtype(raw[name]):  # no text to read (Parquet, a frame)
            values, blank = raw[name].astype(float), raw[name].isna()
        else:
            text = raw[name].astype(str).str.strip()
            values = pd.to_numeric(raw[name], errors="coerce")
            blank = raw[name].isna() | text.isin(["", "nan", "NaN", "None", "<NA>"])
        note(values.isna() & ~blank, f"{name} is not a number")
        note(~np.isfinite(values.fillna(0.0)), f"{name} is not finite")
        if name in PLAUSIBLE_RANGES:
            low, high = PLAUSIBLE_RANGES[name]
            note((values < low) | (values > high), f"{name} outside {low:g}..{high:g}")
        frame[name] = values.astype(float)
    for name in TEXT_COLUMNS:
        frame[name] = raw[name].fillna("").astype(str).str.strip() if name in raw.columns else ""
    duplicated = frame.duplicated(subset=list(KEY_COLUMNS), keep="first") & dates.notna()
    note(duplicated, "a second row for the same pack and date")
    bad = np.zeros(len(frame), dtype=bool)
    positions = {index: position for position, index in enumerate(raw.index)}
    for index in problems:
        bad[positions[index]] = True
    rows = frame[~bad].sort_values(["pack_id", "date"], kind="stable").reset_index(drop=True)
    listed = [RowProblem(positions[i] + 1, reason) for i, reason in problems.items()]
    present = frozenset(name for name in ALL_COLUMNS if name in raw.columns)
    return FleetHistory(rows, sorted(listed, key=lambda problem: problem.line), present)


def write_history(rows: pd.DataFrame, path: str | Path) -> None:
    """Write rows in the format (known columns in their order, dates as YYYY-MM-DD)."""
    path = Path(path)
    columns = [name for name in ALL_COLUMNS if name in rows.columns]
    out = rows[columns].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        out.to_parquet(path, index=False)
    elif path.suffix.lower() == ".csv":
        out.to_csv(path, index=False, float_format="%.6g")
    else:
        raise HistoryError(f"{path}: a history file ends in .csv or .parquet")
