"""The seam where a BMS plugs into the runner, and the open-loop stand-in used without one.

A controller is built by a factory from the scenario, the plant and the event log, and offers
periodic tasks (a fast protection task, a slower main task, ...) that the runner calls on the
simulated clock. A real BMS factory wraps the plant in hardware drivers first, so the BMS sees
only what a board would measure; the open-loop stand-in below only switches the power path and
leaves the charger at its own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cellwarden.model.architecture import PowerPathKind
from cellwarden.model.scenario import Scenario
from cellwarden.plant.power_path import SwitchStates
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.events import EventLog

PRECHARGE_TIME_CONSTANTS = 5.0


@dataclass(frozen=True)
class PeriodicTask:
    """A callback run every ``period_s`` of simulated time, first at time zero."""

    name: str
    period_s: float
    run: Callable[[float], None]


class Controller(Protocol):
    """What the runner needs of a BMS (a ``telemetry()`` method, if present, adds columns to
    the time series)."""

    def tasks(self) -> list[PeriodicTask]:
        """The periodic tasks, fastest first."""
        ...


ControllerFactory = Callable[[Scenario, SystemPlant, EventLog], Controller]


class OpenLoopController:
    """No BMS: precharge on a timer, close the power path, then leave the plant alone."""

    def __init__(self, scenario: Scenario, plant: SystemPlant, events: EventLog) -> None:
        self.plant = plant
        self.events = events
        self.period_s = scenario.timing.main_period_s
        capacitance_f = scenario.system.dc_link_capacitance_f
        self.precharge_s = {
            index: PRECHARGE_TIME_CONSTANTS * path.spec.precharge_resistance_ohm * capacitance_f
            for index, path in enumerate(plant.power_paths)
        }
        self.closed_at_s: float | None = None

    def tasks(self) -> list[PeriodicTask]:
        return [PeriodicTask("main", self.period_s, self._main)]

    def _main(self, now_s: float) -> None:
        if now_s == 0.0:
            for index in range(len(self.plant.power_paths)):
                self.plant.set_switches(index, SwitchStates(negative=True, precharge=True))
                self.events.add(
                    now_s, "controller", "PRECHARGE", f"{self._name(index)} precharging"
                )
            return
        if self.closed_at_s is None and now_s >= max(self.precharge_s.values()):
            for index, path in enumerate(self.plant.power_paths):
                closed = (
                    SwitchStates(negative=True, positive=True)
                    if path.spec.kind is PowerPathKind.CONTACTORS
                    else SwitchStates(charge=True, discharge=True)
                )
                self.plant.set_switches(index, closed)
                self.events.add(now_s, "controller", "CLOSED", f"{self._name(index)} connected")
            self.closed_at_s = now_s

    def _name(self, index: int) -> str:
        return self.plant.layout.strings[index].name


def open_loop(scenario: Scenario, plant: SystemPlant, events: EventLog) -> Controller:
    """The default controller factory until a BMS is configured."""
    return OpenLoopController(scenario, plant, events)
