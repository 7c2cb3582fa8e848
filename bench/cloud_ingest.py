"""Cloud ingest end to end: MQTT → shared-subscription workers → SQLite, in cell-samples/s.

A fleet's telemetry is encoded beforehand (96-cell packs: per-cell records of 60 rows and
pack summaries, as an edge sends after an hour's batching or an outage), published at QoS 1 to
a Mosquitto on 127.0.0.1 while the workers' persistent sessions are offline, so that the
broker holds it for them (the devices are other machines: their publishing is not this
machine's work); then the workers start and the clock runs until the last record is in the
database. The baseline,
in the same run, is a bare ``executemany`` of the very rows the store writes (same table,
same indexes, one transaction per 500 messages' worth): what SQLite alone can do.
Targets: ≥ 300 k cell-samples/s and ≥ 0.5 × the bare insert; 3 workers faster than 1.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psycopg

from cellwarden.cloud.ingest.process import WorkerConfig, run_worker
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.telemetry_writer import Arrival, rows_of
from cellwarden.simulation.local_broker import LocalBroker
from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import Kind

DEVICES = 50
CELLS = 96
RECORDS_PER_MESSAGE = 60
MESSAGES_PER_DEVICE = 16  # cells messages; a summary message goes with each
EPOCH_S = time.time() - 86400
TARGET_CELL_SAMPLES_S = 300_000
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
SUMMARY = {"soc_pct": 50.0, "soh_pct": 98.0, "voltage_v": 345.6, "cell_voltage_min_v": 3.59,
           "cell_voltage_max_v": 3.61, "temp_min_c": 24.0, "temp_max_c": 27.0,
           "charge_current_limit_a": 50.0, "discharge_current_limit_a": 100.0,
           "charge_voltage_limit_v": 403.2, "path_state": 2, "alarms": 0, "warnings": 0,
           "worst_code": 0, "balancing_cells": 3, "strings_connected": 1}  # fmt: skip


def _messages() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    out = []
    for device in range(DEVICES):
        seq = 0
        for message in range(MESSAGES_PER_DEVICE):
            start_s = EPOCH_S + message * RECORDS_PER_MESSAGE * 60
            volts = 3.6 + rng.normal(0, 0.01, (RECORDS_PER_MESSAGE, CELLS))
            batch = [(seq + i, {"time_s": start_s + i * 60,
                                "voltage_v": np.round(volts[i], 3).tolist(),
                                "temp_c": np.round(25 + rng.normal(0, 1, CELLS), 1).tolist(),
                                "balancing": (rng.random(CELLS) < 0.1).tolist()})
                     for i in range(RECORDS_PER_MESSAGE)]  # fmt: skip
            seq += RECORDS_PER_MESSAGE
            out.append((f"cw/bench/dev-{device:03d}/cells", codec.encode(Kind.CELLS, batch)))
            summaries = [(seq + i, SUMMARY | {"time_s": start_s + i * 60,
                                              "current_a": round(rng.normal(-20, 5), 2)})
                         for i in range(RECORDS_PER_MESSAGE)]  # fmt: skip
            seq += RECORDS_PER_MESSAGE
            out.append((f"cw/bench/dev-{device:03d}/summary",
                        codec.encode(Kind.SUMMARY, summaries)))  # fmt: skip
    return out


def _registered(db_url: str) -> None:
    store = open_store(db_url)
    org = store.registry.add_org("bench")
    store.registry.add_fleet(org, "bench")
    for device in range(DEVICES):
        store.registry.add_pack(f"dev-{device:03d}", "bench", cell_count=CELLS)
    store.close()


def _cell_samples(messages) -> int:
    return sum(CELLS * RECORDS_PER_MESSAGE for topic, _ in messages if topic.endswith("/cells"))


def _stored_rows(db_url: str, messages) -> dict[str, list]:
    """The rows the store writes for ``messages``, by table, one list per message."""
    pack_ids = {f"dev-{d:03d}": d + 1 for d in range(DEVICES)}
    rows: dict[str, list] = {"cells": [], "summary": []}
    for topic, body in messages:
        table, table_rows = rows_of(Arrival(pack_ids[topic.split("/")[2]],
                                          codec.decode_frame(body), time.time()))  # fmt: skip
        rows[table].append(table_rows)
    return rows


def _bare_insert(db_url: str, messages) -> float:
    """Seconds for executemany (SQLite) or COPY (PostgreSQL) of the same rows into the same
    tables, 250 messages' worth per transaction, nothing else."""
    _registered(db_url)
    rows = _stored_rows(db_url, messages)
    store = open_store(db_url, upgrade=False)
    dialect, connection = store.db.dialect, store.db.connection
    if dialect.name == "postgresql":  # the days' partitions exist, as ingest would make them
        with store.db.transaction():
            for table, batches in rows.items():
                times = sorted({row[1] for batch in batches for row in batch})
                dialect.prepare_partitions(connection, table, times)
    started = time.perf_counter()
    for chunk in range(0, len(rows["cells"]), 250):
        with store.db.transaction():
            for table, batches in rows.items():
                table_rows = [row for batch in batches[chunk : chunk + 250] for row in batch]
                _insert(connection, dialect.name, table, table_rows)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def _insert(connection, engine: str, table: str, rows: list[tuple]) -> None:
    if engine == "sqlite":
        marks = ", ".join("?" * len(rows[0]))
        connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        return
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _worker_on_signal(go, config: WorkerConfig) -> None:
    """A worker process that has imported everything and waits for the start."""
    go.wait()
    run_worker(config)


