"""Rollups, retention, history reads and export on both engines, checked against NumPy.

Every expectation is computed here, with NumPy, from the records the test sent, never from the
store's output. A field travels as an integer in units of its resolution (``time_s`` in tenths
of a second), so the test draws those integers and knows the exact float the store keeps:
integer x resolution, the product the decoder makes.

Missing values: a field absent from a record (None) is NULL in its row. SQL's AVG, MIN and MAX
skip NULLs, which is NumPy's nanmean, nanmin and nanmax; a bucket where a field is missing from
every record holds NULL (an all-NaN slice, None here); ``samples`` counts records whatever
they miss. Hours are made from minutes, each minute's average weighted by its ``samples``:
that is the raw average exactly when a field is missing from all or none of a minute's
records; where it is missing from some, the minute weighs its records, not its readings (the
schema keeps no per-field counts): ``test_hour_average_over_minutes_with_missing_values``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from tests.cloud_db import partitions, store_url  # noqa: F401

from cellwarden.cloud.store import history as history_module
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.history import MINUTE_MAX_SPAN_S, RAW_MAX_SPAN_S, Pack
from cellwarden.cloud.store.rollup import Retention
from cellwarden.cloud.store.schema_v1 import ROLLUP_COLUMNS, SUMMARY_COLUMNS
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.telemetry.codec import decode_frame, encode
from cellwarden.telemetry.schema import SUMMARY_FIELDS, Kind

DAY_S = 86_400
HOUR_S = 3_600
BASE_S = (time.time() // DAY_S - 2) * DAY_S  # midnight (UTC) two days ago
RESOLUTION = {f.name: f.resolution for f in SUMMARY_FIELDS}
RANGES = {  # field -> lowest and highest value, in units of its resolution
    "soc_pct": (0, 1000), "soh_pct": (700, 1000), "voltage_v": (4000, 5800),
    "current_a": (-15000, 15000), "cell_voltage_min_v": (2800, 3400),
    "cell_voltage_max_v": (3400, 3650), "temp_min_c": (-100, 300), "temp_max_c": (300, 550),
    "charge_current_limit_a": (0, 2000), "discharge_current_limit_a": (0, 2000),
    "charge_voltage_limit_v": (5000, 5840), "path_state": (0, 4), "alarms": (0, 255),
    "warnings": (0, 255), "worst_code": (0, 9999), "balancing_cells": (0, 16),
    "strings_connected": (1, 4),
}  # fmt: skip
ROLLUPS = ("samples", *(name for name, _, _ in ROLLUP_COLUMNS))
AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "avg": np.nanmean, "min": np.nanmin, "max": np.nanmax,
}  # fmt: skip
Buckets = dict[tuple[int, int], dict[str, float | None]]  # (pack, bucket_s) -> column -> value


# --- what the test sends ----------------------------------------------------------------------
@dataclass
class Sent:
    """One pack's summaries as sent: times in tenths of a second, each field in units of its
    resolution (NaN where the record misses it)."""

    pack_id: int
    seqs: np.ndarray
    tenths: np.ndarray
    units: dict[str, np.ndarray]

    @property
    def time_s(self) -> np.ndarray:
        return self.tenths * 0.1

    def value(self, name: str) -> np.ndarray:
        return self.units[name] * RESOLUTION[name]

    def __len__(self) -> int:
        return len(self.seqs)

    def take(self, rows: np.ndarray) -> Sent:
        return Sent(self.pack_id, self.seqs[rows], self.tenths[rows],
                    {name: units[rows] for name, units in self.units.items()})  # fmt: skip

    def records(self) -> list[tuple[int, dict]]:
        """(seq, record) pairs in engineering units, None where missing."""
        values = {name: self.value(name).tolist() for name in SUMMARY_COLUMNS}
        return [
            (int(seq), {"time_s": t, **{n: None if np.isnan(v[i]) else v[i]
                                        for n, v in values.items()}})
            for i, (seq, t) in enumerate(zip(self.seqs.tolist(), self.time_s.tolist(),
                                             strict=True))
        ]  # fmt: skip

    def row(self, i: int) -> tuple:
        """Record ``i`` as a summary row is exported: time, seq, the columns (None: missing)."""
        values = [self.value(name)[i] for name in SUMMARY_COLUMNS]
        return (self.time_s[i], int(self.seqs[i]),
                *(None if np.isnan(v) else float(v) for v in values))  # fmt: skip


def merge(*parts: Sent) -> list[Sent]:
    """The records of each pack in one ``Sent``."""
    packs: dict[int, list[Sent]] = {}
    for part in parts:
        packs.setdefault(part.pack_id, []).append(part)
    return [
        Sent(pack_id, np.concatenate([p.seqs for p in group]),
             np.concatenate([p.tenths for p in group]),
             {name: np.concatenate([p.units[name] for p in group]) for name in SUMMARY_COLUMNS})
        for pack_id, group in packs.items()
    ]  # fmt: skip


def random_sent(
    rng: np.random.Generator, pack_id: int, tenths: np.ndarray, first_seq: int = 1,
    missing: dict[str, float] | None = None,
) -> Sent:  # fmt: skip
    """Random values at ``tenths``; ``missing``: the share of records missing each field."""
    count = len(tenths)
    units = {name: rng.integers(low, high + 1, count).astype(float)
             for name, (low, high) in RANGES.items()}  # fmt: skip
    for name, share in (missing or {}).items():
        units[name][rng.random(count) < share] = np.nan
    return Sent(pack_id, np.arange(first_seq, first_seq + count), np.asarray(tenths), units)


def irregular_tenths(rng: np.random.Generator, start_s: float, span_s: float) -> np.ndarray:
    """Times over ``span_s``: mostly seconds apart, some sharing a time, a few minutes-long
    gaps, and some exactly on a minute's edge or a tenth before it."""
    draws = int(span_s / 3)
    kind = rng.random(draws)
    gaps = np.where(kind < 0.004, rng.integers(1800, 6000, draws),  # 3-10 min without coverage
                    np.where(kind < 0.13, 0, rng.integers(1, 150, draws)))  # fmt: skip
    start = round(start_s * 10)
    tenths = start + np.cumsum(gaps)
    tenths = tenths[tenths < start + span_s * 10]
    minutes = rng.choice(np.unique(tenths // 600), 12, replace=False)
    edges = np.concatenate([minutes * 600, minutes * 600 + 599])  # :00.0 and :59.9
    return np.sort(np.concatenate([tenths, edges]))


def send(store: CloudStore, parts: Sequence[Sent], batch: int = 150, seed: int = 0):
    """Every record of ``parts`` in payloads of ``batch`` records, written a few payloads at a
    time in shuffled order (devices catching up deliver out of order); (accepted, duplicates)."""
    arrivals = []
    for part in parts:
        records = part.records()
        for i in range(0, len(records), batch):
            frame = decode_frame(encode(Kind.SUMMARY, records[i : i + batch]))
            arrivals.append(Arrival(part.pack_id, frame, time.time()))
    order = np.random.default_rng(seed).permutation(len(arrivals))
    accepted = duplicates = 0
    for i in range(0, len(order), 4):
        count = store.writer.write([arrivals[j] for j in order[i : i + 4]])
        accepted, duplicates = accepted + count.accepted, duplicates + count.duplicates
    return accepted, duplicates


# --- expectations -----------------------------------------------------------------------------
def expected_buckets(parts: Sequence[Sent], width_s: int) -> Buckets:
    """Each bucket [b, b + width) of each pack, aggregated over the raw records in it."""
    out: Buckets = {}
    width = width_s * 10
    for part in merge(*parts):
        buckets = part.tenths // width
        for bucket in np.unique(buckets):
            rows = buckets == bucket
            entry: dict[str, float | None] = {"samples": int(rows.sum())}
            for name, aggregate, source in ROLLUP_COLUMNS:
                values = part.value(source)[rows]
                entry[name] = (None if np.isnan(values).all()
                               else float(AGGREGATES[aggregate](values)))  # fmt: skip
            out[(part.pack_id, int(bucket) * width_s)] = entry
    return out


def hour_of_minutes(part: Sent, name: str, hour_s: int) -> float | None:
    """The hour's average of ``name`` as the minutes make it: each minute's average weighted
    by the minute's records (the documented approximation where minutes miss some values)."""
    rows = part.tenths // 36_000 == hour_s // 3600
    minutes = part.tenths[rows] // 600
    values = part.value(name)[rows]
    total = weight = 0.0
    for minute in np.unique(minutes):
        inside = values[minutes == minute]
        if not np.isnan(inside).all():
            total += np.nanmean(inside) * inside.size
            weight += inside.size
    return total / weight if weight else None


def stored_buckets(store: CloudStore, table: str) -> Buckets:
    rows = store.db.query(f"SELECT pack_id, bucket_s, {', '.join(ROLLUPS)} FROM {table}")
    return {(pack, round(bucket)): dict(zip(ROLLUPS, rest, strict=True))
            for pack, bucket, *rest in rows}  # fmt: skip


def assert_buckets(got: Buckets, expected: Buckets, what: str) -> None:
    assert sorted(got) == sorted(expected), f"{what}: other buckets than expected"
    wrong = []
    for key, columns in expected.items():
        for name, want in columns.items():
            have = got[key][name]
            if want is None or have is None:
                same = want is None and have is None
            else:
                same = have == pytest.approx(want, rel=1e-12, abs=1e-9)
            if not same:
                wrong.append((key, name, have, want))
    assert not wrong, (
        f"{what}: {len(wrong)} values differ, e.g. (key, column, got, want) {wrong[:4]}"
    )


def table_rows(store: CloudStore, table: str) -> list[tuple]:
    order = "pack_id, seq" if table == "summary" else "pack_id, bucket_s"
    return store.db.query(f"SELECT * FROM {table} ORDER BY {order}")


def dirty(store: CloudStore) -> set[tuple[str, int, int]]:
    rows = store.db.query("SELECT level, pack_id, bucket_s FROM rollup_dirty")
    return {(level, pack, round(bucket)) for level, pack, bucket in rows}


def marks(parts: Sequence[Sent]) -> set[tuple[str, int, int]]:
    """The dirty marks the records of ``parts`` should leave."""
    return {(level, part.pack_id, int(bucket) * width)
            for part in parts for level, width in (("1m", 60), ("1h", 3600))
            for bucket in np.unique(part.tenths // (width * 10))}  # fmt: skip


def day_names(table: str, days: Sequence[int]) -> set[str]:
    return {f"{table}_p{time.strftime('%Y%m%d', time.gmtime(day * DAY_S))}" for day in days}


# --- fixtures ---------------------------------------------------------------------------------
@dataclass
class Fleet:
    store: CloudStore
    org_id: int
    packs: list[int]

    def pack(self, device_id: str) -> Pack:
        found = self.store.history.pack(device_id, [self.org_id])
        assert found is not None
        return found


def open_fleet(url: str, retention: Retention | None = None) -> Fleet:
    store = open_store(url, retention=retention)
    org_id = store.registry.add_org("acme")
    store.registry.add_fleet(org_id, "fleet-1")
    packs = [store.registry.add_pack("dev-a", "fleet-1", cell_count=4),
             store.registry.add_pack("dev-b", "fleet-1")]  # fmt: skip
    return Fleet(store, org_id, packs)


@pytest.fixture
def fleet(store_url: str) -> Iterator[Fleet]:  # noqa: F811
    fleet = open_fleet(store_url)
    yield fleet
    fleet.store.close()


# --- downsampling -----------------------------------------------------------------------------
SOME_OF_A_MINUTE = ("soh_pct", "temp_min_c", "cell_voltage_max_v")  # missing from any record


def three_hours(rng: np.random.Generator, fleet: Fleet, start_s: float) -> list[Sent]:
    """Two packs' summaries at irregular times over three hours, with missing values: some
    fields from random records, current_a from 7 whole minutes, voltage_v from a whole hour
    of the second pack."""
    parts = []
    for index, pack_id in enumerate(fleet.packs):
        tenths = irregular_tenths(rng, start_s + 17.3 * index, 3 * HOUR_S)
        part = random_sent(rng, pack_id, tenths, missing=dict.fromkeys(SOME_OF_A_MINUTE, 0.2))
        minute = (start_s + 40 * 60) * 10  # current_a missing over 00:40:00-00:47:00
        part.units["current_a"][(tenths >= minute) & (tenths < minute + 7 * 600)] = np.nan
        if index == 1:
            hour = (start_s + HOUR_S) * 10
            part.units["voltage_v"][(tenths >= hour) & (tenths < hour + 36_000)] = np.nan
        parts.append(part)
    return parts


def test_minutes_and_hours_equal_numpy_over_the_raw_records(fleet: Fleet) -> None:
    rng = np.random.default_rng(1)
    start_s = BASE_S + 5 * HOUR_S
    parts = three_hours(rng, fleet, start_s)
    assert send(fleet.store, parts) == (sum(map(len, parts)), 0)
    assert dirty(fleet.store) == marks(parts)

    fleet.store.rollup.run(start_s + 4 * HOUR_S)

    minutes = expected_buckets(parts, 60)
    assert len(minutes) > 250 and any(m["samples"] > 10 for m in minutes.values())
    assert any(m["current_a"] is None for m in minutes.values())  # an all-NULL minute
    assert_buckets(stored_buckets(fleet.store, "summary_1m"), minutes, "1-minute buckets")

    hours = expected_buckets(parts, 3600)
    assert len(hours) == 7  # 3 hours each, the second pack's spilling into a fourth
    assert hours[(fleet.packs[1], int(start_s) + HOUR_S)]["voltage_v"] is None
    for part in merge(*parts):  # minutes missing some of their values: records weigh
        for (pack_id, hour_s), columns in hours.items():
            if pack_id == part.pack_id:
                columns["soh_pct"] = hour_of_minutes(part, "soh_pct", hour_s)
    assert_buckets(stored_buckets(fleet.store, "summary_1h"), hours, "1-hour buckets")
    assert dirty(fleet.store) == set()


def test_hour_average_over_minutes_with_missing_values(fleet: Fleet) -> None:
    """A minute whose records all miss a field carries no weight for it in the hour (SQL's
    AVG: the readings there are); one missing it from some records weighs all its records."""
    pack_id = fleet.packs[0]
    minute = round(BASE_S * 10) + 600 * 5  # 00:05:00
    units = {name: np.full(5, np.nan) for name in RANGES}
    part = Sent(pack_id, np.arange(1, 6), np.array([minute + 10 * i for i in range(4)] +
                                                   [minute + 600]), units)  # fmt: skip
    part.units["soc_pct"][:] = [100, np.nan, np.nan, np.nan, 200]  # 10 % once, then 20 %
    part.units["current_a"][4] = 500  # 5 A, alone in the second minute
    send(fleet.store, [part])
    fleet.store.rollup.run(BASE_S + DAY_S)

    first, second = sorted(stored_buckets(fleet.store, "summary_1m").values(),
                           key=lambda m: m["samples"], reverse=True)  # fmt: skip
    assert (first["samples"], first["soc_pct"], first["current_a"]) == (4, 10.0, None)
    assert (second["samples"], second["soc_pct"], second["current_a"]) == (1, 20.0, 5.0)
    (hour,) = stored_buckets(fleet.store, "summary_1h").values()
    assert hour["samples"] == 5
    assert hour["current_a"] == pytest.approx(5.0)  # not 5 x 1 / 5 records
    assert (hour["current_min_a"], hour["current_max_a"]) == (5.0, 5.0)
    # the raw readings average 15 %; the minute of one reading in four records weighs 4
    assert hour["soc_pct"] == pytest.approx((10.0 * 4 + 20.0) / 5)


# --- late data and idempotency ----------------------------------------------------------------
def test_late_data_updates_exactly_its_buckets(fleet: Fleet) -> None:
    rng = np.random.default_rng(2)
    store, (pack_a, pack_b) = fleet.store, fleet.packs
    now_s = BASE_S + DAY_S
    start_s = BASE_S + 6 * HOUR_S
    first = [random_sent(rng, pack_id, irregular_tenths(rng, start_s + 7.7 * i, 2 * HOUR_S),
                         missing={"temp_max_c": 0.1})  # a max: exact in hours too
             for i, pack_id in enumerate((pack_a, pack_b))]  # fmt: skip
    send(store, first)
    store.rollup.run(now_s)
    minutes, hours = stored_buckets(store, "summary_1m"), stored_buckets(store, "summary_1h")
    assert_buckets(minutes, expected_buckets(first, 60), "first run, minutes")

    next_seq = int(first[0].seqs.max()) + 1
    outage = round((BASE_S + 2 * HOUR_S + 300) * 10)  # back from an outage: 02:05-02:25
    old_hour = random_sent(rng, pack_a, np.sort(rng.integers(outage, outage + 12_000, 80)),
                           first_seq=next_seq)  # fmt: skip
    full = first[0].tenths // 600  # a minute rolled up already, with 3 more records
    minute = int(np.unique(full)[len(np.unique(full)) // 2])
    edges = minute * 600 + np.array([0, 305, 599])  # :00.0, :30.5 and :59.9
    into = random_sent(rng, pack_a, edges, first_seq=next_seq + 100)
    into.units["current_a"][1] = RANGES["current_a"][1] + 1000  # a new maximum
    late = [old_hour, into]
    send(store, late)
    assert dirty(store) == marks(late)

    store.rollup.run(now_s)
    assert dirty(store) == set()
    everything = [*first, *late]
    new_minutes = stored_buckets(store, "summary_1m")
    new_hours = stored_buckets(store, "summary_1h")
    assert_buckets(new_minutes, expected_buckets(everything, 60), "minutes after late data")
    assert_buckets(new_hours, expected_buckets(everything, 3600), "hours after late data")
    touched = {(pack, bucket) for _, pack, bucket in marks(late)}
    for before, after in ((minutes, new_minutes), (hours, new_hours)):
        assert {k: v for k, v in after.items() if k not in touched} == {
            k: v for k, v in before.items() if k not in touched
        }  # untouched, to the bit
    key = (pack_a, minute * 60)
    assert new_minutes[key]["current_max_a"] == 160.0
    assert new_minutes[key]["samples"] == minutes[key]["samples"] + 3
    new = {(pack, bucket) for _, pack, bucket in marks([old_hour])}
    assert touched - set(minutes) - set(hours) == new  # the outage's minutes and hour


def test_rollup_is_idempotent(fleet: Fleet) -> None:
    rng = np.random.default_rng(3)
    store = fleet.store
    now_s = BASE_S + DAY_S
    parts = [random_sent(rng, pack_id, irregular_tenths(rng, BASE_S + 9 * HOUR_S, HOUR_S),
                         missing={"temp_max_c": 0.3})
             for pack_id in fleet.packs]  # fmt: skip
    total = sum(map(len, parts))
    assert send(store, parts) == (total, 0)
    store.rollup.run(now_s)
    tables = ("summary", "summary_1m", "summary_1h")
    before = {table: table_rows(store, table) for table in tables}

    store.rollup.run(now_s)  # nothing dirty: nothing changes, to the bit
    assert {table: table_rows(store, table) for table in tables} == before

    assert send(store, parts, batch=40, seed=9) == (0, total)  # the same records again
    assert dirty(store) == marks(parts)  # marked, since the writer cannot know
    store.rollup.run(now_s)
    assert dirty(store) == set()
    assert table_rows(store, "summary") == before["summary"]
    exact = ["samples", *(name for name, aggregate, _ in ROLLUP_COLUMNS if aggregate != "avg")]
    for table in ("summary_1m", "summary_1h"):  # recomputed: PostgreSQL may add a bucket's
        was = {(row[0], round(row[1])): dict(zip(ROLLUPS, row[2:], strict=True))
               for row in before[table]}  # fmt: skip
        now = stored_buckets(store, table)  # rows up in another order, so an average may
        assert_buckets(now, was, table)  # differ in its last bit; the rest may not
        assert {k: [v[n] for n in exact] for k, v in now.items()} == {
            k: [v[n] for n in exact] for k, v in was.items()
        }
    assert_buckets(stored_buckets(store, "summary_1h"), expected_buckets(parts, 3600), "hours")


# --- the marks a run takes: a failed run, concurrent writers (PostgreSQL) ---------------------
def postgres_only(store: CloudStore) -> None:
    if store.db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite runs one writer at a time")


def ten_minutes_and_late(pack_id: int) -> tuple[Sent, Sent]:
    """A record every 5 s for ten minutes, and 3 more into its first minute."""
    rng = np.random.default_rng(10)
    start = round((BASE_S + 10 * HOUR_S) * 10)
    first = random_sent(rng, pack_id, start + 50 * np.arange(120))
    late = random_sent(rng, pack_id, start + 7 + 50 * np.arange(3), first_seq=1000)
    return first, late


def test_marks_of_a_failed_run_are_taken_by_the_next(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, pack_id = fleet.store, fleet.packs[0]
    first, late = ten_minutes_and_late(pack_id)
    send(store, [first])
    execute = store.db.execute

    def failing(text: str, parameters: Sequence = ()) -> object:
        if text.startswith("INSERT INTO summary_1m"):
            raise RuntimeError("the database went away")
        return execute(text, parameters)

    monkeypatch.setattr(store.db, "execute", failing)
    with pytest.raises(RuntimeError, match="went away"):
        store.rollup.run(BASE_S + DAY_S)
    monkeypatch.undo()
    assert dirty(store) == {(f"{level}*", pack, bucket) for level, pack, bucket in marks([first])}
    send(store, [late])  # marks again, beside those the failed run took
    store.rollup.run(BASE_S + DAY_S)
    assert dirty(store) == set()
    for table, width in (("summary_1m", 60), ("summary_1h", 3600)):
        assert_buckets(stored_buckets(store, table), expected_buckets([first, late], width), table)


def test_rows_committed_while_the_rollup_computes_are_kept_for_the_next(
    fleet: Fleet,
    store_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, pack_id = fleet.store, fleet.packs[0]
    postgres_only(store)
    first, late = ten_minutes_and_late(pack_id)
    send(store, [first])
    other = open_store(store_url)  # an ingest worker's connection
    execute, hooked = store.db.execute, []

    def computing(text: str, parameters: Sequence = ()) -> object:
        result = execute(text, parameters)
        if text.startswith("INSERT INTO summary_1m") and not hooked:
            hooked.append(text)
            send(other, [late])  # commits after the rollup's snapshot: its rows are not seen
        return result

    monkeypatch.setattr(store.db, "execute", computing)
    try:
        store.rollup.run(BASE_S + DAY_S)
        assert hooked and dirty(store) == marks([late])  # its marks wait for the next run
        store.rollup.run(BASE_S + DAY_S)
        assert dirty(store) == set()
        for table, width in (("summary_1m", 60), ("summary_1h", 3600)):
            assert_buckets(stored_buckets(store, table), expected_buckets([first, late], width),
                           table)  # fmt: skip
    finally:
        other.close()


def test_rollup_waits_for_writers_that_marked_already(
    fleet: Fleet,
    store_url: str,  # noqa: F811
) -> None:
    """A writer whose marks are in (or were there already) but whose rows are not committed
    yet: the rollup may not take those marks before it can see the rows."""
    store, pack_id = fleet.store, fleet.packs[0]
    postgres_only(store)
    first, late = ten_minutes_and_late(pack_id)
    send(store, [first])  # the late rows' buckets are marked already
    other = open_store(store_url)
    marked, go = threading.Event(), threading.Event()
    latest = other.writer._latest

    def paused(*args: object) -> None:  # the writer after its marks, before its commit
        marked.set()
        go.wait(10)
        latest(*args)

    other.writer._latest = paused  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run(target: Callable, *args: object) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as error:  # reported by the test thread
                errors.append(error)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    try:
        writer = run(send, other, [late])
        assert marked.wait(10)
        rollup = run(store.rollup.run, BASE_S + DAY_S)
        rollup.join(0.5)
        waited = rollup.is_alive()
        go.set()
        writer.join(10)
        rollup.join(10)
        assert not errors and not rollup.is_alive()
        assert waited, "the rollup went ahead of a writer whose marks it took"
        assert dirty(store) == set()
        for table, width in (("summary_1m", 60), ("summary_1h", 3600)):
            assert_buckets(stored_buckets(store, table), expected_buckets([first, late], width),
                           table)  # fmt: skip
    finally:
        go.set()
        other.close()


# --- retention --------------------------------------------------------------------------------
def five_days(rng: np.random.Generator, pack_id: int, now_s: float) -> Sent:
    """A record every few minutes for five days, and bursts of 2-5 in one minute; values
    missing only from records alone in their minute (so whole minutes miss them)."""
    start = round((now_s - 5 * DAY_S + 100) * 10)
    singles = start + np.cumsum(rng.integers(2400, 3600, 1600))
    singles = singles[singles < round(now_s * 10) - 100]
    bursts = rng.choice(singles, 150, replace=False)
    extra = np.concatenate([burst - burst % 600 + np.sort(rng.integers(0, 600, rng.integers(1, 5)))
                            for burst in bursts])  # fmt: skip
    tenths = np.sort(np.concatenate([singles, extra]))
    part = random_sent(rng, pack_id, tenths)
    minutes = tenths // 600
    alone = np.isin(minutes, np.unique(minutes)[np.unique(minutes, return_counts=True)[1] == 1])
    for name in ("soc_pct", "current_a", "temp_max_c"):
        part.units[name][alone & (rng.random(len(tenths)) < 0.15)] = np.nan
    return part


def test_retention_after_rollup(store_url: str) -> None:  # noqa: F811
    rng = np.random.default_rng(4)
    now_s = (time.time() // HOUR_S) * HOUR_S + 1234.5
    raw_cut, minute_cut = now_s - DAY_S, now_s - 3 * DAY_S
    fleet = open_fleet(store_url, Retention(raw_days=1, minute_days=3))
    store, pack_id = fleet.store, fleet.packs[0]
    postgres = store.db.dialect.name == "postgresql"
    try:
        part = five_days(rng, pack_id, now_s)
        send(store, [part])
        cell_times = np.arange(now_s - 5 * DAY_S + 60, now_s, 2 * HOUR_S)
        cells = [(i + 1, {"time_s": round(t, 1), "voltage_v": [3.3] * 4, "temp_c": [25.0] * 4})
                 for i, t in enumerate(cell_times.tolist())]  # fmt: skip
        store.writer.write([Arrival(pack_id, decode_frame(encode(Kind.CELLS, cells)), now_s)])
        days = np.unique(part.tenths // (DAY_S * 10)).tolist()
        if postgres:
            assert partitions(store, "summary") == {"summary_default"} | day_names("summary", days)

        removed = store.rollup.run(now_s)

        kept = part.time_s >= raw_cut
        assert 0 < kept.sum() < len(part)
        assert removed["summary"] == int((~kept).sum())
        assert store.db.query("SELECT COUNT(*), MIN(time_s) FROM summary") == [
            (int(kept.sum()), pytest.approx(part.time_s[kept].min()))]  # fmt: skip
        seqs = [seq for (seq,) in store.db.query("SELECT seq FROM summary ORDER BY seq")]
        assert seqs == part.seqs[kept].tolist()
        assert store.db.query("SELECT COUNT(*) FROM cells") == [
            (int((cell_times >= raw_cut).sum()),)
        ]
        assert removed["cells"] == int((cell_times < raw_cut).sum())
        if postgres:  # whole days before the cut dropped, the straddling one deleted from
            live = [day for day in days if (day + 1) * DAY_S > raw_cut]
            assert partitions(store, "summary") == {"summary_default"} | day_names("summary", live)
            assert len(live) < len(days)

        minutes = {key: value for key, value in expected_buckets([part], 60).items()
                   if key[1] >= minute_cut}  # fmt: skip
        stored = stored_buckets(store, "summary_1m")
        assert any(bucket < raw_cut for _, bucket in stored)  # rolled up before the raw expired
        assert_buckets(stored, minutes, "minutes younger than 3 days")
        hours = expected_buckets([part], 3600)
        assert len(hours) >= 5 * 24
        assert_buckets(stored_buckets(store, "summary_1h"), hours, "hours of all 5 days")

        # late data older than the raw horizon, whose raw neighbours are gone
        seq = int(part.seqs.max()) + 1
        alone = round((now_s - 2 * DAY_S) * 10)  # into a minute that holds a bucket already
        existing = int(part.tenths[np.searchsorted(part.tenths, alone)])
        empty_minute = round((now_s - 2 * DAY_S + 5 * HOUR_S) * 10) // 600 * 600
        while np.any(part.tenths // 600 == empty_minute // 600):
            empty_minute += 600
        ancient = round((now_s - 4 * DAY_S) * 10) // 600 * 600  # past the minutes' horizon too
        while np.any(part.tenths // 600 == ancient // 600):
            ancient += 600
        late = [
            random_sent(rng, pack_id, np.array([existing]), seq),
            random_sent(rng, pack_id, empty_minute + np.array([11, 222, 333]), seq + 1),
            random_sent(rng, pack_id, np.array([ancient + 50]), seq + 4),
        ]
        assert (existing // 36_000) != (empty_minute // 36_000)
        hours_before = stored_buckets(store, "summary_1h")
        minutes_before = stored_buckets(store, "summary_1m")
        send(store, late)
        store.rollup.run(now_s)

        new_minute = expected_buckets([late[1]], 60)
        minutes |= new_minute  # a minute new to the store: made from the rows there are
        assert_buckets(stored_buckets(store, "summary_1m"), minutes, "minutes after late data")
        key = (pack_id, existing // 600 * 60)
        assert stored_buckets(store, "summary_1m")[key] == minutes_before[key]  # left as it was
        hours_after = stored_buckets(store, "summary_1h")
        hour_key = (pack_id, empty_minute // 36_000 * 3600)
        assert hours_after[hour_key] != hours_before[hour_key]
        assert_buckets({hour_key: hours_after[hour_key]},
                       {hour_key: expected_buckets([part, late[1]], 3600)[hour_key]},
                       "the hour of the new minute")  # fmt: skip
        assert_buckets({k: v for k, v in hours_after.items() if k != hour_key},
                       {k: v for k, v in hours_before.items() if k != hour_key},
                       "other hours (recomputed from the same minutes)")  # fmt: skip
        assert store.db.query("SELECT COUNT(*) FROM summary") == [(int(kept.sum()),)]
        assert dirty(store) == set()
    finally:
        store.close()


# --- history ----------------------------------------------------------------------------------
def test_history_resolutions(fleet: Fleet) -> None:
    rng = np.random.default_rng(5)
    store = fleet.store
    start = round((BASE_S + 3 * HOUR_S) * 10)
    part = random_sent(rng, fleet.packs[0], start + 100 * np.arange(720),  # 10 s for 2 hours
                       missing={"current_a": 0.2})  # fmt: skip
    send(store, [part])
    store.rollup.run(BASE_S + DAY_S)
    pack = fleet.pack("dev-a")
    t0 = start / 10
    minutes, hours = expected_buckets([part], 60), expected_buckets([part], 3600)

    def read(span_s: float, fields: Sequence[str], **options) -> dict:
        return store.history.history(pack, t0, t0 + span_s, fields, **options)

    def series(buckets: Buckets, name: str) -> list:
        return [buckets[key][name] for key in sorted(buckets)]

    raw = read(2 * HOUR_S, ["soc_pct", "current_a"])
    assert (raw["resolution"], raw["truncated"]) == ("raw", False)
    assert raw["time_s"] == part.time_s.tolist()
    for name in ("soc_pct", "current_a"):
        values = part.value(name)
        assert raw["series"][name] == [None if np.isnan(v) else v for v in values.tolist()]
    assert read(RAW_MAX_SPAN_S, ["soc_pct"])["resolution"] == "raw"  # by the span
    assert read(RAW_MAX_SPAN_S + 0.1, ["soc_pct"])["resolution"] == "1m"
    assert read(MINUTE_MAX_SPAN_S, ["soc_pct"])["resolution"] == "1m"
    assert read(MINUTE_MAX_SPAN_S + 0.1, ["soc_pct"])["resolution"] == "1h"

    coarser = read(2 * HOUR_S, ["soc_pct", "current_a"], max_points=500)  # raw holds 720 rows
    assert (coarser["resolution"], coarser["truncated"]) == ("1m", False)
    assert coarser["time_s"] == [float(bucket) for _, bucket in sorted(minutes)]
    for name in ("soc_pct", "current_a"):
        assert coarser["series"][name] == pytest.approx(series(minutes, name), rel=1e-12)
    coarsest = read(2 * HOUR_S, ["current_min_a", "samples"], max_points=100)  # 120 minutes
    assert (coarsest["resolution"], coarsest["truncated"]) == ("1h", False)
    assert coarsest["time_s"] == [float(bucket) for _, bucket in sorted(hours)]
    assert coarsest["series"] == {"current_min_a": series(hours, "current_min_a"),
                                  "samples": series(hours, "samples")}  # fmt: skip
    hourly = read(2 * HOUR_S, ["voltage_v"], resolution="1h")
    assert hourly["series"]["voltage_v"] == pytest.approx(series(hours, "voltage_v"), rel=1e-12)
    too_many = read(2 * HOUR_S, ["soc_pct"], max_points=1)
    assert (too_many["resolution"], too_many["truncated"], too_many["time_s"]) == (
        "1h", True, [float(sorted(hours)[0][1])])  # fmt: skip

    only_raw = read(2 * HOUR_S, ["soc_pct", "path_state"], max_points=100)
    assert (only_raw["resolution"], only_raw["truncated"]) == ("raw", True)
    assert only_raw["time_s"] == part.time_s[:100].tolist()
    assert only_raw["series"]["path_state"] == part.value("path_state")[:100].tolist()
    window = store.history.history(pack, part.time_s[10], part.time_s[20], ["soc_pct"])
    assert window["time_s"] == part.time_s[10:20].tolist()  # [from, to)

    with pytest.raises(KeyError, match=r"nope not in raw history; choose from .*soc_pct"):
        read(HOUR_S, ["soc_pct", "nope"])
    with pytest.raises(KeyError, match=r"seq not in 1h history; choose from samples, soc_pct"):
        read(HOUR_S, ["seq"], resolution="1h")
    # beyond 30 days auto reads hours only: a field only raw records have is refused
    with pytest.raises(KeyError, match=r"path_state not in 1h history; choose from"):
        read(MINUTE_MAX_SPAN_S + 1, ["path_state"])


# --- export -----------------------------------------------------------------------------------
def exported(store: CloudStore, table: str, pack: Pack, from_s: float, to_s: float) -> list:
    chunks = list(store.history.export_rows(table, pack, from_s, to_s))
    assert len(chunks) >= 3 and all(1 <= len(chunk) <= 7 for chunk in chunks)
    return chunks


def split_groups(chunks: list[list[tuple]]) -> bool:
    """Whether a chunk ends inside a run of rows sharing one time."""
    return any(a[-1][0] == b[0][0] for a, b in itertools.pairwise(chunks))


def flat(chunks: list[list[tuple]]) -> list[tuple]:
    return [tuple(row) for chunk in chunks for row in chunk]


EVENT_COLUMNS = ("source", "code", "name", "kind", "value", "action", "freeze_frame")


def event(seq: int, time_s: float) -> dict:
    """An event record, some fields missing (None) by its sequence number."""
    return {"time_s": time_s, "source": "bms", "code": f"P{seq:04d}",
            "name": None if seq % 3 else "trip name", "kind": "trip",
            "value": None if seq % 4 == 0 else seq / 8, "action": "open",
            "freeze_frame": {"soc_pct": seq} if seq % 2 else None}  # fmt: skip


def test_export_rows_once_in_time_and_seq_order(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "EXPORT_CHUNK_ROWS", 7)
    rng = np.random.default_rng(6)
    store, pack_a, pack_b = fleet.store, *fleet.packs
    times = round((BASE_S + 8 * HOUR_S) * 10) + 10 * np.arange(8)  # 8 times, ~10 records each
    tenths = rng.choice(times, 80)
    part = random_sent(rng, pack_a, tenths, first_seq=1000, missing={"soc_pct": 0.3})
    part.seqs = rng.permutation(part.seqs)  # a device's clock jumps: seq order is not time
    part = part.take(np.argsort(part.seqs))  # order (a batch's seqs increase, as validated)
    send(store, [part, random_sent(rng, pack_b, tenths)], batch=13)
    pack = fleet.pack("dev-a")

    assert store.history.export_columns("summary", pack) == ["time_s", "seq", *SUMMARY_COLUMNS]
    from_s, to_s = times[1] * 0.1, times[7] * 0.1  # both shared by several records (as stored)
    inside = np.flatnonzero((part.tenths >= times[1]) & (part.tenths < times[7]))
    want = [part.row(i) for i in sorted(inside, key=lambda i: (part.tenths[i], part.seqs[i]))]
    chunks = exported(store, "summary", pack, from_s, to_s)
    assert flat(chunks) == want
    assert split_groups(chunks)

    seqs = (rng.permutation(40) + 1).tolist()  # 40 events at 4 times, in seq order
    at = dict(zip(seqs, rng.choice(times[:4], 40).tolist(), strict=True))
    events = [(seq, event(seq, at[seq] * 0.1)) for seq in sorted(seqs)]
    store.writer.write([Arrival(pack.id, decode_frame(encode(Kind.EVENT, batch)), 0.0)
                        for batch in (events[:25], events[25:])])  # fmt: skip
    assert store.history.export_columns("events", pack) == ["time_s", "seq", *EVENT_COLUMNS]
    chunks = exported(store, "events", pack, times[0] * 0.1, times[4] * 0.1)
    rows = flat(chunks)
    assert [(r[0], r[1]) for r in rows] == sorted((r["time_s"], s) for s, r in events)
    by_seq = dict(events)
    for time_s, seq, source, code, name, kind, value, action, freeze in rows:
        sent = by_seq[seq]
        assert (time_s, source, code, name, kind, value, action) == (
            pytest.approx(sent["time_s"]), "bms", sent["code"], sent["name"], "trip",
            sent["value"], "open")  # fmt: skip
        assert (None if freeze is None else json.loads(freeze)) == sent["freeze_frame"]
    assert split_groups(chunks)


def test_export_cells_one_column_per_cell(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "EXPORT_CHUNK_ROWS", 7)
    rng = np.random.default_rng(7)
    store = fleet.store
    times = round((BASE_S + 4 * HOUR_S) * 10) + 600 * np.arange(5)
    sent = {}
    for pack_id, count in zip(fleet.packs, (4, 3), strict=True):
        mv = rng.integers(2900, 3600, (30, count)).astype(float)
        dc = rng.integers(150, 450, (30, count)).astype(float)
        mv[rng.random(mv.shape) < 0.15] = np.nan
        dc[rng.random(dc.shape) < 0.15] = np.nan
        bits = rng.random((30, count)) < 0.3
        tenths = rng.choice(times, 30)
        seqs = rng.permutation(30) + 1
        batch = [(int(seq), {"time_s": t / 10, "voltage_v": (mv[i] / 1000).tolist(),
                             "temp_c": (dc[i] / 10).tolist(), "balancing": bits[i].tolist()})
                 for i, (seq, t) in enumerate(zip(seqs, tenths, strict=True))]  # fmt: skip
        batch.sort()
        frames = [decode_frame(encode(Kind.CELLS, batch[i : i + 9])) for i in range(0, 30, 9)]
        store.writer.write([Arrival(pack_id, frame, 0.0) for frame in frames])
        sent[pack_id] = (tenths, seqs, mv, dc, bits)

    for device_id, pack_id, count in (("dev-a", fleet.packs[0], 4), ("dev-b", fleet.packs[1], 3)):
        pack = fleet.pack(device_id)  # dev-b has no cell count registered: its records tell
        names = [f"cell_{i}_{what}" for what in ("voltage_v", "temp_c", "balancing")
                 for i in range(1, count + 1)]  # fmt: skip
        assert store.history.export_columns("cells", pack) == ["time_s", "seq", *names]
        tenths, seqs, mv, dc, bits = sent[pack_id]
        want = [(tenths[i] / 10, int(seqs[i]),
                 *(None if np.isnan(v) else round(v / 1000, 3) for v in mv[i]),
                 *(None if np.isnan(c) else round(c / 10, 1) for c in dc[i]),
                 *bits[i].tolist())
                for i in sorted(range(30), key=lambda i: (tenths[i], seqs[i]))]  # fmt: skip
        chunks = exported(store, "cells", pack, times[0] / 10, times[-1] / 10 + 1)
        got = flat(chunks)
        assert [row[:2] for row in got] == [(pytest.approx(w[0]), w[1]) for w in want]
        assert [row[2:] for row in got] == [w[2:] for w in want]
        assert split_groups(chunks)


def test_export_minute_buckets_across_chunks(fleet: Fleet,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(history_module, "EXPORT_CHUNK_ROWS", 7)
    rng = np.random.default_rng(8)
    start = round((BASE_S + 2 * HOUR_S) * 10)
    part = random_sent(rng, fleet.packs[0], start + 150 * np.arange(200))  # 15 s, 50 minutes
    send(fleet.store, [part])
    fleet.store.rollup.run(BASE_S + DAY_S)
    pack = fleet.pack("dev-a")
    minutes = expected_buckets([part], 60)
    columns = fleet.store.history.export_columns("summary_1m", pack)
    assert columns == ["bucket_s", *ROLLUPS]
    rows = flat(exported(fleet.store, "summary_1m", pack, start / 10, start / 10 + HOUR_S))
    assert [row[0] for row in rows] == [float(bucket) for _, bucket in sorted(minutes)]
    got = {(pack.id, round(row[0])): dict(zip(ROLLUPS, row[1:], strict=True)) for row in rows}
    assert_buckets(got, minutes, "exported minutes")
