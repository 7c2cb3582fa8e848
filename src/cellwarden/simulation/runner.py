"""One simulated clock driving the plant, the world's profile and faults, and the controller."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellwarden.model.errors import ConfigError
from cellwarden.model.scenario import Scenario
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode, DutyProfile
from cellwarden.plant.profiles import PackRating, build_profile
from cellwarden.plant.system_plant import SystemPlant
from cellwarden.simulation.bms_controller import closed_loop
from cellwarden.simulation.controller import ControllerFactory, PeriodicTask, open_loop
from cellwarden.simulation.events import EventLog
from cellwarden.simulation.recorder import Recorder
from cellwarden.simulation.truth import GroundTruthMonitor


@dataclass
class RunResult:
    """Everything a run leaves behind."""

    scenario: Scenario
    plant: SystemPlant
    profile: DutyProfile
    events: EventLog
    recorder: Recorder
    truth: GroundTruthMonitor
    controller: Any
    wall_s: float
    summary: dict[str, Any] = field(default_factory=dict)


def pack_rating(plant: SystemPlant) -> PackRating:
    """Figures a duty profile scales itself to, for the whole system."""
    strings = plant.layout.strings
    in_series = plant.layout.branch_count == 1 and len(strings) > 1
    capacity_ah = (
        min(s.pack.capacity_ah for s in strings)
        if in_series
        else sum(s.pack.capacity_ah for s in strings)
    )

    def limit(getter) -> float:
        per_string = [getter(s) * s.pack.capacity_ah for s in strings]
        return min(per_string) if in_series else sum(per_string)

    return PackRating(
        nominal_voltage_v=plant.branch_nominal_voltage_v,
        capacity_ah=capacity_ah,
        max_discharge_current_a=limit(
            lambda s: s.pack.cell.effective_limits.discharge_current_c.upper.mol
        ),
        max_charge_current_a=limit(
            lambda s: s.pack.cell.effective_limits.charge_current_c.upper.mol
        ),
    )


class Simulation:
    """Builds a scenario's world and runs it on ticks of the plant step."""

    def __init__(
        self,
        scenario: Scenario,
        controller_factory: ControllerFactory | None = None,
        duration_s: float | None = None,
        can_log: Path | None = None,
    ) -> None:
        """``can_log`` writes every CAN frame of the closed loop to a candump log file."""
        self.scenario = scenario
        timing = scenario.timing
        self.dt_s = timing.plant_step_s
        self.duration_s = scenario.duration_s if duration_s is None else duration_s
        if self.duration_s <= 0:
            raise ConfigError(f"duration must be positive (got {self.duration_s} s)")
        rng = np.random.default_rng(scenario.seed)
        self.plant = SystemPlant(
            scenario.system,
            rng=rng,
            dt_s=self.dt_s,
            parameter_refresh_s=timing.parameter_refresh_s,
            spread=scenario.spread,
            initial=scenario.initial,
            ambient_temp_c=scenario.ambient_temp_c,
            charger=scenario.charger,
        )
        self.profile = build_profile(
            scenario.profile.kind,
            scenario.profile.parameters,
            rng,
            pack_rating(self.plant),
            self.duration_s,
        )
        self.events = EventLog()
        if controller_factory is None:
            if scenario.controller == "bms":
                controller_factory = functools.partial(closed_loop, can_log=can_log)
            else:
                controller_factory = open_loop
        self.controller = controller_factory(scenario, self.plant, self.events)
        self.recorder = Recorder(self.plant, telemetry=getattr(self.controller, "telemetry", None))
        self.truth = GroundTruthMonitor(self.plant, self.events)
        self._extra_tasks: list[PeriodicTask] = []

    def _ticks(self, seconds: float) -> int:
        return max(1, round(seconds / self.dt_s))

    def add_task(self, task: PeriodicTask) -> None:
        """Run ``task`` beside the controller's own (e.g. a serial console's poll)."""
        self._extra_tasks.append(task)

    def run(self, progress: bool = False, speed: float | None = None) -> RunResult:
        """Run to the end; ``progress`` shows a progress bar on the terminal; ``speed`` paces
        the simulated clock at that many times real time (default: as fast as possible)."""
        started = time.perf_counter()
        bar = _ProgressBar(self.duration_s) if progress else None
        for now_s in self.steps():
            if speed is not None:
                time.sleep(max(0.0, started + now_s / speed - time.perf_counter()))
            if bar is not None:
                bar.update(now_s)
        if bar is not None:
            bar.close()
        return self.result(time.perf_counter() - started)

    def steps(self) -> Iterator[float]:
        """Run to the end, yielding the simulated time after every advance of the plant (a
        caller may interleave many simulations on one thread); ``result`` afterwards."""
        total = round(self.duration_s / self.dt_s)
        tasks = [*self.controller.tasks(), *self._extra_tasks]
        task_periods = [self._ticks(task.period_s) for task in tasks]
        next_task = [0] * len(tasks)
        log_period = self._ticks(self.scenario.timing.log_period_s)
        next_log = 0
        faults = sorted(self.scenario.faults, key=lambda f: f.at_s)
        fault_ticks = [round(f.at_s / self.dt_s) for f in faults]
        fault_index = 0
        segment = -1
        next_segment = 0
        tick = 0
        while True:
            while fault_index < len(faults) and fault_ticks[fault_index] <= tick:
                fault = faults[fault_index]
                self.plant.inject(fault)
                self.events.add(
                    self.plant.time_s,
                    "plant",
                    "FAULT_INJECTED",
                    f"fault injected: {fault.kind}",
                    **fault.model_dump(),
                )
                fault_index += 1
            if tick >= next_segment:
                segment = self.profile.segment_at(tick * self.dt_s)
                self.plant.set_duty(
                    DutyMode(int(self.profile.mode[segment])), float(self.profile.value[segment])
                )
                following = self.profile.next_change_after(tick * self.dt_s)
                next_segment = (
                    total + 1
                    if math.isinf(following)
                    else max(tick + 1, round(following / self.dt_s))
                )  # a segment shorter than a step still lets the clock move
            for index, task in enumerate(tasks):
                if tick >= next_task[index]:
                    task.run(tick * self.dt_s)
                    next_task[index] += task_periods[index]
            if tick >= next_log:
                self.truth.observe()
                self.recorder.record()
                next_log += log_period
            if tick >= total:
                return
            upcoming = [next_log, next_segment, total, *next_task]
            if fault_index < len(faults):
                upcoming.append(fault_ticks[fault_index])
            target = min(upcoming)
            self.plant.advance((target - tick) * self.dt_s)
            tick = target
            yield tick * self.dt_s

    def result(self, wall_s: float) -> RunResult:
        """Close the controller's buses and sum the run up (after ``steps`` has ended)."""
        close = getattr(self.controller, "close", None)
        if close is not None:
            close()
        result = RunResult(
            scenario=self.scenario,
            plant=self.plant,
            profile=self.profile,
            events=self.events,
            recorder=self.recorder,
            truth=self.truth,
            controller=self.controller,
            wall_s=wall_s,
        )
        result.summary = summarise(result)
        return result


