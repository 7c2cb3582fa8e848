"""Fault prognosis against injected faults with known onset and trip; ranking and rotation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.cloud.analytics.degradation_ranking import degradation, rank, rotation_advice
from cellwarden.cloud.analytics.history_matrix import HistoryMatrix
from cellwarden.cloud.analytics.prognosis import first_flags, prognose
from cellwarden.simulation.fleet.output import write_run
from cellwarden.simulation.fleet.scoring import score_prognosis
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import parse_history


@pytest.fixture(scope="module")
def faulty_fleet():
    spec = FleetSpec(packs=120, days=760, seed=77, fault_fraction=0.5,
                     sites="cairo=22/7/7,calgary=4.5/12/6,lagos=27/1.5/5")  # fmt: skip
    return simulate_fleet(spec)


def test_every_fault_kind_flagged_a_month_before_its_trip(faulty_fleet):
    matrix = HistoryMatrix.from_history(parse_history(faulty_fleet.history))
    flags = first_flags(matrix)
    score = score_prognosis(flags, faulty_fleet.truth_packs)
    tripped = faulty_fleet.truth_packs[faulty_fleet.truth_packs["fault_trip_date"] != ""]
    assert set(tripped["fault_kind"]) == {
        "self_discharge", "resistance_growth", "cooling", "current_sensor", "voltage_sensor",
        "contactor",
    }  # fmt: skip
    assert score.tripped_faults >= 30
    assert score.recall >= 0.9, score.missed
    assert score.precision >= 0.9, score.false_flags
    labels = {"self_discharge": "self-discharge", "resistance_growth": "resistance",
              "cooling": "cooling", "current_sensor": "current sensor",
              "voltage_sensor": "voltage sensor", "contactor": "contactor"}  # fmt: skip
    for flag in flags.itertuples():
        assert labels[flag.fault_kind] in flag.reason and "baseline" in flag.reason


def test_flags_on_a_day_are_what_that_day_shows(faulty_fleet):
    """Prognosis as of a day only sees rows up to it: the first flags found in the whole
    history are exactly the ones a run on that day lists with the same start."""
    history = parse_history(faulty_fleet.history)
    whole = first_flags(HistoryMatrix.from_history(history))
    flagged = whole.iloc[len(whole) // 2]
    as_of = pd.Timestamp(flagged["first_flag_date"])
    today = prognose(HistoryMatrix.from_history(history.up_to(as_of)))
    row = today[(today["pack_id"] == flagged["pack_id"])
                & (today["fault_kind"] == flagged["fault_kind"])]  # fmt: skip
    assert row["first_flag_date"].tolist() == [flagged["first_flag_date"]]


def test_a_healthy_fleet_raises_almost_nothing():
    run = simulate_fleet(FleetSpec(packs=80, days=700, seed=78, fault_fraction=0.0))
    flags = first_flags(HistoryMatrix.from_history(parse_history(run.history)))
    assert len(flags) <= 2, flags[["pack_id", "fault_kind", "reason"]].to_string()


def _synthetic_fleet() -> pd.DataFrame:
    """Ten scooters fading 2 %/year at 0.5 cycles a day, one fading 6 %/year, and one doing
    twice the cycles of another at a lower SoH."""
    rng = np.random.default_rng(9)
    frames = []
    for i in range(12):
        rate, efc, start = 2.0, 0.5, 99.0
        if i == 0:
            rate = 6.0
        if i == 1:
            efc, start = 1.0, 93.0
        days = np.arange(500)
        frames.append(pd.DataFrame({
            "pack_id": f"s{i:02d}", "date": pd.date_range("2024-01-01", periods=500),
            "pack_type": "e-scooter", "site": "lyon",
            "soh_capacity_pct": start - rate * days / 365 + rng.normal(0, 0.3, 500),
            "efc_total": efc * days, "temp_mean_c": 20.0,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_ranking_rates_outliers_and_rotation_against_known_fades():
    health = degradation(HistoryMatrix.from_history(parse_history(_synthetic_fleet())))
    ranked = rank(health)
    rates = ranked.set_index("pack_id")["fade_pct_per_year"]
    assert rates["s00"] == pytest.approx(6.0, abs=0.3)
    assert rates.drop("s00").between(1.7, 2.3).all()
    assert ranked.iloc[0]["pack_id"] == "s00" and ranked.iloc[0]["rank"] == 1
    outliers = ranked[ranked["outlier"]]
    assert outliers["pack_id"].tolist() == ["s00"]
    assert "fades faster than its" in outliers.iloc[0]["reason"]
    advice = rotation_advice(health)
    assert advice["heavy_pack_id"].tolist() == ["s01"]
    assert "swap their duties" in advice.iloc[0]["reason"]


def test_cli_analyse_and_score(tmp_path):
    write_run(simulate_fleet(FleetSpec(packs=24, days=500, seed=79, fault_fraction=0.5)),
              tmp_path / "run")  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["fleet", "analyse", "--history",
                                 str(tmp_path / "run" / "history.parquet"),
                                 "--out", str(tmp_path / "analysis")])  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("ranking", "forecast", "prognosis", "rotation"):
        assert (tmp_path / "analysis" / f"{name}.csv").is_file()
    scored = runner.invoke(app, ["fleet", "score", "--run", str(tmp_path / "run"),
                                 "--as-of", "2024-03-01", "--json"])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert '"recall"' in scored.output and '"mae_over_fade"' in scored.output
    late = runner.invoke(app, ["fleet", "score", "--run", str(tmp_path / "run"),
                               "--as-of", "2024-04-20"])  # fmt: skip
    assert late.exit_code == 2
    assert "earlier --as-of" in late.output.replace("\n", " ")
