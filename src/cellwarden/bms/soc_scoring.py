"""How well a SoC estimate follows the truth, for traces that carry it (simulated ones, or a
lab's reference counted from a full charge to a full discharge)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SETTLE_S = 600.0  # an estimator may take this long to find its feet after power-up


@dataclass(frozen=True)
class SocScore:
    """Errors in SoC percentage points (estimate less truth)."""

    rmse_pct: float  # over the whole replay
    max_pct: float
    rmse_after_settle_pct: float  # after the first ``SETTLE_S``
    max_after_settle_pct: float
    error_at_settle_pct: float  # |error| at ``SETTLE_S``
    end_error_pct: float  # signed, at the last row

    def meets(self, rmse_pct: float, at_settle_pct: float, max_pct: float) -> bool:
        """The issue-style target: RMSE, |error| at settling and max after it."""
        return (
            self.rmse_after_settle_pct <= rmse_pct
            and self.error_at_settle_pct <= at_settle_pct
            and self.max_after_settle_pct <= max_pct
        )


def score(
    time_s: np.ndarray, estimate_pct: np.ndarray, truth_pct: np.ndarray, settle_s: float = SETTLE_S
) -> SocScore:
    """Score an estimate against the truth on the same rows (settling counted from the first)."""
    elapsed = np.asarray(time_s, float) - float(time_s[0])
    error = np.asarray(estimate_pct, float) - np.asarray(truth_pct, float)
    late = elapsed > settle_s
    if not late.any():
        late = np.ones(error.size, dtype=bool)
    at = min(int(np.searchsorted(elapsed, settle_s)), error.size - 1)
    return SocScore(
        rmse_pct=float(np.sqrt(np.mean(error**2))),
        max_pct=float(np.max(np.abs(error))),
        rmse_after_settle_pct=float(np.sqrt(np.mean(error[late] ** 2))),
        max_after_settle_pct=float(np.max(np.abs(error[late]))),
        error_at_settle_pct=float(abs(error[at])),
        end_error_pct=float(error[-1]),
    )
