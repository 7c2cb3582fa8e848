"""The health check of a trial boot: does the new slot run the BMS as a board must?

Passed when, over the check's window after boot, the BMS was built from the slot, its main
task ran (at least ``MIN_CYCLE_FRACTION`` of the cycles its period allows), its protection
table guards every quantity in ``REQUIRED_PROTECTION`` with finite thresholds, every CAN port
of the board delivered frames, and no protection trip that stops charge or discharge is active
(the agent only switches slots while none is, so a trip is the update's doing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

REQUIRED_PROTECTION = frozenset({
    "cell_voltage_max_v", "cell_voltage_min_v", "temp_max_c", "temp_min_c",
    "charge_current_a", "discharge_current_a",
})  # fmt: skip
MIN_CYCLE_FRACTION = 0.8


class BmsProbe(Protocol):
    """What the agent can observe of the running BMS (on a board, its own task monitor)."""

    def boot_error(self) -> str | None: ...

    def main_cycles(self) -> int: ...

    def main_period_s(self) -> float: ...

    def protection_thresholds(self) -> dict[str, float]: ...

    def can_frames_received(self) -> dict[str, int]:
        """Frames each CAN bus delivered since boot, by bus name."""
        ...

    def trips(self) -> tuple[str, ...]: ...

    def path_closed(self) -> bool: ...

    def current_a(self) -> float: ...


@dataclass(frozen=True)
class HealthResult:
    passed: bool
    problems: tuple[str, ...]

    @property
    def summary(self) -> str:
        return "; ".join(self.problems) or "BMS runs, protection table loaded, CAN alive"


def check_health(probe: BmsProbe, window_s: float) -> HealthResult:
    """The verdict after ``window_s`` of running since boot."""
    error = probe.boot_error()
    if error is not None:
        return HealthResult(False, (f"BMS did not start: {error}",))
    problems = []
    expected = window_s / probe.main_period_s()
    cycles = probe.main_cycles()
    if cycles < MIN_CYCLE_FRACTION * expected:
        problems.append(f"BMS main task ran {cycles} times in {window_s:g} s "
                        f"(expected ≥ {math.ceil(MIN_CYCLE_FRACTION * expected)})")  # fmt: skip
    thresholds = probe.protection_thresholds()
    missing = sorted(REQUIRED_PROTECTION - set(thresholds))
    if missing:
        problems.append(f"protection table lacks {', '.join(missing)}")
    bad = sorted(name for name, value in thresholds.items() if not math.isfinite(value))
    if bad:
        problems.append(f"protection thresholds not finite: {', '.join(bad)}")
    silent = sorted(port for port, frames in probe.can_frames_received().items() if frames == 0)
    if silent:
        problems.append(f"CAN silent on {', '.join(silent)}")
    trips = probe.trips()
    if trips:
        problems.append(f"protection tripped after boot: {', '.join(trips)}")
    return HealthResult(not problems, tuple(problems))
