"""State-of-charge accuracy on independent physics: PyBaMM DFN cells (validation/dfn), the
whole user path (``cellwarden identify`` on a 1 s HPPC and a C/20 test, then the BMS's
estimator on drives and storage days), against two simple baselines on the same data.

- NMC (LG M50 by Chen 2020 and O'Regan 2022, NMC532 by Mohtat 2020; 10, 25, 40 °C): every
  two-hour drive, with the cell identified at the chamber temperature, at 25 °C only, and
  with the built-in ``nmc-21700-5ah`` (no identification). Starts: power-up from the first
  (rested) voltage, power-up mid-trip under load, and 20 points above or below the truth.
  Scores: RMSE and max after the first 10 minutes, |error| at 10 minutes (``soc_scoring``);
  targets 1 / 2 / 3 % at 25 °C, 1.5 / 3 / 4 % at 10 and 40 °C.
- Storage days (LFP, A123-type by Prada 2013 with OCP hysteresis, at 10, 25 and 40 °C; the
  LG M50 at 25 °C): partial charges and one CC-CV full charge, scored from the first full
  charge the BMS recognises: RMSE and max (targets 3 / 5 %, the issue's for LFP).
- Baselines on the same traces: Coulomb counting from the true start with the identified
  capacity (the best a counter can do), and OCV lookup (the identified OCV read from every
  voltage sample, as if the cell were at rest).

``measure()`` returns the tables by title; ``python -m bench soc_accuracy`` prints them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellwarden.bms.cell_model import CellModel
from cellwarden.bms.soc_scoring import SocScore, score
from cellwarden.bms.trace_replay import replay_trace
from cellwarden.model.cell import CellSpec
from cellwarden.model.library import load_cell
from validation import suite

BUILT_IN_NMC = "nmc-21700-5ah"
TARGETS = {25.0: (1.0, 2.0, 3.0), 10.0: (1.5, 3.0, 4.0), 40.0: (1.5, 3.0, 4.0)}
STORAGE_TARGETS = (3.0, 5.0)  # RMSE, max after the first full charge (the LFP target)
OFFSET_PCT = 20.0
MID_TRIP_S = 1800.0  # the mid-trip start: the first row after this carrying over 0.2C


def coulomb_counting(cell: CellSpec, trace: pd.DataFrame) -> np.ndarray:
    """SoC from the true start, counting the measured current with the cell's capacity."""
    t = trace["time_s"].to_numpy()
    counted_ah = np.cumsum(trace["current_a"].to_numpy() * np.diff(t, prepend=t[0])) / 3600.0
    return float(trace["true_soc_pct"].iloc[0]) + 100.0 * counted_ah / cell.capacity_ah


def ocv_lookup(cell: CellSpec, trace: pd.DataFrame) -> np.ndarray:
    """The SoC the cell's OCV table reads from every voltage sample."""
    model = CellModel(cell)
    volts, temps = trace["voltage_v"].to_numpy(), trace["temp_c"].to_numpy()
    return 100.0 * model.soc_from_ocv(volts, temps, 0.0)


def _mid_trip(trace: pd.DataFrame, capacity_ah: float) -> pd.DataFrame:
    moving = trace[(trace["time_s"] > MID_TRIP_S) & (trace["current_a"].abs() > 0.2 * capacity_ah)]
    return trace.loc[moving.index[0] :].reset_index(drop=True)


def _nmc_row(case, drive, model, start, method, result: SocScore) -> dict:
    rmse, at, most = TARGETS[case.temp_c]
    return {
        "cell": case.key.removeprefix("nmc-"), "drive": drive, "model": model, "start": start,
        "method": method, "rmse_after_10min_pct": result.rmse_after_settle_pct,
        "error_at_10min_pct": result.error_at_settle_pct,
        "max_after_10min_pct": result.max_after_settle_pct,
        "meets_target": "yes" if result.meets(rmse, at, most) else "no",
    }  # fmt: skip


