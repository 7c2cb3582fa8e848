"""Developing faults the fleet simulator injects, each with a known onset.

Every fault grows from its onset day; its severity drives the physics (a cell's leakage, a
cell's resistance, the cooling's thermal resistance, a sensor's offset, the main contactor's
contact resistance) and the protection it would trip:

- ``self_discharge``: soft internal short, leakage 1 mA x exp(days / tau). Balancing bleeds the
  other cells to follow while it can; beyond the bleed capacity the cell falls behind until it
  reaches empty before the pack does (under-voltage trip).
- ``resistance_growth``: one cell's resistance 1 + 0.05 (exp(days / tau) - 1) times its own;
  trips under-voltage when its sag at the day's peak current passes 0.75 V.
- ``cooling``: thermal resistance 1 + 0.1 (exp(days / tau) - 1) times its own, tau twice as
  long as the others'; trips over temperature when a day's peak passes 55 °C where the
  healthy cooling would have stayed below.
- ``current_sensor``: offset growing linearly, trip at 5 % of the capacity in amperes
  (the plausibility check against the path-open reading).
- ``voltage_sensor``: one cell channel's offset growing linearly, trip at 100 mV (cell sum
  against the pack measurement).
- ``contactor``: contact resistance 1 + 0.05 (exp(days / tau) - 1) times its own, trip at five
  times (the closed-contactor drop check).

Contactor wear and cooling faults are not injected into floating (telecom) packs: their
contactor does not switch under load and the cooling that matters is the cabinet's.

After its trip the fault is repaired (cell, sensor, fan or contactor replaced) the next day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAULT_KINDS = (
    "self_discharge", "resistance_growth", "cooling", "current_sensor", "voltage_sensor",
    "contactor",
)  # fmt: skip
FLOATING_KINDS = [
    FAULT_KINDS.index(name)
    for name in ("self_discharge", "resistance_growth", "current_sensor", "voltage_sensor")
]
SELF_DISCHARGE_START_A = 1e-3
UNDER_VOLTAGE_SAG_V = 0.75
OVER_TEMPERATURE_C = 55.0
CURRENT_OFFSET_TRIP_C = 0.05  # of the capacity, in A per Ah
VOLTAGE_OFFSET_TRIP_MV = 100.0
CONTACTOR_TRIP_RATIO = 5.0


@dataclass
class FaultPlan:
    """Per pack: fault kind index (-1 for none), onset day, growth time constant or drift rate,
    and the affected cell (index within the pack)."""

    kind: np.ndarray
    onset_day: np.ndarray
    tau_days: np.ndarray
    drift_per_day: np.ndarray
    cell: np.ndarray

    @classmethod
    def draw(
        cls, rng: np.random.Generator, packs: int, days: int, fraction: float,
        cells: np.ndarray, capacity_ah: np.ndarray, floating: np.ndarray,
    ) -> FaultPlan:  # fmt: skip
        faulty = rng.random(packs) < fraction
        kind = np.where(faulty, rng.integers(0, len(FAULT_KINDS), packs), -1)
        # a contactor wears by switching under load and a pack's cooling works against its
        # own heat: neither on a floating pack (a telecom cabinet's cooling is not the pack's)
        loaded_only = np.isin(kind, [FAULT_KINDS.index("contactor"), FAULT_KINDS.index("cooling")])
        kind = np.where(loaded_only & floating, rng.choice(FLOATING_KINDS, packs), kind)
        earliest = min(120, days // 3)
        onset = rng.integers(earliest, max(earliest + 1, days - 60), packs)
        tau = rng.uniform(22.0, 45.0, packs)
        # cooling wears slower (a clogging filter, a pump losing flow)
        tau = np.where(kind == FAULT_KINDS.index("cooling"), 2.0 * tau, tau)
        drift = np.where(
            kind == FAULT_KINDS.index("current_sensor"),
            rng.uniform(3e-4, 1e-3, packs) * capacity_ah,
            rng.uniform(0.4, 1.2, packs),  # mV per day for the voltage channel
        )
        cell = (rng.random(packs) * cells).astype(int)
        return cls(kind, onset.astype(float), tau, drift, cell)

    def is_kind(self, name: str) -> np.ndarray:
        return self.kind == FAULT_KINDS.index(name)

    def growth(self, day: int, active: np.ndarray) -> np.ndarray:
        """exp((day - onset) / tau) - 1 where the fault has begun and is still active, else 0."""
        elapsed = np.maximum(day - self.onset_day, 0.0)
        return np.where(active & (day >= self.onset_day), np.expm1(elapsed / self.tau_days), 0.0)

    def drift(self, day: int, active: np.ndarray) -> np.ndarray:
        elapsed = np.maximum(day - self.onset_day, 0.0)
        return np.where(active & (day >= self.onset_day), self.drift_per_day * elapsed, 0.0)
