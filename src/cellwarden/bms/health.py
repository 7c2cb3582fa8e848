"""State of health: capacity from charge counted between well-known states, resistance from
current steps; both as ratios to the cell's nominal values, per series cell."""

from __future__ import annotations

import numpy as np

from cellwarden.bms.cell_model import CellModel

MIN_SOC_SPAN = 0.3  # two anchors must be this far apart to weigh a capacity
MIN_STEP_C = 0.3  # current steps of at least this C-rate measure resistance
CAPACITY_GAIN = 0.3  # least weight of a new capacity measurement once several are in
RESISTANCE_GAIN = 0.05  # weight of each new resistance measurement


class CapacityEstimator:
    """Capacity per cell from (SoC anchor, counted charge) pairs far enough apart."""

    def __init__(self, model: CellModel, cell_count: int) -> None:
        self.nominal_ah = model.capacity_ah
        self.capacity_ah = np.full(cell_count, model.capacity_ah)
        self.measurements = 0
        self._soc = np.zeros(cell_count)
        self._charge_ah = np.zeros(cell_count)
        self._known = np.zeros(cell_count, dtype=bool)
        self._count = np.zeros(cell_count, dtype=np.int64)

    def anchor(self, soc: np.ndarray, charge_ah: float, known: np.ndarray) -> None:
        """A moment where ``known`` cells' SoC is well known (rest OCV, full charge).

        ``charge_ah`` is the string's counted charge so far; between two anchors of a cell,
        capacity = counted charge / SoC change.
        """
        span = soc - self._soc
        usable = known & self._known & (np.abs(span) >= MIN_SOC_SPAN)
        measured = (charge_ah - self._charge_ah) / np.where(usable, span, 1.0)
        plausible = usable & (measured > 0.5 * self.nominal_ah) & (measured < 1.5 * self.nominal_ah)
        # the first measurement replaces the nominal value; later ones are averaged in
        gain = np.where(self._count == 0, 1.0, np.maximum(CAPACITY_GAIN, 1.0 / (self._count + 1)))
        self.capacity_ah = np.where(
            plausible, (1 - gain) * self.capacity_ah + gain * measured, self.capacity_ah
        )
        self._count += plausible
        self.measurements += int(plausible.any())
        self._soc = np.where(known, soc, self._soc)
        self._charge_ah = np.where(known, charge_ah, self._charge_ah)
        self._known |= known

    @property
    def soh_pct(self) -> np.ndarray:
        return 100.0 * self.capacity_ah / self.nominal_ah


class ResistanceEstimator:
    """Series resistance per cell from the voltage step across a current step."""

    def __init__(self, model: CellModel, cell_count: int) -> None:
        self.model = model
        self.ratio = np.ones(cell_count)  # measured / nominal
        self.measurements = 0
        self._last: tuple[np.ndarray, float] | None = None

    def observe(self, cell_voltage_v: np.ndarray, current_a: float, nominal_ohm: np.ndarray):
        """Compare the voltage step across a large enough current step with the model's R0."""
        last = self._last
        self._last = (cell_voltage_v.copy(), current_a)
        if last is None:
            return
        step_a = current_a - last[1]
        if abs(step_a) < MIN_STEP_C * self.model.capacity_ah:
            return
        measured_ohm = (cell_voltage_v - last[0]) / step_a
        ratio = np.clip(measured_ohm / nominal_ohm, 0.2, 5.0)
        self.ratio = (1 - RESISTANCE_GAIN) * self.ratio + RESISTANCE_GAIN * ratio
        self.measurements += 1

    @property
    def soh_pct(self) -> np.ndarray:
        """Resistance health: 100 % when as new, falling as resistance grows."""
        return 100.0 / self.ratio
