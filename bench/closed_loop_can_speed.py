"""Closed-loop simulation speed with wire-level CAN, against the open-loop plant in the same
process, and where the time goes.

Two runs of the built-in scenarios at their own timing (1 s main cycle, internal bus on
python-can's ``virtual`` interface, every frame encoded and decoded with cantools):

- ``forklift-80v-shift``: the full 8-hour shift (28 800 s, 25S2P, three slaves);
  goal: under 60 s of wall time, that is at least 480× real time;
- ``ess-string-288s``: 600 s of the 288S string on sixteen slaves; goal: at least 500×.

The baseline is the same scenario with ``controller = "open-loop"``: the same plant, runner,
recorder and truth monitor, with no BMS, boards or bus. The ratio closed / open is the cost of
the BMS with its CAN. A cProfile run on a slice of each scenario says where that cost goes:
time spent in each function (C calls, NumPy and the standard library charged to the code that
called them) grouped by layer, and our package's top functions by cumulative time. As
cProfile inflates call-heavy code, the same slice is also timed unprofiled, part by part.
"""

from __future__ import annotations

import copy
import cProfile
import os
import pstats
import time
from collections import defaultdict

from cellwarden.model import Scenario
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation

# (scenario, simulated seconds timed, goal in × real time, simulated seconds profiled)
RUNS = [
    ("forklift-80v-shift", 28_800.0, 28_800.0 / 60.0, 3_600.0),
    ("ess-string-288s", 600.0, 500.0, 120.0),
]
TOP_FUNCTIONS = 10

LAYERS = [  # (path fragment, layer); the first that matches names the layer
    ("/cantools/", "CAN encode/decode (cantools, codec, E2E CRC)"),
    ("/cellwarden/comms/codec.py", "CAN encode/decode (cantools, codec, E2E CRC)"),
    ("/cellwarden/comms/e2e.py", "CAN encode/decode (cantools, codec, E2E CRC)"),
    ("/can/", "python-can virtual bus (send copies, queues)"),
    ("/cellwarden/comms/can_bus.py", "python-can virtual bus (send copies, queues)"),
    ("/cellwarden/comms/", "internal protocol: master chain, slave firmware"),
    ("/cellwarden/simulation/daisy_chain.py", "internal protocol: master chain, slave firmware"),
    ("/cellwarden/bms/", "BMS tasks (main and protection)"),
    ("/cellwarden/hardware/", "simulated boards (front ends, sensors, power path)"),
    ("/cellwarden/plant/", "plant"),
    ("/cellwarden/", "runner, recorder, truth monitor"),
]


def _variant(scenario: Scenario, controller: str) -> Scenario:
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    data["controller"] = controller
    return Scenario.model_validate(data)


def _timed(scenario: Scenario, simulated_s: float) -> tuple[float, Simulation]:
    """Wall seconds of a run (building the world excluded) and the simulation."""
    simulation = Simulation(scenario, duration_s=simulated_s)
    started = time.perf_counter()
    simulation.run()
    return time.perf_counter() - started, simulation


def _own_layer(path: str) -> str | None:
    """The layer of a source file of ours or of a library we drive; None for C calls, NumPy
    and the standard library, which are charged to their caller."""
    path = path.replace("\\", "/")
    return next((layer for fragment, layer in LAYERS if fragment in path), None)


