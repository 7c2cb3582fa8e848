"""State-of-charge accuracy of the BMS estimator on bench traces, with nominal and identified
cell models.

For each chemistry the single-cell bench (``cellwarden.simulation.cell_bench``) records the
characterisation tests (pulse test, C/20 discharge; for LFP also a C/20 recharge, so that the
hysteresis can be identified) and ``cellwarden.bms.identification.identify`` fits a cell from
them. Validation traces are then replayed through the BMS's estimator
(``cellwarden.bms.trace_replay.replay_trace``) with (a) the built-in cell the plant runs and
(b) the identified cell, and compared with the plant's true SoC:

- NMC (nmc-21700-5ah): dynamic drive cycles of a few hours (-3C..+1C with parking rests). Each
  is replayed from its start as recorded (power-up from the first voltage), from its start
  with a 20-point initial error (estimate 20 points below the truth; above would pass 100 %)
  and from a row mid-way through a trip (under load) with an error of +20 points. Reported:
  RMSE over the whole replay, RMSE and max error after its first 10 minutes, and the time
  after which the error stays within 2 points.
- LFP (lfp-prismatic-100ah): a 24 h storage day at 1 Hz (CC-CV charge to full, discharge
  blocks of 0.2-0.5C, rests, partial recharges). Reported from the first full-charge
  recognition on: RMSE and max error, and the true SoC at that moment.

``measure()`` returns one dict per row, all with the keys ``COLUMNS`` (NaN where a figure does
not apply); ``python -m bench`` prints and stores them. It takes about three minutes.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from cellwarden.bms.identification import identify
from cellwarden.bms.trace_replay import replay_trace
from cellwarden.model.library import load_cell
from cellwarden.simulation import cell_bench

NMC_CELL = "nmc-21700-5ah"
LFP_CELL = "lfp-prismatic-100ah"
NMC_SEEDS = (0, 1)
INITIAL_ERROR_PCT = 20.0
SETTLE_S = 600.0  # "within 10 minutes"
BAND_PCT = 2.0
MID_TRIP_S = 7000.0  # the mid-way start: the first row from here on that carries current

TARGETS = {
    "NMC": "RMSE <= 1 %, back within 2 % in <= 600 s",
    "LFP": "RMSE <= 3 %, max <= 5 % (after the first full charge)",
}


def characterise(cell_name: str, seed: int, recharge: bool):
    """Bench pulse and slow tests, then identification: (identified cell, seconds)."""
    spec = load_cell(cell_name)
    started = time.perf_counter()
    pulse = cell_bench.pulse_test(spec, seed=seed)
    slow = cell_bench.slow_discharge_test(spec, seed=seed + 1, recharge=recharge)
    result = identify(pulse, slow, spec.capacity_ah, name=f"{cell_name}-identified")
    return result.cell, time.perf_counter() - started


COLUMNS = (
    "chemistry", "profile", "model", "start", "rmse_pct", "max_pct", "rmse_after_10min_pct",
    "max_after_10min_pct", "back_within_2pct_s", "full_charge_at_s", "true_soc_at_full_pct",
    "end_error_pct", "replay_s",
)  # fmt: skip
NAN = float("nan")


def _row(**values: float | str) -> dict[str, float | str]:
    """A result row with every column (NaN where it does not apply)."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not a result column: {sorted(unknown)}")
    return {column: values.get(column, NAN) for column in COLUMNS}


def error_metrics(estimate: pd.DataFrame, trace: pd.DataFrame) -> dict[str, float]:
    """RMSE, error after the first 10 min and the time back within the 2-point band."""
    t = trace["time_s"].to_numpy() - trace["time_s"].iloc[0]
    error = estimate["soc_pct"].to_numpy() - trace["true_soc_pct"].to_numpy()
    outside = np.flatnonzero(np.abs(error) > BAND_PCT)
    if not outside.size:
        back_s = 0.0
    elif outside[-1] + 1 < t.size:
        back_s = float(t[outside[-1] + 1])
    else:  # still outside at the end
        back_s = float("inf")
    late = t > SETTLE_S
    return {
        "rmse_pct": float(np.sqrt(np.mean(error**2))),
        "max_pct": float(np.max(np.abs(error))),
        "rmse_after_10min_pct": float(np.sqrt(np.mean(error[late] ** 2))),
        "max_after_10min_pct": float(np.max(np.abs(error[late]))),
        "back_within_2pct_s": back_s,
    }


