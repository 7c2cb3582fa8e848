"""A running simulation served over SunSpec Modbus.

Every main cycle the system's state goes into the server: the system master's for a
multi-master system, or, for a single string, the same aggregation over that string's own
report (a lone string is a system of one). Clients' commands (802 ``SetOp``, 804 ``SetEna``)
reach the system master; a single string's map is read-only.
"""

from __future__ import annotations

from cellwarden.bms.system_master import StringInfo, SystemMaster
from cellwarden.bms.system_state import rating_of
from cellwarden.comms.modbus_server import Endpoint, SunSpecServer
from cellwarden.comms.string_master_link import string_report
from cellwarden.model.architecture import Topology
from cellwarden.model.system_master import SystemMasterSettings
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.runner import Simulation


def attach_sunspec(simulation: Simulation, endpoint: Endpoint, unit_id: int = 1) -> SunSpecServer:
    """A (not yet started) server fed by ``simulation`` every main cycle."""
    controller = simulation.controller
    if not getattr(controller, "bms", None):
        raise ValueError("serving SunSpec needs the BMS in the loop (controller = 'bms')")
    scenario = simulation.scenario
    rating = rating_of(scenario.system)
    node = controller.system_master
    if node is not None:
        server = SunSpecServer(rating, endpoint, control=node.master, unit_id=unit_id)
        node.listeners.append(server.update)
        return server
    server = SunSpecServer(rating, endpoint, unit_id=unit_id)
    observer = _lone_string_observer(simulation)
    bms = controller.bms[0]

    def publish(now_s: float) -> None:
        if bms.state is not None:
            _, state = observer.step(now_s, [string_report(bms, 0, now_s)])
            server.update(state)

    simulation.add_task(PeriodicTask("sunspec", scenario.timing.main_period_s, publish))
    return server


def _lone_string_observer(simulation: Simulation) -> SystemMaster:
    """The system master's aggregation over one string (its commands are not used)."""
    string = simulation.plant.layout.strings[0]
    info = StringInfo.of(string, simulation.controller.bms[0].nominal_r0_ohm)
    rating = rating_of(simulation.scenario.system)
    return SystemMaster(rating, [info], Topology.PARALLEL, SystemMasterSettings())
