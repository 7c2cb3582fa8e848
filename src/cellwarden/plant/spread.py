"""Cell-to-cell manufacturing spread drawn from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.model.scenario import SpreadSpec


@dataclass(frozen=True)
class CellSpread:
    """Per-cell deviations from the cell type's nominal values."""

    capacity_factor: np.ndarray
    resistance_factor: np.ndarray
    self_discharge_pct_per_month: np.ndarray  # added to the type's own rate, never negative
    soc_offset: np.ndarray  # fraction of full charge


def _truncated_normal(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    return np.clip(rng.standard_normal(size), -3.0, 3.0) * sigma


def draw_spread(rng: np.random.Generator, cell_count: int, spec: SpreadSpec) -> CellSpread:
    """Draw every cell's deviations (normal, truncated at three standard deviations)."""
    return CellSpread(
        capacity_factor=1.0 + _truncated_normal(rng, cell_count, spec.capacity_pct / 100.0),
        resistance_factor=np.maximum(
            0.2, 1.0 + _truncated_normal(rng, cell_count, spec.resistance_pct / 100.0)
        ),
        self_discharge_pct_per_month=np.abs(
            _truncated_normal(rng, cell_count, spec.self_discharge_pct_per_month)
        ),
        soc_offset=_truncated_normal(rng, cell_count, spec.initial_soc_pct / 100.0),
    )
