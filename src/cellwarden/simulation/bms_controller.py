"""Closed loop: each string gets its simulated hardware over the plant and a BMS on top of it.

A standalone string's BMS reads its board's front end directly. A master-slave string's BMS
reads its slaves through the internal CAN bus: each main cycle the master triggers, the
simulated daisy chain carries the frames to the slave nodes and back, then the master's BMS
runs on what arrived. A single string negotiates with the charger over the charger bus and
publishes its state and limits to the vehicle (or inverter) over the external bus, as the
scenario's ``[buses]`` says; the charger and the vehicle controller are simulated nodes there.
In a multi-master system every string master reports on the system bus and a system master
coordinates them; the system master alone talks to the inverter (or drives the load and charger
directly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellwarden.bms.event_log import BmsEvent
from cellwarden.bms.string_bms import StringBms, StringConfig
from cellwarden.bms.system_master import StringInfo, SystemMaster
from cellwarden.bms.system_state import rating_of
from cellwarden.comms.can_bus import CanNetwork
from cellwarden.comms.charger_can import CanChargerLink
from cellwarden.comms.external_can import BMS_TIMEOUT_S, VEHICLE_TIMEOUT_S, ExternalCanLink
from cellwarden.comms.inverter_can import InverterCanLink
from cellwarden.comms.slave_chain import SlaveChainMonitor
from cellwarden.comms.slave_firmware import SlaveFirmware
from cellwarden.comms.string_master_link import StringMasterLink
from cellwarden.comms.system_bus import SystemBusMaster
from cellwarden.hardware.sim_board import build_master_slave_boards, build_string_board
from cellwarden.hardware.sim_links import SimulatedChargerLink, SimulatedLoadLink
from cellwarden.model.architecture import Architecture
from cellwarden.model.cell import CellSpec
from cellwarden.model.faults import NodeSilence
from cellwarden.model.scenario import Scenario
from cellwarden.model.system import StringSpec
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.can_charger import SimulatedCanCharger
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.daisy_chain import DaisyChain, SlaveTap
from cellwarden.simulation.events import EventLog
from cellwarden.simulation.inverter_node import SimulatedInverter
from cellwarden.simulation.system_master_node import SystemMasterNode
from cellwarden.simulation.vehicle_node import SimulatedVehicleController

Tick = Callable[[float], None]
FORWARDED_INFO = ("PATH", "SYS", "JOIN_REFUSED")  # info events worth the simulation's log


@dataclass
class StringNode:
    """One string's BMS and, for a master, its end of the daisy chain."""

    name: str
    bms: StringBms
    chain: SlaveChainMonitor | None = None
    daisy_chain: DaisyChain | None = None
    system_link: StringMasterLink | None = None

    def main(self, now_s: float) -> None:
        if self.chain is not None and self.daisy_chain is not None:
            self.chain.trigger(now_s)
            self.daisy_chain.service(now_s)
        self.bms.main_task(now_s)


