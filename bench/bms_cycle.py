"""BMS cycle compute time for 16 and 288 cells, against a bare NumPy pass in the same process.

The tasks are timed inside a running closed loop (the plant moving, the slaves reporting),
after its first second (power-up, precharge, the estimator's start). The baseline is the
least a BMS cycle must do: find the extreme cell voltages and count charge into every cell's
SoC with NumPy. The goal is a main cycle of at most 1 ms for 288 cells, so a Python master
fits easily in a 100 ms cycle.
"""

from __future__ import annotations

import time

import numpy as np

from cellwarden.model import Scenario
from cellwarden.simulation.runner import Simulation

CELLS_PER_SLAVE = 18
DURATION_S = 20.0
WARM_UP_S = 1.0


def _scenario(series: int) -> Scenario:
    string = {"pack": {"cell": "lfp-prismatic-280ah", "series": series}}
    if series <= 16:
        string["power_path"] = {"kind": "mosfet", "max_current_a": 250}
        architecture = "standalone"
    else:
        string["cells_per_slave"] = CELLS_PER_SLAVE
        architecture = "master-slave"
    return Scenario.model_validate(
        {
            "name": f"bench-{series}s",
            "sector": "bench",
            "duration_s": DURATION_S,
            "system": {"architecture": architecture, "strings": [string]},
            "profile": {"kind": "steps", "parameters": {"mode_1": 1, "value_1": 100.0,
                                                        "duration_1_s": DURATION_S}},
        }
    )  # fmt: skip


def _timed(task, spent: list[float]):
    """``task`` that also notes the seconds each call after the warm-up took."""

    def run(now_s: float) -> None:
        started = time.perf_counter()
        task(now_s)
        if now_s >= WARM_UP_S:
            spent.append(time.perf_counter() - started)

    return run


def _baseline_s(cells: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    voltage, soc = 3.3 + 0.01 * rng.random(cells), rng.random(cells)
    started = time.perf_counter()
    for _ in range(repeats):
        float(voltage.max())
        float(voltage.min())
        soc += 1e-6
    return (time.perf_counter() - started) / repeats


def measure() -> list[dict[str, float | str]]:
    rows = []
    for series in (16, 288):
        simulation = Simulation(_scenario(series))
        bms = simulation.controller.bms[0]
        main, fast = [], []
        bms.main_task = _timed(bms.main_task, main)
        bms.fast_task = _timed(bms.fast_task, fast)
        simulation.run()
        main_s, fast_s = float(np.mean(main)), float(np.mean(fast))
        base_s = _baseline_s(series, 3000)
        rows.append(
            {
                "cells": series,
                "main_cycle_ms": 1e3 * main_s,
                "fast_cycle_ms": 1e3 * fast_s,
                "baseline_ms": 1e3 * base_s,
                "main_ratio_to_baseline": main_s / base_s,
                "share_of_100ms_cycle_pct": 100.0 * (main_s + 10 * fast_s) / 0.1,
            }
        )
    return rows
