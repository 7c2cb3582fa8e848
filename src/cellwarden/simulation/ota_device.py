"""A simulated board with A/B slots: the BMS runs from the booted slot over the simulated pack,
the update agent beside it, and a reset restarts the BMS from whatever the bootloader picks.

The pack (the plant) lives on through resets, as a real one does; during a reset the board's
outputs drop, so the power path opens, and the new BMS starts from its own power-up sequence.
The slot's ``config.toml`` lays the BMS settings and cell model over the scenario's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellwarden.bms.protection import Action
from cellwarden.edge.cellular_link import CellularLink
from cellwarden.edge.ota_agent import TICK_S, AgentSettings, OtaAgent
from cellwarden.edge.ota_client import UpdateServer
from cellwarden.edge.ota_firmware_config import parse_firmware_config
from cellwarden.edge.ota_provision import device_identity
from cellwarden.edge.ota_slots import BootDecision, SlotStore
from cellwarden.hardware.interfaces import OPEN
from cellwarden.model.errors import ConfigError
from cellwarden.model.scenario import Scenario
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.bms_controller import ClosedLoopController
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.events import EventLog
from cellwarden.simulation.runner import Simulation

BOOT_S = 2.0  # from reset to the BMS's first task


@dataclass
class _Boot:
    decision: BootDecision
    controller: ClosedLoopController | None
    error: str | None
    main_cycles: int = 0
    tasks: dict[str, Callable[[float], None]] = field(default_factory=dict)


class RebootableBms:
    """The runner's controller: the BMS of the booted slot, rebuilt after every reset."""

    def __init__(self, device: SimulatedDevice, scenario: Scenario, plant: SystemPlant,
                 events: EventLog) -> None:  # fmt: skip
        self.device = device
        self.scenario = scenario
        self.plant = plant
        self.events = events
        self.boot: _Boot | None = None
        self.down_until_s = 0.0
        self.resets = 0

    # --- the runner's side ------------------------------------------------------------------
    def tasks(self) -> list[PeriodicTask]:
        timing = self.scenario.timing
        bus_period_s = self.scenario.buses.period_s or timing.main_period_s
        return [
            PeriodicTask("protection", timing.protection_period_s, self._task("protection")),
            PeriodicTask("main", timing.main_period_s, self._task("main")),
            PeriodicTask("buses", bus_period_s, self._task("buses")),
            PeriodicTask("ota", TICK_S, self._ota),
        ]

    def telemetry(self) -> dict[str, float]:
        controller = self.boot.controller if self.boot else None
        return controller.telemetry() if controller is not None else {}

    def _task(self, name: str):
        def run(now_s: float) -> None:
            if self.boot is None and now_s >= self.down_until_s:
                self._start(now_s)
            if self.boot is None or self.boot.controller is None:
                return
            task = self.boot.tasks.get(name)
            if task is not None:
                task(now_s)
            if name == "main":
                self.boot.main_cycles += 1

        return run

    def _ota(self, now_s: float) -> None:
        if self.boot is None:
            return
        agent = self.device.agent
        agent.tick(now_s)
        if agent.reboot_requested:
            self.reset(now_s)

    def close(self) -> None:
        """Shut the running BMS's buses (the runner's end of a run)."""
        if self.boot is not None and self.boot.controller is not None:
            self.boot.controller.close()

    # --- resets -----------------------------------------------------------------------------
    def reset(self, now_s: float) -> None:
        """The board resets: outputs drop (the path opens), the BMS stops until it boots."""
        if self.boot is not None and self.boot.controller is not None:
            for bms in self.boot.controller.bms:
                bms.path.driver.command(OPEN)
            self.boot.controller.close()
        self.boot = None
        self.resets += 1
        self.down_until_s = now_s + BOOT_S
        self.events.add(now_s, "board", "RESET", "board reset")

    def _start(self, now_s: float) -> None:
        decision = self.device.slots.boot()
        controller, error = None, None
        try:
            controller = self._build(decision.slot)
        except (ConfigError, ValueError, OSError) as problem:
            error = f"{type(problem).__name__}: {problem}"
        tasks = {task.name: task.run for task in controller.tasks()} if controller else {}
        self.boot = _Boot(decision, controller, error, tasks=tasks)
        self.events.add(now_s, "board", "BOOT", f"booted slot {decision.slot}: {decision.reason}")
        self.device.agent.on_boot(decision, now_s)

    def _build(self, slot: str) -> ClosedLoopController:
        path = self.device.slots.path(slot) / "config.toml"
        scenario, cell = self.scenario, None
        if path.exists():
            config = parse_firmware_config(path.read_bytes())
            scenario = scenario.model_copy(update={"bms": config.settings(scenario.bms)})
            cell = config.cell
        return ClosedLoopController(scenario, self.plant, self.events, cell=cell)

    # --- what the agent may observe (its BmsProbe) ------------------------------------------
    def _controller(self) -> ClosedLoopController | None:
        return self.boot.controller if self.boot else None

    def boot_error(self) -> str | None:
        return self.boot.error if self.boot else "the board is resetting"

    def main_cycles(self) -> int:
        return self.boot.main_cycles if self.boot else 0

    def main_period_s(self) -> float:
        return self.scenario.timing.main_period_s

    def protection_thresholds(self) -> dict[str, float]:
        controller = self._controller()
        if controller is None:
            return {}
        return {rule.quantity: rule.threshold
                for bms in controller.bms for rule in bms.protection.rules}  # fmt: skip

    def can_frames_received(self) -> dict[str, int]:
        """Frames each bus delivered since boot (received by any node on it)."""
        controller = self._controller()
        delivered: dict[str, int] = {}
        for port in controller.network.ports if controller is not None else []:
            delivered[port.name] = delivered.get(port.name, 0) + port.received
        return delivered

    def trips(self) -> tuple[str, ...]:
        controller = self._controller()
        if controller is None:
            return ()
        codes = []
        for bms in controller.bms:
            actions = {rule.code: rule.action for rule in bms.protection.rules}
            codes += [code for code in bms.protection.status().active_codes
                      if actions[code] is Action.OPEN]  # fmt: skip
        return tuple(codes)

    def path_closed(self) -> bool:
        controller = self._controller()
        return controller is not None and any(
            bms.path.driver.feedback().main_closed for bms in controller.bms
        )

    def current_a(self) -> float:
        controller = self._controller()
        return sum(bms.current_a for bms in controller.bms) if controller is not None else 0.0