class ClosedLoopController:
    """One BMS per string; the runner calls their fast and main tasks at the scenario's rates."""

    def __init__(
        self,
        scenario: Scenario,
        plant: SystemPlant,
        events: EventLog,
        can_log: Path | None = None,
        cell: CellSpec | None = None,
    ) -> None:
        """``cell`` is the cell model the BMS is told of (default: the pack's own cells)."""
        self.scenario = scenario
        self.cell = cell
        self.plant = plant
        self.events = events
        self.network = CanNetwork(log_path=can_log)
        self._bus_ticks: list[Tick] = []  # the BMS's side first, then the simulated nodes
        self.nodes = [
            self._string_node(index, string) for index, string in enumerate(plant.layout.strings)
        ]
        self.bms: list[StringBms] = [node.bms for node in self.nodes]
        self.system_master: SystemMasterNode | None = None
        self.inverter: SimulatedInverter | None = None
        if scenario.system.architecture is Architecture.MULTI_MASTER:
            self.system_master = self._system_master()

    def _config(self, string: StringSpec) -> StringConfig:
        scenario = self.scenario
        return StringConfig(
            cell=self.cell or string.pack.cell,
            series=string.pack.series,
            parallel=string.pack.parallel,
            path_max_current_a=string.power_path.max_current_a,
            bleed_resistance_ohm=scenario.board.balancing.bleed_resistance_ohm,
            current_noise_a=scenario.board.current_sensor.noise_a,
            settings=scenario.bms,
        )

    def _string_node(self, index: int, string: StringSpec) -> StringNode:
        scenario, plant = self.scenario, self.plant
        single = plant.layout.string_count == 1
        ignores = scenario.profile.ignores_limits
        if string.slaves == 0:
            board = build_string_board(plant, index, scenario.board, scenario.seed, ignores)
            monitor, current, power_path = board.monitor, board.current, board.power_path
            charger, load = board.charger, board.load
            chain = daisy_chain = None
        else:
            boards = build_master_slave_boards(plant, index, scenario.board, scenario.seed, ignores)
            chain, daisy_chain = self._slave_chain(index, boards)
            monitor, current, power_path = chain, boards.current, boards.power_path
            charger, load = boards.charger, boards.load
        bms = StringBms(self._config(string), monitor, current, power_path)
        if single:
            bms.charger = self._charger_bus() if scenario.buses.charger else charger
            bms.load = self._vehicle_bus(bms) if scenario.buses.vehicle else load
        bms.log.listeners.append(self._forward(f"bms:{string.name}"))
        return StringNode(string.name, bms, chain, daisy_chain)

    def _system_master(self) -> SystemMasterNode:
        """The system bus, a link on every string master, the system master and its outputs."""
        scenario, plant = self.scenario, self.plant
        settings = scenario.system_master
        for index, node in enumerate(self.nodes):
            node.system_link = StringMasterLink(
                self.network.port("system"), index, node.bms, settings.command_timeout_s,
                settings.loss_action,
            )  # fmt: skip
        infos = [
            StringInfo.of(string, node.bms.nominal_r0_ohm)
            for string, node in zip(plant.layout.strings, self.nodes, strict=True)
        ]
        rating = rating_of(scenario.system)
        master = SystemMaster(rating, infos, scenario.system.topology, settings)
        master.log.listeners.append(self._forward("system-master"))
        bus = SystemBusMaster(self.network.port("system"), len(self.nodes))
        ignores = scenario.profile.ignores_limits
        if scenario.buses.inverter:
            link = InverterCanLink(
                self.network.port("inverter"), rating,
                inverter_timeout_s=settings.inverter_timeout_s,
            )  # fmt: skip
            self.inverter = SimulatedInverter(
                self.network.port("inverter"), plant, ignores, 3.0 * max(1.0, self._bus_period_s)
            )
            node = SystemMasterNode(master, bus, plant, inverter=link)
        else:
            node = SystemMasterNode(
                master, bus, plant, load=SimulatedLoadLink(plant, ignores),
                charger=SimulatedChargerLink(plant),
            )  # fmt: skip
        self._bus_ticks += [self._string_links, node.tick]
        if self.inverter is not None:
            self._bus_ticks.append(self._inverter_tick)
        return node

    def _string_links(self, now_s: float) -> None:
        silent = {
            fault.string
            for fault in self.plant.active_hardware_faults()
            if isinstance(fault, NodeSilence) and fault.node == "string_master"
        }
        for index, node in enumerate(self.nodes):
            assert node.system_link is not None
            node.system_link.silent = index in silent
            node.system_link.tick(now_s)

    def _inverter_tick(self, now_s: float) -> None:
        assert self.inverter is not None
        self.inverter.silent = any(
            isinstance(fault, NodeSilence) and fault.node == "inverter"
            for fault in self.plant.active_hardware_faults()
        )
        self.inverter.tick(now_s)

    @property
    def _bus_period_s(self) -> float:
        return self.scenario.buses.period_s or self.scenario.timing.main_period_s

    def _charger_bus(self) -> CanChargerLink:
        """The charger bus: the BMS's link and the simulated charger."""
        link = CanChargerLink(self.network.port("charger"))
        charger = SimulatedCanCharger(self.network.port("charger"), self.plant)
        self._bus_ticks += [link.tick, charger.tick]
        return link

    def _vehicle_bus(self, bms: StringBms) -> ExternalCanLink:
        """The external bus: the BMS's link and the simulated vehicle controller."""
        scale = max(1.0, 3.0 * self._bus_period_s / BMS_TIMEOUT_S)
        link = ExternalCanLink(
            self.network.port("vehicle"), bms.protection.rules, VEHICLE_TIMEOUT_S * scale
        )
        vehicle = SimulatedVehicleController(
            self.network.port("vehicle"), self.plant, self.scenario.profile.ignores_limits,
            BMS_TIMEOUT_S * scale,
        )  # fmt: skip

        def bms_side(now_s: float) -> None:
            link.tick(now_s, bms.state)
            bms.wanted_on = link.connect_requested  # the key switch, over the bus

        self._bus_ticks += [bms_side, vehicle.tick]
        return link

    def _slave_chain(self, index: int, boards) -> tuple[SlaveChainMonitor, DaisyChain]:
        scenario, plant = self.scenario, self.plant
        single = plant.layout.string_count == 1
        bus = "internal" if single else f"internal-{index + 1}"
        taps = [SlaveTap() for _ in boards.front_ends]
        slaves = SlaveFirmware(boards.front_ends, taps)
        chain = SlaveChainMonitor(
            self.network.port(bus),
            [front_end.cell_count for front_end in boards.front_ends],
            [front_end.sensor_cells for front_end in boards.front_ends],
            boards.hv,
            scenario.bms.internal_bus,
        )
        daisy_chain = DaisyChain(
            plant, index, self.network.port(bus), slaves, taps,
            np.random.default_rng([scenario.seed, 0xC4A1, index]),
        )  # fmt: skip
        return chain, daisy_chain

    def _forward(self, source: str):
        def forward(event: BmsEvent) -> None:
            if event.kind != "info" or event.code in FORWARDED_INFO:
                self.events.add(
                    event.time_s, source, event.code,
                    f"{event.name} ({event.kind})", kind=event.kind, action=event.action,
                    value=event.value, freeze_frame=event.freeze_frame,
                )  # fmt: skip

        return forward

    def tasks(self) -> list[PeriodicTask]:
        timing = self.scenario.timing
        tasks = [
            PeriodicTask("protection", timing.protection_period_s, self._fast),
            PeriodicTask("main", timing.main_period_s, self._main),
        ]
        if self._bus_ticks:
            tasks.append(PeriodicTask("buses", self._bus_period_s, self._buses))
        return tasks

    def _buses(self, now_s: float) -> None:
        for tick in self._bus_ticks:
            tick(now_s)

    def _fast(self, now_s: float) -> None:
        for node in self.nodes:
            node.bms.fast_task(now_s)

    def _main(self, now_s: float) -> None:
        for node in self.nodes:
            node.main(now_s)

    def telemetry(self) -> dict[str, float]:
        """The system master's published state, else the first string's, for the time series."""
        if self.system_master is not None:
            return self._system_telemetry()
        state = self.bms[0].state
        if state is None:
            return {}
        return {
            "bms_soc_pct": state.soc_pct,
            "bms_soc_min_pct": state.soc_min_pct,
            "bms_soc_max_pct": state.soc_max_pct,
            "bms_charge_limit_a": state.limits.charge_current_a,
            "bms_discharge_limit_a": state.limits.discharge_current_a,
            "bms_balancing_cells": float(state.balancing_cells),
        }

    def _system_telemetry(self) -> dict[str, float]:
        assert self.system_master is not None
        state = self.system_master.state
        if state is None:
            return {}
        return {
            "bms_soc_pct": state.soc_pct,
            "bms_charge_limit_a": state.charge_current_limit_a,
            "bms_discharge_limit_a": state.discharge_current_limit_a,
            "bms_charge_voltage_limit_v": state.charge_voltage_limit_v,
            "bms_strings_connected": float(state.strings_connected),
        }

    def close(self) -> None:
        """Shut the buses and finish the CAN log."""
        self.network.close()


def closed_loop(
    scenario: Scenario, plant: SystemPlant, events: EventLog, can_log: Path | None = None
) -> ClosedLoopController:
    return ClosedLoopController(scenario, plant, events, can_log)