def _nmc_rows() -> list[dict]:
    rows = []
    at_25 = {}
    built_in = load_cell(BUILT_IN_NMC)
    for case in suite.cases("nmc-"):
        if "drive-1" not in case.names("drive"):
            continue
        cell = suite.identified(case).cell
        family = case.key.rsplit("-", 1)[0]
        if family not in at_25:
            at_25[family] = suite.identified(suite.case(f"{family}-25c")).cell
        models = {"identified": cell}
        if case.temp_c != 25.0:
            models["identified at 25 °C"] = at_25[family]
        if case.key.startswith("nmc-chen2020"):
            models[f"built-in {BUILT_IN_NMC}"] = built_in
        for drive in case.names("drive"):
            trace = case.trace(drive)
            t, truth = trace["time_s"], trace["true_soc_pct"]
            for label, model in models.items():
                estimate = replay_trace(model, trace)["soc_pct"]
                rows.append(_nmc_row(case, drive, label, "power-up", "cellwarden",
                                     score(t, estimate, truth)))  # fmt: skip
            starts = {
                f"{OFFSET_PCT:+.0f} pts": float(truth.iloc[0]) + OFFSET_PCT,
                f"{-OFFSET_PCT:+.0f} pts": float(truth.iloc[0]) - OFFSET_PCT,
            }
            for start, soc_pct in starts.items():
                estimate = replay_trace(cell, trace, initial_soc_pct=np.clip(soc_pct, 0, 100))
                rows.append(_nmc_row(case, drive, "identified", start, "cellwarden",
                                     score(t, estimate["soc_pct"], truth)))  # fmt: skip
            mid = _mid_trip(trace, cell.capacity_ah)
            estimate = replay_trace(cell, mid)["soc_pct"]
            rows.append(_nmc_row(case, drive, "identified", "mid-trip power-up", "cellwarden",
                                 score(mid["time_s"], estimate, mid["true_soc_pct"])))  # fmt: skip
            baselines = (("Coulomb counting", "true SoC", coulomb_counting),
                         ("OCV lookup", "-", ocv_lookup))  # fmt: skip
            for method, start, baseline in baselines:
                result = score(t, baseline(cell, trace), truth)
                rows.append(_nmc_row(case, drive, "identified", start, method, result))
    return rows


def _storage_rows() -> list[dict]:
    """Every storage day (LFP at three temperatures, NMC at 25 °C), from the first full charge."""
    rows = []
    for case in (c for c in suite.cases() if c.names("storage")):
        cell = suite.identified(case).cell
        trace = case.trace("storage")
        truth = trace["true_soc_pct"].to_numpy()
        estimate = replay_trace(cell, trace)
        first = int(np.flatnonzero(estimate["full_charge"])[0])
        runs = {
            ("cellwarden", "identified"): estimate["soc_pct"],
            ("Coulomb counting", "identified"): coulomb_counting(cell, trace),
            ("OCV lookup", "identified"): ocv_lookup(cell, trace),
        }
        if case.temp_c != 25.0:
            family = case.key.rsplit("-", 1)[0]
            at_25 = suite.identified(suite.case(f"{family}-25c")).cell
            runs["cellwarden", "identified at 25 °C"] = replay_trace(at_25, trace)["soc_pct"]
        for (method, model), soc_pct in runs.items():
            error = (np.asarray(soc_pct, float) - truth)[first:]
            rmse, most = float(np.sqrt(np.mean(error**2))), float(np.abs(error).max())
            rows.append({
                "cell": case.key, "model": model, "method": method,
                "first_full_charge_h": float(trace["time_s"].iloc[first] / 3600.0),
                "rmse_after_full_pct": rmse, "max_after_full_pct": most,
                "meets_target": "yes" if rmse <= STORAGE_TARGETS[0]
                and most <= STORAGE_TARGETS[1] else "no",
            })  # fmt: skip
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    """Worst and mean per temperature, model, start and method."""
    frame = pd.DataFrame(rows)
    frame["temp"] = frame["cell"].str.extract(r"(\d+)c$")[0] + " °C"
    keys = ["temp", "model", "start", "method"]
    out = []
    for key, group in frame.groupby(keys, sort=False):
        out.append({
            **dict(zip(keys, key, strict=True)), "drives": len(group),
            "rmse_after_10min_mean_pct": group["rmse_after_10min_pct"].mean(),
            "rmse_after_10min_worst_pct": group["rmse_after_10min_pct"].max(),
            "error_at_10min_worst_pct": group["error_at_10min_pct"].max(),
            "max_after_10min_worst_pct": group["max_after_10min_pct"].max(),
            "meeting_target": f"{(group['meets_target'] == 'yes').sum()}/{len(group)}",
        })  # fmt: skip
    return out


def measure() -> dict[str, list[dict]]:
    nmc = _nmc_rows()
    return {
        "SoC on DFN NMC drives: summary": _summary(nmc),
        "SoC on DFN NMC drives: every drive": nmc,
        "SoC on DFN storage days (after the first full charge)": _storage_rows(),
    }
