"""Many simulations on one thread, each paced at the same multiple of real time (a fleet of
devices in one process, without threads contending for the interpreter)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from cellwarden.simulation.runner import Simulation

IDLE_S = 0.002  # nap when every simulation is ahead of its wall-clock time


def run_together(simulations: Sequence[Simulation], speed: float | None = None) -> list[float]:
    """Run every simulation to its end, interleaved step by step; a step to simulated time t
    runs once t / ``speed`` wall seconds have passed (as fast as possible without ``speed``).
    Returns the wall seconds each one took; call ``result`` on each afterwards."""
    started = time.perf_counter()
    running = {index: simulation.steps() for index, simulation in enumerate(simulations)}
    clock_s = dict.fromkeys(running, 0.0)
    wall_s = [0.0] * len(simulations)
    while running:
        allowed_s = math.inf if speed is None else (time.perf_counter() - started) * speed
        for index, steps in list(running.items()):
            while clock_s[index] <= allowed_s:
                try:
                    clock_s[index] = next(steps)
                except StopIteration:
                    wall_s[index] = time.perf_counter() - started
                    del running[index]
                    break
        if running and speed is not None:
            time.sleep(IDLE_S)
    return wall_s