class _ProgressBar:
    """A rich progress bar over simulated seconds."""

    def __init__(self, total_s: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.task = self.progress.add_task("run", total=total_s)
        self.progress.start()

    def update(self, now_s: float) -> None:
        self.progress.update(self.task, completed=now_s)

    def close(self) -> None:
        self.progress.stop()


def summarise(result: RunResult) -> dict[str, Any]:
    """The run's key figures, as printed by ``cellwarden simulate --json``."""
    plant = result.plant
    bs = plant.bs
    truth = result.truth
    scenario = result.scenario
    events = result.events.events
    return {
        "scenario": scenario.name,
        "architecture": scenario.system.architecture.value,
        "sector": scenario.sector,
        "simulated_s": plant.time_s,
        "wall_s": result.wall_s,
        "cells": plant.layout.cell_count,
        "strings": plant.layout.string_count,
        "cell_voltage_min_v": truth.cell_voltage_range_v[0],
        "cell_voltage_max_v": truth.cell_voltage_range_v[1],
        "cell_temp_min_c": truth.cell_temp_range_c[0],
        "cell_temp_max_c": truth.cell_temp_range_c[1],
        "soc_min_pct": float(result.recorder.pack_frame()["soc_min_pct"].min()),
        "soc_max_pct": float(result.recorder.pack_frame()["soc_max_pct"].max()),
        "charge_in_ah": float(bs[k.B_CHARGED_AS].sum() / 3600.0),
        "charge_out_ah": float(bs[k.B_DISCHARGED_AS].sum() / 3600.0),
        "energy_in_wh": float(bs[k.B_CHARGED_J].sum() / 3600.0),
        "energy_out_wh": float(bs[k.B_DISCHARGED_J].sum() / 3600.0),
        "seconds_beyond_msl_max": float(truth.seconds_beyond_msl.max()),
        "event_count": len(events),
        "events": [e.as_dict() for e in events[:200]],
    }
