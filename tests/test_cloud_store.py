"""The cloud store on both engines: migrations, registry, telemetry writes, partitions."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from tests.cloud_db import admin_connection, partitions, schema_url, store_url  # noqa: F401

from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.database import StoreError, open_database
from cellwarden.cloud.store.migrations import LATEST, current_version, migrate
from cellwarden.cloud.store.registry import PackRef, RegistryError, Role
from cellwarden.cloud.store.schema_v1 import TELEMETRY_TABLES
from cellwarden.cloud.store.telemetry_writer import Arrival, TelemetryWriter
from cellwarden.telemetry.codec import CELL_MISSING, Frame, decode_frame, encode
from cellwarden.telemetry.schema import Kind

DAY_S = 86_400
BASE_S = (time.time() // DAY_S - 3) * DAY_S  # midnight (UTC) three days ago


@pytest.fixture
def pack_id(store: CloudStore) -> int:
    org_id = store.registry.add_org("acme")
    store.registry.add_fleet(org_id, "fleet-1")
    return store.registry.add_pack("dev-1", "fleet-1", cell_count=4)


def postgres_only(store: CloudStore) -> None:
    if store.db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: partitions and their indexes")


def frame(kind: Kind, batch: list[tuple[int, dict]]) -> Frame:
    """``batch`` as the cloud receives it: encoded for the wire, decoded to arrays."""
    return decode_frame(encode(kind, batch))


def summaries(first_seq: int, times_s: list[float], soc_pct: float = 80.0) -> Frame:
    fields = {"soh_pct": 97.0, "voltage_v": 52.1, "current_a": -10.5, "cell_voltage_min_v": 3.25,
              "cell_voltage_max_v": 3.27, "temp_min_c": 24.0, "temp_max_c": 27.5,
              "path_state": 2, "alarms": 0, "warnings": 1, "worst_code": 0,
              "balancing_cells": 1, "strings_connected": 1}  # fmt: skip
    batch = [(first_seq + i, fields | {"time_s": t, "soc_pct": soc_pct - i})
             for i, t in enumerate(times_s)]  # fmt: skip
    return frame(Kind.SUMMARY, batch)


def write(store: CloudStore, pack_id: int, *frames: Frame, received_s: float = 0.0):
    received_s = received_s or time.time()
    return store.writer.write([Arrival(pack_id, f, received_s) for f in frames])


def count(store: CloudStore, table: str) -> int:
    return store.db.query(f"SELECT COUNT(*) FROM {table}")[0][0]


def at(time_s: float) -> object:
    """``time_s`` as stored: the wire carries it in 0.1 s steps, scaled back as a float."""
    return pytest.approx(time_s, abs=1e-3)


def day_name(table: str, time_s: float) -> str:
    return f"{table}_p{datetime.fromtimestamp(time_s, UTC):%Y%m%d}"


# --- migrations -------------------------------------------------------------------------------
def test_migrate_applies_each_step_once(store_url: str) -> None:  # noqa: F811
    db = open_database(store_url)
    try:
        assert migrate(db) == list(range(1, LATEST + 1))
        assert migrate(db) == []
        assert current_version(db) == LATEST
        assert db.query("SELECT version FROM schema_migrations ORDER BY version") == [
            (v,) for v in range(1, LATEST + 1)
        ]
    finally:
        db.close()


def test_newer_database_is_refused(store_url: str) -> None:  # noqa: F811
    db = open_database(store_url)
    migrate(db)
    with db.transaction():
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (LATEST + 1, "future", 0.0))
    db.close()
    newer = f"version {LATEST + 1}, newer than this cellwarden's {LATEST}"
    with pytest.raises(StoreError, match=newer):
        open_store(store_url)
    with pytest.raises(StoreError, match=f"version {LATEST + 1}, this cellwarden needs {LATEST}"):
        open_store(store_url, upgrade=False)


def _migrate_in_child(url: str, barrier: multiprocessing.Barrier, results) -> None:
    db = open_database(url)
    try:
        barrier.wait(10)
        results.put(migrate(db))
    except Exception as error:
        results.put(repr(error))
    finally:
        db.close()


def test_concurrent_migrators_both_succeed(store_url: str) -> None:  # noqa: F811
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(3), context.Queue()
    children = [context.Process(target=_migrate_in_child, args=(store_url, barrier, results))
                for _ in range(3)]  # fmt: skip
    for child in children:
        child.start()
    outcomes = [results.get(timeout=20) for _ in children]
    for child in children:
        child.join(10)
    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    assert sorted(v for outcome in outcomes for v in outcome) == list(range(1, LATEST + 1))
    db = open_database(store_url)
    try:
        assert db.query("SELECT COUNT(*) FROM schema_migrations") == [(LATEST,)]
    finally:
        db.close()


# --- registry ---------------------------------------------------------------------------------
def test_registry_round_trip(store: CloudStore) -> None:
    registry = store.registry
    org_id = registry.add_org("acme")
    other_id = registry.add_org("globex")
    fleet_id = registry.add_fleet(org_id, "scooters.eu-1")
    site_id = registry.add_site(org_id, "depot", 48.1, 11.5)
    pack_id = registry.add_pack("dev-1", "scooters.eu-1", site_id=site_id, chemistry="NMC")
    token = registry.add_user("ana", org_id, Role.OPERATOR, email="ana@example.org")
    registry.grant("ana", other_id, Role.VIEWER)

    assert registry.org_id("acme") == org_id
    assert tuple(registry.fleet("scooters.eu-1")) == (fleet_id, org_id)
    assert registry.device("dev-1") == PackRef(pack_id, org_id, "scooters.eu-1")
    assert registry.device("dev-2") is None
    user = registry.user_for_token(token)
    assert user is not None and user.name == "ana" and user.email == "ana@example.org"
    assert user.roles == {org_id: Role.OPERATOR, other_id: Role.VIEWER}
    assert user.may(org_id, Role.OPERATOR) and not user.may(org_id, Role.ADMIN)
    assert not user.may(other_id, Role.OPERATOR)
    assert registry.user_for_token(token + "x") is None


def test_registry_names_duplicates(store: CloudStore) -> None:
    registry = store.registry
    org_id = registry.add_org("acme")
    registry.add_fleet(org_id, "f1")
    registry.add_pack("dev-1", "f1")
    registry.add_user("bob", org_id, Role.ADMIN)
    with pytest.raises(RegistryError, match="acme"):
        registry.add_org("acme")
    with pytest.raises(RegistryError, match="f1"):
        registry.add_fleet(org_id, "f1")
    with pytest.raises(RegistryError, match="dev-1"):
        registry.add_pack("dev-1", "f1")
    with pytest.raises(RegistryError, match="bob"):
        registry.add_user("bob", org_id, Role.VIEWER)
    assert count(store, "users") == 1 and count(store, "memberships") == 1
    assert registry.add_org("initech") > org_id  # the connection is usable after a refusal


def test_registry_refuses_bad_ids(store: CloudStore) -> None:
    registry = store.registry
    org_id = registry.add_org("acme")
    registry.add_fleet(org_id, "f1")
    with pytest.raises(RegistryError, match="a/b"):
        registry.add_fleet(org_id, "a/b")
    with pytest.raises(RegistryError, match="dev#1"):
        registry.add_pack("dev#1", "f1")
    with pytest.raises(RegistryError, match="no fleet 'nope'"):
        registry.add_pack("dev-1", "nope")
    with pytest.raises(RegistryError, match="name"):
        registry.add_org("")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.add_fleet(org_id + 1000, "f2")  # no such organisation
    assert count(store, "fleets") == 1


# --- telemetry --------------------------------------------------------------------------------
def test_writer_stores_every_kind(store: CloudStore, pack_id: int) -> None:
    t0 = BASE_S + 3600.0
    events = frame(Kind.EVENT, [
        (1, {"time_s": t0, "source": "bms", "code": "P0A1F", "name": "cell overvoltage",
             "kind": "trip", "value": 4.25, "action": "open", "freeze_frame": {"soc_pct": 99}}),
        (2, {"time_s": t0 + 5, "source": "bms", "code": "P0A1F", "kind": "clear"}),
    ])  # fmt: skip
    positions = frame(Kind.POSITION, [
        (1, {"time_s": t0, "latitude_deg": 48.1372, "longitude_deg": 11.5756, "speed_kmh": 12.5,
             "course_deg": 90, "satellites": 9, "hdop": 0.9}),
    ])  # fmt: skip
    health = frame(Kind.HEALTH, [
        (1, {"time_s": t0, "link_up": 1, "signal_dbm": -71, "queue_records": 5,
             "queue_bytes": 1200, "dropped_records": 0, "logger_dropped": 0, "bytes_sent": 9000}),
    ])  # fmt: skip
    cells = frame(Kind.CELLS, [(1, {"time_s": t0, "voltage_v": [3.3, 3.31, 3.32, 3.33],
                                    "temp_c": [25.0, 25.1, 25.2, 25.3]})])  # fmt: skip
    written = write(store, pack_id, summaries(1, [t0, t0 + 10]), events, positions, health, cells)
    assert (written.accepted, written.duplicates) == (7, 0)
    counts = {table: count(store, table) for table in TELEMETRY_TABLES}
    assert counts == {"summary": 2, "cells": 1, "positions": 1, "health": 1, "events": 2,
                      "replies": 0}  # fmt: skip

    soc, volts, path = store.db.query(
        "SELECT soc_pct, voltage_v, path_state FROM summary WHERE seq = 2"
    )[0]
    assert (soc, volts, path) == (pytest.approx(79.0), pytest.approx(52.1), 2.0)
    lat, lon, sats = store.db.query("SELECT latitude_deg, longitude_deg, satellites "
                                    "FROM positions")[0]  # fmt: skip
    assert (lat, lon, sats) == (pytest.approx(48.1372), pytest.approx(11.5756), 9)
    assert store.db.query("SELECT signal_dbm, bytes_sent FROM health") == [(-71.0, 9000.0)]
    rows = store.db.query("SELECT seq, code, kind, value, freeze_frame FROM events ORDER BY seq")
    assert rows[0][:4] == (1, "P0A1F", "trip", 4.25)
    assert json.loads(rows[0][4]) == {"soc_pct": 99}
    assert rows[1][3] is None


def test_resend_is_counted_as_duplicates(store: CloudStore, pack_id: int) -> None:
    t0 = BASE_S + 7200.0
    batch = [summaries(1, [t0 + 10 * i for i in range(5)])]
    assert write(store, pack_id, *batch).accepted == 5
    again = write(store, pack_id, *batch)
    assert (again.accepted, again.duplicates) == (0, 5)
    overlap = write(store, pack_id, summaries(4, [t0 + 10 * i for i in range(3, 8)]))
    assert (overlap.accepted, overlap.duplicates) == (3, 2)
    assert store.db.query("SELECT COUNT(*), COUNT(DISTINCT seq) FROM summary") == [(8, 8)]


def test_cells_round_trip(store: CloudStore, pack_id: int) -> None:
    volts = [[3.3004, 3.2996, np.nan, 4.2001], [3.3011, 3.2989, 3.31, 2.5]]
    temps = [[25.04, np.nan, -10.0, 60.0], [25.1, 24.9, -10.1, 59.9]]
    batch = [(10 + i, {"time_s": BASE_S + 60 * i, "voltage_v": v, "temp_c": t,
                       "balancing": [True, False, False, True]})
             for i, (v, t) in enumerate(zip(volts, temps, strict=True))]  # fmt: skip
    assert write(store, pack_id, frame(Kind.CELLS, batch)).accepted == 2

    rows = store.db.query("SELECT cell_count, voltage_mv, temp_dc, balancing FROM cells "
                          "ORDER BY seq")  # fmt: skip
    for (cells, voltage_mv, temp_dc, balancing), sent_v, sent_c in zip(rows, volts, temps,
                                                                      strict=True):  # fmt: skip
        assert cells == 4
        stored_mv = np.frombuffer(voltage_mv, "<i2")
        stored_dc = np.frombuffer(temp_dc, "<i2")
        present = ~np.isnan(sent_v)
        assert np.all(np.abs(stored_mv[present] - np.array(sent_v)[present] * 1000) <= 0.5)
        assert np.all(stored_mv[~present] == CELL_MISSING)
        present = ~np.isnan(sent_c)
        assert np.all(np.abs(stored_dc[present] - np.array(sent_c)[present] * 10) <= 0.5)
        assert np.all(stored_dc[~present] == CELL_MISSING)
        bits = np.unpackbits(np.frombuffer(balancing, np.uint8))[:4]
        assert bits.tolist() == [1, 0, 0, 1]
    latest = store.db.query("SELECT cells_time_s, voltage_mv FROM pack_latest")[0]
    assert latest == (at(BASE_S + 60), rows[1][1])


def test_pack_latest_moves_only_forward(store: CloudStore, pack_id: int) -> None:
    newer = summaries(20, [BASE_S + 1000, BASE_S + 1010], soc_pct=60.0)
    older = summaries(1, [BASE_S + 100, BASE_S + 110], soc_pct=90.0)
    write(store, pack_id, newer, received_s=2000.0)
    write(store, pack_id, older, received_s=1000.0)
    latest = store.db.query("SELECT time_s, soc_pct, received_s FROM pack_latest "
                            "WHERE pack_id = ?", (pack_id,))  # fmt: skip
    assert latest == [(at(BASE_S + 1010), pytest.approx(59.0), 2000.0)]
    write(store, pack_id, summaries(30, [BASE_S + 2000], soc_pct=55.0), received_s=3000.0)
    assert store.db.query("SELECT time_s, soc_pct, received_s FROM pack_latest") == [
        (at(BASE_S + 2000), pytest.approx(55.0), 3000.0)
    ]


def test_transaction_is_all_or_nothing(store: CloudStore) -> None:
    db = store.db
    with pytest.raises(ZeroDivisionError), db.transaction():
        db.execute("INSERT INTO maintenance (key, value) VALUES (?, ?)", ("k", 1.0))
        _ = 1 / 0
    assert count(store, "maintenance") == 0
    assert db.query("SELECT ? || '%'", ("50",)) == [("50%",)]  # a literal % survives


def test_drop_before_keeps_newer_rows(store: CloudStore, pack_id: int) -> None:
    times_s = [BASE_S + 3600, BASE_S + DAY_S + 3600, BASE_S + DAY_S + 72_000,
               BASE_S + 2 * DAY_S + 3600, 1000.0]  # fmt: skip
    write(store, pack_id, summaries(1, times_s))
    with store.db.transaction() as connection:
        removed = store.db.dialect.drop_before(connection, "summary", BASE_S + DAY_S + 43_200)
    assert removed == 3  # the first day, the straddling day's morning, the 1970 record
    assert store.db.query("SELECT time_s FROM summary ORDER BY time_s") == [
        (at(BASE_S + DAY_S + 72_000),),
        (at(BASE_S + 2 * DAY_S + 3600),),
    ]
    late = write(store, pack_id, summaries(10, [BASE_S + 7200]))  # the dropped day, again
    assert late.accepted == 1 and count(store, "summary") == 3
    if store.db.dialect.name == "postgresql":
        assert partitions(store, "summary") == {
            "summary_default", day_name("summary", BASE_S), day_name("summary", BASE_S + DAY_S),
            day_name("summary", BASE_S + 2 * DAY_S),
        }  # fmt: skip
        assert count(store, "summary_default") == 0


# --- PostgreSQL -------------------------------------------------------------------------------
def test_postgres_daily_partitions_with_brin(store: CloudStore, pack_id: int) -> None:
    postgres_only(store)
    days = [BASE_S + 600, BASE_S + DAY_S + 600]
    write(store, pack_id, summaries(1, [*days, 1000.0]))  # 1970: no partition of its own
    assert partitions(store, "summary") == {
        "summary_default",
        day_name("summary", days[0]),
        day_name("summary", days[1]),
    }
    assert count(store, "summary_default") == 1
    assert count(store, day_name("summary", days[0])) == 1
    for table in (*TELEMETRY_TABLES, day_name("summary", days[0]), "summary_default"):
        definitions = [d for (d,) in store.db.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ?", (table,))]  # fmt: skip
        assert any("USING brin (time_s)" in d for d in definitions), (table, definitions)
        assert any("(pack_id, seq, time_s)" in d for d in definitions), (table, definitions)


def test_postgres_partition_claims_rows_of_default(store: CloudStore, pack_id: int) -> None:
    postgres_only(store)
    day_s = BASE_S + 2 * DAY_S
    stray = summaries(1, [day_s + 60])
    columns = ("pack_id", "time_s", "seq", "soc_pct", "received_s")
    row = (pack_id, float(stray.columns["time_s"][0]), 1, 50.0, 0.0)
    with store.db.transaction() as connection:  # a row of that day reaches default first
        store.db.dialect.bulk_insert(connection, "summary", columns, [row],
                                     store.db.dialect.telemetry_key)  # fmt: skip
    assert count(store, "summary_default") == 1
    written = TelemetryWriter(store.db).write([
        Arrival(pack_id, stray, 1.0), Arrival(pack_id, summaries(2, [day_s + 120]), 1.0)
    ])  # fmt: skip
    assert (written.accepted, written.duplicates) == (1, 1)
    assert count(store, "summary_default") == 0
    assert count(store, day_name("summary", day_s)) == 2


def test_unreachable_postgres_is_named() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:9/"):
        open_store("postgresql://postgres@127.0.0.1:9/test?connect_timeout=3")


def test_missing_schema_is_named() -> None:
    admin_connection().close()  # skips without a server
    with pytest.raises(StoreError, match="cw_no_such_schema"):
        open_store(schema_url("cw_no_such_schema"))


def test_connections_of_ended_threads_are_closed(store_url):  # noqa: F811
    import threading

    store = open_store(store_url)
    try:
        for _ in range(3):  # a server's thread pool replacing its idle threads
            threads = [threading.Thread(target=store.db.query, args=("SELECT 1",))
                       for _ in range(10)]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        last = threading.Thread(target=store.db.query, args=("SELECT 1",))
        last.start()  # its new connection closes those of the 10 ended threads
        last.join()
        assert len(store.db._all) == 2  # this thread's and the last one's
    finally:
        store.close()
