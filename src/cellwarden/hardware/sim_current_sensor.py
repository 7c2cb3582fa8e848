"""A simulated shunt current sensor on one string."""

from __future__ import annotations

import numpy as np

from cellwarden.hardware.interfaces import CurrentSample
from cellwarden.hardware.sensor_faults import StuckAndDrift
from cellwarden.model.board import CurrentSensorSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.system_plant import SystemPlant


class SimulatedCurrentSensor:
    """String current with zero offset, gain error, noise and quantisation."""

    def __init__(
        self,
        plant: SystemPlant,
        string: int,
        spec: CurrentSensorSpec,
        rng: np.random.Generator,
    ) -> None:
        self.plant = plant
        self.string = string
        self.spec = spec
        self._rng = rng
        self._offset_a = rng.normal(0.0, spec.offset_a)
        self._gain = 1.0 + rng.normal(0.0, spec.gain_error_pct / 100.0)
        self._faults = StuckAndDrift("current", string, 1)
        self._branch = int(plant.layout.string_branch[string])  # the string's branch current

    def sample(self, now_s: float) -> CurrentSample:
        true_a = float(self.plant.bs[k.B_CURRENT, self._branch])
        raw = true_a * self._gain + self._offset_a + self._rng.normal(0.0, self.spec.noise_a)
        quantised = round(raw / self.spec.lsb_a) * self.spec.lsb_a
        if self.plant.hardware_faults:
            faults = self.plant.hardware_faults
            quantised = float(self._faults.apply(faults, np.array([quantised]), now_s)[0])
        return CurrentSample(now_s, quantised)
