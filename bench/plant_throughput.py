"""Plant throughput in cell-steps per second, against a bare NumPy update of the same state.

The baseline advances the same per-cell state (SoC and two RC voltages under a current) with
five in-place NumPy operations per step: the least any vectorised simulator must do. The
plant does far more per cell (Kirchhoff over groups and strings, the bus, hysteresis, heat,
the truth watch), so a ratio above 1 means the compiled kernel beats bare NumPy anyway.
"""

from __future__ import annotations

import time

import numpy as np

from cellwarden.model import SystemSpec
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.power_path import SwitchStates
from cellwarden.plant.system_plant import SystemPlant

# (label, series, parallel, strings): 16, 288, 4000 and 100 000 cells
SIZES = [
    ("16S standalone", 16, 1, 1),
    ("288S string", 288, 1, 1),
    ("250S16P string", 250, 16, 1),
    ("25 x 250S16P", 250, 16, 25),
]
DT_S = 0.01
MIN_SECONDS = 1.0


def build_plant(series: int, parallel: int, strings: int) -> SystemPlant:
    """An LFP system of the given shape, connected, under a 0.5C discharge."""
    if strings == 1 and series <= 16:
        string = {
            "pack": {"cell": "lfp-prismatic-100ah", "series": series},
            "power_path": {"kind": "mosfet", "max_current_a": 200},
        }
        spec = {"architecture": "standalone", "strings": [string]}
    else:
        string = {
            "count": strings,
            "cells_per_slave": 18,
            "pack": {"cell": "lfp-prismatic-280ah", "series": series, "parallel": parallel},
        }
        spec = {
            "architecture": "multi-master" if strings > 1 else "master-slave",
            "strings": [string],
        }
    plant = SystemPlant(SystemSpec.model_validate(spec), rng=np.random.default_rng(1), dt_s=DT_S)
    for index, path in enumerate(plant.power_paths):
        closed = (
            SwitchStates(charge=True, discharge=True)
            if path.spec.kind.value == "mosfet"
            else SwitchStates(negative=True, positive=True)
        )
        plant.set_switches(index, closed)
    plant.set_duty(DutyMode.CURRENT, 0.5 * 280.0 * parallel * strings)
    return plant


def _timed(run, steps: int) -> float:
    """Seconds per step, repeating until at least MIN_SECONDS have passed."""
    run(max(1, steps // 10))  # warm up (compilation, caches)
    total_steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < MIN_SECONDS:
        run(steps)
        total_steps += steps
    return (time.perf_counter() - started) / total_steps


def baseline_seconds_per_step(cells: int) -> float:
    """Bare NumPy: SoC and two RC voltages of every cell under a current, in place."""
    rng = np.random.default_rng(0)
    soc, v1, v2 = rng.random(cells), np.zeros(cells), np.zeros(cells)
    current = rng.normal(-50.0, 1.0, cells)
    gain, a1, a2 = np.full(cells, DT_S / 3600 / 280), np.full(cells, 0.99), np.full(cells, 0.999)
    b1, b2 = np.full(cells, 1e-6), np.full(cells, 2e-6)

    def run(steps: int) -> None:
        for _ in range(steps):
            np.add(soc, current * gain, out=soc)
            np.multiply(v1, a1, out=v1)
            np.add(v1, b1 * current, out=v1)
            np.multiply(v2, a2, out=v2)
            np.add(v2, b2 * current, out=v2)

    return _timed(run, max(10, 2_000_000 // cells))


def measure() -> list[dict[str, float | str]]:
    rows = []
    for label, series, parallel, strings in SIZES:
        plant = build_plant(series, parallel, strings)
        cells = plant.layout.cell_count
        plant_s = _timed(plant.advance_steps, max(10, 4_000_000 // cells))
        base_s = baseline_seconds_per_step(cells)
        rows.append(
            {
                "system": label,
                "cells": cells,
                "plant_steps_per_s": 1.0 / plant_s,
                "plant_cell_steps_per_s": cells / plant_s,
                "baseline_cell_steps_per_s": cells / base_s,
                "ratio_to_numpy": base_s / plant_s,
                "state_bytes_per_cell": (plant.cs.nbytes + plant.cp.nbytes) / cells,
            }
        )
    return rows
