"""Passive balancing: which cells bleed, by voltage difference or by the charge each must lose.

The charge strategy computes each cell's excess charge from the SoC estimates (charge above
the emptiest cell's, in Ah), bleeds it off through the resistor at V/R and counts it down, so
cells stop when their excess is gone rather than when voltages look equal. The voltage strategy
bleeds every cell more than a threshold above the lowest.
"""

from __future__ import annotations

import numpy as np

from cellwarden.model.bms import BalancingSettings


class Balancer:
    """Balancing decisions for one string; vectorised over its cells."""

    def __init__(
        self,
        settings: BalancingSettings,
        cell_count: int,
        bleed_resistance_ohm: float,
        min_cell_voltage_v: float,
    ) -> None:
        self.bleed_resistance_ohm = bleed_resistance_ohm
        self.default_min_cell_voltage_v = min_cell_voltage_v
        self.excess_ah = np.zeros(cell_count)
        self.threshold_ah = np.zeros(cell_count)
        self.mask = np.zeros(cell_count, dtype=bool)
        self._capacity_ah: np.ndarray | None = None
        self.configure(settings)

    def configure(self, settings: BalancingSettings) -> None:
        """Take (new) settings; the voltage floor and a planned threshold follow."""
        self.settings = settings
        floor = settings.min_cell_voltage_v
        self.min_cell_voltage_v = self.default_min_cell_voltage_v if floor is None else floor
        if self._capacity_ah is not None:
            self.threshold_ah = settings.threshold_soc_pct / 100.0 * self._capacity_ah

    def plan(self, soc: np.ndarray, capacity_ah: np.ndarray) -> None:
        """Charge strategy: every cell's charge above the cell with the least (Ah)."""
        charge_ah = soc * capacity_ah
        self.excess_ah = np.maximum(charge_ah - charge_ah.min(), 0.0)
        self._capacity_ah = capacity_ah
        self.threshold_ah = self.settings.threshold_soc_pct / 100.0 * capacity_ah

    def bleed_current_a(self, cell_voltage_v: np.ndarray, duty: float) -> np.ndarray:
        """Current each cell loses to its bleed resistor while the present mask holds."""
        return np.where(self.mask, cell_voltage_v / self.bleed_resistance_ohm * duty, 0.0)

    def update(
        self,
        dt_s: float,
        cell_voltage_v: np.ndarray,
        current_a: float,
        capacity_ah: float,
        allowed: bool,
        duty: float,
    ) -> np.ndarray:
        """The bleed mask for the next interval; counts down the charge already bled."""
        s = self.settings
        self.excess_ah -= self.bleed_current_a(cell_voltage_v, duty) * dt_s / 3600.0
        np.maximum(self.excess_ah, 0.0, out=self.excess_ah)
        at_rest_or_charging = current_a > -s.max_rest_current_c * capacity_ah
        if not allowed or not (s.always_allowed or at_rest_or_charging):
            self.mask = np.zeros_like(self.mask)
            return self.mask
        high_enough = cell_voltage_v >= self.min_cell_voltage_v
        if s.strategy == "voltage":
            wanted = cell_voltage_v > cell_voltage_v.min() + s.threshold_v
        else:
            # start above the deadband, then bleed until the planned excess is gone
            wanted = (self.excess_ah > 0) & (self.mask | (self.excess_ah > self.threshold_ah))
        self.mask = wanted & high_enough
        return self.mask
