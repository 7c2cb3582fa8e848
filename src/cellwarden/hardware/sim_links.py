"""Simulated links to the charger and the load: the BMS's limits handed straight to the plant."""

from __future__ import annotations

from cellwarden.plant.charger import ChargerSetpoints
from cellwarden.plant.system_plant import SystemPlant


class SimulatedChargerLink:
    """Direct link; the CAN charger protocol replaces it where a scenario configures CAN."""

    def __init__(self, plant: SystemPlant) -> None:
        self.plant = plant

    def request(self, voltage_v: float, current_a: float) -> None:
        self.plant.set_charger_request(ChargerSetpoints(voltage_v, max(0.0, current_a)))

    def stop(self) -> None:
        self.plant.set_charger_request(ChargerSetpoints(self.plant.branch_max_voltage_v, 0.0))

    def present(self) -> bool:
        return self.plant.charger_plugged_in


class SimulatedLoadLink:
    """The load waits for "ready" and obeys the published current limits, unless the scenario
    says it ignores them (it still waits for ready, as a motor controller's handshake does)."""

    def __init__(self, plant: SystemPlant, ignores_limits: bool) -> None:
        self.plant = plant
        self.ignores_limits = ignores_limits

    def publish(self, discharge_a: float, regen_a: float, ready: bool) -> None:
        if not ready:
            self.plant.set_load_limits(0.0, 0.0)
        elif self.ignores_limits:
            self.plant.set_load_limits(float("inf"), float("inf"))
        else:
            self.plant.set_load_limits(discharge_a, regen_a)
