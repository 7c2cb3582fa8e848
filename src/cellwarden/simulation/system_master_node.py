"""The system master's firmware on the simulated clock.

Each bus cycle it reads the string masters' reports from the system bus, lets the
``SystemMaster`` decide, sends one command per string and publishes the system's state: to the
inverter over the inverter CAN, or straight to the load and charger, and to any listener (the
Modbus server). A ``node_silence`` fault on the system master kills it: it neither hears nor
sends, and the string masters fall back to their own protection.
"""

from __future__ import annotations

from collections.abc import Callable

from cellwarden.bms.system_master import SystemMaster
from cellwarden.bms.system_state import SystemState
from cellwarden.comms.inverter_can import InverterCanLink
from cellwarden.comms.system_bus import SystemBusMaster
from cellwarden.hardware.interfaces import ChargerLink, LoadLink
from cellwarden.model.faults import NodeSilence
from cellwarden.plant.system_plant import SystemPlant


class SystemMasterNode:
    """Runs the system master each bus cycle; ``state`` is its last published view."""

    def __init__(
        self,
        master: SystemMaster,
        bus: SystemBusMaster,
        plant: SystemPlant,
        inverter: InverterCanLink | None = None,
        load: LoadLink | None = None,
        charger: ChargerLink | None = None,
    ) -> None:
        self.master = master
        self.bus = bus
        self.plant = plant
        self.inverter = inverter
        self.load = load
        self.charger = charger
        self.state: SystemState | None = None
        self.listeners: list[Callable[[SystemState], None]] = []

    def dead(self) -> bool:
        return any(
            isinstance(fault, NodeSilence) and fault.node == "system_master"
            for fault in self.plant.active_hardware_faults()
        )

    def tick(self, now_s: float) -> None:
        if self.dead():
            return
        self.bus.receive()
        reports = [self.bus.report(index) for index in range(len(self.bus.strings))]
        if self.inverter is not None:
            self._watch_inverter(now_s)
        commands, state = self.master.step(now_s, reports)
        self.bus.send(now_s, commands)
        self.state = state
        if self.inverter is not None:
            self.inverter.tick(now_s, state)
        self._drive_direct(state)
        for listener in self.listeners:
            listener(state)

    def _watch_inverter(self, now_s: float) -> None:
        """The inverter's keep-alive; its loss is logged once, and so is its return."""
        assert self.inverter is not None
        lost = not self.inverter.inverter_present(now_s)
        heard_once = self.inverter.keepalive_s is not None
        if lost != self.master.inverter_lost and heard_once:
            action = self.master.settings.inverter_loss_action
            what = f"lost: {action}" if lost else "heard"
            self.master.log.info(now_s, "SYS", f"inverter {what}")
        self.master.inverter_lost = lost

    def _drive_direct(self, state: SystemState) -> None:
        """Without an inverter bus: the limits straight to the load and the charger."""
        if self.load is not None:
            self.load.publish(
                state.discharge_current_limit_a, state.charge_current_limit_a, state.connected
            )
        if self.charger is not None:
            if state.charge_allowed:
                self.charger.request(state.charge_voltage_limit_v, state.charge_current_limit_a)
            else:
                self.charger.stop()