def _layer_shares(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time per layer, each function's time charged per caller where needed."""
    table = stats.stats  # type: ignore[attr-defined]
    resolved: dict[tuple, str] = {}

    def layer_of(func: tuple, seen: frozenset) -> str:
        if func in resolved:
            return resolved[func]
        own = _own_layer(func[0])
        if own is None:
            callers = table.get(func, (0, 0, 0, 0, {}))[4]
            candidates = [c for c in callers if c not in seen and c != func]
            if candidates:
                heaviest = max(candidates, key=lambda c: callers[c][3])
                own = layer_of(heaviest, seen | {func})
            else:
                own = "other (interpreter, start-up)"
        resolved[func] = own
        return own

    seconds: dict[str, float] = defaultdict(float)
    for func, (_, _, own_s, _, callers) in table.items():
        if _own_layer(func[0]) is not None or not callers:
            seconds[layer_of(func, frozenset())] += own_s
            continue
        for caller, (_, _, from_caller_s, _) in callers.items():  # C calls: per caller
            if caller == func:  # recursion: the layer of the outermost caller
                seconds[layer_of(func, frozenset())] += from_caller_s
            else:
                seconds[layer_of(caller, frozenset({func}))] += from_caller_s
    return seconds


def _profile_rows(name: str, scenario: Scenario, simulated_s: float) -> list[dict]:
    simulation = Simulation(scenario, duration_s=simulated_s)
    profiler = cProfile.Profile()
    profiler.enable()
    simulation.run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total_s = stats.total_tt  # type: ignore[attr-defined]
    rows: list[dict] = []
    shares = sorted(_layer_shares(stats).items(), key=lambda item: -item[1])
    for layer, seconds in shares:
        rows.append(
            {
                "scenario": f"{name} ({simulated_s:.0f} s, profiled)",
                "kind": "layer",
                "what": layer,
                "calls": "",
                "seconds": seconds,
                "share_pct": 100.0 * seconds / total_s,
            }
        )
    ours = [
        (func, data)
        for func, data in stats.stats.items()  # type: ignore[attr-defined]
        if "/cellwarden/" in func[0].replace("\\", "/")
    ]
    ours.sort(key=lambda item: -item[1][3])
    for (path, line, function), (_, calls, _, cumulative_s, _) in ours[:TOP_FUNCTIONS]:
        module = path.replace("\\", "/").split("/cellwarden/")[-1]
        rows.append(
            {
                "scenario": f"{name} ({simulated_s:.0f} s, profiled)",
                "kind": "top cumulative",
                "what": f"{module}:{line} {function}",
                "calls": calls,
                "seconds": cumulative_s,
                "share_pct": 100.0 * cumulative_s / total_s,
            }
        )
    return rows


def _cycle_rows(name: str, scenario: Scenario, simulated_s: float) -> list[dict]:
    """Unprofiled wall time per main cycle of the string's parts, timed by wrapping methods
    of the first string's objects (nested parts say what they sit within)."""
    simulation = Simulation(scenario, duration_s=simulated_s)
    node = simulation.controller.nodes[0]
    spent: dict[str, float] = {}

    def timed(owner: object, method: str, label: str) -> None:
        inner = getattr(owner, method)
        spent.setdefault(label, 0.0)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        setattr(owner, method, wrapper)

    chain = node.daisy_chain
    timed(node.chain, "trigger", "master: commands + trigger (encode + send)")
    timed(chain, "service", "daisy chain: slaves' firmware + transport")
    timed(chain._batch, "prepare", "  slaves: front ends, the string at once")
    timed(chain._reports, "encode_string", "  slaves' reports: encode (arrays)")
    timed(chain.port, "send_block", "  slaves' reports: onto the bus (one block)")
    timed(chain.port, "send", "  slaves' reports: onto the bus (frame by frame)")
    timed(chain.slaves, "tick", "  slaves' firmware: commands, reports, bleeders")
    timed(chain.slaves, "_report_together", "    reports, every slave's at once")
    timed(chain.slaves, "_report", "    reports, one slave at a time")
    timed(chain.slaves, "_apply_balancing", "    bleeder update")
    timed(node.bms, "main_task", "BMS main task (master receive within)")
    timed(node.chain, "_receive", "  master: receive + decode + store")
    timed(node.bms.estimation, "update", "  estimation (cell model, SoC filter)")
    timed(node.bms, "fast_task", "BMS protection task")
    if getattr(simulation.controller, "_bus_ticks", None):
        timed(simulation.controller, "_buses", "charger and vehicle buses, both ends")
    timed(simulation.plant, "advance", "plant")
    started = time.perf_counter()
    simulation.run()
    total_s = time.perf_counter() - started
    cycles = simulated_s / scenario.timing.main_period_s
    rows = [{"scenario": name, "part": "whole run", "ms_per_cycle": 1e3 * total_s / cycles,
             "share_pct": 100.0}]  # fmt: skip
    for label, seconds in spent.items():
        rows.append(
            {
                "scenario": name,
                "part": label,
                "ms_per_cycle": 1e3 * seconds / cycles,
                "share_pct": 100.0 * seconds / total_s,
            }
        )
    return rows


def measure() -> dict[str, list[dict[str, float | str]]]:
    speed, profile, parts = [], [], []
    for name, simulated_s, goal, profiled_s in RUNS:
        scenario = load_builtin(name)
        open_loop = _variant(scenario, "open-loop")
        _timed(scenario, 10.0)  # warm up: numba kernels, DBC parsing, caches
        load_before = os.getloadavg()[0]
        closed_s, simulation = _timed(scenario, simulated_s)
        open_s, _ = _timed(open_loop, simulated_s)
        speed.append(
            {
                "scenario": name,
                "cells": simulation.plant.layout.cell_count,
                "slaves": sum(s.slaves for s in scenario.system.strings),
                "main_cycle_s": scenario.timing.main_period_s,
                "simulated_s": simulated_s,
                "wall_s": closed_s,
                "real_time_factor": simulated_s / closed_s,
                "goal_real_time_factor": goal,
                "meets_goal": str(simulated_s / closed_s >= goal),
                "open_loop_wall_s": open_s,
                "open_loop_real_time_factor": simulated_s / open_s,
                "closed_over_open": closed_s / open_s,
                "wall_s_per_main_cycle_ms": 1e3
                * closed_s
                / (simulated_s / scenario.timing.main_period_s),
                "load_avg_1min": max(load_before, os.getloadavg()[0]),
            }
        )
        profile += _profile_rows(name, scenario, profiled_s)
        parts += _cycle_rows(name, scenario, profiled_s)
    return {
        "closed_loop_can_speed": speed,
        "closed_loop_can_profile": profile,
        "closed_loop_can_cycle": parts,
    }
