"""Staged rollout: how a campaign's devices are split into waves, and when the next wave is
released, the campaign paused for failures, or completed.

Pure functions over counts; the store applies their verdicts. Rules (docs/ota-cloud.md):
- wave 0, the canary, takes ``ceil(canary_pct % × N)`` devices (at least one), each further
  wave its share of the fleet, the last wave the rest;
- failure rate = failed / finished devices of the released waves, judged once at least
  ``min(MIN_FINISHED, released devices)`` have finished; above the threshold the campaign
  pauses and nothing more is offered; an operator who resumes accepts the failures so far
  (they no longer count);
- when every device of the released waves has finished, the next wave is released (none left:
  the campaign is completed);
- a released wave's devices that have not finished ``wave_timeout_s`` after its release are
  failed as timed out (which the failure rate then sees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_FINISHED = 3
RUNNING, PAUSED, CANCELLED, COMPLETED = "running", "paused", "cancelled", "completed"
FINAL_STATES = frozenset({"success", "failure"})
DEVICE_STATES = (
    "downloading",
    "downloaded",
    "installing",
    "installed",
    "rebooting",
    "success",
    "failure",
)


def wave_sizes(device_count: int, canary_pct: float, wave_pcts: list[float]) -> list[int]:
    """How many devices each wave takes, canary first; sums to ``device_count``."""
    if device_count <= 0:
        return []
    sizes = [min(device_count, max(1, math.ceil(device_count * canary_pct / 100.0)))]
    for percent in wave_pcts:
        left = device_count - sum(sizes)
        if left <= 0:
            break
        sizes.append(min(left, max(1, round(device_count * percent / 100.0))))
    left = device_count - sum(sizes)
    if left > 0:
        sizes.append(left)
    return sizes


@dataclass(frozen=True)
class WaveCounts:
    size: int
    succeeded: int
    failed: int

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class Verdict:
    """What the campaign becomes: its state, released waves and the reason of a pause."""

    state: str
    released_waves: int
    reason: str = ""


def judge(released_waves: int, waves: list[WaveCounts], threshold_pct: float,
          accepted: tuple[int, int] = (0, 0)) -> Verdict:  # fmt: skip
    """The verdict on a running campaign with ``released_waves`` released; ``accepted`` is
    the (failed, finished) count an operator accepted when resuming."""
    released = waves[:released_waves]
    all_finished = sum(w.finished for w in released)
    finished = all_finished - accepted[1]
    failed = sum(w.failed for w in released) - accepted[0]
    devices = sum(w.size for w in released)
    if finished >= min(MIN_FINISHED, devices - accepted[1]) and finished > 0:
        rate_pct = 100.0 * failed / finished
        if rate_pct > threshold_pct:
            where = "canary wave" if released_waves == 1 else f"waves 0-{released_waves - 1}"
            return Verdict(
                PAUSED,
                released_waves,
                f"{where}: {failed} of {finished} finished devices failed "
                f"({rate_pct:.0f} % > {threshold_pct:g} %)",
            )
    if all_finished < devices:
        return Verdict(RUNNING, released_waves)
    if released_waves < len(waves):
        return Verdict(RUNNING, released_waves + 1)
    return Verdict(COMPLETED, released_waves)
