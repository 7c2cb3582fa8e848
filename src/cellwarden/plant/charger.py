"""A CC-CV charger that obeys the limits it is sent, unless it is broken."""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.model.scenario import ChargerSpec

CV_SOURCE_RESISTANCE_OHM = 0.001


@dataclass(frozen=True)
class ChargerSetpoints:
    voltage_v: float
    current_a: float


class Charger:
    """Constant current up to its setpoint voltage, then constant voltage."""

    def __init__(self, spec: ChargerSpec, default_voltage_v: float) -> None:
        if spec.max_current_a is None:
            raise ValueError("the charger's max_current_a must be resolved from the system first")
        self.spec = spec
        self.default_voltage_v = min(
            spec.voltage_setpoint_v or default_voltage_v, spec.max_voltage_v
        )
        self.request: ChargerSetpoints | None = None

    def setpoints(self, offered_current_a: float) -> ChargerSetpoints:
        """What the charger regulates to, given what the charging point offers."""
        current = min(offered_current_a, self.spec.max_current_a)
        if self.spec.ignores_limits:
            voltage = self.spec.voltage_setpoint_v or self.spec.max_voltage_v
            return ChargerSetpoints(min(voltage, self.spec.max_voltage_v), current)
        if self.request is None:
            return ChargerSetpoints(self.default_voltage_v, current)
        return ChargerSetpoints(
            min(self.request.voltage_v, self.spec.max_voltage_v),
            max(0.0, min(current, self.request.current_a)),
        )
