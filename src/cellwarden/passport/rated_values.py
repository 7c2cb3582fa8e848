"""A battery's rated values, computed from its system configuration (model.system).

Strings of one system join in parallel (capacities add) or in series (voltages add); every
value follows from the cells' data and limits at 25 °C, so the passport states what the
configuration the BMS runs with states, never a second copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.model.cell import CellSpec
from cellwarden.model.system import SystemSpec, Topology
from cellwarden.model.tables import Table2D

REFERENCE_TEMP_C = 25.0
POWER_SOC_POINTS_PCT = (20.0, 50.0, 80.0)  # where the original power capability is stated
POWER_PULSE_S = 10.0  # the pulse the power capability refers to (resistance incl. the RC pairs)


@dataclass(frozen=True)
class RatedValues:
    chemistry: str
    cell_count: int
    series_cells: int  # cells in series between the terminals
    rated_capacity_ah: float
    nominal_voltage_v: float
    minimum_voltage_v: float  # every cell at its lower operating limit
    maximum_voltage_v: float  # every cell at its upper operating limit
    rated_energy_kwh: float
    max_discharge_current_a: float
    rated_max_power_w: float
    power_capability_w: tuple[tuple[float, float], ...]  # (SoC %, W) for a 10 s pulse
    pack_resistance_ohm: float
    cell_resistance_ohm: float
    idle_temp_min_c: float
    idle_temp_max_c: float
    self_discharge_pct_per_month: float
    cells_mass_kg: float


def _at_reference(value: float | Table2D, soc: float = 0.5) -> float:
    if not isinstance(value, Table2D):
        return float(value)
    row = int(np.argmin(np.abs(np.asarray(value.temp_points_c) - REFERENCE_TEMP_C)))
    return float(np.interp(soc, value.soc_points, value.values[row]))


def _pulse_resistance_ohm(cell: CellSpec, soc: float) -> float:
    """The cell's resistance seen by a POWER_PULSE_S pulse at ``soc`` and 25 °C."""
    factor = _at_reference(cell.chemistry.resistance_factor, soc)
    r1 = _at_reference(cell.r1_ohm) * (1 - np.exp(-POWER_PULSE_S / _at_reference(cell.tau1_s)))
    r2 = _at_reference(cell.r2_ohm) * (1 - np.exp(-POWER_PULSE_S / _at_reference(cell.tau2_s)))
    return float((_at_reference(cell.r0_ohm) + r1 + r2) * factor)


def rated_values(system: SystemSpec) -> RatedValues:
    strings = system.expanded_strings()
    first = strings[0]
    cell = first.pack.cell
    limits = cell.effective_limits
    in_series = system.topology is Topology.SERIES and len(strings) > 1
    series = sum(s.pack.series for s in strings) if in_series else first.pack.series
    parallel_strings = 1 if in_series else len(strings)
    capacity_ah = (
        min(s.pack.capacity_ah for s in strings)
        if in_series
        else sum(s.pack.capacity_ah for s in strings)
    )
    cells_parallel = first.pack.parallel * parallel_strings
    nominal_v = series * cell.chemistry.nominal_voltage_v
    cell_v_min = limits.cell_voltage_v.lower.mol
    max_current_a = min(
        limits.discharge_current_c.upper.mol * cell.capacity_ah * cells_parallel,
        sum(s.power_path.max_current_a for s in strings[:parallel_strings]),
    )
    ocv = cell.chemistry.ocv_v
    power = []
    for soc_pct in POWER_SOC_POINTS_PCT:
        cell_ocv_v = _at_reference(ocv, soc_pct / 100)
        resistance_ohm = _pulse_resistance_ohm(cell, soc_pct / 100) * series / cells_parallel
        current_a = min(max_current_a, (cell_ocv_v - cell_v_min) * series / resistance_ohm)
        power.append(
            (soc_pct, round(current_a * (series * cell_ocv_v - current_a * resistance_ohm), 1))
        )
    band = limits.discharge_temp_c
    cell_r_ohm = _at_reference(cell.r0_ohm)
    return RatedValues(
        chemistry=cell.chemistry.name,
        cell_count=system.cell_count,
        series_cells=series,
        rated_capacity_ah=capacity_ah,
        nominal_voltage_v=nominal_v,
        minimum_voltage_v=series * cell_v_min,
        maximum_voltage_v=series * limits.cell_voltage_v.upper.mol,
        rated_energy_kwh=capacity_ah * nominal_v / 1000,
        max_discharge_current_a=max_current_a,
        rated_max_power_w=max(p for _, p in power),
        power_capability_w=tuple(power),
        pack_resistance_ohm=cell_r_ohm * series / cells_parallel,
        cell_resistance_ohm=cell_r_ohm,
        idle_temp_min_c=band.lower.rsl,
        idle_temp_max_c=band.upper.rsl,
        self_discharge_pct_per_month=cell.self_discharge_pct_per_month,
        cells_mass_kg=system.cell_count * cell.mass_kg,
    )
