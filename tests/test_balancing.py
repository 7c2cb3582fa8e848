"""Passive balancing removes a charge imbalance about as fast as physics allows."""

from __future__ import annotations

import numpy as np

from cellwarden.model import Scenario
from cellwarden.simulation.runner import Simulation

BLEED_OHM = 10.0
EXTRA_SOC_PCT = 5.0
CELL = 4


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "balancing-bench",
            "sector": "test",
            "duration_s": 4000.0,
            "system": {
                "architecture": "standalone",
                "strings": [
                    {
                        "pack": {"cell": "nmc-21700-5ah", "series": 10},
                        "power_path": {"kind": "mosfet", "max_current_a": 30},
                    }
                ],
            },
            "spread": {"capacity_pct": 0, "resistance_pct": 0, "self_discharge_pct_per_month": 0,
                       "initial_soc_pct": 0},
            "initial": {"soc_pct": 60.0, "cell_soc_pct": {str(CELL): 60.0 + EXTRA_SOC_PCT}},
            "timing": {"plant_step_s": 0.1, "protection_period_s": 0.1, "main_period_s": 1.0},
            "profile": {"kind": "steps", "parameters": {"mode_1": 0, "duration_1_s": 4000}},
            "board": {"balancing": {"bleed_resistance_ohm": BLEED_OHM}},
            "bms": {"balancing": {"strategy": "charge", "always_allowed": True}},
        }
    )  # fmt: skip


def test_balancing_time_is_within_20_percent_of_the_physical_minimum():
    """Minimum time = imbalance [Ah] / bleed current (V/R); the BMS must get within 20 %."""
    simulation = Simulation(_scenario())
    plant = simulation.plant
    capacity_ah = float(plant.capacity_ah[CELL])
    imbalance_ah = EXTRA_SOC_PCT / 100.0 * capacity_ah
    cell_voltage_v = float(plant.cell_ocv_v[CELL])
    minimum_s = imbalance_ah / (cell_voltage_v / BLEED_OHM) * 3600.0
    result = simulation.run()
    frame = result.recorder.cell_frame()
    label = plant.layout.position(CELL).label()
    others = [c for c in frame.columns if c.startswith("soc_") and c != f"soc_{label}"]
    excess_ah = (frame[f"soc_{label}"] - frame[others].median(axis=1)) * capacity_ah
    removed = frame["time_s"][excess_ah <= 0.1 * imbalance_ah]
    assert not removed.empty, "the imbalance was never removed"
    took_s = float(removed.iloc[0])
    # removing 90 % of the imbalance takes 90 % of the minimum; compare like with like
    assert abs(took_s - 0.9 * minimum_s) <= 0.2 * minimum_s, (took_s, minimum_s)
    # and the balanced cell ends level with the others: no cell over-bled
    final = (frame[f"soc_{label}"].iloc[-1] - frame[others].iloc[-1].median()) * capacity_ah
    assert abs(final) <= 0.1 * imbalance_ah
    assert np.all(frame[others].iloc[-1] > 0.59)
