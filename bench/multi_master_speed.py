"""Closed-loop speed of a 4-string × 288S multi-master system with wire-level CAN, against the
same system open loop in the same process.

The system is built from the built-in ``ess-string-288s`` scenario (288S LFP 280 Ah on sixteen
18-cell slaves, peak shaving): four such strings in parallel behind a system master
(``architecture = "multi-master"``, ``topology = "parallel"``, the string ``count = 4``, the
PCS's charge current × 4), over a day. Every cell voltage and temperature crosses the internal
buses as real CAN frames (DBC layouts, alive counter and CRC, python-can ``virtual`` buses), and
the string masters report to the system master over the system bus.

Goal: the whole day in under 5 minutes of wall time on one core, i.e. at least 288× real time.
By default a slice of ``SIMULATED_S`` seconds is timed and the day's wall time projected from
it; ``python -m bench.multi_master_speed --full`` (or ``CELLWARDEN_BENCH_FULL=1``) runs the
whole day. The baseline is the same system with ``controller = "open-loop"`` (plant, runner,
recorder, no BMS or buses); the ratio closed / open is the cost of the BMS with its CAN, the
figure to compare across runs on a noisy machine. A cProfile run of a shorter slice says where
the time goes, by layer (as in ``closed_loop_can_speed``).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

from bench.closed_loop_can_speed import _profile_rows
from cellwarden.model import Scenario
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation

BASE = "ess-string-288s"
STRINGS = 4
DAY_S = 86_400.0
SIMULATED_S = 600.0  # the slice timed by default
PROFILED_S = 60.0
GOAL_WALL_S = 300.0  # a day in five minutes
FULL = os.environ.get("CELLWARDEN_BENCH_FULL", "") not in ("", "0")


def system(controller: str | None = None) -> Scenario:
    """Four ``ess-string-288s`` strings in parallel behind a system master, for a day."""
    data = copy.deepcopy(load_builtin(BASE).model_dump(mode="json"))
    data["name"] = f"{BASE}-x{STRINGS}-multi-master"
    data["duration_s"] = DAY_S
    data["system"]["architecture"] = "multi-master"
    data["system"]["topology"] = "parallel"
    data["system"]["strings"][0]["count"] = STRINGS
    data["charger"]["max_current_a"] *= STRINGS
    if controller is not None:
        data["controller"] = controller
    return Scenario.model_validate(data)


def _timed(scenario: Scenario, simulated_s: float) -> tuple[float, int]:
    """Wall seconds of a run (building the world excluded) and the CAN frames it sent."""
    simulation = Simulation(scenario, duration_s=simulated_s)
    network = getattr(simulation.controller, "network", None)
    ports = list(network.ports) if network is not None else []  # closed at the end of a run
    started = time.perf_counter()
    simulation.run()
    return time.perf_counter() - started, sum(port.sent for port in ports)


def measure(full: bool = FULL, simulated_s: float = SIMULATED_S) -> dict[str, list[dict]]:
    simulated_s = DAY_S if full else simulated_s
    try:
        closed = system()
    except Exception as error:  # the multi-master wiring may not take this system yet
        return {"multi_master_speed": [{"system": f"{BASE} × {STRINGS}", "error": str(error)}]}
    open_loop = system("open-loop")
    _timed(closed, 10.0)  # warm up: numba kernels, DBC parsing, caches
    _timed(open_loop, 10.0)
    load_before = os.getloadavg()[0]
    closed_s, frames = _timed(closed, simulated_s)
    open_s, _ = _timed(open_loop, simulated_s)
    rate = simulated_s / closed_s
    speed = {
        "system": f"{STRINGS} × {BASE} (multi-master, parallel)",
        "cells": closed.system.cell_count,
        "slaves": sum(s.slaves * s.count for s in closed.system.strings),
        "main_cycle_s": closed.timing.main_period_s,
        "simulated_s": simulated_s,
        "wall_s": closed_s,
        "simulated_s_per_wall_s": rate,
        "day_wall_s_projected": DAY_S / rate,
        "goal_day_wall_s": GOAL_WALL_S,
        "meets_goal": str(DAY_S / rate <= GOAL_WALL_S),
        "can_frames_per_simulated_s": frames / simulated_s,
        "open_loop_wall_s": open_s,
        "open_loop_simulated_s_per_wall_s": simulated_s / open_s,
        "closed_over_open": closed_s / open_s,
        "load_avg_1min": max(load_before, os.getloadavg()[0]),
    }
    profile = _profile_rows(speed["system"], closed, PROFILED_S)
    return {"multi_master_speed": [speed], "multi_master_profile": profile}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", default=FULL, help="run the whole day")
    parser.add_argument("--seconds", type=float, default=SIMULATED_S, help="simulated slice")
    args = parser.parse_args(argv)
    result = measure(full=args.full, simulated_s=args.seconds)
    for title, rows in result.items():
        print(title)
        for row in rows:
            print("  " + ", ".join(
                f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
