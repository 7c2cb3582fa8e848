"""The daisy chain's fast path (blocks of frames, one front-end pass per string) against its
frame-by-frame path: the same CAN log, byte for byte, and the same run, for a healthy string
and under chain faults."""

from __future__ import annotations

import copy

import pytest

from cellwarden.comms.can_bus import CanPort
from cellwarden.hardware.sim_cell_monitor import FrontEndBatch
from cellwarden.model import Scenario
from cellwarden.simulation import campaign
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation


def _scenario(name: str, fault: str | None, duration_s: float) -> Scenario:
    scenario = load_builtin(name)
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    if fault is not None:  # the campaign's own fault injection
        test = next(t for t in campaign.tests_for(scenario) if fault in t.name)
        data["faults"] = []
        test.prepare(scenario, data)
        data["timing"] = campaign.FIRMWARE_TIMING
    data["duration_s"] = duration_s
    return Scenario.model_validate(data)


def _run(scenario: Scenario, log) -> tuple:
    result = Simulation(scenario, can_log=log).run()
    bms = result.controller.bms[0]
    chain = result.controller.nodes[0].chain
    return (log.read_bytes(), result.recorder.pack_frame().to_numpy().tobytes(),
            bms.estimator.soc.tobytes(), chain.rejected_frames, chain.frozen_frames,
            [(e.time_s, e.code) for e in bms.log.events])  # fmt: skip


@pytest.mark.parametrize(("name", "fault", "duration_s"), [
    ("ess-string-288s", None, 40.0),
    ("forklift-80v-shift", "corrupted", 20.0),
    ("forklift-80v-shift", "frozen", 20.0),
])  # fmt: skip
def test_blocks_and_batches_change_nothing(tmp_path, monkeypatch, name, fault, duration_s):
    scenario = _scenario(name, fault, duration_s)
    fast = _run(scenario, tmp_path / "fast.log")
    monkeypatch.delattr(CanPort, "send_block")
    monkeypatch.setattr(FrontEndBatch, "prepare", lambda self, now_s: False)
    slow = _run(scenario, tmp_path / "slow.log")
    assert fast[0].count(b"\n") > 1000
    assert fast == slow
