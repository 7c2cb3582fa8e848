"""The SoH forecast: an analytic case, and fleets aged by published models it does not share."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.cloud.analytics.soh_forecast import (
    FORECAST_COLUMNS,
    ForecastError,
    ForecastSettings,
    forecast,
)
from cellwarden.simulation.fleet.scoring import score_forecast
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import parse_history, write_history

START = date(2022, 1, 1)


def _analytic_history(days: int) -> tuple[pd.DataFrame, dict[str, tuple[float, float, float]]]:
    """SoH = 100 - a sqrt(t) - b EFC at 25 °C and 50 % SoC, with 0.2-point noise."""
    rng = np.random.default_rng(4)
    laws = {f"p{i}": (a, b, efc) for i, (a, b, efc) in enumerate(
        [(0.30, 0.010, 1.0), (0.25, 0.012, 1.0), (0.35, 0.006, 1.2), (0.20, 0.020, 0.8),
         (0.30, 0.008, 0.9), (0.02, 0.0, 0.01)])}  # fmt: skip
    frames = []
    t = np.arange(days, dtype=float)
    for pack_id, (a, b, efc) in laws.items():
        soh = 100 - a * np.sqrt(t) - b * efc * t
        frames.append(pd.DataFrame({
            "pack_id": pack_id, "date": pd.date_range(START, periods=days),
            "soh_capacity_pct": soh + rng.normal(0, 0.2, days), "soh_resistance_pct": 100.0,
            "efc_total": efc * t, "temp_mean_c": 25.0, "temp_max_c": 30.0,
            "soc_mean_pct": 50.0, "dod_mean_pct": 60.0, "throughput_ah": 2 * efc * 50,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True), laws


def test_forecast_and_eol_of_an_analytic_fade():
    rows, laws = _analytic_history(900)
    as_of = START + timedelta(days=700)
    result = forecast(parse_history(rows), as_of, ForecastSettings(horizon_days=60)).set_index(
        "pack_id"
    )
    for pack_id, (a, b, efc) in laws.items():
        t = 760.0
        assert result.at[pack_id, "soh_pct_at_horizon"] == pytest.approx(
            100 - a * np.sqrt(t) - b * efc * t, abs=0.1
        )
        low, high = result.at[pack_id, "soh_p10_pct"], result.at[pack_id, "soh_p90_pct"]
        assert low < result.at[pack_id, "soh_pct_at_horizon"] < high
        if b == 0:  # 0.02 sqrt(days): 80 % after 2 739 years, beyond the 10 years looked at
            assert result.at[pack_id, "eol_date"] == ""
            continue
        root = (-a + np.sqrt(a * a + 80 * b * efc)) / (2 * b * efc)  # sqrt(t) at SoH 80
        true_eol = START + timedelta(days=root**2)
        guessed = date.fromisoformat(result.at[pack_id, "eol_date"])
        remaining = (true_eol - as_of).days
        assert 0 < remaining < 730  # reaching EoL within two years
        assert abs((guessed - true_eol).days) <= 0.05 * remaining
        assert result.at[pack_id, "eol_p10_date"] <= true_eol.isoformat()
        assert true_eol.isoformat() <= (result.at[pack_id, "eol_p90_date"] or "9999")


def test_only_rows_up_to_the_as_of_day_are_used():
    rows, _laws = _analytic_history(500)
    as_of = START + timedelta(days=400)
    spoiled = rows.copy()
    later = spoiled["date"] > pd.Timestamp(as_of)
    spoiled.loc[later, "soh_capacity_pct"] = 5.0
    settings = ForecastSettings()
    pd.testing.assert_frame_equal(
        forecast(parse_history(rows), as_of, settings),
        forecast(parse_history(spoiled), as_of, settings),
    )


@pytest.mark.parametrize(
    ("law", "mix", "seed"),
    [
        ("schmalstieg2014", "e-scooter:2,cargo-ev:1", 61),
        ("wang2011", "forklift:1,ess:1,golf-cart:1", 62),
    ],
)
def test_fleets_aged_by_models_the_forecaster_does_not_share(law, mix, seed):
    spec = FleetSpec(packs=60, days=1_300, seed=seed, mix=mix, ageing_law=law,
                     sites="cairo=22/7/7,calgary=4.5/12/6,perth=18.5/6/6/south",
                     fault_fraction=0.0)  # fmt: skip
    run = simulate_fleet(spec)
    as_of = spec.start + timedelta(days=900)
    predicted = forecast(parse_history(run.history), as_of, ForecastSettings(horizon_days=60))
    score = score_forecast(predicted, run.truth_daily, as_of, 60)
    assert score.packs == 60
    assert score.mae_pct <= 0.5
    assert score.mae_over_fade <= 0.15, score
    assert 0.6 <= score.band_coverage <= 0.97, score  # 60 packs: the bench holds 70-90 %
    if score.eol_packs >= 3:  # packs truly reaching 80 % within the 400 days simulated ahead
        assert score.eol_error_over_remaining_median <= 0.15, score


def _cli(command: str, rows: pd.DataFrame, as_of: str, out: Path):
    """``cellwarden fleet COMMAND`` on ``rows`` written as a CSV history next to ``out``."""
    history = out.parent / "history.csv"
    write_history(rows, history)
    return CliRunner().invoke(app, ["fleet", command, "--history", str(history),
                                    "--as-of", as_of, "--out", str(out)])  # fmt: skip


def test_cli_forecast_writes_the_columns(tmp_path):
    rows, _laws = _analytic_history(400)
    out = tmp_path / "forecast.csv"
    result = _cli("forecast", rows, "2022-12-01", out)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert tuple(written.columns) == FORECAST_COLUMNS
    assert len(written) == 6
    early = _cli("forecast", rows, "2019-01-01", out)
    assert early.exit_code == 2
    assert "no rows on or before 2019-01-01" in early.output
    analysis = _cli("analyse", rows, "2019-01-01", tmp_path / "a")
    assert analysis.exit_code == 2, analysis.output
    assert "no usable rows" in analysis.output


def test_cli_forecast_names_the_packs_it_leaves_out(tmp_path):
    rows, _laws = _analytic_history(200)
    rows.loc[(rows["pack_id"] == "p3") & (rows.index % 40 != 0), "soh_capacity_pct"] = np.nan
    out = tmp_path / "forecast.csv"
    result = _cli("forecast", rows, "2022-07-01", out)
    assert result.exit_code == 0, result.output
    assert "left out p3: only 5 SoH estimates" in result.output
    assert "p3" not in set(pd.read_csv(out)["pack_id"])


def test_odd_but_valid_requests_are_answered():
    rows, _laws = _analytic_history(300)
    history = parse_history(rows)
    last = START + timedelta(days=299)
    later = forecast(history, last + timedelta(days=20), ForecastSettings(horizon_days=60))
    assert len(later) == 6  # as of a day after the last row: from the last rows on
    for horizon in (1, 2, 14, 3650):
        result = forecast(history, last, ForecastSettings(horizon_days=horizon))
        assert (result["soh_p10_pct"] <= result["soh_pct_at_horizon"]).all()
        assert (result["soh_pct_at_horizon"] <= result["soh_p90_pct"]).all()
    sparse = rows.copy()
    sparse.loc[sparse["pack_id"] == "p0", "soh_capacity_pct"] = np.nan
    result = forecast(parse_history(sparse), last, ForecastSettings())
    assert "p0" not in set(result["pack_id"])
    assert "only 0 SoH estimates" in result.attrs["skipped"]["p0"]
    with pytest.raises(ForecastError, match="no pack has 10 or more SoH estimates"):
        forecast(parse_history(rows.assign(soh_capacity_pct=np.nan)), last, ForecastSettings())
