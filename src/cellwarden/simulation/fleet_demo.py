"""A small mixed fleet end to end: simulated packs with their edges publishing to a local
Mosquitto, the cloud (API, dashboard, two ingest workers) storing and watching them.

``cellwarden cloud demo`` (and ``make demo-fleet``) runs it; the registry, users and alarm
rules are created here as an operator would with ``cellwarden cloud ...`` commands.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.alarms.rules import AlarmRule
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.registry import Role
from cellwarden.model.scenario import Scenario
from cellwarden.simulation.catalogue import resolve_scenario
from cellwarden.simulation.edge_run import EdgeOptions, build_edge
from cellwarden.simulation.local_broker import DEVICE_ACL, LocalBroker, free_port
from cellwarden.simulation.paced import run_together
from cellwarden.simulation.runner import Simulation

FLEET = "demo-fleet"
# (device id, built-in scenario, display name, latitude, longitude): around Amsterdam
DEVICES = (
    ("scooter-01", "escooter-13s-urban", "Scooter 01", 52.3702, 4.8952),
    ("scooter-02", "shared-scooter-12s", "Scooter 02", 52.3600, 4.8700),
    ("cargo-01", "cargo-ev-route", "Cargo van 01", 52.3900, 4.9200),
    ("forklift-01", "forklift-80v-shift", "Forklift 01", 52.4050, 4.8100),
    ("golf-01", "golf-cart-48v", "Golf cart 01", 52.3300, 4.8600),
    ("telecom-01", "telecom-backup", "Telecom site 01", 52.3450, 4.9400),
)
RULES = (
    {"name": "cell over-voltage", "severity": "critical",
     "condition": {"kind": "threshold", "field": "cells.voltage_v", "operator": ">",
                   "threshold": 4.15, "clear_threshold": 4.10}},
    {"name": "hot pack", "severity": "warning",
     "condition": {"kind": "threshold", "field": "temp_max_c", "operator": ">",
                   "threshold": 45.0, "clear_threshold": 42.0}},
    {"name": "low charge", "severity": "info",
     "condition": {"kind": "threshold", "field": "soc_pct", "operator": "<", "threshold": 20.0,
                   "clear_threshold": 25.0, "for_s": 60}},
    {"name": "temperature rising fast", "severity": "warning",
     "condition": {"kind": "rate", "field": "temp_max_c", "operator": ">",
                   "threshold_per_min": 2.0, "window_s": 300}},
    {"name": "silent", "severity": "warning",
     "condition": {"kind": "no_data", "silence_min": 10}},
    {"name": "BMS trips", "severity": "critical", "condition": {"kind": "dtc"}},
)  # fmt: skip


@dataclass
class DemoResult:
    url: str
    tokens: dict[str, str]
    produced: dict[str, int]  # summaries each edge produced
    stored: dict[str, int]  # summaries the cloud holds per device


def _scenario(name: str, latitude_deg: float, longitude_deg: float, seed: int) -> Scenario:
    scenario = resolve_scenario(name)
    gps = scenario.edge.gps.model_copy(
        update={"latitude_deg": latitude_deg, "longitude_deg": longitude_deg}
    )
    edge = scenario.edge.model_copy(update={"gps": gps})
    return scenario.model_copy(update={"edge": edge, "seed": seed})


def _register(db_url: str) -> dict[str, str]:
    """Organisation, fleet, packs, users and rules; the users' tokens."""
    store = open_store(db_url)
    registry = store.registry
    org_id = registry.add_org("Demo Mobility")
    registry.add_fleet(org_id, FLEET)
    for device_id, scenario, name, *_ in DEVICES:
        string = resolve_scenario(scenario).system.strings[0]
        pack = string.pack
        registry.add_pack(
            device_id, FLEET, name, chemistry=pack.cell.chemistry.name,
            cell_count=pack.series * string.count, capacity_ah=pack.capacity_ah,
        )  # fmt: skip
    tokens = {role.value: registry.add_user(f"demo-{role.value}", org_id, role)
              for role in Role}  # fmt: skip
    alarms = AlarmEngine(store.db)
    for rule in RULES:
        alarms.add_rule(org_id, AlarmRule.model_validate(rule))
    store.close()
    return tokens


