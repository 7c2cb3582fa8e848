"""Duty profiles: piecewise-constant demand on the DC bus over simulated time."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class DutyMode(IntEnum):
    """What a profile segment asks of the bus. Load values are positive when they discharge."""

    REST = 0  # nothing connected
    CURRENT = 1  # load draws value [A] (negative: regeneration pushes current back)
    POWER = 2  # load draws value [W] (negative: regeneration)
    RESISTANCE = 3  # a resistor of value [ohm] across the bus
    CHARGE = 4  # charger plugged in, offering up to value [A]


@dataclass(frozen=True)
class DutyProfile:
    """Segment k holds from ``start_s[k]`` until ``start_s[k + 1]`` (the last one holds on)."""

    start_s: np.ndarray
    mode: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        if not (self.start_s.size == self.mode.size == self.value.size) or self.start_s.size == 0:
            raise ValueError("a duty profile needs equally long, non-empty arrays")
        if self.start_s[0] != 0.0 or np.any(np.diff(self.start_s) <= 0):
            raise ValueError("segment starts must begin at 0 s and strictly increase")
        if not np.all(np.isfinite(self.value)):
            raise ValueError("segment values must be finite")

    @classmethod
    def from_segments(cls, segments: list[tuple[float, DutyMode, float]]) -> DutyProfile:
        """Build from (duration_s, mode, value) tuples laid end to end."""
        durations = np.array([s[0] for s in segments], dtype=float)
        if np.any(durations <= 0):
            raise ValueError("segment durations must be positive")
        starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        modes = np.array([int(s[1]) for s in segments], dtype=np.int64)
        values = np.array([s[2] for s in segments], dtype=float)
        return cls(starts, modes, values)

    @property
    def duration_s(self) -> float:
        """Time at which the last segment starts (it then holds)."""
        return float(self.start_s[-1])

    def segment_at(self, time_s: float) -> int:
        """Index of the segment in force at ``time_s``."""
        return int(np.searchsorted(self.start_s, time_s, side="right") - 1)

    def next_change_after(self, time_s: float) -> float:
        """Start of the next segment after ``time_s`` (infinity if none)."""
        index = self.segment_at(time_s) + 1
        return float(self.start_s[index]) if index < self.start_s.size else float("inf")
