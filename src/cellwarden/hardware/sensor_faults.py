"""Stuck and drifting readings: how a simulated driver applies the plant's sensor faults."""

from __future__ import annotations

import numpy as np

from cellwarden.model.faults import HardwareFault, SensorDrift, SensorStuck


class StuckAndDrift:
    """Applies ``sensor_stuck`` and ``sensor_drift`` faults of one sensor kind to readings."""

    def __init__(self, sensor: str, first_index: int, count: int) -> None:
        self.sensor = sensor
        self.first_index = first_index
        self.count = count
        self._frozen: dict[int, float] = {}

    def apply(
        self, faults: list[tuple[float, HardwareFault]], readings: np.ndarray, now_s: float
    ) -> np.ndarray:
        """Readings with every active fault of this sensor kind applied (a new array)."""
        result = readings.astype(float, copy=True)
        if not faults:
            return result
        for since_s, fault in faults:
            if not isinstance(fault, SensorStuck | SensorDrift) or fault.sensor != self.sensor:
                continue
            local = fault.index - self.first_index
            if not 0 <= local < self.count:
                continue
            if isinstance(fault, SensorStuck):
                result[local] = self._frozen.setdefault(local, float(result[local]))
            else:
                result[local] += fault.rate_per_s * (now_s - since_s)
        return result