def _nmc_rows(model_name: str, cell, trace: pd.DataFrame, seed: int) -> list[dict]:
    rows = []
    truth = trace["true_soc_pct"]
    mid = trace[(trace["time_s"] >= MID_TRIP_S) & (trace["current_a"].abs() > 0.05)]
    mid_trace = trace.loc[mid.index[0] :].reset_index(drop=True)
    starts = [
        ("power-up", trace, None),
        ("start, -20 pts", trace, float(truth.iloc[0]) - INITIAL_ERROR_PCT),
        (
            "mid-trip, +20 pts",
            mid_trace,
            min(100.0, float(mid_trace["true_soc_pct"].iloc[0]) + INITIAL_ERROR_PCT),
        ),
    ]
    for start, replayed, initial in starts:
        began = time.perf_counter()
        estimate = replay_trace(cell, replayed, initial_soc_pct=initial)
        rows.append(
            _row(
                chemistry="NMC",
                profile=f"drive cycle seed {seed} ({replayed['time_s'].iloc[-1] / 3600:.1f} h)",
                model=model_name,
                start=start,
                **error_metrics(estimate, replayed),
                replay_s=time.perf_counter() - began,
            )
        )
    return rows


def _lfp_row(model_name: str, cell, trace: pd.DataFrame, **replay_options) -> dict:
    began = time.perf_counter()
    estimate = replay_trace(cell, trace, **replay_options)
    full = np.flatnonzero(estimate["full_charge"].to_numpy())
    first = int(full[0]) if full.size else 0
    error = estimate["soc_pct"].to_numpy()[first:] - trace["true_soc_pct"].to_numpy()[first:]
    return _row(
        chemistry="LFP",
        profile="storage day (24 h)",
        model=model_name,
        start="power-up",
        rmse_pct=float(np.sqrt(np.mean(error**2))),
        max_pct=float(np.max(np.abs(error))),
        full_charge_at_s=float(trace["time_s"].iloc[first]) if full.size else NAN,
        true_soc_at_full_pct=float(trace["true_soc_pct"].iloc[first]),
        end_error_pct=float(error[-1]),
        replay_s=time.perf_counter() - began,
    )


def measure() -> list[dict[str, float | str]]:
    """Every row of the SoC accuracy report (takes a few minutes)."""
    rows: list[dict[str, float | str]] = []
    nominal = load_cell(NMC_CELL)
    identified, fit_s = characterise(NMC_CELL, seed=100, recharge=False)
    for seed in NMC_SEEDS:
        trace = cell_bench.drive_cycle(NMC_CELL, seed=seed)
        rows += _nmc_rows("nominal", nominal, trace, seed)
        rows += _nmc_rows(f"identified (bench + fit {fit_s:.0f} s)", identified, trace, seed)
    nominal = load_cell(LFP_CELL)
    identified, fit_s = characterise(LFP_CELL, seed=200, recharge=True)
    day = cell_bench.storage_day(LFP_CELL, seed=3)
    label = f"identified (bench + fit {fit_s:.0f} s)"
    rows.append(_lfp_row("nominal", nominal, day))
    rows.append(_lfp_row(label, identified, day))
    return rows


def main() -> None:  # pragma: no cover - manual run
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = measure()
    for chemistry in ("NMC", "LFP"):
        chosen = [r for r in rows if r["chemistry"] == chemistry]
        columns = [c for c in COLUMNS[1:] if any(r[c] == r[c] for r in chosen)]  # not all NaN
        table = Table(title=f"SoC accuracy, {chemistry} (target: {TARGETS[chemistry]})")
        for column in columns:
            table.add_column(column, justify="right")
        for row in chosen:
            table.add_row(
                *(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
            )
        console.print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