def _start_workers(context, db_url: str, broker: LocalBroker, workers: int, go) -> list:
    processes = [
        context.Process(target=_worker_on_signal, args=(go, WorkerConfig(
            db_url, broker.url(), f"bench-{i}", alarms=False)), daemon=True)
        for i in range(workers)
    ]  # fmt: skip
    for process in processes:
        process.start()
    return processes


def _stop(processes: list) -> None:
    for process in processes:
        process.terminate()
        process.join(10)


def _end_to_end(folder: Path, db_url: str, messages, workers: int) -> tuple[float, int]:
    """Seconds from the workers' start to the last record stored, the messages waiting at the
    broker for their (persistent) sessions; and the records stored."""
    _registered(db_url)
    expected = len(messages) * RECORDS_PER_MESSAGE
    context = multiprocessing.get_context("spawn")
    with LocalBroker(Path(tempfile.mkdtemp(dir=folder))) as broker:
        store = open_store(db_url, upgrade=False)
        go = context.Event()
        go.set()
        _stop_when_subscribed(_start_workers(context, db_url, broker, workers, go), store, workers)
        _publish(broker.port, messages)  # the fleet's backlog, queued for the sessions
        go = context.Event()
        processes = _start_workers(context, db_url, broker, workers, go)
        time.sleep(3.0)  # the processes start and import, then wait for ``go``
        started = time.perf_counter()
        go.set()
        stored = 0
        while stored < expected and time.perf_counter() - started < 600:
            time.sleep(0.02)
            stored = store.db.query("SELECT (SELECT COUNT(*) FROM cells) + "
                                    "(SELECT COUNT(*) FROM summary)")[0][0]  # fmt: skip
        elapsed = time.perf_counter() - started
        _stop(processes)
        store.close()
    return elapsed, stored


def _stop_when_subscribed(processes: list, store, workers: int) -> None:
    """Sessions and their shared subscription exist at the broker; then the workers stop."""
    while len(store.ingest_log.counters()) < workers:
        time.sleep(0.05)
    _stop(processes)


def _publish(port: int, messages) -> None:
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    publisher.max_queued_messages_set(0)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    for info in [publisher.publish(topic, body, qos=1) for topic, body in messages]:
        info.wait_for_publish(60)
    publisher.disconnect()
    publisher.loop_stop()


def _postgres_url(schema: str) -> str | None:
    """A schema of its own on the machine's PostgreSQL (None when it is not running)."""
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        return None
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def _drop_schemas(schemas: list[str]) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _engine_rows(engine: str, folder: Path, messages, samples: int) -> list[dict]:
    schemas: list[str] = []

    def url(name: str) -> str | None:
        if engine == "SQLite":
            return str(folder / f"{name}.db")
        schemas.append(f"cw_bench_{name}")
        return _postgres_url(schemas[-1])

    bare_url = url("bare")
    if bare_url is None:
        return [{"run": f"{engine}: server not running", "cell-samples/s": 0.0,
                 "× baseline": 0.0, "records lost": 0, "meets": ""}]  # fmt: skip
    bare_s = _bare_insert(bare_url, messages)
    method = "executemany" if engine == "SQLite" else "COPY"
    rows = [{"run": f"{engine}: bare {method} (baseline)", "cell-samples/s": samples / bare_s,
             "× baseline": 1.0, "records lost": 0, "meets": ""}]  # fmt: skip
    for workers in (1, 3):
        elapsed, stored = _end_to_end(folder, url(f"w{workers}"), messages, workers)
        rate = samples / elapsed
        lost = len(messages) * RECORDS_PER_MESSAGE - stored
        rows.append({
            "run": f"{engine}: MQTT → {workers} worker(s)", "cell-samples/s": rate,
            "× baseline": bare_s / elapsed, "records lost": lost,
            "meets": rate >= TARGET_CELL_SAMPLES_S and bare_s / elapsed >= 0.5 and lost == 0,
        })  # fmt: skip
    if schemas:
        _drop_schemas(schemas)
    return rows


def measure() -> list[dict]:
    messages = _messages()
    samples = _cell_samples(messages)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        return [row for engine in ("SQLite", "PostgreSQL")
                for row in _engine_rows(engine, folder, messages, samples)]  # fmt: skip


if __name__ == "__main__":
    for row in measure():
        print(row)
