"""A simulated high-voltage measurement: the stack and the DC link, each with gain error and
noise (the master's or the standalone board's own HV channels, independent of the cells)."""

from __future__ import annotations

import numpy as np

from cellwarden.plant import kernel as k
from cellwarden.plant.system_plant import SystemPlant

HV_NOISE_V = 0.01


class SimulatedHvMeasurement:
    """Stack voltage of the monitored cells and link voltage behind the power path."""

    def __init__(
        self,
        plant: SystemPlant,
        groups: np.ndarray,
        gain_error_pct: float,
        rng: np.random.Generator,
    ) -> None:
        self.plant = plant
        contiguous = groups.size > 0 and np.array_equal(
            groups, np.arange(groups[0], groups[-1] + 1)
        )
        self.groups = slice(int(groups[0]), int(groups[-1]) + 1) if contiguous else groups
        self._rng = rng
        self.gain = 1.0 + rng.normal(0.0, gain_error_pct / 100.0)

    def measure(self) -> tuple[float, float]:
        """(stack voltage, link voltage) in volts."""
        # both noise draws in one call: the same stream, in the same order, as two scalar draws
        return self.reading(self._rng.normal(0.0, HV_NOISE_V, 2))

    def reading(self, noise_v: np.ndarray) -> tuple[float, float]:
        """(stack voltage, link voltage) with the noise ``noise_v`` (two values) added."""
        plant = self.plant
        stack_v = float(np.add.reduce(plant.gs[k.G_VOLT, self.groups]))
        pack_noise, link_noise = noise_v.tolist()
        return measured_v(stack_v, plant.bus_voltage_v, self.gain, pack_noise, link_noise)


def measured_v(stack_v, link_v, gain, stack_noise_v, link_noise_v):
    """(stack, link) as the channels read them: each voltage times the channels' gain, plus its
    own noise; one measurement's scalars, or arrays of several measurements alike."""
    return stack_v * gain + stack_noise_v, link_v * gain + link_noise_v
