"""Usage and stress counters the battery passport needs: equivalent full cycles, time in
temperature bins, deep-discharge and overcharge events."""

from __future__ import annotations

import itertools

import numpy as np

TEMP_BIN_EDGES_C = (-20.0, -10.0, 0.0, 10.0, 25.0, 35.0, 45.0, 55.0)
_EDGES_C = np.array(TEMP_BIN_EDGES_C)  # (searched every main cycle: not converted each time)


class StressCounters:
    def __init__(self, capacity_ah: float, deep_discharge_v: float, overcharge_v: float) -> None:
        self.capacity_ah = capacity_ah
        self.deep_discharge_v = deep_discharge_v
        self.overcharge_v = overcharge_v
        self.throughput_ah = 0.0
        self.charged_ah = 0.0
        self.discharged_ah = 0.0
        self.seconds_in_temp_bin = np.zeros(len(TEMP_BIN_EDGES_C) + 1)
        self.deep_discharge_events = 0
        self.overcharge_events = 0
        self._below = False
        self._above = False

    @property
    def equivalent_full_cycles(self) -> float:
        return self.throughput_ah / (2.0 * self.capacity_ah)

    @property
    def deep_discharge_flag(self) -> bool:
        """Set by the first deep discharge and kept for the life of the pack."""
        return self.deep_discharge_events > 0

    def count_charge(self, charge_ah: float) -> None:
        self.throughput_ah += abs(charge_ah)
        if charge_ah > 0:
            self.charged_ah += charge_ah
        else:
            self.discharged_ah -= charge_ah

    def observe(self, dt_s: float, temp_max_c: float, v_min: float, v_max: float) -> None:
        self.seconds_in_temp_bin[np.searchsorted(_EDGES_C, temp_max_c)] += dt_s
        below, above = v_min < self.deep_discharge_v, v_max > self.overcharge_v
        self.deep_discharge_events += int(below and not self._below)
        self.overcharge_events += int(above and not self._above)
        self._below, self._above = below, above

    def as_dict(self) -> dict[str, object]:
        labels = (
            [f"below {TEMP_BIN_EDGES_C[0]:g}"]
            + [f"{a:g}..{b:g}" for a, b in itertools.pairwise(TEMP_BIN_EDGES_C)]
            + [f"above {TEMP_BIN_EDGES_C[-1]:g}"]
        )
        return {
            "equivalent_full_cycles": self.equivalent_full_cycles,
            "charged_ah": self.charged_ah,
            "discharged_ah": self.discharged_ah,
            "seconds_in_temp_bin_c": dict(
                zip(labels, self.seconds_in_temp_bin.tolist(), strict=True)
            ),
            "deep_discharge_events": self.deep_discharge_events,
            "overcharge_events": self.overcharge_events,
        }
