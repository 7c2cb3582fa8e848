"""BMS cycle compute time for 16, 288 and 4 000 cells (250S16P: 250 channels on fourteen
slaves), against a bare NumPy pass over the measured channels in the same process.

The tasks are timed inside a running closed loop (the plant moving, the slaves reporting),
after its first second (power-up, precharge, the estimator's start). The baseline is the
least a BMS cycle must do: find the extreme cell voltages and count charge into every cell's
SoC with NumPy. The goal is a main cycle of at most 1 ms for 288 cells, so a Python master
fits easily in a 100 ms cycle.

Each loop runs twice: with the estimation compiled (numba, where installed: the cell-model
lookup and the SoC filter, ``bms.soc_kernel``) and with its NumPy reference, which gives the
same numbers to the last bit. A second table times the SoC filter's step alone, on a settled
string of 288 and of 4000 cells, both ways.
"""

from __future__ import annotations

import time

import numpy as np

from cellwarden.bms.cell_model import CellModel
from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.compiled import HAVE_NUMBA
from cellwarden.model import Scenario
from cellwarden.model.bms import EstimationSettings
from cellwarden.model.library import load_cell
from cellwarden.simulation.runner import Simulation

CELLS_PER_SLAVE = 18
DURATION_S = 20.0
WARM_UP_S = 1.0
STEP_CELL = "lfp-prismatic-280ah"
STEP_DT_S = 0.1
STEP_CURRENT_C = -0.36  # a steady discharge


def _scenario(series: int, parallel: int = 1) -> Scenario:
    string = {"pack": {"cell": "lfp-prismatic-280ah", "series": series, "parallel": parallel}}
    if series <= 16:
        string["power_path"] = {"kind": "mosfet", "max_current_a": 250}
        architecture = "standalone"
    else:
        string["cells_per_slave"] = CELLS_PER_SLAVE
        architecture = "master-slave"
    return Scenario.model_validate(
        {
            "name": f"bench-{series}s{parallel}p",
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


def _closed_loop_ms(series: int, parallel: int, use_numba: bool) -> tuple[float, float, float]:
    """Mean main cycle, its estimation part and the fast cycle (ms) in one closed loop."""
    simulation = Simulation(_scenario(series, parallel))
    bms = simulation.controller.bms[0]
    bms.model.use_numba = bms.estimator.use_numba = use_numba
    main, fast, estimation = [], [], []
    bms.main_task = _timed(bms.main_task, main)
    bms.fast_task = _timed(bms.fast_task, fast)
    update = bms.estimation.update

    def timed_update(*args):
        started = time.perf_counter()
        result = update(*args)
        estimation.append(time.perf_counter() - started)
        return result

    bms.estimation.update = timed_update
    simulation.run()
    after_warm_up = estimation[-len(main) :]  # one update per main task
    return tuple(1e3 * float(np.mean(spent)) for spent in (main, after_warm_up, fast))


def _loop_rows() -> list[dict[str, float | str]]:
    rows = []
    for series, parallel in ((16, 1), (288, 1), (250, 16)):
        main_ms, estimation_ms, fast_ms = _closed_loop_ms(series, parallel, HAVE_NUMBA)
        main_numpy_ms, estimation_numpy_ms, _ = _closed_loop_ms(series, parallel, False)
        base_ms = 1e3 * _baseline_s(series, 3000)
        rows.append(
            {
                "cells": series * parallel,
                "measured_channels": series,
                "main_cycle_ms": main_ms,
                "main_cycle_numpy_ms": main_numpy_ms,
                "estimation_ms": estimation_ms,
                "estimation_numpy_ms": estimation_numpy_ms,
                "fast_cycle_ms": fast_ms,
                "baseline_ms": base_ms,
                "main_ratio_to_baseline": main_ms / base_ms,
                "share_of_100ms_cycle_pct": 100.0 * (main_ms + 10 * fast_ms) / 100.0,
            }
        )
    return rows


class _SettledString:
    """A string's estimator, started at rest and then a minute into a steady discharge whose
    voltages its own model gives (OCV + R0·I, 1 mV noise), as a BMS would have it."""

    def __init__(self, cells: int, use_numba: bool) -> None:
        cell = load_cell(STEP_CELL)
        self.model = CellModel(cell, use_numba=use_numba)
        self.estimator = SocEstimator(self.model, cells, EstimationSettings(),
                                      0.002 * cell.capacity_ah, use_numba=use_numba)  # fmt: skip
        self._rng = np.random.default_rng(0)
        self.temp_c = self._rng.uniform(20.0, 30.0, cells)
        self._soc = self._rng.uniform(0.3, 0.7, cells)
        self.current_a = np.full(cells, STEP_CURRENT_C * cell.capacity_ah)
        self._capacity_as = 3600.0 * cell.capacity_ah
        self.estimator.start(self.model.at(self._soc, self.temp_c).ocv_v, self.temp_c, 0.0, True)
        for _ in range(600):
            self.step()

    def voltage_v(self) -> np.ndarray:
        """The cells' voltages after the next step's discharge."""
        self._soc += self.current_a * STEP_DT_S / self._capacity_as
        point = self.model.at(self._soc, self.temp_c)
        noise = self._rng.normal(0.0, 0.001, self._soc.size)
        return point.ocv_v + point.r0_ohm * self.current_a + noise

    def step(self, voltage_v: np.ndarray | None = None) -> tuple[float, float]:
        """One main-task estimation (lookup, then filter step): the seconds each took."""
        voltage_v = self.voltage_v() if voltage_v is None else voltage_v
        estimator = self.estimator
        started = time.perf_counter()
        point = self.model.at(estimator.soc, self.temp_c, estimator.hyst)
        looked_up = time.perf_counter()
        estimator.step(STEP_DT_S, self.current_a, self.current_a, voltage_v, self.temp_c, point)
        return looked_up - started, time.perf_counter() - looked_up


def _step_ms(cells: int, use_numba: bool, repeats: int) -> tuple[float, float]:
    """The model lookup and the filter step (ms): the median over 7 rounds of their means."""
    string = _SettledString(cells, use_numba)
    rounds = []
    for _ in range(7):
        voltages = [string.voltage_v() for _ in range(repeats)]
        rounds.append(np.mean([string.step(voltage_v) for voltage_v in voltages], axis=0))
    lookup_s, step_s = np.median(rounds, axis=0)
    return 1e3 * lookup_s, 1e3 * step_s


def _step_rows() -> list[dict[str, float | str]]:
    rows = []
    for cells, repeats in ((288, 300), (4000, 30)):
        lookup_numpy_ms, step_numpy_ms = _step_ms(cells, False, repeats)
        lookup_ms, step_ms = _step_ms(cells, HAVE_NUMBA, repeats)
        rows.append(
            {
                "cells": cells,
                "compiled": "numba" if HAVE_NUMBA else "no (numba missing)",
                "soc_step_ms": step_ms,
                "soc_step_numpy_ms": step_numpy_ms,
                "lookup_ms": lookup_ms,
                "lookup_numpy_ms": lookup_numpy_ms,
                "step_speed_up": step_numpy_ms / step_ms,
            }
        )
    return rows


def measure() -> dict[str, list[dict[str, float | str]]]:
    return {"bms_cycle": _loop_rows(), "bms_cycle_soc_step": _step_rows()}