def run_fleet_demo(
    out_dir: Path, *, speed: float = 30.0, duration_s: float = 3600.0, port: int | None = None,
    workers: int = 2, keep_serving: bool = True, announce=print,
) -> DemoResult:  # fmt: skip
    """Broker, cloud and fleet; returns once the fleet's run is stored (and, with
    ``keep_serving``, after Ctrl-C)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "cloud.db"
    for stale in out_dir.glob("cloud.db*"):  # a fresh start: the last run's data and queues go
        stale.unlink()
    for folder in ("queues", "broker"):
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    db_url = f"sqlite:///{db_path}"
    passwords = {device_id: secrets.token_hex(8) for device_id, *_ in DEVICES}
    passwords["cloud"] = secrets.token_hex(8)
    tokens = _register(db_url)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    produced: dict[str, int] = {}
    stored: dict[str, int] = {}
    with LocalBroker(out_dir / "broker", passwords, DEVICE_ACL) as broker:
        cloud = subprocess.Popen([
            sys.executable, "-m", "cellwarden.cli", "cloud", "serve", "--db", db_url,
            "--broker", broker.url("cloud", passwords["cloud"]), "--port", str(port),
            "--workers", str(workers),
        ])  # fmt: skip
        try:
            announce(f"dashboard: {url}  (sign in with a token below)")
            for role, token in tokens.items():
                announce(f"  {role:8s} {token}")
            produced = _run_fleet(broker, passwords, out_dir, speed, duration_s)
            stored = _wait_stored(db_url, produced, timeout_s=60.0)
            announce(f"fleet done: summaries produced {sum(produced.values())}, "
                     f"stored {sum(stored.values())}")  # fmt: skip
            if keep_serving:
                announce(f"still serving {url} — Ctrl-C to stop")
                cloud.wait()
        except KeyboardInterrupt:
            pass
        finally:
            cloud.terminate()
            try:
                cloud.wait(20)
            except subprocess.TimeoutExpired:
                cloud.kill()
    return DemoResult(url, tokens, produced, stored)


def _run_fleet(broker: LocalBroker, passwords: dict[str, str], out_dir: Path, speed: float,
               duration_s: float) -> dict[str, int]:  # fmt: skip
    """Every device's simulation and edge on one paced clock; summaries each produced."""
    epoch_s = time.time() - duration_s  # the records' times run up to about the end of the run
    devices = []
    for seed, (device_id, scenario, _, latitude, longitude) in enumerate(DEVICES, start=1):
        simulation = Simulation(_scenario(scenario, latitude, longitude, seed),
                                duration_s=duration_s)  # fmt: skip
        options = EdgeOptions(
            device_id=device_id, fleet=FLEET, broker=broker.url(device_id, passwords[device_id]),
            queue_dir=out_dir / "queues" / device_id, duration_s=duration_s, drain_wall_s=30.0,
            clock_epoch_s=epoch_s,
        )  # fmt: skip
        devices.append((device_id, simulation, build_edge(simulation, options)))
    walls_s = run_together([simulation for _, simulation, _ in devices], speed)
    produced = {}
    for (device_id, simulation, node), wall_s in zip(devices, walls_s, strict=True):
        simulation.result(wall_s)
        node.finish(30.0)
        produced[device_id] = node.summary()["produced"].get("summary", 0)
    return produced


def _wait_stored(db_url: str, produced: dict[str, int], timeout_s: float) -> dict[str, int]:
    store = open_store(db_url, upgrade=False)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            rows = store.db.query(
                "SELECT p.device_id, COUNT(s.seq) FROM packs p LEFT JOIN summary s "
                "ON s.pack_id = p.id GROUP BY p.device_id"
            )
            stored = dict(rows)
            if all(stored.get(d, 0) >= n for d, n in produced.items()):
                return stored
            if time.monotonic() > deadline:
                return stored
            time.sleep(0.5)
    finally:
        store.close()
