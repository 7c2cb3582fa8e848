"""Cloud API latency with 10 000 packs in the store: p50/p95 of the dashboard's requests.

The store (SQLite) holds 10 000 registered packs with latest values, positions and open alarms
on 2 %, and 20 of them with 7 days of 10 s summaries (1.2 M rows, rolled up to minutes and
hours by the cloud's own rollup). The API runs under uvicorn in its own process, as in
production; requests come over HTTP from this one. The baseline is ``/healthz`` (one trivial
query) in the same run. Target: p95 < 200 ms for the fleet overview and a 7-day history.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.registry import Role
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.simulation.local_broker import free_port
from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import Kind

PACKS = 10_000
HISTORY_PACKS = 20
DAYS = 7
PERIOD_S = 10.0
REQUESTS = 60
TARGET_P95_MS = 200.0
NOW_S = time.time()


def _summary(seq0: int, times_s: np.ndarray, rng) -> bytes:
    soc = 50 + 40 * np.sin(times_s / 7200.0)
    batch = [(seq0 + i, {"time_s": float(t), "soc_pct": float(s), "soh_pct": 97.0,
                         "voltage_v": 48 + s / 20, "current_a": float(rng.normal(0, 20)),
                         "cell_voltage_min_v": 3.2, "cell_voltage_max_v": 3.3,
                         "temp_min_c": 20.0, "temp_max_c": 30.0, "path_state": 2, "alarms": 0,
                         "warnings": 0, "worst_code": 0, "balancing_cells": 0,
                         "strings_connected": 1})
             for i, (t, s) in enumerate(zip(times_s, soc, strict=True))]  # fmt: skip
    return codec.encode(Kind.SUMMARY, batch)


def _populate(db_url: str) -> str:
    """The store; returns an admin's token."""
    rng = np.random.default_rng(3)
    store = open_store(db_url)
    registry = store.registry
    org = registry.add_org("big fleet")
    for fleet in range(10):
        registry.add_fleet(org, f"fleet-{fleet}")
    token = registry.add_user("admin", org, Role.ADMIN)
    with store.db.transaction():
        store.db.executemany(
            "INSERT INTO packs (device_id, org_id, fleet_id, name, cell_count, created_s) "
            "VALUES (?, ?, ?, ?, 16, ?)",
            [(f"pack-{i:05d}", org, 1 + i % 10, f"Pack {i}", NOW_S) for i in range(PACKS)],
        )
    arrivals = []
    for pack in range(1, PACKS + 1):
        times = np.array([NOW_S - 30.0])
        position = [(0, {"time_s": NOW_S - 30.0, "latitude_deg": 52 + rng.random(),
                         "longitude_deg": 4 + rng.random(), "speed_kmh": 0.0, "course_deg": 0,
                         "satellites": 9, "hdop": 0.9})]  # fmt: skip
        arrivals.append(Arrival(pack, codec.decode_frame(_summary(1, times, rng)), NOW_S))
        arrivals.append(Arrival(pack, codec.decode_frame(
            codec.encode(Kind.POSITION, position)), NOW_S))  # fmt: skip
        if len(arrivals) >= 2000:
            store.writer.write(arrivals)
            arrivals = []
    store.writer.write(arrivals)
    with store.db.transaction():
        store.db.executemany(
            "INSERT INTO alarms (org_id, pack_id, source_key, state, severity, value, threshold, "
            "message, raised_s, updated_s) VALUES (?, ?, 'bench', 'active', 'warning', 50, 45, "
            "'hot', ?, ?)",
            [(org, pack, NOW_S, NOW_S) for pack in range(1, PACKS + 1, 50)],
        )
    start_s = NOW_S - DAYS * 86400
    for pack in range(1, HISTORY_PACKS + 1):
        times = np.arange(start_s, NOW_S - 60, PERIOD_S)
        for first in range(0, len(times), 5000):
            chunk = times[first : first + 5000]
            store.writer.write([Arrival(pack, codec.decode_frame(
                _summary(10 + first, chunk, rng)), NOW_S)])  # fmt: skip
    store.rollup.run(NOW_S)
    store.close()
    return token


def _timed(client: httpx.Client, path: str, params: dict | None = None) -> list[float]:
    times_ms = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times_ms.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times_ms


def measure() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        db_url = str(Path(folder) / "cloud.db")
        token = _populate(db_url)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "cellwarden.cli", "cloud", "serve",
                                   "--db", db_url, "--port", str(port), "--workers", "0"],
                                  stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz").raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            week = {"from_s": NOW_S - DAYS * 86400, "to_s": NOW_S}
            cases = (
                ("/healthz (baseline)", "/healthz", None, False),
                ("fleet overview, page 1 of 100", "/api/v1/orgs/1/overview", None, True),
                ("fleet overview, packs in alarm", "/api/v1/orgs/1/overview",
                 {"status": "alarm"}, True),
                ("fleet map, 10 000 positions", "/api/v1/orgs/1/positions", None, False),
                ("pack page", "/api/v1/packs/pack-00003", None, False),
                ("7-day history (1-min rollup)", "/api/v1/packs/pack-00003/history", week, True),
                ("24 h history (raw)", "/api/v1/packs/pack-00003/history",
                 {"from_s": NOW_S - 86400, "to_s": NOW_S, "max_points": 10000}, False),
            )  # fmt: skip
            baseline_ms = None
            for label, path, params, targeted in cases:
                times_ms = sorted(_timed(client, path, params))
                p95_ms = times_ms[int(0.95 * len(times_ms)) - 1]
                baseline_ms = baseline_ms or p95_ms
                rows.append({
                    "request": label, "p50 ms": statistics.median(times_ms), "p95 ms": p95_ms,
                    "p95 × baseline": p95_ms / baseline_ms,
                    "meets": (p95_ms < TARGET_P95_MS) if targeted else "",
                })  # fmt: skip
        finally:
            server.terminate()
            server.wait(20)
    return rows


if __name__ == "__main__":
    for row in measure():
        print(row)
