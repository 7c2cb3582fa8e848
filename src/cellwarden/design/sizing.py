"""Sizing of the parts around the cells: power path, precharge, balancing, charger ceiling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cellwarden.model import architecture as arch
from cellwarden.model.architecture import PowerPathKind
from cellwarden.model.cell import CellSpec

MOSFET_RATINGS_A = (30.0, 40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 250.0)
CONTACTOR_RATINGS_A = (100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0,
                       1500.0, 2000.0)  # fmt: skip
MOSFET_DROP_V = 0.2
"""Voltage across a MOSFET path at its rated current: sets its on-resistance."""
CONTACTOR_RESISTANCE_OHM = 0.0003
HEAVY_CONTACTOR_RESISTANCE_OHM = 0.0002
"""Closed resistance of contactors rated above 500 A."""
SHORT_CIRCUIT_TRIP_FACTOR = 2.5
"""The analog cut-off of a MOSFET path trips at this multiple of its rating."""
PRECHARGE_TARGET_S = 1.0
PRECHARGE_RANGE_S = (0.5, 3.0)
"""Precharge (5 R C) aimed at, and the span accepted when rounding the resistor to E12."""
DEFAULT_PRECHARGE_TIMEOUT_S = 3.0
E12 = (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2)
BALANCING_AH_PER_A = 250.0
"""A slave bleeds 1 A per this many Ah of cell group (then held to the architecture range)."""
BOARD_W_PER_A = 20.0
"""A board's bleed heat budget per ampere of bleed current (8 W at 0.4 A, 20 W at 1 A)."""
BOARD_RISE_K = 32.0
"""Board temperature rise at its full heat budget."""
FLAT_OCV_MV_PER_PCT = 2.0
"""Below this OCV slope between 30 and 70 % SoC (LFP's plateau), balancing goes by voltage."""
LONG_STRING_SERIES = 96
"""From this many cells in series, cell spread near full calls for a lower charge voltage."""


@dataclass(frozen=True)
class PowerPathDesign:
    """One string's switches; every string has its own."""

    kind: PowerPathKind
    max_current_a: float
    closed_resistance_ohm: float
    precharge_resistance_ohm: float
    precharge_time_s: float
    dc_link_capacitance_f: float
    short_circuit_trip_a: float | None

    @property
    def precharge_timeout_s(self) -> float:
        """BMS precharge timeout: the default, or longer for a slow precharge."""
        return max(DEFAULT_PRECHARGE_TIMEOUT_S, math.ceil(2.5 * self.precharge_time_s))

    @property
    def precharge_min_s(self) -> float:
        """A dead link charged faster than one time constant has lost its capacitor."""
        return round(self.precharge_time_s / 5.0, 2)

    def describe(self) -> str:
        if self.kind is PowerPathKind.MOSFET:
            return (
                f"integrated MOSFETs rated {self.max_current_a:g} A with precharge "
                f"({self.precharge_resistance_ohm:g} Ω, {self.precharge_time_s:.2f} s) and a "
                f"hardware short-circuit cut-off at {self.short_circuit_trip_a:g} A"
            )
        return (
            f"external contactors rated {self.max_current_a:g} A with precharge "
            f"({self.precharge_resistance_ohm:g} Ω, {self.precharge_time_s:.2f} s)"
        )


@dataclass(frozen=True)
class BalancingDesign:
    """Passive balancing: one bleed resistor per cell, sized at a full cell's voltage."""

    current_a: float
    bleed_resistance_ohm: float
    full_cell_voltage_v: float
    strategy: str
    """``charge`` (bleed each cell's estimated excess) or ``voltage`` (for flat OCVs)."""
    plateau_slope_mv_per_pct: float
    max_board_power_w: float
    board_thermal_resistance_k_per_w: float


def rating_at_least(current_a: float, ratings: tuple[float, ...]) -> float | None:
    """The smallest rating carrying ``current_a``, or None if none does."""
    return next((rating for rating in ratings if rating >= current_a - 1e-9), None)


