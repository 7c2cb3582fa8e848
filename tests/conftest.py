"""Shared builders for the plant physics tests: analytic cells, systems and plants.

The analytic tests use a "flat" chemistry: NMC's 25 °C OCV row as the only row (so the OCV
does not depend on temperature) and resistance / time-constant shape tables that are 1.0
everywhere, so a cell's R0, R1, tau1, R2, tau2 are exactly the scalars given for it at any
SoC and temperature. Expectations are then computed in the tests from these inputs alone.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cellwarden.model import SystemSpec, load_chemistry
from cellwarden.model.scenario import ChargerSpec, InitialState, SpreadSpec
from cellwarden.plant.power_path import SwitchStates
from cellwarden.plant.system_plant import SystemPlant

NMC = load_chemistry("NMC")
NMC_25C_ROW = NMC.ocv_v.temp_points_c.index(25.0)
OCV_SOC_POINTS = np.asarray(NMC.ocv_v.soc_points, dtype=float)
OCV_25C_V = np.asarray(NMC.ocv_v.values[NMC_25C_ROW], dtype=float)

NO_SPREAD = SpreadSpec(
    capacity_pct=0.0, resistance_pct=0.0, self_discharge_pct_per_month=0.0, initial_soc_pct=0.0
)
# the cloud store fixtures (store_url, store) for every module that does not define its own
pytest_plugins = ("tests.cloud_db",)
HUGE_BLEED_OHM = 1e12  # a DC-link bleed resistor that draws no measurable current


def _flat_table(value: float = 1.0) -> dict[str, Any]:
    return {"soc_points": [0.0, 1.0], "temp_points_c": [25.0], "values": [[value, value]]}


def flat_chemistry_dict(ageing: bool = False) -> dict[str, Any]:
    """NMC with its 25 °C OCV as the only row and flat (1.0) parameter shape tables.

    Without ``ageing`` the calendar and cycle fade constants are zero, so capacity and
    resistances stay exactly at their given values however long a test runs.
    """
    data = NMC.model_dump()
    if not ageing:
        data["ageing"] = {
            **data["ageing"],
            "calendar_fade_pct_per_sqrt_day": 0.0,
            "cycle_fade_pct_per_efc": 0.0,
        }
    data.update(
        name="flat-NMC",
        ocv_v={
            "soc_points": OCV_SOC_POINTS.tolist(),
            "temp_points_c": [25.0],
            "values": [OCV_25C_V.tolist()],
        },
        ocv_charge_v=None,
        hysteresis_rate=0.0,
        resistance_factor=_flat_table(),
        time_constant_factor=_flat_table(),
    )
    return data


def flat_cell_dict(ageing: bool = False, **overrides: Any) -> dict[str, Any]:
    """An inline cell of the flat chemistry with scalar parameters (override any field)."""
    cell = {
        "name": "flat-cell",
        "chemistry": flat_chemistry_dict(ageing),
        "capacity_ah": 10.0,
        "r0_ohm": 0.010,
        "r1_ohm": 0.005,
        "tau1_s": 5.0,
        "r2_ohm": 0.008,
        "tau2_s": 100.0,
        "mass_kg": 0.2,
        "specific_heat_j_per_kg_k": 1000.0,
        "cooling_conductance_w_per_k": 1000.0,  # isothermal unless a test says otherwise
        "neighbour_conductance_w_per_k": 0.0,
        "self_discharge_pct_per_month": 0.0,
    }
    cell.update(overrides)
    return cell


def ocv_25c(soc: np.ndarray | float) -> np.ndarray:
    """NMC open-circuit voltage at 25 °C, interpolated on the chemistry table."""
    return np.interp(soc, OCV_SOC_POINTS, OCV_25C_V)


def standalone(cell: Any, series: int = 6, parallel: int = 1, **system: Any) -> SystemSpec:
    """A standalone system behind a MOSFET power path (system fields override)."""
    spec = {
        "architecture": "standalone",
        "strings": [
            {
                "pack": {"cell": cell, "series": series, "parallel": parallel},
                "power_path": {"kind": "mosfet", "max_current_a": 250},
            }
        ],
    }
    spec.update(system)
    return SystemSpec.model_validate(spec)


def make_plant(
    system: SystemSpec,
    *,
    seed: int = 0,
    soc_pct: float = 50.0,
    temp_c: float = 25.0,
    spread: SpreadSpec | None = NO_SPREAD,
    charger: ChargerSpec | None = None,
    **kwargs: Any,
) -> SystemPlant:
    """A plant at a uniform SoC and temperature (no spread unless given)."""
    kwargs.setdefault("ambient_temp_c", temp_c)
    return SystemPlant(
        system,
        rng=np.random.default_rng(seed),
        spread=spread,
        initial=InitialState(soc_pct=soc_pct, temp_c=temp_c),
        charger=charger,
        **kwargs,
    )


def close_all(plant: SystemPlant) -> None:
    """Close every string's power path fully (both FETs, or both main contactors)."""
    for index, path in enumerate(plant.power_paths):
        if path.spec.kind.value == "mosfet":
            plant.set_switches(index, SwitchStates(charge=True, discharge=True))
        else:
            plant.set_switches(index, SwitchStates(negative=True, positive=True))


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The builders above, for tests (conftest is not imported directly)."""
    return SimpleNamespace(
        NO_SPREAD=NO_SPREAD,
        HUGE_BLEED_OHM=HUGE_BLEED_OHM,
        NMC=NMC,
        flat_chemistry=flat_chemistry_dict,
        flat_cell=flat_cell_dict,
        ocv=ocv_25c,
        standalone=standalone,
        make_plant=make_plant,
        close_all=close_all,
    )
