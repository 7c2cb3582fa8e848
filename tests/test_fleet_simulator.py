"""The fleet simulator: ageing laws against their analytic forms, fleet physics and faults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.model.library import load_chemistry
from cellwarden.simulation.fleet.ageing_laws import DayStress, PlantLaw, Schmalstieg2014, Wang2011
from cellwarden.simulation.fleet.kinds import FleetSpecError
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet

R = 8.314462618


def _stress(temp_c=25.0, soc=0.5, efc=0.0, dod=0.0, c_rate=0.5, cells=1) -> DayStress:
    full = lambda value: np.full(cells, float(value))  # noqa: E731
    return DayStress(full(temp_c), full(temp_c), full(soc), full(efc), full(dod), full(c_rate))


def test_plant_law_calendar_is_sqrt_time_and_integrates_changing_temperature():
    ageing = load_chemistry("NMC").ageing
    law = PlantLaw(np.array(["NMC"]), np.ones(1))
    for _ in range(365):
        law.step(_stress())
    expected = ageing.calendar_fade_pct_per_sqrt_day / 100 * np.sqrt(365)
    assert law.capacity_fade[0] == pytest.approx(expected, rel=1e-9)
    # 100 days hot then 100 days at reference: fade² adds up k² t (equivalent-time rule)
    law = PlantLaw(np.array(["NMC"]), np.ones(1))
    for temp_c in [35.0] * 100 + [25.0] * 100:
        law.step(_stress(temp_c=temp_c))
    k25 = ageing.calendar_fade_pct_per_sqrt_day / 100
    k35 = k25 * np.exp(-ageing.calendar_activation_j_per_mol / R * (1 / 308.15 - 1 / 298.15))
    assert law.capacity_fade[0] == pytest.approx(np.sqrt(100 * k35**2 + 100 * k25**2), rel=1e-9)


def test_schmalstieg_follows_the_published_equations():
    law = Schmalstieg2014(np.array(["NMC"]), np.ones(1))
    for _ in range(400):
        law.step(_stress())  # 50 % SoC is 3.72 V on the model's NMC curve
    alpha = (7.543 * 3.72 - 23.75) * 1e6 * np.exp(-6976 / 298.15)
    assert law.capacity_fade[0] == pytest.approx(alpha * 400**0.75, rel=1e-9)
    cycled = Schmalstieg2014(np.array(["NMC"]), np.ones(1))
    for _ in range(300):  # one full cycle of 100 % depth a day at 25 °C
        cycled.step(_stress(efc=1.0, dod=1.0))
    charge_ah = 300 * 2 * 2.05
    beta = 7.348e-3 * (3.72 - 3.667) ** 2 + 7.60e-4 + 4.081e-3 * 1.0
    assert cycled.cycle_fade[0] == pytest.approx(beta * np.sqrt(charge_ah), rel=1e-9)


def test_wang_cycle_fade_follows_the_published_equation():
    law = Wang2011(np.array(["LFP"]), np.ones(1))
    for _ in range(1000):
        law.step(_stress(efc=1.0, dod=1.0, c_rate=0.5))
    charge_ah = 1000 * 2 * 2.3
    expected_pct = 31630 * np.exp(-(31700 - 370.3 * 0.5) / (R * 298.15)) * charge_ah**0.55
    assert law.cycle_fade[0] == pytest.approx(expected_pct / 100, rel=1e-9)


@pytest.fixture(scope="module")
def fleet():
    return simulate_fleet(FleetSpec(packs=40, days=500, seed=5, fault_fraction=0.5))


def test_same_seed_same_fleet_and_the_mix_is_kept(fleet):
    again = simulate_fleet(FleetSpec(packs=40, days=500, seed=5, fault_fraction=0.5))
    pd.testing.assert_frame_equal(fleet.history, again.history)
    mixed = simulate_fleet(FleetSpec(packs=20, days=5, seed=1, mix="e-scooter:3,ess:1"))
    assert mixed.truth_packs["pack_type"].value_counts().to_dict() == {"e-scooter": 15, "ess": 5}


def test_capacity_never_grows_and_cycles_match_the_charge_moved(fleet):
    truth = fleet.truth_daily
    steps = truth.groupby("pack_id")["true_soh_capacity_pct"].diff().dropna()
    assert (steps <= 1e-9).all()
    history = fleet.history
    rated = history["capacity_nominal_ah"]
    counted = (history["throughput_ah"] / (2 * rated)).groupby(history["pack_id"]).cumsum()
    np.testing.assert_allclose(counted, history["efc_total"], rtol=0.01, atol=0.02)


def test_a_hot_site_ages_the_same_packs_faster():
    def final(site: str) -> pd.Series:
        run = simulate_fleet(FleetSpec(packs=12, days=365, seed=3, sites=site, fault_fraction=0))
        return run.truth_daily.groupby("pack_id")["true_soh_capacity_pct"].last()

    hot, cold = final("hot=30/3/5"), final("cold=5/3/5")
    assert (hot < cold).all()


def _around(history: pd.DataFrame, pack_id: str, day: str, column: str, days: int = 5):
    rows = history[(history["pack_id"] == pack_id)
                   & (history["date"] <= pd.Timestamp(day))].tail(days)  # fmt: skip
    return float(rows[column].median())


def test_faults_grow_from_their_onset_to_the_trip_the_observations_show(fleet):
    faulty = fleet.truth_packs[fleet.truth_packs["fault_trip_date"] != ""]
    assert set(faulty["fault_kind"]) >= {"current_sensor", "voltage_sensor", "contactor"}
    history = fleet.history
    for fault in faulty.itertuples():
        assert fault.fault_onset_date < fault.fault_trip_date
        column = {"current_sensor": "current_offset_a", "voltage_sensor": "voltage_mismatch_mv",
                  "contactor": "contactor_resistance_mohm"}.get(fault.fault_kind)  # fmt: skip
        if column is None:
            continue
        before = _around(history, fault.pack_id, fault.fault_onset_date, column, 30)
        at_trip = _around(history, fault.pack_id, fault.fault_trip_date, column)
        if fault.fault_kind == "current_sensor":  # trips at 5 % of the capacity in amperes
            assert abs(at_trip - before) == pytest.approx(0.05 * fault.capacity_rated_ah, rel=0.25)
        if fault.fault_kind == "voltage_sensor":  # trips at 100 mV
            assert abs(at_trip - before) == pytest.approx(100.0, rel=0.25)
        if fault.fault_kind == "contactor":  # trips at five times its resistance
            assert at_trip / before == pytest.approx(5.0, rel=0.3)


def test_bad_specs_name_the_problem():
    with pytest.raises(FleetSpecError, match="unknown pack kind 'bus'"):
        simulate_fleet(FleetSpec(packs=2, days=2, mix="bus:1"))
    with pytest.raises(FleetSpecError, match="unknown site 'atlantis'"):
        simulate_fleet(FleetSpec(packs=2, days=2, sites="atlantis"))
    with pytest.raises(FleetSpecError, match="NAME=MEAN/AMPLITUDE/PEAK"):
        simulate_fleet(FleetSpec(packs=2, days=2, sites="x=1/2"))
    with pytest.raises(FleetSpecError, match="positive number below"):
        simulate_fleet(FleetSpec(packs=2, days=2, mix="ess:inf"))
    with pytest.raises(FleetSpecError, match="unknown ageing law"):
        FleetSpec(packs=2, days=2, ageing_law="magic")


def test_cli_simulate_writes_history_and_truth(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["fleet", "simulate", "--packs", "6", "--days", "40",
                                 "--out", str(tmp_path), "--format", "csv"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "history.csv").is_file()
    assert (tmp_path / "truth" / "packs.csv").is_file()
    assert (tmp_path / "truth" / "daily.parquet").is_file()
    bad = runner.invoke(app, ["fleet", "simulate", "--packs", "6", "--days", "4",
                              "--out", str(tmp_path), "--mix", "tram:3"])  # fmt: skip
    assert bad.exit_code == 2
    assert "unknown pack kind 'tram'" in bad.output
