"""Fleet analytics against truth: simulator speed, SoH forecast, EoL and fault prognosis.

Speed: 200 packs x 3 years with the default mix and faults (target < 10 min); the baseline
in the same run writes a history of the same size with random values (the I/O floor).

Accuracy: fleets the forecaster has never seen, on held-back seeds and on sites that are not
among the built-in ones, aged by the plant's own law and by two published models it does not
share (Schmalstieg 2014, Wang 2011). Each fleet runs 1 900 days; the forecast is made on day
1 100 from the rows up to that day, scored 60 days later and, for EoL, against the true
crossing of 80 % within two years. Prognosis is scored over the first 1 100 days. The
forecast is also made on days 1 010, 1 190 and 1 280 (autumn, spring, summer in the north),
because the fade over 60 days, and with it the relative target, changes with the season.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix
from cellwarden.cloud.analytics.prognosis import first_flags
from cellwarden.cloud.analytics.soh_forecast import ForecastSettings, forecast
from cellwarden.simulation.fleet.output import write_run
from cellwarden.simulation.fleet.scoring import score_forecast, score_prognosis
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import parse_history, write_history

HELD_BACK_SITES = "cairo=22/7/7,quito=14/1/6,perth=18.5/6/6/south,calgary=4.5/12/6,lagos=27/1.5/5"
CASES = (
    ("plant", 101), ("plant", 102), ("schmalstieg2014", 103), ("schmalstieg2014", 104),
    ("wang2011", 105), ("wang2011", 106),
)  # fmt: skip
FORECAST_DAY = 1_100
SEASON_DAYS = (1_010, 1_190, 1_280)
HORIZON_DAYS = 60


def _speed() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        run = simulate_fleet(FleetSpec(packs=200, days=3 * 365, seed=7))
        write_run(run, folder)
        simulated_s = time.perf_counter() - began
        rng = np.random.default_rng(0)
        began = time.perf_counter()
        floor = run.history.copy()
        numeric = floor.select_dtypes("number").columns
        floor[numeric] = rng.random((len(floor), len(numeric)))
        write_history(floor, Path(folder) / "floor.parquet")
        floor_s = time.perf_counter() - began
    return [{"packs": 200, "days": 3 * 365, "rows": len(run.history),
             "simulate_and_write_s": round(simulated_s, 2), "write_only_s": round(floor_s, 2),
             "ratio_to_write_only": round(simulated_s / floor_s, 1),
             "target_s": 600}]  # fmt: skip


def _accuracy() -> tuple[list[dict], list[dict], list[dict]]:
    forecast_rows, season_rows, prognosis_rows = [], [], []
    for law, seed in CASES:
        spec = FleetSpec(packs=200, days=1_900, seed=seed, sites=HELD_BACK_SITES, ageing_law=law)
        run = simulate_fleet(spec)
        as_of = spec.start + timedelta(days=FORECAST_DAY)
        history = parse_history(run.history)
        began = time.perf_counter()
        predicted = forecast(history, as_of, ForecastSettings(horizon_days=HORIZON_DAYS))
        took_s = time.perf_counter() - began
        result = score_forecast(predicted, run.truth_daily, as_of, HORIZON_DAYS)
        forecast_rows.append({
            "ageing law": law, "seed": seed, "packs": result.packs,
            "true fade 60 d (pts)": round(result.mean_true_fade_pct, 3),
            "MAE (pts)": round(result.mae_pct, 3),
            "MAE / fade": round(result.mae_over_fade, 3),
            "p10-p90 coverage": round(result.band_coverage, 3),
            "EoL packs": result.eol_packs,
            "EoL err / remaining (mean)": round(result.eol_error_over_remaining_mean, 3),
            "(median)": round(result.eol_error_over_remaining_median, 3),
            "EoL band coverage": round(result.eol_band_coverage, 3),
            "forecast s": round(took_s, 1),
        })  # fmt: skip
        known = history.up_to(pd.Timestamp(as_of))
        flags = first_flags(HistoryMatrix.from_history(known))
        truth = run.truth_packs.copy()
        late = pd.to_datetime(truth["fault_trip_date"].replace("", None)) > pd.Timestamp(as_of)
        truth.loc[late, "fault_trip_date"] = ""  # trips after the scored span are not counted
        onset_late = pd.to_datetime(truth["fault_onset_date"].replace("", None)) > pd.Timestamp(
            as_of
        )
        truth.loc[onset_late, ["fault_kind", "fault_onset_date"]] = ""
        scored = score_prognosis(flags, truth)
        for day in SEASON_DAYS:
            other = spec.start + timedelta(days=day)
            seasonal = score_forecast(
                forecast(history, other, ForecastSettings(horizon_days=HORIZON_DAYS)),
                run.truth_daily, other, HORIZON_DAYS,
            )  # fmt: skip
            season_rows.append({
                "ageing law": law, "seed": seed, "as of": other.isoformat(),
                "true fade 60 d (pts)": round(seasonal.mean_true_fade_pct, 3),
                "MAE (pts)": round(seasonal.mae_pct, 3),
                "MAE / fade": round(seasonal.mae_over_fade, 3),
                "p10-p90 coverage": round(seasonal.band_coverage, 3),
            })  # fmt: skip
        prognosis_rows.append({
            "ageing law": law, "seed": seed, "tripped faults": scored.tripped_faults,
            "caught >= 30 d early": scored.caught, "recall": round(scored.recall, 3),
            "flags": scored.flags, "true flags": scored.true_flags,
            "precision": round(scored.precision, 3),
            "median lead (d)": float(np.median(scored.lead_days)) if scored.lead_days else 0.0,
            "missed": "; ".join(scored.missed), "false": "; ".join(scored.false_flags),
        })  # fmt: skip
    return forecast_rows, season_rows, prognosis_rows


def measure() -> dict[str, list[dict]]:
    forecast_rows, season_rows, prognosis_rows = _accuracy()
    return {
        "fleet simulator speed": _speed(),
        "SoH forecast on held-back fleets": forecast_rows,
        "SoH forecast in other seasons": season_rows,
        "fault prognosis on held-back fleets": prognosis_rows,
    }
