"""Second-life assessment: graded against a simulated fleet's truth (never against its own
numbers), each rule on hand-made evidence, and bad input refused by name."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cellwarden.passport import second_life as sl
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import EVENT_COUNT_COLUMNS, parse_history

SOH_TOLERANCE_PCT = 1.0  # the 30-day median lags the fade and carries the BMS's noise
RESISTANCE_TOLERANCE_PCT = 5.0  # the BMS's resistance estimate is ±1 % of SoH_R a day
# the truth's abuse limits: the C limits of the rules, read from the simulator's totals
TRUE_ABUSE_LIMITS = {
    "deep_discharge_events": sl.DEEP_DISCHARGE_C_MAX,
    "overcharge_events": sl.OVERCHARGE_C_MAX,
    "over_temp_events": sl.OVER_TEMP_C_MAX,
}
CELL_FAULTS = ("self_discharge", "resistance_growth")  # the others are a sensor's, a fan's, ...
VISIBLE_AFTER_DAYS = 120  # a cell fault this old has grown beyond the healthy cells' spread
A_ABUSE_LIMITS = {
    "deep_discharge_events": sl.DEEP_DISCHARGE_A_MAX,
    "overcharge_events": sl.OVERCHARGE_A_MAX,
    "over_temp_events": sl.OVER_TEMP_A_MAX,
}


@pytest.fixture(scope="module")
def graded_fleet() -> pd.DataFrame:
    """300 packs over 1 000 days with abuse, graded on the last day from the history; the
    truth of that day and of each pack beside the grades."""
    spec = FleetSpec(packs=300, days=1000, seed=1414, abuse=1.0, fault_fraction=0.3)
    run = simulate_fleet(spec)
    as_of = pd.Timestamp(spec.start + timedelta(days=spec.days - 1))
    graded = sl.assess(sl.evidence_from_history(parse_history(run.history), as_of))
    truth = run.truth_daily[run.truth_daily["date"] == as_of].set_index("pack_id")
    packs = run.truth_packs.set_index("pack_id")
    fault_onset = pd.to_datetime(packs["fault_onset_date"].replace("", None))
    fault_trip = pd.to_datetime(packs["fault_trip_date"].replace("", None))
    recent = as_of - pd.Timedelta(days=sl.RECENT_DAYS)
    cell_fault = packs["fault_kind"].isin(CELL_FAULTS) & (fault_onset <= as_of)
    return graded.set_index("pack_id").assign(
        true_soh=truth["true_soh_capacity_pct"],
        true_resistance_increase=(100.0 / truth["true_soh_resistance_pct"] - 1.0) * 100.0,
        true_latched=packs["latched_safety"],
        cell_fault_recently_active=cell_fault & (fault_trip.isna() | (fault_trip > recent)),
        cell_fault_grown=cell_fault
        & fault_trip.isna()
        & (fault_onset <= as_of - pd.Timedelta(days=VISIBLE_AFTER_DAYS)),
        **{f"true_{name}": packs[name] for name in TRUE_ABUSE_LIMITS},
    )


def test_the_fleet_has_every_grade_and_latched_packs(graded_fleet):
    counts = graded_fleet["grade"].value_counts()
    assert all(counts.get(grade, 0) >= 10 for grade in sl.GRADES), counts.to_dict()
    assert graded_fleet["true_latched"].sum() >= 5


def test_no_pack_with_a_true_latched_event_is_a_candidate(graded_fleet):
    latched = graded_fleet[graded_fleet["true_latched"]]
    assert (latched["grade"] == "reject").all(), latched["grade"].to_dict()
    assert not set(latched.index) & set(sl.candidates(graded_fleet.reset_index())["pack_id"])


def test_a_packs_are_truly_healthy_and_unabused(graded_fleet):
    grade_a = graded_fleet[graded_fleet["grade"] == "A"]
    assert (grade_a["true_soh"] >= sl.SOH_A_MIN_PCT - SOH_TOLERANCE_PCT).all()
    for name, limit in A_ABUSE_LIMITS.items():
        assert (grade_a[f"true_{name}"] <= limit).all(), name
    assert not grade_a["cell_fault_grown"].any()


def test_grades_follow_the_true_soh(graded_fleet):
    median = graded_fleet.groupby("grade")["true_soh"].median()
    assert median["A"] > median["B"] > median["C"], median.to_dict()
    for grade, low in (("B", sl.SOH_B_MIN_PCT), ("C", sl.SOH_C_MIN_PCT)):
        assert (graded_fleet.loc[graded_fleet["grade"] == grade, "true_soh"]
                >= low - SOH_TOLERANCE_PCT).all(), grade  # fmt: skip


def test_every_rejected_pack_has_a_true_reason(graded_fleet):
    rejected = graded_fleet[graded_fleet["grade"] == "reject"]
    abused = np.column_stack([
        rejected[f"true_{name}"] > limit for name, limit in TRUE_ABUSE_LIMITS.items()
    ]).any(axis=1)  # fmt: skip
    reason = (
        (rejected["true_soh"] < sl.SOH_C_MIN_PCT + SOH_TOLERANCE_PCT)
        | rejected["true_latched"]
        | abused
        | (rejected["true_resistance_increase"]
           > sl.RESISTANCE_C_MAX_PCT - RESISTANCE_TOLERANCE_PCT)
        | rejected["cell_fault_recently_active"]
    )  # fmt: skip
    assert reason.all(), rejected.loc[~reason, "reasons"].to_dict()


def test_candidates_are_the_graded_packs_best_first(graded_fleet):
    shortlist = sl.candidates(graded_fleet.reset_index())
    assert len(shortlist) == (graded_fleet["grade"] != "reject").sum()
    assert shortlist["rank"].tolist() == list(range(1, len(shortlist) + 1))
    assert shortlist["score"].is_monotonic_decreasing
    order = {"A": 0, "B": 1, "C": 2}
    assert shortlist["grade"].map(order).is_monotonic_increasing


# --- each rule on hand-made evidence ------------------------------------------------------------
HEALTHY = {
    "pack_id": "healthy", "soh_pct": 95.0, "resistance_increase_pct": 10.0,
    "cell_voltage_spread_mv": 10.0, "cell_resistance_ratio": 1.1,
    "self_discharge_pct_per_month": 0.1, "rest_drift_mv_per_day": 0.05,
    "deep_discharge_events": 0.0, "overcharge_events": 0.0, "over_temp_events": 0.0,
    "latched_safety_events": 0.0, "hot_day_share_pct": 1.0, "age_years": 3.0,
}  # fmt: skip
# one pack per rule: (the evidence changed, the grade it must get, words of its reason)
CASES = {
    "soh B": ({"soh_pct": 75.0}, "B", "SoH 75 % is below the A minimum 80 %: B at best"),
    "soh reject": ({"soh_pct": 59.9}, "reject", "SoH 59.9 % is below the C minimum 60 %: reject"),
    "resistance C": ({"resistance_increase_pct": 80.0}, "C",
                     "resistance increase 80 % is above the B limit 75 %: C at best"),
    "spread B": ({"cell_voltage_spread_mv": 45.0}, "B", "cell voltage spread 45 mV"),
    "spread reject": ({"cell_voltage_spread_mv": 150.0}, "reject", "above the C limit 100 mV"),
    "cell resistance C": ({"cell_resistance_ratio": 1.8}, "C", "worst cell resistance"),
    "self-discharge reject": ({"self_discharge_pct_per_month": 3.0}, "reject",
                              "excess self-discharge (balancing) 3 %/month"),
    "rest drift B": ({"rest_drift_mv_per_day": 0.5}, "B", "cell rest-voltage drift 0.5 mV/day"),
    "deep discharges C": ({"deep_discharge_events": 21.0}, "C",
                          "deep discharges 21 is above the B limit 20: C at best"),
    "deep discharges reject": ({"deep_discharge_events": 61.0}, "reject", "deep discharges 61"),
    "one overcharge": ({"overcharge_events": 1.0}, "B",
                       "overcharges 1 is above the A limit 0: B at best"),
    "over-temperature C": ({"over_temp_events": 11.0}, "C", "over-temperature trips 11"),
    "latched": ({"latched_safety_events": 1.0}, "reject",
                "latched safety events 1 is above the limit of every grade 0: reject"),
    "hot days C": ({"hot_day_share_pct": 90.0}, "C", "hot days 90 % of days"),
    "old": ({"age_years": 11.0}, "C", "remaining calendar life 4 years is below the B minimum"),
    "unknown": ({"rest_drift_mv_per_day": np.nan}, "C",
                "cell rest-voltage drift: not in the history, C at best until tested"),
}  # fmt: skip


@pytest.fixture(scope="module")
def hand_made() -> pd.DataFrame:
    rows = [HEALTHY] + [HEALTHY | change | {"pack_id": name} for name, (change, _, _) in
                        CASES.items()]  # fmt: skip
    return sl.assess(pd.DataFrame(rows)).set_index("pack_id")


def test_a_healthy_pack_is_a_with_no_reason(hand_made):
    healthy = hand_made.loc["healthy"]
    assert (healthy["grade"], healthy["reasons"], healthy["second_use"]) == (
        "A",
        "",
        "stationary ESS",
    )
    assert 75.0 <= healthy["score"] <= 100.0


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_grades_its_pack_and_says_why(hand_made, case):
    _, grade, words = CASES[case]
    pack = hand_made.loc[case]
    assert pack["grade"] == grade
    assert words in pack["reasons"]
    assert pack["reasons"].count(";") == 0  # only that rule lowered it
    assert pack["second_use"] == sl.SECOND_USE[grade]
    low = {"A": 75, "B": 50, "C": 25, "reject": 0}[grade]
    assert low <= pack["score"] < low + 25 or (grade == "A" and pack["score"] == 100)


def test_every_reason_is_listed_and_the_worst_decides():
    pack = HEALTHY | {"soh_pct": 72.0, "overcharge_events": 7.0, "latched_safety_events": 2.0}
    graded = sl.assess(pd.DataFrame([pack])).iloc[0]
    assert graded["grade"] == "reject" and graded["score"] == 0.0
    assert graded["reasons"].split("; ") == [
        "SoH 72 % is below the A minimum 80 %: B at best",
        "overcharges 7 is above the B limit 5: C at best",
        "latched safety events 2 is above the limit of every grade 0: reject",
    ]


def test_limits_are_inclusive_and_the_score_is_continuous():
    at = [HEALTHY | {"pack_id": "at", "soh_pct": sl.SOH_A_MIN_PCT},
          HEALTHY | {"pack_id": "below", "soh_pct": sl.SOH_A_MIN_PCT - 0.01}]  # fmt: skip
    graded = sl.assess(pd.DataFrame(at)).set_index("pack_id")
    assert graded.loc["at", "grade"] == "A" and graded.loc["below", "grade"] == "B"
    assert graded.loc["at", "score"] == 75.0
    assert graded.loc["below", "score"] == pytest.approx(75.0, abs=0.1)


def test_the_expected_lifetime_sets_the_remaining_life():
    evidence = pd.DataFrame([HEALTHY | {"age_years": 6.0}])
    short = sl.assess(evidence, sl.SecondLifeSettings(expected_lifetime_years=7.5)).iloc[0]
    assert short["remaining_life_years"] == pytest.approx(1.5)
    assert short["grade"] == "reject"
    assert sl.assess(evidence).iloc[0]["grade"] == "A"  # 15 years by default
    with pytest.raises(ValueError, match="expected lifetime"):
        sl.SecondLifeSettings(expected_lifetime_years=0)


# --- evidence from a history ------------------------------------------------------------------
def _history(days: int = 60, **columns: float) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "pack_id": "p1", "date": pd.date_range("2024-01-01", periods=days).strftime("%Y-%m-%d"),
        "pack_type": "ess", "soh_capacity_pct": 90.0 + rng.normal(0, 0.3, days),
        "soh_resistance_pct": 80.0, "efc_total": np.arange(days) * 0.9, "temp_max_c": 30.0,
        "capacity_nominal_ah": 100.0, "cell_count": 16.0, "balancing_ah": 0.16,
        "rest_drift_mv_per_day": 0.02, "resistance_max_ratio": 1.1,
        "cell_voltage_spread_mv": 12.0, **dict.fromkeys(EVENT_COUNT_COLUMNS, 0.0),
    })  # fmt: skip
    return frame.assign(**columns)


def test_evidence_is_computed_from_the_rows_up_to_as_of():
    rows = _history()
    rows.loc[10, "deep_discharge_events"] = 2.0  # before as_of
    rows.loc[50, "deep_discharge_events"] = 5.0  # after it
    rows.loc[:4, "temp_max_c"] = 46.0  # five hot days
    rows.loc[35, "soh_capacity_pct"] = 70.0  # an outlier the median ignores
    evidence = sl.evidence_from_history(parse_history(rows), pd.Timestamp("2024-02-09")).iloc[0]
    assert evidence["pack_type"] == "ess"
    recent = rows["soh_capacity_pct"].iloc[40 - sl.RECENT_DAYS : 40].median()  # up to Feb 9
    assert evidence["soh_pct"] == pytest.approx(recent)
    assert evidence["resistance_increase_pct"] == pytest.approx(25.0)
    assert evidence["self_discharge_pct_per_month"] == pytest.approx(
        0.16 / (16 * 100) * 100 * 365.25 / 12
    )
    assert evidence["deep_discharge_events"] == 2.0
    assert evidence["hot_days"] == 5 and evidence["hot_day_share_pct"] == pytest.approx(12.5)
    assert evidence["efc_total"] == pytest.approx(39 * 0.9)
    assert evidence["age_years"] == pytest.approx(39 / 365.25)


def test_a_pandas_frame_works_as_the_history_and_unknowns_stay_unknown():
    rows = _history(soh_capacity_pct=np.nan, overcharge_events=np.nan)
    rows.loc[:5, "soh_capacity_pct"] = 90.0  # too few estimates, and long ago
    evidence = sl.evidence_from_history(rows, "2024-02-29")
    assert np.isnan(evidence.loc[0, "soh_pct"]) and np.isnan(evidence.loc[0, "overcharge_events"])
    graded = sl.assess(evidence).iloc[0]
    assert graded["grade"] == "C"
    assert "SoH: not in the history" in graded["reasons"]
    assert "overcharges: not in the history" in graded["reasons"]


def test_missing_columns_are_named():
    rows = _history().drop(columns=["balancing_ah", "latched_safety_events"])
    named = re.escape("the history lacks the column(s) balancing_ah, latched_safety_events")
    with pytest.raises(ValueError, match=named):
        sl.evidence_from_history(rows, "2024-02-01")
    with pytest.raises(ValueError, match=named):
        sl.evidence_from_history(parse_history(rows), "2024-02-01")  # a FleetHistory too
    evidence = pd.DataFrame([HEALTHY]).drop(columns=["soh_pct", "age_years"])
    with pytest.raises(ValueError, match=re.escape("evidence lacks the column(s) soh_pct, age_")):
        sl.assess(evidence)
    with pytest.raises(ValueError, match=re.escape("assessment lacks the column(s) score, grade")):
        sl.candidates(pd.DataFrame([HEALTHY]))
    with pytest.raises(ValueError, match="no rows on or before 2023-12-31"):
        sl.evidence_from_history(_history(), "2023-12-31")
