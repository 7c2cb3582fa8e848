"""Many devices on one broker: 100 simulated packs, each with its BMS in the loop and its edge,
paced at 50× real time, all publishing to one Mosquitto on 127.0.0.1.

Devices run in 4 worker processes (the machine has 2 cores), interleaved on one paced clock per
process (``cellwarden.simulation.paced``). Each runs its own simulation of
``tests/data/edge-telecom-16s.toml`` for 30 simulated minutes with its BMS on a 10 s cycle (the
summary rate: what the edge reads changes no faster), and a subscriber counts every device's
summaries and events by sequence number. The baseline is one device alone on the broker in the
same run; a last run lets the 100 devices go as fast as they can, to show the headroom.
Targets: every device at ≥ 50× real time, no record lost.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from cellwarden.model.scenario import Scenario
from cellwarden.simulation.catalogue import resolve_scenario
from cellwarden.simulation.edge_run import EdgeOptions, build_edge
from cellwarden.simulation.local_broker import LocalBroker
from cellwarden.simulation.paced import run_together
from cellwarden.simulation.runner import Simulation

SCENARIO = Path(__file__).parents[1] / "tests" / "data" / "edge-telecom-16s.toml"
DEVICES = 100
WORKERS = 4
SPEED = 50.0
SIMULATED_S = 1800.0
TARGET_SPEED = 50.0


def fleet_scenario() -> Scenario:
    """The edge tests' 16S site with the BMS's tasks every 10 s."""
    scenario = resolve_scenario(str(SCENARIO))
    timing = scenario.timing.model_copy(update={
        "plant_step_s": 2.0, "protection_period_s": 10.0, "main_period_s": 10.0,
        "log_period_s": 60.0, "parameter_refresh_s": 10.0,
    })  # fmt: skip
    return Scenario.model_validate({**scenario.model_dump(), "timing": timing.model_dump()})


def _worker(url: str, folder: str, device_ids: list[str], speed: float | None, out) -> None:
    """A process's share of the fleet: every device built, then all run on one paced clock."""
    devices = []
    for device_id in device_ids:
        options = EdgeOptions(
            device_id=device_id, fleet="bench", broker=url, queue_dir=Path(folder) / device_id,
            duration_s=SIMULATED_S, drain_wall_s=30.0,
        )  # fmt: skip
        simulation = Simulation(fleet_scenario(), duration_s=SIMULATED_S)
        devices.append((simulation, build_edge(simulation, options)))
    walls_s = run_together([simulation for simulation, _ in devices], speed)
    results = []
    for (simulation, node), wall_s in zip(devices, walls_s, strict=True):
        simulation.result(wall_s)
        node.finish(30.0)
        results.append({"speed": SIMULATED_S / wall_s, **node.summary()})
    out.put(results)


def _run(url: str, folder: str, count: int, speed: float | None) -> list[dict]:
    ids = [f"dev-{index:03d}" for index in range(count)]
    workers = min(WORKERS, count)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=_worker, args=(url, folder, ids[w::workers], speed, queue))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    results = [summary for _ in processes for summary in queue.get()]
    for process in processes:
        process.join()
    return results


def measure() -> list[dict]:
    import paho.mqtt.client as mqtt

    from cellwarden.telemetry import codec
    from cellwarden.telemetry.schema import parse_topic

    rows = []
    with tempfile.TemporaryDirectory() as folder, LocalBroker(Path(folder) / "broker") as broker:
        seen: dict[tuple[str, str], set[int]] = defaultdict(set)
        lock = threading.Lock()

        def on_message(client, userdata, message) -> None:
            if message.topic.endswith("/status"):
                return
            _, device, _ = parse_topic(message.topic)
            kind, batch = codec.decode(message.payload)
            with lock:
                seen[(device, kind.value)].update(seq for seq, _ in batch)

        listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        listener.on_message = on_message
        listener.connect("127.0.0.1", broker.port)
        listener.subscribe("cw/#", qos=1)
        listener.loop_start()
        runs = (
            ("1 device alone (baseline)", 1, SPEED),
            (f"{DEVICES} devices", DEVICES, SPEED),
            (f"{DEVICES} devices, unpaced (headroom)", DEVICES, None),
        )
        for number, (label, count, speed) in enumerate(runs):
            seen.clear()
            started = time.perf_counter()
            results = _run(broker.url(), str(Path(folder) / f"run-{number}"), count, speed)
            wall_s = time.perf_counter() - started
            time.sleep(2.0)
            lost = 0
            for summary in results:
                for kind in ("summary", "event"):
                    produced = summary["produced"].get(kind, 0)
                    lost += produced - len(seen[(summary["device_id"], kind)])
            speeds = [summary["speed"] for summary in results]
            rows.append({
                "run": label,
                "devices": count,
                "slowest device × real time": min(speeds),
                "mean × real time": sum(speeds) / len(speeds),
                "summaries + events produced": sum(
                    s["produced"].get("summary", 0) + s["produced"].get("event", 0) for s in results
                ),
                "lost": lost,
                "wall s": wall_s,
                # a paced run ends just after its last step is due: 0.5 % under its pace
                "meets": min(speeds) >= 0.99 * TARGET_SPEED and lost == 0,
            })  # fmt: skip
        listener.disconnect()
        listener.loop_stop()
    return rows
