"""Cloud ingest end to end: MQTT → shared-subscription workers → SQLite, in cell-samples/s.

A fleet's telemetry is encoded beforehand (96-cell packs: per-cell records of 60 rows and
pack summaries), published at QoS 1 to a Mosquitto on 127.0.0.1 as fast as the broker takes
it, and timed from the first publish until the last record is in the database. The baseline,
in the same run, is a bare ``executemany`` of the very rows the store writes (same table,
same indexes, one transaction per 500 messages' worth): what SQLite alone can do.
Targets: ≥ 300 k cell-samples/s and ≥ 0.5 × the bare insert; 3 workers faster than 1.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

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


def _bare_insert(folder: Path, messages) -> float:
    """Seconds for executemany of the same rows into the same tables, nothing else."""
    db_url = str(folder / "bare.db")
    _registered(db_url)
    store = open_store(db_url)
    pack_ids = {f"dev-{d:03d}": d + 1 for d in range(DEVICES)}
    rows: dict[str, list] = {"cells": [], "summary": []}
    for topic, body in messages:
        table, table_rows = rows_of(Arrival(pack_ids[topic.split("/")[2]],
                                          codec.decode_frame(body), time.time()))  # fmt: skip
        rows[table].append(table_rows)
    store.close()
    connection = sqlite3.connect(db_url)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    for chunk in range(0, len(rows["cells"]), 250):
        with connection:
            for table, batches in rows.items():
                for table_rows in batches[chunk : chunk + 250]:
                    marks = ", ".join("?" * len(table_rows[0]))
                    connection.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def _end_to_end(folder: Path, messages, workers: int) -> tuple[float, int]:
    """Seconds from the first publish to the last record stored, and records stored."""
    db_url = str(folder / f"cloud-{workers}.db")
    _registered(db_url)
    expected = len(messages) * RECORDS_PER_MESSAGE
    context = multiprocessing.get_context("spawn")
    with LocalBroker(folder / f"broker-{workers}") as broker:
        processes = [
            context.Process(target=run_worker, args=(WorkerConfig(
                db_url, broker.url(), f"bench-{i}", alarms=False),), daemon=True)
            for i in range(workers)
        ]  # fmt: skip
        for process in processes:
            process.start()
        store = open_store(db_url, upgrade=False)
        while len(store.ingest_log.counters()) < workers:  # every worker subscribed
            time.sleep(0.05)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.max_inflight_messages_set(1000)
        publisher.max_queued_messages_set(0)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        started = time.perf_counter()
        for topic, body in messages:
            publisher.publish(topic, body, qos=1)
        stored = 0
        while stored < expected and time.perf_counter() - started < 600:
            time.sleep(0.05)
            stored = store.db.query("SELECT (SELECT COUNT(*) FROM cells) + "
                                    "(SELECT COUNT(*) FROM summary)")[0][0]  # fmt: skip
        elapsed = time.perf_counter() - started
        publisher.disconnect()
        publisher.loop_stop()
        for process in processes:
            process.terminate()
            process.join(10)
        store.close()
    return elapsed, stored


def measure() -> list[dict]:
    messages = _messages()
    samples = _cell_samples(messages)
    rows = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        bare_s = _bare_insert(folder, messages)
        rows.append({"run": "bare executemany (baseline)", "cell-samples/s": samples / bare_s,
                     "× baseline": 1.0, "records lost": 0, "meets": True})  # fmt: skip
        for workers in (1, 3):
            elapsed, stored = _end_to_end(folder, messages, workers)
            rate = samples / elapsed
            lost = len(messages) * RECORDS_PER_MESSAGE - stored
            rows.append({
                "run": f"MQTT → {workers} worker(s) → SQLite", "cell-samples/s": rate,
                "× baseline": bare_s / elapsed, "records lost": lost,
                "meets": rate >= TARGET_CELL_SAMPLES_S and bare_s / elapsed >= 0.5 and lost == 0,
            })  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in measure():
        print(row)
