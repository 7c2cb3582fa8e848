"""Closed loop: each string gets a simulated board over the plant and a BMS on top of it."""

from __future__ import annotations

from cellwarden.bms.event_log import BmsEvent
from cellwarden.bms.string_bms import StringBms, StringConfig
from cellwarden.hardware.sim_board import build_string_board
from cellwarden.model.scenario import Scenario
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.events import EventLog


class ClosedLoopController:
    """One BMS per string; the runner calls their fast and main tasks at the scenario's rates."""

    def __init__(self, scenario: Scenario, plant: SystemPlant, events: EventLog) -> None:
        self.scenario = scenario
        self.events = events
        single = plant.layout.string_count == 1
        self.bms: list[StringBms] = []
        for index, string in enumerate(plant.layout.strings):
            board = build_string_board(
                plant, index, scenario.board, scenario.seed, scenario.profile.ignores_limits
            )
            config = StringConfig(
                cell=string.pack.cell,
                series=string.pack.series,
                parallel=string.pack.parallel,
                path_max_current_a=string.power_path.max_current_a,
                bleed_resistance_ohm=scenario.board.balancing.bleed_resistance_ohm,
                current_noise_a=scenario.board.current_sensor.noise_a,
                settings=scenario.bms,
            )
            bms = StringBms(
                config, board.monitor, board.current, board.power_path,
                board.charger if single else None, board.load if single else None,
            )  # fmt: skip
            bms.log.listeners.append(self._forward(string.name))
            self.bms.append(bms)

    def _forward(self, string_name: str):
        def forward(event: BmsEvent) -> None:
            if event.kind != "info" or event.code == "PATH":
                self.events.add(
                    event.time_s, f"bms:{string_name}", event.code,
                    f"{event.name} ({event.kind})", kind=event.kind, action=event.action,
                    value=event.value, freeze_frame=event.freeze_frame,
                )  # fmt: skip

        return forward

    def tasks(self) -> list[PeriodicTask]:
        timing = self.scenario.timing
        return [
            PeriodicTask("protection", timing.protection_period_s, self._fast),
            PeriodicTask("main", timing.main_period_s, self._main),
        ]

    def _fast(self, now_s: float) -> None:
        for bms in self.bms:
            bms.fast_task(now_s)

    def _main(self, now_s: float) -> None:
        for bms in self.bms:
            bms.main_task(now_s)

    def telemetry(self) -> dict[str, float]:
        """The first string's published state, for the time series."""
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


def closed_loop(scenario: Scenario, plant: SystemPlant, events: EventLog) -> ClosedLoopController:
    return ClosedLoopController(scenario, plant, events)
