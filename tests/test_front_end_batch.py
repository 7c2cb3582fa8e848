"""The slaves' front ends of a string converting together (``FrontEndBatch``) read exactly
what each reads converting alone, and leave each random stream where it would be."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.hardware.sim_cell_monitor import KELVIN, FrontEndBatch, SimulatedCellMonitor
from cellwarden.model import Scenario
from cellwarden.plant import kernel as k
from cellwarden.simulation.runner import Simulation


def _front_ends(series: int, cells_per_slave: int, sensor_every: int) -> list:
    scenario = Scenario.model_validate({
        "name": "batch", "sector": "test", "duration_s": 5.0, "seed": series,
        "system": {"architecture": "master-slave", "strings": [{
            "pack": {"cell": "lfp-prismatic-280ah", "series": series},
            "cells_per_slave": cells_per_slave}]},
        "board": {"cell_monitor": {"cells_per_temp_sensor": sensor_every}},
        "profile": {"kind": "steps", "parameters": {"mode_1": 1, "value_1": 80.0,
                                                    "duration_1_s": 5.0}},
    })  # fmt: skip
    simulation = Simulation(scenario)
    simulation.run()
    front_ends = simulation.controller.nodes[0].daisy_chain.slaves.front_ends
    assert all(isinstance(fe, SimulatedCellMonitor) for fe in front_ends)
    return front_ends


def _state(front_ends: list) -> list:
    return [fe._rng.bit_generator.state for fe in front_ends]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaN and infinite readings
@pytest.mark.parametrize(("series", "per_slave", "sensor_every"),
                         [(288, 18, 3), (100, 12, 5), (19, 12, 18)])  # fmt: skip
def test_a_batch_conversion_reads_as_each_front_end_alone(series, per_slave, sensor_every):
    front_ends = _front_ends(series, per_slave, sensor_every)
    plant = front_ends[0].plant
    rng = np.random.default_rng(series)
    batch = FrontEndBatch(front_ends)
    assert batch.usable
    assert (batch._rows is not None) == (series % per_slave == 0)  # alike boards: as rows
    if sensor_every == 18:  # the second slave (9 cells) has no sensor
        assert [fe._sensor_count for fe in front_ends] == [1, 0]
    now_s = 100.0
    for round_ in range(6):
        now_s += 1.0
        groups = plant.layout.group_count
        plant.gs[k.G_VOLT, :groups] = rng.uniform(2.5, 3.7, groups)
        plant.cs[k.TEMP] = rng.uniform(-30.0, 80.0, plant.cs.shape[1])
        if round_ >= 3:  # a NaN reading on one front end: it alone leaves the code table
            plant.cs[k.TEMP, front_ends[1]._sensor_plant_cells[:1]] = np.nan
        if round_ == 5:
            plant.cs[k.TEMP, :3] = [-KELVIN, np.inf, -np.inf]
        before = _state(front_ends)
        alone = [(fe.sample_voltages(now_s), fe.sample_temperatures(now_s)) for fe in front_ends]
        after_alone = _state(front_ends)
        for fe, state in zip(front_ends, before, strict=True):
            fe._rng.bit_generator.state = state
            fe._last = None
        assert batch.prepare(now_s)
        together = [(fe.sample_voltages(now_s), fe.sample_temperatures(now_s)) for fe in front_ends]
        assert _state(front_ends) == after_alone
        for (v1, t1), (v2, t2) in zip(alone, together, strict=True):
            assert v1.cell_voltage_v.tobytes() == v2.cell_voltage_v.tobytes()
            assert (v1.pack_voltage_v, v1.link_voltage_v) == (v2.pack_voltage_v, v2.link_voltage_v)
            assert t1.temp_c.tobytes() == t2.temp_c.tobytes()
            assert (t1.open_circuit == t2.open_circuit).all()
            assert (t1.short_circuit == t2.short_circuit).all()
        # within the conversion period the voltages are not due again: the batch stands down
        assert not batch.prepare(now_s + 1e-3)


def test_a_batch_stands_down_while_a_hardware_fault_acts():
    front_ends = _front_ends(36, 18, 3)
    plant = front_ends[0].plant
    plant.hardware_faults.append((0.0, object()))
    before = _state(front_ends)
    assert not FrontEndBatch(front_ends).prepare(1000.0)
    assert _state(front_ends) == before


@pytest.mark.parametrize(("series", "per_slave"), [(288, 18), (100, 12)])
def test_a_batch_switches_bleeders_as_each_front_end_alone(series, per_slave):
    front_ends = _front_ends(series, per_slave, 3)
    plant = front_ends[0].plant
    rng = np.random.default_rng(series)
    batch = FrontEndBatch(front_ends)
    assert (batch._rows is not None) == (series % per_slave == 0)
    groups, bled = plant.layout.group_count, 0
    for round_ in range(8):
        plant.gs[k.G_VOLT, :groups] = rng.uniform(2.5, 3.7, groups)
        plant.bus[k.COOLANT_C] = rng.uniform(-10.0, 60.0)
        masks = [rng.random(fe.cell_count) < rng.choice([0.0, 0.3, 1.0]) for fe in front_ends]
        if round_ % 3 == 0:  # some boards all off (and some of them already off)
            masks[: len(masks) // 2] = [np.zeros(fe.cell_count, dtype=bool)
                                        for fe in front_ends[: len(masks) // 2]]  # fmt: skip
        saved = plant.gs[k.G_BLEED_G].copy()
        fields = [(fe._mask, fe._duty, fe.board_temp_c) for fe in front_ends]
        for fe, mask in zip(front_ends, masks, strict=True):
            fe.set_balancing(mask)
        alone = (plant.gs[k.G_BLEED_G].tobytes(),
                 [(fe._duty, fe.board_temp_c) for fe in front_ends])  # fmt: skip
        plant.gs[k.G_BLEED_G] = saved
        for fe, (mask, duty, board_c) in zip(front_ends, fields, strict=True):
            fe._mask, fe._duty, fe.board_temp_c = mask, duty, board_c
        batch.set_balancing(masks)
        together = (plant.gs[k.G_BLEED_G].tobytes(),
                    [(fe._duty, fe.board_temp_c) for fe in front_ends])  # fmt: skip
        assert together == alone
        bleeding = plant.gs[k.G_BLEED_G, :groups] > 0
        assert not (bleeding & ~np.concatenate(masks)).any()  # only where asked (derated: less)
        bled += int(bleeding.sum())
    assert bled > 0
