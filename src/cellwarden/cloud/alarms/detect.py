"""Conditions over a frame's rows, vectorised: records x sources (cells, or one summary field).

A scan reduces a batch to what decides an alarm per source: the newest record beyond the raise
limit and the newest one back on the normal side of the clear limit. Whichever came last says
whether the condition holds when the batch ends; a batch in between the limits changes nothing
(hysteresis). NaN (a missing value) is neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-9  # decoded values are integers times a resolution: 4250 * 0.001 != 4.25


@dataclass(frozen=True)
class Scan:
    """Per source: index of the newest raising / clearing record (-1: none) and its value."""

    last_raise: np.ndarray
    last_clear: np.ndarray
    raise_value: np.ndarray
    clear_value: np.ndarray

    def raised(self) -> np.ndarray:
        """Sources with a record beyond the raise limit."""
        return self.last_raise >= 0

    def normal_at_end(self) -> np.ndarray:
        """Sources whose newest decisive record is on the normal side."""
        return self.last_clear > self.last_raise


def beyond(values: np.ndarray, operator: str, limit: float) -> np.ndarray:
    """Where ``values`` lie strictly beyond ``limit`` in the operator's direction."""
    if operator == ">":
        return values > limit + TOLERANCE
    return values < limit - TOLERANCE


def back_within(values: np.ndarray, operator: str, limit: float) -> np.ndarray:
    """Where ``values`` are back on the normal side of ``limit`` (or on it)."""
    if operator == ">":
        return values <= limit + TOLERANCE
    return values >= limit - TOLERANCE


def held_for(raising: np.ndarray, times_s: np.ndarray, for_s: float) -> np.ndarray:
    """``raising`` (records x sources) where it has held record after record for ``for_s``."""
    count = len(times_s)
    rows = np.arange(count)[:, None]
    last_off = np.maximum.accumulate(np.where(raising, -1, rows), axis=0)
    run_start = np.minimum(last_off + 1, count - 1)
    return raising & (times_s[:, None] - times_s[run_start] >= for_s - TOLERANCE)


def scan(values: np.ndarray, raising: np.ndarray, clearing: np.ndarray) -> Scan:
    """Reduce records x sources to the newest raising and clearing record per source."""
    last_raise, last_clear = _last_true(raising), _last_true(clearing)
    columns = np.arange(values.shape[1])
    return Scan(
        last_raise,
        last_clear,
        values[np.maximum(last_raise, 0), columns],
        values[np.maximum(last_clear, 0), columns],
    )


def rates_per_min(times_s: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """Change per minute of each record against the newest record ``window_s`` or more older
    and at most ``2 * window_s`` older; NaN where there is none. ``times_s`` ascending."""
    reference = np.searchsorted(times_s, times_s - window_s + TOLERANCE, side="right") - 1
    earlier = np.maximum(reference, 0)
    span_s = times_s - times_s[earlier]
    usable = (reference >= 0) & (span_s > 0) & (span_s <= 2 * window_s + TOLERANCE)
    change = (values - values[earlier]) * 60.0 / np.where(usable, span_s, 1.0)
    return np.where(usable, change, np.nan)


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Row index of the last True per column, -1 where a column has none."""
    count, sources = mask.shape
    if not mask.any():  # the usual raise mask: nothing beyond the limit
        return np.full(sources, -1)
    if mask[-1].all():  # the usual clear mask: all normal at the end
        return np.full(sources, count - 1)
    newest_first = mask[::-1].argmax(axis=0)
    return np.where(mask.any(axis=0), count - 1 - newest_first, -1)
