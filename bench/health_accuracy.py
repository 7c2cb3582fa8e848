"""SoH accuracy: the BMS's capacity and resistance estimates against true cells.

- Independent physics: PyBaMM DFN LG M50 cells aged by known amounts (lost lithium, lost
  active material, film resistance; validation/dfn), seen through a day of use (full charge,
  rest, a drive, home at C/3 to 3.3 V, two hours parked, full charge) by the BMS with the fresh
  cell's identified model. Truth: the equilibrium capacity and the 1 s pulse resistance at
  50 % SoC of the aged DFN cell over the fresh one's.
- The plant: a 6S2P NMC pack with manufacturing spread (capacity 3 %, resistance 6 %,
  1 sigma) charged to full (the CV taper anchors SoC), rested, discharged at 1C to about 12 %
  and rested again (the rest voltage anchors SoC low); resistance from the voltage step when
  the discharge starts.
"""

from __future__ import annotations

import numpy as np

from cellwarden.bms.trace_replay import replay_trace
from cellwarden.model import Scenario
from cellwarden.plant import kernel as k
from cellwarden.simulation.runner import Simulation
from validation import suite

REST_S = 1900.0
DISCHARGE_S = 3150.0  # 1C from full to about 12 % (a capacity anchor: below 15 %)


def scenario() -> Scenario:
    capacity_ah = 10.0
    return Scenario.model_validate(
        {
            "name": "health-bench",
            "sector": "bench",
            "seed": 5,
            "duration_s": 3600.0 + REST_S + DISCHARGE_S + REST_S + 600.0,
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
                    "mode_3": 1, "value_3": capacity_ah, "duration_3_s": DISCHARGE_S,
                    "mode_4": 0, "duration_4_s": REST_S,
                },
            },
        }
    )  # fmt: skip


AGED_CASES = ("nmc-chen2020-fresh-25c", "nmc-chen2020-aged-mild-25c",
              "nmc-chen2020-aged-strong-25c")  # fmt: skip


def dfn_rows() -> list[dict[str, float | str]]:
    """Capacity and resistance SoH of the aged DFN cells, through the fresh cell's model."""
    fresh = suite.case("nmc-chen2020-25c")
    cell = suite.identified(fresh).cell
    rows = []
    for key in AGED_CASES:
        aged = suite.case(key)
        truth = aged.truth
        final = replay_trace(cell, aged.trace("usage")).iloc[-1]
        true_soh = 100.0 * truth["capacity_ah"] / truth["fresh_capacity_ah"]
        resistance = truth["pulse_resistance_50pct"]["1s_ohm"]
        true_ratio = resistance / truth["fresh_pulse_resistance_50pct"]["1s_ohm"]
        ratio = 100.0 / final["soh_resistance_pct"]
        rows.append({
            "cell": key.removeprefix("nmc-chen2020-").removesuffix("-25c"),
            "capacity_soh_true_pct": true_soh,
            "capacity_soh_estimated_pct": final["soh_capacity_pct"],
            "capacity_soh_error_points": final["soh_capacity_pct"] - true_soh,
            "resistance_ratio_true": true_ratio,
            "resistance_ratio_estimated": ratio,
            "resistance_error_pct": 100.0 * (ratio / true_ratio - 1.0),
        })  # fmt: skip
    return rows


def measure() -> dict[str, list[dict[str, float | str]]]:
    return {
        "SoH of aged DFN cells (capacity target ±2 points, resistance ±10 %)": dfn_rows(),
        "SoH on the plant's 6S2P pack": plant_rows(),
    }


def plant_rows() -> list[dict[str, float | str]]:
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
