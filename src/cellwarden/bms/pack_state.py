"""What the BMS reports about the whole string: a pack SoC that never jumps, and its energy."""

from __future__ import annotations

SLEW_PER_S = 2e-4  # the displayed SoC may drift towards its target this fast beyond counting


class PackSoc:
    """Pack SoC that follows the weakest cell near empty and the strongest near full.

    The target min / (1 - (max - min)) reaches 0 % when the first cell is empty and 100 % when
    the first cell is full. The reported value moves by the Coulomb-counted charge plus a slow
    slew towards the target, so it never jumps when an estimate is corrected.
    """

    def __init__(self) -> None:
        self.soc: float | None = None

    @staticmethod
    def target(soc_min: float, soc_max: float) -> float:
        spread = min(max(soc_max - soc_min, 0.0), 0.99)
        return min(1.0, max(0.0, soc_min / (1.0 - spread)))

    def update(
        self, dt_s: float, soc_min: float, soc_max: float, current_a: float, capacity_ah: float
    ) -> float:
        """The pack SoC after ``dt_s``, given the cells' lowest and highest SoC now."""
        target = self.target(soc_min, soc_max)
        if self.soc is None:
            self.soc = target
            return self.soc
        counted = current_a * dt_s / (3600.0 * capacity_ah)
        moved = self.soc + counted
        allowance = SLEW_PER_S * dt_s + abs(counted)
        step = min(allowance, max(-allowance, target - moved))
        self.soc = min(1.0, max(0.0, moved + step))
        return self.soc
