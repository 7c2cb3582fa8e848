"""Daily pack figures in the store, on both engines: history files imported and exported,
rows refused by line, one transaction per import, days derived from summaries (checked
against numpy on the inserted records), and the scheduled run that stores an analysis."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cloud_db import store_url  # noqa: F401

from cellwarden.cloud.analytics.scheduled_analytics import run_if_due
from cellwarden.cloud.store import schema_v3, schema_v4
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.daily_history import parse_import, read_import
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.codec import decode_frame, encode
from cellwarden.telemetry.fleet_history import (
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    HistoryError,
    read_history,
    write_history,
)
from cellwarden.telemetry.schema import Kind

PACKS, DAYS = 12, 400
CAPACITY_AH = 50.0
DAY = date(2026, 3, 10)  # the day summaries are written for


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """A simulated fleet's history (12 packs over 400 days)."""
    return simulate_fleet(FleetSpec(packs=PACKS, days=DAYS, seed=0)).history


@pytest.fixture
def fleet_id(store: CloudStore) -> int:
    org_id = store.registry.add_org("acme")
    return store.registry.add_fleet(org_id, "scooters")


def stored(store: CloudStore) -> list[tuple]:
    return store.db.query("SELECT * FROM pack_daily ORDER BY pack, day")


def assert_same_history(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal keys and text; numbers equal (NaN where NaN)."""
    assert got["pack_id"].tolist() == want["pack_id"].tolist()
    assert (got["date"].to_numpy() == want["date"].to_numpy()).all()
    for name in TEXT_COLUMNS:
        assert got[name].tolist() == want[name].tolist(), name
    for name in NUMERIC_COLUMNS:
        np.testing.assert_array_equal(got[name].to_numpy(float), want[name].to_numpy(float),
                                      err_msg=name)  # fmt: skip


# --- import and export ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_import_export_round_trip(store: CloudStore, fleet_id: int, simulated: pd.DataFrame,
                                  tmp_path: Path, suffix: str) -> None:  # fmt: skip
    source = tmp_path / f"fleet.{suffix}"
    write_history(simulated, source)
    report = store.daily.import_history(fleet_id, read_import(source), create_packs=True)
    assert report.problems == []
    assert report.rows_written == len(simulated)
    assert sorted(report.packs_created) == sorted(simulated["pack_id"].unique())
    want = read_history(source).rows
    exported = store.daily.export_history(fleet_id)
    assert_same_history(exported, want)
    # the registry got each pack's capacity and cell count from its rows
    first = simulated.groupby("pack_id").first()
    for device_id, capacity_ah, cells in store.db.query(
        "SELECT device_id, capacity_ah, cell_count FROM packs"
    ):
        assert capacity_ah == first.at[device_id, "capacity_nominal_ah"]
        assert cells == first.at[device_id, "cell_count"]
    # written again, the file reads back as the one imported
    again = tmp_path / f"again.{suffix}"
    write_history(exported, again)
    assert_same_history(read_history(again).rows, want)


def test_pack_daily_has_the_format_s_columns_and_carries_the_passport_s(
    store: CloudStore, fleet_id: int
) -> None:
    assert set(NUMERIC_COLUMNS) == {*schema_v3.DAILY_COLUMNS, *schema_v4.DAILY_COLUMNS}
    days = pd.date_range("2026-01-01", periods=3).strftime("%Y-%m-%d")
    figures = {name: [1.0 + i, math.nan, 3.0 * i] for i, name in enumerate(schema_v4.DAILY_COLUMNS)}
    frame = pd.DataFrame({"pack_id": "p-1", "date": days, "soh_capacity_pct": 99.0, **figures})
    store.daily.import_history(fleet_id, parse_import(frame), create_packs=True)
    exported = store.daily.export_history(fleet_id)
    for name, values in figures.items():
        np.testing.assert_array_equal(exported[name].to_numpy(float), values, err_msg=name)


def test_missing_text_in_parquet_is_stored_as_empty(store: CloudStore, fleet_id: int,
                                                    tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "nulls.parquet"
    pd.DataFrame({"pack_id": ["p-1", "p-1"], "date": ["2024-01-01", "2024-01-02"],
                  "soh_capacity_pct": [99.0, 98.5], "site": [None, "Depot"],
                  "pack_type": [None, None]}).to_parquet(path)  # fmt: skip
    store.daily.import_history(fleet_id, read_import(path), create_packs=True)
    exported = store.daily.export_history(fleet_id)
    assert exported[["site", "pack_type"]].values.tolist() == [["", ""], ["Depot", ""]]


def test_reimport_replaces_its_days_and_keeps_the_others(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame
) -> None:
    store.daily.import_history(fleet_id, parse_import(simulated), create_packs=True)
    pack = simulated["pack_id"].iloc[0]
    late = simulated[(simulated["pack_id"] == pack)].tail(10)
    changed = late.assign(soh_capacity_pct=50.0, site="elsewhere")
    report = store.daily.import_history(fleet_id, parse_import(changed))
    assert (report.rows_written, report.packs_created, report.problems) == (10, [], [])
    exported = store.daily.export_history(fleet_id)
    assert len(exported) == len(simulated)
    mine = exported["pack_id"] == pack
    replaced = mine & exported["date"].isin(changed["date"])
    assert replaced.sum() == 10
    assert (exported.loc[replaced, "soh_capacity_pct"] == 50.0).all()
    assert (exported.loc[replaced, "site"] == "elsewhere").all()
    kept = parse_import(simulated).rows[~replaced.to_numpy()]
    assert_same_history(exported[~replaced].reset_index(drop=True), kept.reset_index(drop=True))


def test_a_file_without_a_column_leaves_its_stored_values(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame
) -> None:
    store.daily.import_history(fleet_id, parse_import(simulated), create_packs=True)
    pack = simulated["pack_id"].iloc[0]
    days = simulated[simulated["pack_id"] == pack].tail(5)
    partial = days[["pack_id", "date"]].assign(soh_capacity_pct=42.0)
    store.daily.import_history(fleet_id, parse_import(partial))
    exported = store.daily.export_history(fleet_id)
    touched = exported[(exported["pack_id"] == pack) & exported["date"].isin(days["date"])]
    assert (touched["soh_capacity_pct"] == 42.0).all()
    np.testing.assert_allclose(touched["efc_total"], days["efc_total"], rtol=1e-9)
    assert (touched["pack_type"] == days["pack_type"].to_numpy()).all()


def test_bad_rows_are_reported_by_line_and_the_others_stored(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame, tmp_path: Path
) -> None:
    rows = simulated[simulated["pack_id"] == simulated["pack_id"].iloc[0]].head(20)
    path = tmp_path / "bad.csv"
    write_history(rows, path)
    lines = path.read_text().splitlines()  # header, then data lines 1..20
    header = lines[0].split(",")
    bad = {3: ("soh_capacity_pct", "ninety"), 7: ("date", "2024-13-45"),
           11: ("temp_mean_c", "inf"), 15: ("soc_mean_pct", "140")}  # fmt: skip
    for line, (column, value) in bad.items():
        cells = lines[line].split(",")
        cells[header.index(column)] = value
        lines[line] = ",".join(cells)
    lines.append(lines[1])  # line 21: the same pack and day as line 1
    path.write_text("\n".join(lines) + "\n")
    report = store.daily.import_history(fleet_id, read_import(path), create_packs=True)
    assert [(p.line, p.reason) for p in report.problems] == [
        (3, "soh_capacity_pct is not a number"),
        (7, "date is not YYYY-MM-DD"),
        (11, "temp_mean_c is not finite"),
        (15, "soc_mean_pct outside 0..100"),
        (21, "a second row for the same pack and date"),
    ]
    assert report.rows_written == 16 and len(stored(store)) == 16


def test_a_failed_import_stores_nothing_and_loses_nothing(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    first = simulated[simulated["pack_id"].isin(simulated["pack_id"].unique()[:3])]
    store.daily.import_history(fleet_id, parse_import(first), create_packs=True)
    before, packs = stored(store), store.db.query("SELECT * FROM packs ORDER BY id")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(HistoryError, match="cannot be read"):
        store.daily.import_history(fleet_id, read_import(corrupt), create_packs=True)
    # a failure inside the transaction: after packs were registered, before rows were written
    original = store.daily._upsert

    def failing(rows: list[tuple], columns) -> None:
        original(rows[:5], columns)
        raise RuntimeError("disk full")

    monkeypatch.setattr(store.daily, "_upsert", failing)
    changed = simulated.assign(soh_capacity_pct=1.0)
    with pytest.raises(RuntimeError, match="disk full"):
        store.daily.import_history(fleet_id, parse_import(changed), create_packs=True)
    assert stored(store) == before
    assert store.db.query("SELECT * FROM packs ORDER BY id") == packs


def test_unknown_packs_are_refused_without_create_packs(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame
) -> None:
    names = list(simulated["pack_id"].unique()[:3])
    store.registry.add_pack("dev-a", "scooters", names[0])  # known by its name
    store.registry.add_pack(names[1], "scooters", "Scooter B")  # known by its device id
    store.registry.add_fleet(store.registry.org_id("acme"), "vans")
    store.registry.add_pack(names[2], "vans")  # another fleet's device
    frame = simulated[simulated["pack_id"].isin(names)].reset_index(drop=True)
    history = parse_import(frame)
    report = store.daily.import_history(fleet_id, history)
    third = frame.index[frame["pack_id"] == names[2]] + 1
    assert [p.line for p in report.problems] == third.tolist()
    assert {p.reason for p in report.problems} == {
        f"pack {names[2]!r} is not registered in fleet 'scooters'"}  # fmt: skip
    assert report.rows_written == len(frame) - len(third) and report.packs_created == []
    exported = store.daily.export_history(fleet_id)
    assert set(exported["pack_id"]) == {names[0], "Scooter B"}

    # with create_packs, a device id another fleet has, or one that cannot be a device id,
    # is refused; the others are registered
    odd = frame[frame["pack_id"] == names[0]].head(3).assign(pack_id="Bus 7")
    fresh = frame[frame["pack_id"] == names[0]].head(2).assign(pack_id="new-1")
    report = store.daily.import_history(
        fleet_id, parse_import(pd.concat([frame, odd, fresh], ignore_index=True)),
        create_packs=True,
    )  # fmt: skip
    reasons = {p.reason for p in report.problems}
    assert reasons == {
        f"pack {names[2]!r} cannot be registered: its device id is another fleet's",
        "pack 'Bus 7' cannot be registered: a device id is 1-64 letters, digits, '_', '-' or '.'",
    }
    assert len(report.problems) == len(third) + 3 and report.packs_created == ["new-1"]


def test_packs_sharing_a_name_are_named_by_device_id(store: CloudStore, fleet_id: int) -> None:
    ids = [store.registry.add_pack(f"dev-{i}", "scooters", "Twin") for i in (1, 2)]
    store.registry.add_pack("dev-3", "scooters", "Solo")
    assert [p.history_id for p in store.daily.fleet_packs(fleet_id)] == ["dev-1", "dev-2", "Solo"]
    for pack_id in ids:
        write_summaries(store, pack_id, day_records(DAY, seed=pack_id))
        assert store.daily.derive_day(pack_id, DAY) is not None
    assert store.daily.export_history(fleet_id)["pack_id"].tolist() == ["dev-1", "dev-2"]
    assert store.daily.export_history(fleet_id, [ids[1]])["pack_id"].tolist() == ["dev-2"]


# --- a day from summaries ---------------------------------------------------------------------
def day_start_s(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def day_records(day: date, seed: int = 0, temp_c: float = 27.0) -> dict[str, np.ndarray]:
    """A day of summaries at the wire's resolutions: every 20-40 s, with a step of exactly
    10 min (integrated) and gaps of 10 min and a second and of 5000 s (not integrated);
    charge and discharge cycles; records just before and after the day."""
    rng = np.random.default_rng(seed)
    start = day_start_s(day)
    jitter = [rng.integers(20, 40, count) for count in (499, 199, 199, 299)]
    steps = np.concatenate([jitter[0], [600], jitter[1], [601], jitter[2], [5000], jitter[3]])
    times = np.concatenate([
        start - np.array([60.0, 30.0]),  # the evening before
        start + 100.0 + np.concatenate([[0], np.cumsum(steps)]),
        [start + 86_400 + 10.0],  # the morning after
    ])  # fmt: skip
    n = len(times)
    phase = 2 * np.pi * (times - start) / 21_600
    return {
        "time_s": times,
        "soc_pct": np.round(55 + 30 * np.sin(phase) + rng.normal(0, 0.3, n), 1),
        "soh_pct": np.round(96 + rng.normal(0, 0.2, n), 1),
        "current_a": np.round(40 * np.cos(phase) + rng.normal(0, 1, n), 2),
        "temp_min_c": np.round(22 + rng.normal(0, 0.5, n), 1),
        "temp_max_c": np.round(temp_c + 3 * np.abs(np.cos(phase)) + rng.normal(0, 0.5, n), 1),
    }


def write_summaries(store: CloudStore, pack_id: int, records: dict[str, np.ndarray]) -> None:
    """The records as ingest stores them (encoded for the wire, decoded); their sequence
    numbers are their whole seconds."""
    fixed = {"voltage_v": 52.0, "cell_voltage_min_v": 3.25, "cell_voltage_max_v": 3.27,
             "path_state": 2, "alarms": 0, "warnings": 0, "worst_code": 0,
             "balancing_cells": 0, "strings_connected": 1}  # fmt: skip
    batch = [(int(time_s), fixed | {name: float(values[i]) for name, values in records.items()})
             for i, time_s in enumerate(records["time_s"])]  # fmt: skip
    store.writer.write([Arrival(pack_id, decode_frame(encode(Kind.SUMMARY, batch)), 0.0)])


def expected_day(records: dict[str, np.ndarray], day: date, capacity_ah: float,
                 efc_before: float) -> dict[str, float]:  # fmt: skip
    """The day's figures straight from the records: segments split at gaps over 10 min,
    numpy's trapezoid over each."""
    start = day_start_s(day)
    inside = (records["time_s"] >= start) & (records["time_s"] < start + 86_400)
    order = np.argsort(records["time_s"][inside])
    r = {name: values[inside][order] for name, values in records.items()}
    t = r["time_s"]
    cuts = np.flatnonzero(np.diff(t) > 600.0) + 1
    segments = np.split(np.arange(len(t)), cuts)

    def integral(values: np.ndarray) -> float:
        return sum(float(np.trapezoid(values[s], t[s])) for s in segments if len(s) > 1)

    duration_s = sum(float(t[s[-1]] - t[s[0]]) for s in segments)
    current = r["current_a"]
    throughput_ah = integral(np.abs(current)) / 3600
    return {
        "soh_capacity_pct": float(np.mean(r["soh_pct"])),
        "temp_mean_c": integral((r["temp_min_c"] + r["temp_max_c"]) / 2) / duration_s,
        "temp_max_c": float(np.max(r["temp_max_c"])),
        "soc_mean_pct": float(np.mean(r["soc_pct"])),
        "dod_mean_pct": float(np.max(r["soc_pct"]) - np.min(r["soc_pct"])),
        "throughput_ah": throughput_ah,
        "current_rms_a": math.sqrt(integral(current**2) / duration_s),
        "current_peak_a": float(np.max(np.abs(current))),
        "efc_total": efc_before + throughput_ah / (2 * capacity_ah),
    }


def test_derive_day_matches_numpy_on_the_inserted_records(store: CloudStore,
                                                          fleet_id: int) -> None:  # fmt: skip
    site = store.registry.add_site(store.registry.org_id("acme"), "Depot")
    pack_id = store.registry.add_pack("dev-1", "scooters", capacity_ah=CAPACITY_AH,
                                      cell_count=14, site_id=site)  # fmt: skip
    previous, day = DAY - timedelta(days=1), DAY
    batches = [day_records(d, seed=i) for i, d in enumerate((previous, day))]
    for batch in batches:
        write_summaries(store, pack_id, batch)
    # each day's figures come from every record inserted in it (some came with the other day)
    records = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    assert store.daily.derive_day(pack_id, day - timedelta(days=3)) is None  # no records
    first = store.daily.derive_day(pack_id, previous)
    want_first = expected_day(records, previous, CAPACITY_AH, 0.0)
    second = store.daily.derive_day(pack_id, day)
    want = expected_day(records, day, CAPACITY_AH, want_first["efc_total"])
    for got, expected in ((first, want_first), (second, want)):
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert math.isnan(second["soh_resistance_pct"])
    assert (second["capacity_nominal_ah"], second["cell_count"]) == (CAPACITY_AH, 14)
    assert (second["pack_type"], second["site"]) == ("", "Depot")
    # what was stored reads back as computed, the BMS's missing figures empty
    row = store.daily.export_history(fleet_id).iloc[-1]
    assert row["date"] == pd.Timestamp(day)
    for name in want:
        assert row[name] == pytest.approx(second[name], rel=1e-12), name
    assert np.isnan(row["soh_resistance_pct"]) and np.isnan(row["ambient_temp_c"])


def set_capacity(store: CloudStore, pack_id: int, capacity_ah: float | None) -> None:
    with store.db.transaction():
        store.db.execute("UPDATE packs SET capacity_ah = ? WHERE id = ?", (capacity_ah, pack_id))


def test_derived_day_carries_type_site_and_cycles_from_an_import(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame
) -> None:
    pack = simulated["pack_id"].iloc[0]
    rows = simulated[simulated["pack_id"] == pack].tail(5)
    shift = pd.Timestamp(DAY - timedelta(days=1)) - rows["date"].max()
    store.daily.import_history(fleet_id, parse_import(rows.assign(date=rows["date"] + shift)),
                               create_packs=True)  # fmt: skip
    (pack_id,) = store.db.query("SELECT id FROM packs WHERE device_id = ?", (pack,))[0]
    set_capacity(store, pack_id, None)
    records = day_records(DAY)
    write_summaries(store, pack_id, records)
    derived = store.daily.derive_day(pack_id, DAY)
    last = rows.iloc[-1]
    assert (derived["pack_type"], derived["site"]) == (last["pack_type"], last["site"])
    assert math.isnan(derived["efc_total"])  # no capacity: no cycle count
    set_capacity(store, pack_id, CAPACITY_AH)
    derived = store.daily.derive_day(pack_id, DAY)
    want = expected_day(records, DAY, CAPACITY_AH, float(last["efc_total"]))["efc_total"]
    assert derived["efc_total"] == pytest.approx(want, rel=1e-9)


# --- the scheduled run ------------------------------------------------------------------------
def test_scheduled_run_derives_the_day_and_stores_an_analysis(
    store: CloudStore, fleet_id: int, simulated: pd.DataFrame
) -> None:
    shift = pd.Timestamp(DAY - timedelta(days=1)) - simulated["date"].max()
    history = simulated.assign(date=simulated["date"] + shift)
    store.daily.import_history(fleet_id, parse_import(history), create_packs=True)
    pack = history["pack_id"].iloc[0]
    (pack_id,) = store.db.query("SELECT id FROM packs WHERE device_id = ?", (pack,))[0]
    write_summaries(store, pack_id, day_records(DAY))
    # a fleet whose only pack reads 200 °C: its day is stored, but the analysis finds no
    # plausible row and the run goes on to the other fleet
    store.registry.add_fleet(store.registry.org_id("acme"), "vans")
    lone = store.registry.add_pack("van-1", "vans", capacity_ah=CAPACITY_AH)
    write_summaries(store, lone, day_records(DAY, seed=5, temp_c=200.0))

    now_s = day_start_s(DAY + timedelta(days=1)) + 3600  # 01:00 the next day
    run = run_if_due(store, now_s)
    assert run is not None and run.day == DAY and run.rows_derived == 2
    assert run.fleets_analysed == [fleet_id]
    vans, _ = store.registry.fleet("vans")
    assert set(run.failures) == {vans} and "cannot be analysed" in run.failures[vans]
    analysis = store.daily.latest_analysis(fleet_id)
    assert analysis["as_of"] == DAY.isoformat()
    assert time.time() - 60 < analysis["computed_s"] <= time.time()
    assert {row["pack_id"] for row in analysis["ranking"]} == set(history["pack_id"])
    assert all(row["device_id"] == row["pack_id"] for row in analysis["forecast"])
    assert analysis["horizon_days"] > 0 and analysis["duration_s"] > 0
    assert store.daily.export_history(fleet_id, [pack_id])["date"].max() == pd.Timestamp(DAY)
    assert run_if_due(store, now_s + 3600) is None  # once a day
