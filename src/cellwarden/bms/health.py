"""State of health: capacity from charge counted between well-known states, resistance from
current steps; both as ratios to the cell's nominal values, per series cell.

A well-known state is the end of a CV charge, or a long rest near either end of the SoC
range: as a cell ages its OCV-SoC curve shifts, most in the middle (lithium lost from the
graphite moves its plateaus against the cathode's curve), so a rested voltage read with the
fresh cell's table places a mid-range SoC several percent wrong, while near empty and near
full the reading holds (within 1–2 % below 15 % and above 90 % SoC on the validation cells
at 72–86 % SoH, up to 11 % in between). Mid-range
rests still re-anchor the SoC; they do not measure capacity.
"""

from __future__ import annotations

import numpy as np

from cellwarden.bms.cell_model import CellModel

MIN_SOC_SPAN = 0.3  # two anchors must be this far apart to weigh a capacity
ANCHOR_SOC_RANGES = (0.15, 0.9)  # rests below the first or above the second anchor capacity
REST_STEP_C = 0.05  # current steps from rest (below this C-rate)
MIN_STEP_C = 0.3  # ... of 0.3C to 1.5C measure resistance
MAX_STEP_C = 1.5
MAX_STEP_DT_S = 2.0  # ... between samples at most this far apart
RESISTANCE_WINDOW = 64  # the estimate is the median of the last 64 steps' ratios
RATIO_BOUNDS = (0.2, 5.0)
CAPACITY_GAIN = 0.3  # least weight of a new capacity measurement once several are in


def rest_anchors(soc: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """The cells whose rest reading may anchor a capacity measurement."""
    low, high = ANCHOR_SOC_RANGES
    return pinned & ((soc <= low) | (soc >= high))


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
        """A moment where ``known`` cells' SoC is well known (full charge; a rest near either
        end: ``ANCHOR_SOC_RANGES``).

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
    """Series resistance per cell from the voltage step across a current step.

    A step counts when it starts from rest (below ``REST_STEP_C``), is between ``MIN_STEP_C``
    and ``MAX_STEP_C`` (the regime R0 is identified in, from rest in a pulse test: under load,
    and for larger steps, the kinetics' non-linearity shows a lower apparent resistance,
    10–25 % lower on the validation cells) and the samples are at most ``MAX_STEP_DT_S``
    apart. Each step's ΔV/ΔI over the model's R0
    is kept for the last ``RESISTANCE_WINDOW`` steps; the estimate is their median, which a
    few odd steps (a step during a relaxation, a noisy sample) do not move.
    """

    def __init__(self, model: CellModel, cell_count: int) -> None:
        self.model = model
        self.measurements = 0
        self._ratios = np.full((cell_count, RESISTANCE_WINDOW), np.nan)
        self.ratio = np.ones(cell_count)  # measured / nominal
        self._last: tuple[np.ndarray, float] | None = None

    def observe(
        self, cell_voltage_v: np.ndarray, current_a: float, nominal_ohm: np.ndarray, dt_s: float
    ) -> None:
        """Compare the voltage step across a current step of the right size with the model's
        R0 at the cells' state."""
        last = self._last
        self._last = (cell_voltage_v.copy(), current_a)
        if last is None or dt_s > MAX_STEP_DT_S:
            return
        step_a = abs(current_a - last[1])
        capacity_ah = self.model.capacity_ah
        if abs(last[1]) > REST_STEP_C * capacity_ah or not (
            MIN_STEP_C * capacity_ah <= step_a <= MAX_STEP_C * capacity_ah
        ):
            return
        measured_ohm = (cell_voltage_v - last[0]) / (current_a - last[1])
        self._ratios[:, self.measurements % RESISTANCE_WINDOW] = measured_ohm / nominal_ohm
        self.measurements += 1
        self.ratio = np.clip(np.nanmedian(self._ratios, axis=1), *RATIO_BOUNDS)

    @property
    def soh_pct(self) -> np.ndarray:
        """Resistance health: 100 % when as new, falling as resistance grows."""
        return 100.0 / self.ratio
