"""SoH accuracy: the BMS's capacity and resistance estimates against the plant's true cells.

A 6S2P NMC pack with manufacturing spread (capacity 3 %, resistance 6 %, 1 sigma) is charged
to full (the CV taper anchors SoC at 100 %), rests, is discharged at 1C by two thirds, and
rests again (the rest voltage anchors SoC low). Capacity comes from the counted charge
between the anchors; resistance from the voltage step when the discharge starts.
"""

from __future__ import annotations

import numpy as np

from cellwarden.model import Scenario
from cellwarden.plant import kernel as k
from cellwarden.simulation.runner import Simulation

REST_S = 1900.0


def scenario() -> Scenario:
    capacity_ah = 10.0
    return Scenario.model_validate(
        {
            "name": "health-bench",
            "sector": "bench",
            "seed": 5,
            "duration_s": 3600.0 + REST_S + 2400.0 + REST_S + 600.0,
            "system": {
                "architecture": "standalone",
                "strings": [
                    {
                        "pack": {"cell": "nmc-21700-5ah", "series": 6, "parallel": 2},
                        "power_path": {"kind": "mosfet", "max_current_a": 60},
                    }
                ],
            },
            "spread": {"capacity_pct": 3.0, "resistance_pct": 6.0, "initial_soc_pct": 0.5},
            "initial": {"soc_pct": 60.0},
            "timing": {"plant_step_s": 0.01, "protection_period_s": 0.1, "main_period_s": 0.1},
            "charger": {"max_current_a": capacity_ah, "max_voltage_v": 6 * 4.15},
            "profile": {
                "kind": "steps",
                "parameters": {
                    "mode_1": 4, "value_1": capacity_ah, "duration_1_s": 3600.0,
                    "mode_2": 0, "duration_2_s": REST_S,
                    "mode_3": 1, "value_3": capacity_ah, "duration_3_s": 2400.0,
                    "mode_4": 0, "duration_4_s": REST_S,
                },
            },
        }
    )  # fmt: skip


def measure() -> list[dict[str, float | str]]:
    simulation = Simulation(scenario())
    result = simulation.run()
    plant = result.plant
    bms = simulation.controller.bms[0]
    layout = plant.layout
    true_capacity = np.bincount(layout.cell_group, plant.capacity_ah)
    # true series resistance of each group at the end state: parallel cells' R0 in parallel
    r0 = plant.cp[k.R0]
    true_r0 = 1.0 / np.bincount(layout.cell_group, 1.0 / r0)
    estimated_r0 = (
        bms.resistance.ratio
        * bms.model.at(bms.estimator.soc, bms._cell_temp_c, bms.estimator.hyst).r0_ohm
    )
    capacity_error = 100.0 * (bms.capacity.capacity_ah / true_capacity - 1.0)
    resistance_error = 100.0 * (estimated_r0 / true_r0 - 1.0)
    return [
        {
            "quantity": "capacity",
            "measurements": bms.capacity.measurements,
            "max_abs_error_pct": float(np.abs(capacity_error).max()),
            "true_spread_pct": float(100 * (true_capacity.max() / true_capacity.min() - 1)),
        },
        {
            "quantity": "resistance",
            "measurements": bms.resistance.measurements,
            "max_abs_error_pct": float(np.abs(resistance_error).max()),
            "true_spread_pct": float(100 * (true_r0.max() / true_r0.min() - 1)),
        },
    ]