class SimulatedDevice:
    """A provisioned device directory brought to life over a scenario's pack."""

    def __init__(
        self,
        scenario: Scenario,
        directory: Path,
        *,
        server: UpdateServer | None = None,
        settings: AgentSettings | None = None,
        link: CellularLink | None = None,
        clock_epoch_s: float = 0.0,
        duration_s: float | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.device_id, identity = device_identity(directory)
        self.slots = SlotStore(directory)
        self.bms: RebootableBms | None = None
        self.simulation = Simulation(scenario, controller_factory=self._factory,
                                     duration_s=duration_s)  # fmt: skip
        assert self.bms is not None
        self.agent = OtaAgent(
            directory, identity, self.bms, server=server, settings=settings or AgentSettings(),
            link=link, clock_epoch_s=clock_epoch_s, on_step=on_step,
        )  # fmt: skip
        self._steps = self.simulation.steps()
        self.now_s = 0.0

    def _factory(self, scenario: Scenario, plant: SystemPlant, events: EventLog) -> RebootableBms:
        self.bms = RebootableBms(self, scenario, plant, events)
        return self.bms

    def run_until(self, until_s: float) -> bool:
        """Advance the simulated clock to ``until_s``; False once the run has ended."""
        for now_s in self._steps:
            self.now_s = now_s
            if now_s >= until_s:
                return True
        return False

    def close(self) -> None:
        self.simulation.result(0.0)
