"""A simulated pack with its edge: the BMS in the loop, telemetry to a broker, the data logger.

``cellwarden edge run`` calls ``run_edge``. The queue directory survives the process: run the
same scenario again with the same queue (after a crash, say) and the edge first sends what the
last run left, then produces only records newer than the newest it had stored (the simulation
is deterministic, so the device picks up where it stopped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellwarden.edge.bms_source import BmsTelemetry
from cellwarden.edge.cellular_link import CellularLink
from cellwarden.edge.edge_node import FIRMWARE_VERSION, EdgeNode
from cellwarden.edge.mqtt_uplink import MqttUplink
from cellwarden.edge.store_forward import StoreAndForward
from cellwarden.model.edge import Outage
from cellwarden.model.errors import ConfigError
from cellwarden.model.scenario import Scenario
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.runner import Simulation
from cellwarden.telemetry.broker_url import BrokerUrl


@dataclass
class EdgeOptions:
    """What ``cellwarden edge run`` is told on its command line."""

    device_id: str
    fleet: str = "default"
    broker: str | None = None  # mqtt://[user:password@]host:port or mqtts://...
    ca_file: Path | None = None
    queue_dir: Path = Path("out/edge/queue")
    log_dir: Path | None = None
    duration_s: float | None = None
    speed: float | None = None
    outages: list[Outage] = field(default_factory=list)
    command_key: str | None = None
    debug_json: bool = False
    drain_wall_s: float = 10.0
    clock_epoch_s: float | None = 0.0  # Unix time of the simulated clock's zero; None: now


def parse_outage(text: str) -> Outage:
    """``START:LEN`` in seconds of simulated time."""
    try:
        start, length = (float(part) for part in text.split(":"))
    except ValueError:
        raise ConfigError(
            f"outage {text!r} must be START:LEN in seconds (e.g. 3600:86400)"
        ) from None
    if start < 0 or length <= 0:
        raise ConfigError(f"outage {text!r}: START must be ≥ 0 and LEN > 0")
    return Outage(at_s=start, duration_s=length)


def build_edge(simulation: Simulation, options: EdgeOptions) -> EdgeNode:
    """The edge over ``simulation``'s BMS, added as a periodic task (not yet connected)."""
    controller = simulation.controller
    if not getattr(controller, "bms", None):
        raise ConfigError("the edge needs the BMS in the loop (controller = 'bms')")
    scenario = simulation.scenario
    spec = scenario.edge
    if options.outages:
        link = spec.link.model_copy(update={"outages": [*spec.link.outages, *options.outages]})
        spec = spec.model_copy(update={"link": link})
    uplink = None
    if options.broker is not None:
        broker = BrokerUrl.parse(options.broker)
        uplink = MqttUplink(
            broker, options.fleet, options.device_id, options.ca_file, FIRMWARE_VERSION
        )
    logger = None
    if options.log_dir is not None:
        from cellwarden.edge.datalogger import DataLogger

        logger = DataLogger(
            options.log_dir, segment_bytes=spec.logger.segment_bytes,
            max_bytes=spec.logger.max_bytes,
        )  # fmt: skip
    queue = StoreAndForward(options.queue_dir, spec.queue_max_bytes)
    node = EdgeNode(
        BmsTelemetry.of(controller),
        spec,
        queue,
        CellularLink(spec.link, simulation.duration_s, scenario.seed),
        fleet=options.fleet,
        device_id=options.device_id,
        sector=scenario.sector,
        seed=scenario.seed,
        uplink=uplink,
        logger=logger,
        command_key=options.command_key,
        debug_json=options.debug_json,
        clock_epoch_s=queue.clock_epoch_s(
            time.time() if options.clock_epoch_s is None else options.clock_epoch_s
        ),
    )
    simulation.add_task(PeriodicTask("edge", node.tick_period_s, node.tick))
    return node


def run_edge(scenario: Scenario, options: EdgeOptions) -> dict[str, Any]:
    """Run the scenario with its edge; the JSON summary of the run."""
    simulation = Simulation(scenario, duration_s=options.duration_s)
    node = build_edge(simulation, options)
    try:
        result = simulation.run(speed=options.speed)
    finally:
        node.finish(options.drain_wall_s)
    return {
        "scenario": scenario.name,
        "wall_s": result.wall_s,
        "speed": result.plant.time_s / max(result.wall_s, 1e-9),
        **node.summary(),
    }
