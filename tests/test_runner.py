"""The runner: one clock, task rates, scheduled faults and profile segments, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.model import ConfigError
from cellwarden.model.scenario import TimingSpec
from cellwarden.plant.duty import DutyMode
from cellwarden.simulation.catalogue import builtin_scenario_names, load_builtin
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.runner import Simulation


class RecordingController:
    """A controller that only notes when each of its two tasks ran."""

    def __init__(self, scenario, plant, events) -> None:
        self.plant = plant
        self.fast: list[float] = []
        self.slow: list[float] = []
        self.fast_period = scenario.timing.protection_period_s
        self.slow_period = scenario.timing.main_period_s

    def tasks(self) -> list[PeriodicTask]:
        return [
            PeriodicTask("protection", self.fast_period, self.fast.append),
            PeriodicTask("main", self.slow_period, self.slow.append),
        ]


def _scenario(**changes):
    scenario = load_builtin("escooter-13s-urban")
    return scenario.model_copy(update=changes)


def test_tasks_run_at_their_own_rates_on_one_clock():
    """A 10 ms task runs 10x as often as a 100 ms one, both from t = 0, exactly on their ticks."""
    controller = {}

    def factory(scenario, plant, events):
        controller["c"] = RecordingController(scenario, plant, events)
        return controller["c"]

    timing = TimingSpec(plant_step_s=0.01, protection_period_s=0.01, main_period_s=0.1)
    Simulation(_scenario(timing=timing), controller_factory=factory, duration_s=2.0).run()
    recorded = controller["c"]
    assert len(recorded.fast) == 201 and len(recorded.slow) == 21
    assert np.allclose(np.diff(recorded.fast), 0.01)
    assert np.allclose(np.diff(recorded.slow), 0.1)


def test_profile_segments_are_applied_at_their_start_times():
    """The plant's duty follows the profile: a logged row (the step ending at its time) carries
    the load of the segment in force during that step; parked means no load current."""
    simulation = Simulation(_scenario(), duration_s=900.0)
    result = simulation.run()
    frame = result.recorder.pack_frame().iloc[1:]
    profile = result.profile
    modes = [DutyMode(int(profile.mode[profile.segment_at(t - 1e-6)])) for t in frame["time_s"]]
    loads = frame["load_current_a"].to_numpy()
    parked = np.array([m is DutyMode.REST for m in modes])
    riding = np.array([m is DutyMode.POWER for m in modes])
    assert parked.any() and riding.any()
    assert np.all(loads[parked] == 0.0)
    assert loads[riding].max() > 5.0


def test_faults_are_injected_at_their_time_and_logged():
    """A scheduled external short appears at its time: an event, then a large bus current."""
    faults = [{"kind": "external_short", "at_s": 30.0, "resistance_ohm": 0.5}]
    base = _scenario(controller="open-loop").model_dump(mode="json")
    scenario = _scenario().model_validate({**base, "faults": faults})
    result = Simulation(scenario, duration_s=40.0).run()
    injected = result.events.with_code("FAULT_INJECTED")
    assert len(injected) == 1 and injected[0].time_s == pytest.approx(30.0)
    frame = result.recorder.pack_frame()
    before = frame[frame["time_s"] < 30.0]["pack_current_a"].abs().max()
    after = frame[frame["time_s"] > 30.5]["pack_current_a"]
    # about 48 V over 0.5 ohm plus pack and path: an open-loop plant keeps feeding the short
    assert after.min() < -60.0 and before < 60.0


def test_same_seed_gives_the_same_run_and_another_seed_does_not():
    first = Simulation(_scenario(), duration_s=300.0).run().recorder.pack_frame()
    again = Simulation(_scenario(), duration_s=300.0).run().recorder.pack_frame()
    other = Simulation(_scenario(seed=99), duration_s=300.0).run().recorder.pack_frame()
    assert first.equals(again)
    assert not np.allclose(first["soc_min_pct"], other["soc_min_pct"])


def test_every_builtin_scenario_builds_and_runs_briefly():
    """Each built-in scenario validates and simulates a few seconds without leaving its limits."""
    for name in builtin_scenario_names():
        result = Simulation(load_builtin(name), duration_s=5.0).run()
        assert result.summary["seconds_beyond_msl_max"] == 0.0, name
        assert result.summary["cells"] == result.scenario.system.cell_count


def test_non_positive_duration_is_a_config_error():
    with pytest.raises(ConfigError, match="duration must be positive"):
        Simulation(_scenario(), duration_s=0.0)
