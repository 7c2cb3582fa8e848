"""The passport's dynamic data against values worked out by hand: a day of summaries with a
square-wave current and temperature (whose energy, time outside the idle range and rest drift
follow from the wave's levels and the linear ramps between records) and known DTC trips is
stored, derived and refreshed on both engines; the rules of the condition (windows, medians,
fallbacks, the as-of boundary, event counting) on small frames."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cellwarden.cloud.analytics.scheduled_analytics import run_day, run_if_due
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.passport.builder import Identity, build_passport
from cellwarden.passport.condition import BatteryCondition, Ratings, battery_condition
from cellwarden.passport.identifier import passport_urn
from cellwarden.passport.manufacturer_file import load_manufacturer_file
from cellwarden.passport.negative_events import classify
from cellwarden.passport.rated_values import rated_values
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.telemetry.codec import decode_frame, encode
from cellwarden.telemetry.schema import Kind

URN = "urn:cellwarden:pack0001"
DAY = date(2026, 3, 10)
DAY_S = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
CAPACITY_AH, NOMINAL_V, ENERGY_KWH = 50.0, 51.2, 2.56
RATINGS = Ratings(rated_capacity_ah=CAPACITY_AH, rated_energy_kwh=ENERGY_KWH,
                  nominal_voltage_v=NOMINAL_V, original_power_w=5000.0,
                  initial_round_trip_efficiency_pct=97.0,
                  initial_self_discharge_pct_per_month=2.0, idle_temp_min_c=0.0,
                  idle_temp_max_c=40.0)  # fmt: skip


# --- the negative event table -----------------------------------------------------------------
def test_codes_are_classified_as_the_plan_lists_them() -> None:
    want = {
        "B1101": set(), "B1102": {"overcharge"}, "B1103": {"overcharge", "latched"},
        "B1111": set(), "B1112": {"deep_discharge"}, "B1113": {"deep_discharge", "latched"},
        "B1301": set(), "B1302": {"over_temperature"},
        "B1303": {"over_temperature", "latched"}, "B1311": set(), "B1312": set(),
        "B1321": {"over_temperature"}, "B1322": {"over_temperature", "latched"},
        "B1331": set(), "B1220": {"short_circuit", "latched"},
        "B1221": {"short_circuit", "latched"}, "B1203": {"latched"}, "B1204": {"latched"},
        "B1213": {"latched"}, "B1201": set(), "B1202": set(), "B1212": set(),
        "B1501": set(), "B1601": set(), "B1701": set(), "PATH": set(), "b1113 ": {
            "deep_discharge", "latched"},
    }  # fmt: skip
    assert {code: classify(code) for code in want} == want


# --- ratings ----------------------------------------------------------------------------------
def test_ratings_are_read_from_a_built_passport() -> None:
    scenario = load_builtin("escooter-13s-urban")
    rated = rated_values(scenario.system)
    maker = load_manufacturer_file()
    serial = scenario.system.serial_number
    document = build_passport(Identity(passport_urn(serial), serial), maker, rated)
    ratings = Ratings.from_document(document)
    assert ratings.rated_capacity_ah == pytest.approx(rated.rated_capacity_ah, rel=1e-3)
    assert ratings.rated_energy_kwh == pytest.approx(rated.rated_energy_kwh, rel=1e-3)
    assert ratings.nominal_voltage_v == pytest.approx(rated.nominal_voltage_v, rel=1e-3)
    assert ratings.original_power_w == pytest.approx(dict(rated.power_capability_w)[50.0], abs=0.1)
    assert ratings.initial_round_trip_efficiency_pct == maker.lifetime.round_trip_efficiency_pct
    assert ratings.initial_self_discharge_pct_per_month == rated.self_discharge_pct_per_month
    assert (ratings.idle_temp_min_c, ratings.idle_temp_max_c) == (
        rated.idle_temp_min_c, rated.idle_temp_max_c)  # fmt: skip
    del document["performance"]["batteryTechicalProperties"]["temperatureRangeIdleState"]
    with pytest.raises(ValueError, match="no 'temperatureRangeIdleState'"):
        Ratings.from_document(document)
    with pytest.raises(ValueError, match="rated_energy_kwh must be above 0"):
        Ratings(**{**asdict(RATINGS), "rated_energy_kwh": 0.0})
    with pytest.raises(ValueError, match=r"idle temperature range 40\.0\.\.0\.0 °C is empty"):
        Ratings(**{**asdict(RATINGS), "idle_temp_min_c": 40.0, "idle_temp_max_c": 0.0})


# --- the rules on small frames ----------------------------------------------------------------
def days_before(last: date, count: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(last - timedelta(days=count - 1 - i)) for i in range(count)]


NO_EVENTS = pd.DataFrame({"code": [], "time_s": [], "kind": []})
NO_COUNTERS = pd.DataFrame({"date": pd.to_datetime([])})


def condition_of(daily: pd.DataFrame, counters: pd.DataFrame = NO_COUNTERS,
                 events: pd.DataFrame = NO_EVENTS, last: date = DAY,
                 **keywords: float) -> BatteryCondition:  # fmt: skip
    as_of = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    return battery_condition(daily, counters, events, RATINGS, as_of, **keywords)


def test_state_of_health_and_power_from_the_last_seven_estimates() -> None:
    soh = [99.0 - 0.2 * i for i in range(20)]
    soh[17] = math.nan
    resistance = [100.0] * 12 + [80.0, 81.0, 79.0, 82.0, math.nan, 78.0, 80.0, 90.0]
    daily = pd.DataFrame({"date": days_before(DAY, 20), "soh_capacity_pct": soh,
                          "soh_resistance_pct": resistance})  # fmt: skip
    c = condition_of(daily)
    soh_now = statistics.median([99.0 - 0.2 * i for i in (12, 13, 14, 15, 16, 18, 19)])
    assert c.soh_capacity_pct == pytest.approx(soh_now)
    assert c.capacity_fade_pct == pytest.approx(100 - soh_now)
    assert c.remaining_capacity_ah == pytest.approx(soh_now / 100 * CAPACITY_AH)
    assert c.remaining_energy_kwh == pytest.approx(soh_now / 100 * ENERGY_KWH)
    assert c.state_of_certified_energy_pct == pytest.approx(soh_now)
    power = statistics.median([81.0, 79.0, 82.0, 78.0, 80.0, 90.0, 80.0])  # R grew by 1/0.8
    assert c.soh_power_pct == pytest.approx(power)
    assert c.power_fade_pct == pytest.approx(100 - power)
    assert c.resistance_increase_pct == pytest.approx(25.0)
    assert c.remaining_power_w == pytest.approx(0.8 * 5000.0)
    empty = condition_of(daily.assign(soh_capacity_pct=math.nan, soh_resistance_pct=math.nan))
    assert empty.soh_capacity_pct is empty.remaining_energy_kwh is empty.power_fade_pct is None


def test_round_trip_efficiency_over_the_last_thirty_days() -> None:
    daily = pd.DataFrame({
        "date": days_before(DAY, 40), "soh_capacity_pct": 90.0,
        "energy_charged_kwh": 3.0, "energy_discharged_kwh": [2.0] * 10 + [2.7] * 30,
        "soc_mean_pct": [50.0] * 11 + [55.0] * 28 + [60.0],
    })  # fmt: skip
    c = condition_of(daily)
    stored_kwh = (60.0 - 50.0) / 100 * (0.9 * ENERGY_KWH)  # day 10 to day 39 of the window
    rte = 100 * 30 * 2.7 / (30 * 3.0 - stored_kwh)
    assert c.round_trip_efficiency_pct == pytest.approx(rte)
    assert c.round_trip_efficiency_fade_pct == pytest.approx((1 - rte / 97.0) * 100)
    # less than twice the rated energy charged in the window: no basis
    little = daily.assign(energy_charged_kwh=[3.0] * 10 + [0.17] * 30)
    assert condition_of(little).round_trip_efficiency_pct is None
    assert condition_of(little).round_trip_efficiency_fade_pct is None


def test_throughput_cycles_and_soc() -> None:
    daily = pd.DataFrame({
        "date": days_before(DAY, 4), "efc_total": [1.0, 2.0, 2.5, math.nan],
        "throughput_ah": [100.0, 100.0, 50.0, 20.0],
        "energy_charged_kwh": [2.6, math.nan, 1.3, 0.5],
        "energy_discharged_kwh": [2.4, math.nan, 1.2, 0.5],
        "soc_mean_pct": [40.0, 50.0, 60.0, 70.0],
    })  # fmt: skip
    c = condition_of(daily)
    assert c.full_cycles == 2.5
    assert c.capacity_throughput_ah == 270.0
    # the day without energy figures counts its charge at the nominal voltage
    assert c.energy_throughput_kwh == pytest.approx(5.0 + 100.0 * NOMINAL_V / 1000 + 2.5 + 1.0)
    assert c.state_of_charge_pct == 70.0
    assert condition_of(daily, latest_soc_pct=33.3).state_of_charge_pct == 33.3
    # the as-of day itself is not complete: a condition as of its noon leaves it out
    noon = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=12)
    early = battery_condition(daily, NO_COUNTERS, NO_EVENTS, RATINGS, noon)
    assert (early.capacity_throughput_ah, early.state_of_charge_pct) == (250.0, 60.0)
    assert early.updated == noon


def test_self_discharge_and_time_outside_the_idle_range() -> None:
    drift = [0.5] * 10 + [0.1, math.nan] * 15  # %/day: the last 30 days hold 15 values of 0.1
    counters = pd.DataFrame({"date": days_before(DAY, 40), "rest_soc_drift_pct_per_day": drift,
                             "time_above_temp_s": 600.0, "time_below_temp_s": 30.0,
                             "charge_time_above_temp_s": 60.0,
                             "charge_time_below_temp_s": 0.0})  # fmt: skip
    c = condition_of(pd.DataFrame({"date": days_before(DAY, 1)}), counters)
    rate = 0.1 * 365.25 / 12
    assert c.self_discharge_pct_per_month == pytest.approx(rate)
    assert c.self_discharge_change_pct == pytest.approx((rate / 2.0 - 1) * 100)
    assert c.minutes_above_idle_range == pytest.approx(40 * 600.0 / 60)
    assert c.minutes_below_idle_range == pytest.approx(40 * 30.0 / 60)
    assert c.charging_minutes_above_idle_range == pytest.approx(40.0)
    assert c.charging_minutes_below_idle_range == 0.0
    rising = counters.assign(rest_soc_drift_pct_per_day=-0.2)
    assert condition_of(pd.DataFrame({"date": []}), rising).self_discharge_pct_per_month == 0.0
    none = condition_of(pd.DataFrame({"date": []}), counters.iloc[:10])
    assert none.self_discharge_pct_per_month is None and none.self_discharge_change_pct is None


def test_negative_events_count_trips_and_daily_figures() -> None:
    first, second, third = (DAY - timedelta(days=2), DAY - timedelta(days=1), DAY)

    def at(day: date, hour: int) -> float:
        return datetime.combine(day, datetime.min.time(), UTC).timestamp() + 3600 * hour

    events = pd.DataFrame({
        "code": ["B1113", "B1113", "B1221", "B1112", "B1101", "B1302", "B1302"],
        "time_s": [at(second, 1), at(second, 2), at(second, 3), at(third, 4), at(third, 5),
                   at(third, 6), at(third + timedelta(days=1), 0)],
        "kind": ["trip", "clear", "trip", "trip", "trip", "trip", "trip"],
    })  # fmt: skip
    # an imported day with counts only; a derived day that missed a late trip
    daily = pd.DataFrame({"date": [pd.Timestamp(d) for d in (first, second, third)],
                          "deep_discharge_events": [2.0, 1.0, 0.0],
                          "over_temp_events": [0.0, 0.0, 3.0],
                          "latched_safety_events": [1.0, 1.0, 0.0]})  # fmt: skip
    c = condition_of(daily, events=events)
    counts = {e.kind: (e.count, e.first_day, e.last_day) for e in c.negative_event_counts}
    assert counts == {
        "deep_discharge": (2 + 1 + 1, first, third),
        "overcharge": (0, None, None),
        "over_temperature": (3, third, third),  # the trip at the as-of time is after it
        "short_circuit": (1, second, second),
        "latched": (1 + 2, first, second),  # B1113 and B1221 on the second day
    }
    assert [(e.kind, e.code, e.when) for e in c.negative_events] == [
        ("deep_discharge", "B1113", datetime.fromtimestamp(at(second, 1), UTC)),
        ("latched", "B1113", datetime.fromtimestamp(at(second, 1), UTC)),
        ("latched", "B1221", datetime.fromtimestamp(at(second, 3), UTC)),
        ("short_circuit", "B1221", datetime.fromtimestamp(at(second, 3), UTC)),
        ("deep_discharge", "B1112", datetime.fromtimestamp(at(third, 4), UTC)),
        ("over_temperature", "B1302", datetime.fromtimestamp(at(third, 6), UTC)),
    ]


# --- a stored day, derived and refreshed ------------------------------------------------------
MINUTES = np.arange(1440)  # a summary each minute of DAY
REST_1, CHARGE = MINUTES < 360, (MINUTES >= 360) & (MINUTES < 720)
DISCHARGE, REST_2 = (MINUTES >= 720) & (MINUTES < 1080), MINUTES >= 1080
HOT = (MINUTES >= 540) & (MINUTES < 900)  # the last half of charging, the first of discharging
TRIPS = [  # (hour, code, kind)
    (10.0, "B1113", "trip"), (10.1, "B1113", "clear"), (11.0, "B1112", "trip"),
    (11.5, "B1111", "trip"), (12.0, "B1102", "trip"), (13.0, "B1302", "trip"),
    (14.0, "B1322", "trip"), (15.0, "B1221", "trip"), (16.0, "B1501", "trip"),
]  # fmt: skip


def square_wave_day() -> list[tuple[int, dict]]:
    """Rest (cold, SoC falling 0.1 % an hour), charge at 20 A, discharge at 20 A (hot across
    the middle), rest; each change a ramp over one minute between two records."""
    current = np.where(CHARGE, 20.0, np.where(DISCHARGE, -20.0, 0.0))
    soc = np.where(REST_1, 80.0 - 0.1 * (MINUTES // 60), 79.5)
    soc = np.where(CHARGE, 79.5 + 0.1 * ((MINUTES - 360) // 20), soc)
    soc = np.where(DISCHARGE | REST_2, 81.2 - 0.1 * ((np.minimum(MINUTES, 1079) - 720) // 20),
                   soc)  # fmt: skip
    columns = {
        "time_s": DAY_S + 60.0 * MINUTES, "current_a": current, "soc_pct": np.round(soc, 1),
        "voltage_v": np.where(DISCHARGE, 50.0, 52.0), "soh_pct": np.full(1440, 95.0),
        "temp_min_c": np.where(REST_1, -10.0, np.where(HOT, 66.0, 10.0)),
        "temp_max_c": np.where(REST_1, -6.0, np.where(HOT, 70.0, 14.0)),
        "cell_voltage_min_v": np.full(1440, 3.25),
        "cell_voltage_max_v": np.where(REST_1, 3.27, 3.285),
    }  # fmt: skip
    fixed = {"path_state": 2, "alarms": 0, "warnings": 0, "worst_code": 0,
             "balancing_cells": 0, "strings_connected": 1}  # fmt: skip
    return [(int(m) + 1, fixed | {name: float(v[m]) for name, v in columns.items()})
            for m in MINUTES]  # fmt: skip


def write(store: CloudStore, pack_id: int, kind: Kind, batch: list[tuple[int, dict]]) -> None:
    store.writer.write([Arrival(pack_id, decode_frame(encode(kind, batch)), 0.0)])


def write_trips(store: CloudStore, pack_id: int, trips: list, first_seq: int = 1) -> None:
    write(store, pack_id, Kind.EVENT, [
        (first_seq + i, {"time_s": DAY_S + 3600 * hour, "source": "pack", "code": code,
                         "kind": kind, "value": None, "action": "open"})
        for i, (hour, code, kind) in enumerate(trips)
    ])  # fmt: skip


# worked out from the wave: 359 whole minutes on each plateau, ramps split at the crossing
RAMP_ABOVE_S = 60 * (70 - 40) / (70 - 14)  # temp_max 14 -> 70 across 40 °C
CHARGED_J = 60 * 1040 / 2 + 359 * 60 * 1040 + 0.5 * 1040 * 60 * 1040 / 2040  # 1040 W, ramps
DISCHARGED_J = 0.5 * 1000 * 60 * 1000 / 2040 + 359 * 60 * 1000 + 60 * 1000 / 2
REST_S = 2 * 359 * 60
WANT_DAILY = {
    "cell_voltage_spread_mv": 35.0,  # 1080 of the 1440 records
    "energy_charged_kwh": CHARGED_J / 3.6e6, "energy_discharged_kwh": DISCHARGED_J / 3.6e6,
    "deep_discharge_events": 2.0, "overcharge_events": 1.0, "over_temp_events": 2.0,
    "latched_safety_events": 3.0,
    "throughput_ah": (600 + 359 * 60 * 20 + 1200 + 359 * 60 * 20 + 600) / 3600,  # 240 Ah
}  # fmt: skip
WANT_COUNTERS = {
    "time_above_temp_s": 359 * 60 + 2 * RAMP_ABOVE_S,
    "time_below_temp_s": 359 * 60 + 30.0,  # temp_min -10 -> 10 crosses 0 half-way
    "charge_time_above_temp_s": 179 * 60 + RAMP_ABOVE_S,  # minutes 539..719 charge hot
    "charge_time_below_temp_s": 0.0,
    "rest_soc_drift_pct_per_day": 0.5 / REST_S * 86400,  # 80.0 -> 79.5 in the first rest
}  # fmt: skip


def ratings_document(urn: str = URN) -> dict:
    return {
        "generalProductInformation": {"batteryPassportIdentifier": urn,
                                      "batteryStatus": "Original"},
        "performance": {"batteryTechicalProperties": {
            "ratedCapacity": CAPACITY_AH, "ratedEnergy": ENERGY_KWH, "nominalVoltage": NOMINAL_V,
            "originalPowerCapability": [{"atSoC": 20.0, "powerCapabilityAt": 4.0},
                                        {"atSoC": 50.0, "powerCapabilityAt": 5.0}],
            "roundtripEfficiency": 97.0, "initialSelfDischarge": 2.0,
            "temperatureRangeIdleState": {"minimum": 0.0, "maximum": 40.0},
        }},
    }  # fmt: skip


class Builder:
    """A document builder that states the condition as JSON (less its time) and keeps each
    condition it was given."""

    def __init__(self, store: CloudStore) -> None:
        self.store = store
        self.conditions: list[BatteryCondition] = []

    def __call__(self, urn: str, condition: BatteryCondition) -> dict:
        self.conditions.append(condition)
        body = self.store.passports.current(urn).body
        state = {k: v for k, v in asdict(condition).items() if k != "updated"}
        body["performance"]["batteryCondition"] = json.loads(json.dumps(state, default=str))
        return body


@pytest.fixture
def pack_id(store: CloudStore) -> int:
    org = store.registry.add_org("acme")
    store.registry.add_fleet(org, "scooters")
    return store.registry.add_pack("dev-1", "scooters", capacity_ah=CAPACITY_AH)


def test_a_stored_square_wave_day_gives_the_worked_out_values(
    store: CloudStore, pack_id: int
) -> None:
    store.passports.create(URN, ratings_document(), "alice", pack_id=pack_id)
    write(store, pack_id, Kind.SUMMARY, square_wave_day())
    write_trips(store, pack_id, TRIPS)
    write_trips(store, pack_id, [(24.5, "B1303", "trip")], first_seq=100)  # the next day
    build = Builder(store)
    run = run_if_due(store, DAY_S + 86400 + 3600, build)
    assert run is not None and run.passports.failures == {}
    assert (run.passports.counter_days, run.passports.versions_saved) == (1, [URN])

    names = list(WANT_DAILY)
    (row,) = store.db.query(f"SELECT {', '.join(names)} FROM pack_daily WHERE pack = ?",
                            (pack_id,))  # fmt: skip
    for name, value in zip(names, row, strict=True):
        assert value == pytest.approx(WANT_DAILY[name], rel=1e-9), name
    counters = store.passports.counters(pack_id)
    assert counters["date"].tolist() == [pd.Timestamp(DAY)]
    for name, value in WANT_COUNTERS.items():
        assert counters[name].iloc[0] == pytest.approx(value, rel=1e-9), name

    (c,) = build.conditions
    assert c.updated == datetime(2026, 3, 11, tzinfo=UTC)
    assert c.state_of_charge_pct == pytest.approx(81.2 - 0.1 * (359 // 20))
    assert (c.soh_capacity_pct, c.capacity_fade_pct) == (pytest.approx(95.0), pytest.approx(5.0))
    assert c.remaining_capacity_ah == pytest.approx(0.95 * CAPACITY_AH)
    assert c.soh_power_pct is c.power_fade_pct is c.resistance_increase_pct is None
    assert c.full_cycles == pytest.approx(240.0 / (2 * CAPACITY_AH))
    assert c.capacity_throughput_ah == pytest.approx(240.0)
    assert c.energy_throughput_kwh == pytest.approx((CHARGED_J + DISCHARGED_J) / 3.6e6)
    rte = 100 * DISCHARGED_J / CHARGED_J  # one day: its mean SoC does not change
    assert c.round_trip_efficiency_pct == pytest.approx(rte)
    assert c.round_trip_efficiency_fade_pct == pytest.approx((1 - rte / 97.0) * 100)
    assert c.minutes_above_idle_range == pytest.approx(WANT_COUNTERS["time_above_temp_s"] / 60)
    assert c.minutes_below_idle_range == pytest.approx(WANT_COUNTERS["time_below_temp_s"] / 60)
    assert c.charging_minutes_above_idle_range == pytest.approx(
        WANT_COUNTERS["charge_time_above_temp_s"] / 60)  # fmt: skip
    assert c.charging_minutes_below_idle_range == 0.0
    rate = WANT_COUNTERS["rest_soc_drift_pct_per_day"] * 365.25 / 12
    assert c.self_discharge_pct_per_month == pytest.approx(rate)
    assert c.self_discharge_change_pct == pytest.approx((rate / 2.0 - 1) * 100)
    counts = {e.kind: (e.count, e.first_day, e.last_day) for e in c.negative_event_counts}
    assert counts == {"deep_discharge": (2, DAY, DAY), "overcharge": (1, DAY, DAY),
                      "over_temperature": (2, DAY, DAY), "short_circuit": (1, DAY, DAY),
                      "latched": (3, DAY, DAY)}  # fmt: skip
    assert sorted((e.code, e.kind) for e in c.negative_events) == sorted(
        (code, kind) for _, code, state in TRIPS if state == "trip"
        for kind in classify(code))  # fmt: skip

    # the document of the condition is the new version, by the scheduler
    current = store.passports.current(URN)
    assert (current.version, current.author) == (2, "scheduler")
    assert current.body["performance"]["batteryCondition"]["full_cycles"] == c.full_cycles
    assert store.passports.change_log(URN)[1].changed == ("performance.batteryCondition",)


def test_the_refresh_saves_a_version_only_when_the_document_changes(
    store: CloudStore, pack_id: int
) -> None:
    store.passports.create(URN, ratings_document(), "alice", pack_id=pack_id)
    write(store, pack_id, Kind.SUMMARY, square_wave_day())
    build = Builder(store)
    run_if_due(store, DAY_S + 86400 + 3600, build)
    # a day without telemetry: the same condition, no new version
    run = run_if_due(store, DAY_S + 2 * 86400 + 3600, build)
    assert run.passports.versions_saved == [] and run.passports.counter_days == 0
    assert store.passports.record(URN).version == 2
    # a trip on the next day changes it
    write_trips(store, pack_id, [(60.0, "B1103", "trip")])
    run = run_if_due(store, DAY_S + 3 * 86400 + 3600, build)
    assert run.passports.versions_saved == [URN]
    log = store.passports.change_log(URN)
    assert [e.author for e in log] == ["alice", "scheduler", "scheduler"]
    assert "performance.batteryCondition.negative_events[0]" in log[2].changed
    assert [e.count for e in build.conditions[-1].negative_event_counts if e.kind == "overcharge"
            ] == [1]  # fmt: skip
    # a passport whose document states no ratings is reported; the others go on
    other = "urn:cellwarden:pack0002"
    second = store.registry.add_pack("dev-2", "scooters", capacity_ah=CAPACITY_AH)
    store.passports.create(other, {"generalProductInformation": {}}, "alice", pack_id=second)
    run = run_if_due(store, DAY_S + 4 * 86400 + 3600, build)
    assert list(run.passports.failures) == [other]
    assert "no 'performance'" in run.passports.failures[other]
    # without a builder only the counters are derived
    store.passports.upsert_counters(pack_id, DAY, dict.fromkeys(WANT_COUNTERS, 0.0))
    run = run_day(store, DAY)
    assert (run.passports.counter_days, run.passports.versions_saved) == (1, [])
    assert store.passports.counters(pack_id)["time_below_temp_s"].iloc[0] == pytest.approx(
        WANT_COUNTERS["time_below_temp_s"])  # fmt: skip
