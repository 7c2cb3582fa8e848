"""The fleet simulator's abuse and the readings added for passports: events by kind and site,
truth that matches the history, ageing from abuse, cell voltage spread and energy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.simulation.fleet.abuse import DEEP_DISCHARGE_PER_DAY, HISTORY_COLUMNS
from cellwarden.simulation.fleet.kinds import KINDS, FleetSpecError
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import EVENT_COUNT_COLUMNS

HOT_SITES = "hot=27/6/7"
COLD_SITES = "cold=8/6/4"


@pytest.fixture(scope="module")
def abused():
    return simulate_fleet(FleetSpec(packs=120, days=730, seed=31, abuse=1.0, fault_fraction=0.3))


def test_every_kind_has_a_deep_discharge_rate():
    assert set(DEEP_DISCHARGE_PER_DAY) == set(KINDS)


def test_truth_totals_are_the_history_counts(abused):
    truth = abused.truth_packs.set_index("pack_id").sort_index()
    for column in EVENT_COUNT_COLUMNS:
        counted = abused.history.groupby("pack_id")[column].sum()
        np.testing.assert_array_equal(counted, truth[column], err_msg=column)
    latched = abused.history[abused.history["latched_safety_events"] > 0]
    first = latched.groupby("pack_id")["date"].min().dt.strftime("%Y-%m-%d")
    assert truth.index[truth["latched_safety"]].tolist() == first.index.tolist()
    assert truth.loc[first.index, "latched_safety_date"].tolist() == first.tolist()
    assert set(truth.loc[first.index, "latched_safety_cause"]) <= {
        "deep_discharge", "overcharge", "over_temp", "short_circuit"
    }  # fmt: skip
    assert 0 < truth["latched_safety"].mean() < 0.15  # a small share


def test_overcharges_come_from_the_faulty_charger_only(abused):
    truth = abused.truth_packs.set_index("pack_id")
    charged = abused.history[abused.history["overcharge_events"] > 0]
    assert len(charged) > 10
    window = truth.loc[charged["pack_id"], ["faulty_charger_from", "faulty_charger_to"]]
    day = charged["date"].dt.strftime("%Y-%m-%d").to_numpy()
    assert (window["faulty_charger_from"].to_numpy() <= day).all()
    assert (day <= window["faulty_charger_to"].to_numpy()).all()


def test_lightly_supervised_kinds_are_run_flat_most(abused):
    truth = abused.truth_packs.set_index("pack_id")
    days_in_service = abused.history.groupby("pack_id").size()
    per_day = truth["deep_discharge_events"] / days_in_service
    mean = per_day.groupby(truth["pack_type"]).mean()
    assert mean["e-scooter"] > mean["golf-cart"] > mean["cargo-ev"] > mean["ess"]


def test_hot_sites_trip_over_temperature_more():
    def trips(sites: str) -> float:
        run = simulate_fleet(FleetSpec(packs=30, days=365, seed=32, sites=sites, abuse=1.0,
                                       mix="e-scooter:1,cargo-ev:1", fault_fraction=0))  # fmt: skip
        return float(run.truth_packs["over_temp_events"].sum())

    assert trips(HOT_SITES) > 5 * max(trips(COLD_SITES), 1.0)


def test_without_abuse_only_fault_trips_are_counted():
    run = simulate_fleet(FleetSpec(packs=40, days=500, seed=5, fault_fraction=0.5))
    tripped = run.truth_packs[run.truth_packs["fault_trip_date"] != ""]
    counts = tripped["fault_kind"].value_counts()
    assert run.history["deep_discharge_events"].sum() == counts.get(
        "self_discharge", 0
    ) + counts.get("resistance_growth", 0)
    assert run.history["over_temp_events"].sum() == counts.get("cooling", 0)
    assert run.history["overcharge_events"].sum() == 0
    assert run.history["latched_safety_events"].sum() == 0


def test_abuse_ages_the_same_fleet_faster_and_deep_discharges_most():
    spec = dict(packs=60, days=600, seed=21, fault_fraction=0.0)
    clean = simulate_fleet(FleetSpec(**spec))
    abused = simulate_fleet(FleetSpec(**spec, abuse=2.0))
    final = "true_soh_capacity_pct"
    loss = (
        clean.truth_daily.groupby("pack_id")[final].last()
        - abused.truth_daily.groupby("pack_id")[final].last()
    )
    assert (loss >= -1e-9).all()
    deep = abused.truth_packs.set_index("pack_id")["deep_discharge_events"]
    assert loss.rank().corr(deep.rank()) > 0.8  # Spearman's
    assert loss[deep >= 25].min() > 1.0  # 0.1 % of the weakest cell per event


def test_same_seed_same_abuse(abused):
    again = simulate_fleet(FleetSpec(packs=120, days=730, seed=31, abuse=1.0, fault_fraction=0.3))
    pd.testing.assert_frame_equal(abused.history, again.history)
    pd.testing.assert_frame_equal(abused.truth_packs, again.truth_packs)


def test_a_soft_short_spreads_the_cell_voltages_before_it_trips(abused):
    truth = abused.truth_packs
    shorts = truth[(truth["fault_kind"] == "self_discharge") & (truth["fault_trip_date"] != "")]
    assert len(shorts) >= 3
    history = abused.history.set_index(["pack_id", "date"])["cell_voltage_spread_mv"]
    for pack in shorts.itertuples():
        days = history.loc[pack.pack_id]
        before = days[days.index < pd.Timestamp(pack.fault_onset_date)].median()
        at_trip = days[days.index <= pd.Timestamp(pack.fault_trip_date)].tail(5).median()
        assert at_trip > 2.0 * before, pack.pack_id


def test_energy_is_the_throughput_at_the_pack_voltage_through_its_resistance(abused):
    history = abused.history
    sums = history.groupby("pack_id")[["energy_charged_kwh", "energy_discharged_kwh"]].sum()
    efficiency = sums["energy_discharged_kwh"] / sums["energy_charged_kwh"]
    assert efficiency.between(0.95, 1.0).all(), efficiency.describe()
    nominal_kwh = (history["throughput_ah"] * history["pack_type"].map(
        {name: kind.voltage_nominal_v for name, kind in KINDS.items()}
    ) / 1000.0).groupby(history["pack_id"]).sum()  # fmt: skip
    total = sums.sum(axis=1)
    assert ((total / nominal_kwh) - 1.0).abs().max() < 0.1


def test_the_abuse_scale_is_checked_and_the_cli_writes_the_truth(tmp_path):
    with pytest.raises(FleetSpecError, match="abuse scale"):
        FleetSpec(packs=2, days=2, abuse=-1.0)
    result = CliRunner().invoke(app, ["fleet", "simulate", "--packs", "8", "--days", "60",
                                      "--abuse", "3", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(tmp_path / "truth" / "packs.csv", keep_default_na=False)
    assert {*HISTORY_COLUMNS.values(), "latched_safety", "faulty_charger_from"} <= set(truth)
    assert truth["deep_discharge_events"].sum() > 0
