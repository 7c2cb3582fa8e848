"""Replay a recorded single-cell trace through the BMS's estimation.

A trace is a table with the columns ``time_s, current_a, voltage_v, temp_c`` (more are kept but
ignored): time in seconds, strictly increasing (any spacing, rows may be missing); the current
in amperes, positive when it charges the cell, taken as flowing over the interval that ends at
its row (a sampled current is fine when the sampling is fast compared with how the current
changes: 1 s logging is); the cell's terminal voltage and its temperature at that time. It
comes as a CSV file (gzip-compressed or not) or a Parquet file.

The replay runs what a string BMS runs for each of its cells, ``bms.cell_estimation``: at the
first row it starts the SoC filter from the voltage and temperature (as if rested, with a
wider doubt when the row carries current), then for every row it counts the charge over the
interval since the previous row and corrects with the voltage, re-anchors the SoC after a long
rest and at the end of a CV charge, and learns the capacity and the resistance. A BMS
calibrates its current sensor's offset while its power path is open; a trace has no such
moments, so the replay takes the offset as given (``current_offset_a``, default 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cellwarden.bms.cell_estimation import CellEstimation
from cellwarden.bms.cell_model import CellModel
from cellwarden.model.bms import EstimationSettings
from cellwarden.model.cell import CellSpec
from cellwarden.model.errors import ConfigError

TRACE_COLUMNS = ("time_s", "current_a", "voltage_v", "temp_c")
GAP_S = 30.0  # rows further apart than this have rows missing between them
DEFAULT_CURRENT_NOISE_C = 0.001  # current sensor noise the filter assumes, as a share of 1C


def check_trace(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The trace's required columns as floats; a clear ConfigError when they are unusable."""
    missing = [c for c in TRACE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{source}: missing column(s) {', '.join(missing)}; a trace needs the header "
            f"{','.join(TRACE_COLUMNS)}"
        )
    if len(frame) < 2:
        raise ConfigError(f"{source}: a trace needs at least 2 rows (got {len(frame)})")
    checked = frame.copy()
    for column in TRACE_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"{source}: column {column} must hold finite numbers; data row {row + 1} has "
                f"{frame[column].iloc[row]!r}"
            )
        checked[column] = values.astype(float)
    steps = np.diff(checked["time_s"].to_numpy())
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ConfigError(
            f"{source}: time_s must strictly increase; data row {row + 1} has "
            f"{checked['time_s'].iloc[row]} after {checked['time_s'].iloc[row - 1]}"
        )
    return checked


def interval_currents(time_s: np.ndarray, current_a: np.ndarray) -> np.ndarray:
    """The mean current over the interval that ends at each row (0 for the first row).

    A row's current flows over the interval since the previous row. Across a gap (rows
    missing: more than ``GAP_S``) the previous row's current is held until one usual interval
    (the median spacing) before the row: a logger that lost a rest's rows does not turn the
    next step's current into hours of charge.
    """
    dt = np.diff(time_s, prepend=time_s[0])
    usual = float(np.median(dt[1:])) if dt.size > 1 else 0.0
    held = np.concatenate([[0.0], current_a[:-1]])
    gap = dt > GAP_S
    mean = current_a.astype(float).copy()
    mean[gap] = (held[gap] * (dt[gap] - usual) + current_a[gap] * usual) / dt[gap]
    mean[0] = 0.0
    return mean


def read_trace(path: Path | str) -> pd.DataFrame:
    """Read and check a trace: a CSV file (header ``time_s,current_a,voltage_v,temp_c``, may
    be gzip-compressed) or a Parquet file with those columns."""
    path = Path(path)
    parquet = path.suffix.lower() == ".parquet"
    try:
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, skipinitialspace=True)
    except FileNotFoundError:
        raise ConfigError(f"trace file not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a readable CSV file: {error}") from None
    except (OSError, ValueError) as error:  # pyarrow's errors for a damaged Parquet file
        kind = "Parquet" if parquet else "CSV"
        raise ConfigError(f"{path} is not a readable {kind} file: {error}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return check_trace(frame, str(path))


def replay_trace(
    cell: CellSpec,
    trace: pd.DataFrame,
    *,
    settings: EstimationSettings | None = None,
    current_noise_a: float | None = None,
    current_offset_a: float = 0.0,
    initial_soc_pct: float | None = None,
) -> pd.DataFrame:
    """Estimate the SoC (and capacity and resistance) at every row of a single-cell trace, as
    the BMS would.

    ``initial_soc_pct`` replaces the power-up estimate from the first voltage (to test how the
    filter recovers from a wrong start); the start's uncertainty stays the power-up one.
    Returns ``time_s, soc_pct, soc_sigma_pct, full_charge, rest_correction, capacity_ah,
    soh_capacity_pct, soh_resistance_pct``: ``full_charge`` and ``rest_correction`` flag the
    rows where the BMS recognised a full cell or re-anchored the SoC after a rest; the
    capacity is the one the BMS has learnt so far (and counts with), both SoH figures are
    relative to the cell file's values.
    """
    trace = check_trace(trace, "trace")
    settings = settings or EstimationSettings()
    model = CellModel(cell, parallel=1)
    if current_noise_a is None:
        current_noise_a = DEFAULT_CURRENT_NOISE_C * model.capacity_ah
    upper_v = cell.effective_limits.cell_voltage_v.upper.mol
    estimation = CellEstimation(model, 1, settings, current_noise_a, upper_v)
    estimator = estimation.estimator
    time_s = trace["time_s"].to_numpy()
    current_a = trace["current_a"].to_numpy() - current_offset_a
    voltage_v = trace["voltage_v"].to_numpy()
    temp_c = trace["temp_c"].to_numpy()
    dt_s = np.diff(time_s, prepend=time_s[0])
    mean_a = interval_currents(time_s, current_a)
    counted_ah = np.cumsum(mean_a * dt_s) / 3600.0
    columns = {name: np.empty(time_s.size) for name in ("soc", "sigma", "capacity", "r_soh")}
    full_flags = np.zeros(time_s.size, dtype=bool)
    rest_flags = np.zeros(time_s.size, dtype=bool)
    valid = np.ones(1, dtype=bool)
    for i in range(time_s.size):
        step = estimation.update(
            dt_s[i], mean_a[i], current_a[i], voltage_v[i : i + 1], temp_c[i : i + 1], valid,
            0.0, counted_ah[i],
        )  # fmt: skip
        if i == 0 and initial_soc_pct is not None:
            estimator.soc = np.full(1, initial_soc_pct / 100.0)
        if step is not None:
            done = step.recalibrated
            rest_flags[i] = done.at_rest is not None and bool(done.at_rest[0])
            full_flags[i] = done.full is not None and bool(done.full[0])
        columns["soc"][i], columns["sigma"][i] = estimator.soc[0], estimator.soc_sigma[0]
        columns["capacity"][i] = estimation.capacity.capacity_ah[0]
        columns["r_soh"][i] = estimation.resistance.soh_pct[0]
    return pd.DataFrame(
        {
            "time_s": time_s,
            "soc_pct": 100.0 * columns["soc"],
            "soc_sigma_pct": 100.0 * columns["sigma"],
            "full_charge": full_flags,
            "rest_correction": rest_flags,
            "capacity_ah": columns["capacity"],
            "soh_capacity_pct": 100.0 * columns["capacity"] / model.capacity_ah,
            "soh_resistance_pct": columns["r_soh"],
        }
    )