def precharge_resistance_ohm(capacitance_f: float) -> float:
    """An E12 resistor precharging ``capacitance_f`` in about PRECHARGE_TARGET_S (5 R C)."""
    ideal = PRECHARGE_TARGET_S / (5.0 * capacitance_f)
    low, high = PRECHARGE_RANGE_S
    values = [m * 10.0**d for d in range(-1, 6) for m in E12]
    fitting = [r for r in values if low <= 5.0 * r * capacitance_f <= high] or values
    return round(min(fitting, key=lambda r: abs(math.log(r / ideal))), 3)


def size_power_path(
    kind: PowerPathKind, current_a: float, capacitance_f: float
) -> PowerPathDesign | None:
    """Switches of ``kind`` for ``current_a`` per string, or None if no rating carries it."""
    ratings = MOSFET_RATINGS_A if kind is PowerPathKind.MOSFET else CONTACTOR_RATINGS_A
    rating = rating_at_least(current_a, ratings)
    if rating is None:
        return None
    if kind is PowerPathKind.MOSFET:
        closed = round(MOSFET_DROP_V / rating, 4)
        trip = round(SHORT_CIRCUIT_TRIP_FACTOR * rating, -1)
    else:
        closed = CONTACTOR_RESISTANCE_OHM if rating <= 500 else HEAVY_CONTACTOR_RESISTANCE_OHM
        trip = None
    resistor = precharge_resistance_ohm(capacitance_f)
    return PowerPathDesign(
        kind=kind,
        max_current_a=rating,
        closed_resistance_ohm=closed,
        precharge_resistance_ohm=resistor,
        precharge_time_s=round(5.0 * resistor * capacitance_f, 3),
        dc_link_capacitance_f=capacitance_f,
        short_circuit_trip_a=trip,
    )


def _row_near_25c(temp_points_c: list[float]) -> int:
    return min(range(len(temp_points_c)), key=lambda i: abs(temp_points_c[i] - 25.0))


def full_cell_voltage_v(cell: CellSpec) -> float:
    """Open-circuit voltage of a full cell at the table row nearest 25 °C."""
    table = cell.chemistry.ocv_v
    return float(table.values[_row_near_25c(table.temp_points_c)][-1])


def size_balancing(cell: CellSpec, parallel: int, standalone: bool) -> BalancingDesign:
    """Bleed current in the architecture's range: a standalone board's fixed ~410 mA, a
    slave's current growing with the cell group's capacity (400 mA to 1 A)."""
    if standalone:
        low, high = arch.STANDALONE_BALANCING_CURRENT_A
        current = round((low + high) / 2.0, 2)
    else:
        low, high = arch.MASTER_SLAVE_BALANCING_CURRENT_A
        group_ah = parallel * cell.capacity_ah
        current = round(min(high, max(low, group_ah / BALANCING_AH_PER_A)), 1)
    full_v = full_cell_voltage_v(cell)
    budget_w = round(BOARD_W_PER_A * current, 1)
    slope = plateau_slope_mv_per_pct(cell)
    return BalancingDesign(
        current_a=current,
        bleed_resistance_ohm=round(full_v / current, 1),
        full_cell_voltage_v=full_v,
        strategy="voltage" if slope < FLAT_OCV_MV_PER_PCT else "charge",
        plateau_slope_mv_per_pct=round(slope, 2),
        max_board_power_w=budget_w,
        board_thermal_resistance_k_per_w=round(BOARD_RISE_K / budget_w, 1),
    )


def plateau_slope_mv_per_pct(cell: CellSpec) -> float:
    """Mean OCV slope between 30 and 70 % SoC at 25 °C, in mV per % SoC."""
    table = cell.chemistry.ocv_v
    row = table.values[_row_near_25c(table.temp_points_c)]
    low, high = np.interp([0.3, 0.7], table.soc_points, row)
    return float((high - low) * 1000.0 / 40.0)


def charge_ceiling_per_cell_v(cell: CellSpec, series_in_branch: int) -> float:
    """The charger's ceiling per cell: 50 mV below both the upper ``mol`` and a full cell's
    rest voltage, 20 mV lower again for long strings whose cells spread apart near full."""
    mol = cell.effective_limits.cell_voltage_v.upper.mol
    ceiling = min(mol, full_cell_voltage_v(cell)) - 0.05
    if series_in_branch >= LONG_STRING_SERIES:
        ceiling -= 0.02
    return round(ceiling, 3)
