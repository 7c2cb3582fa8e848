"""A recommended design: the architecture, why, its modules and the figures of its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cellwarden.design.requirements import Requirements
from cellwarden.design.sectors import Sector
from cellwarden.design.sizing import BalancingDesign, PowerPathDesign
from cellwarden.model.architecture import Architecture, Topology
from cellwarden.model.cell import CellSpec


@dataclass(frozen=True)
class Module:
    """``count`` boards of one ``role``; ``cells`` is the slave type (12 or 18) or the series
    cells on a standalone board."""

    role: str
    count: int
    cells: int | None = None

    @property
    def label(self) -> str:
        plural = "" if self.count == 1 else ("es" if self.role.endswith("s") else "s")
        text = f"{self.count} {self.role}{plural}"
        return f"{text} of {self.cells}S" if self.cells and self.role == "slave" else text

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": self.role, "count": self.count}
        if self.cells is not None:
            entry["cells"] = self.cells
        return entry


@dataclass(frozen=True)
class Design:
    """Everything the designer decided. Per-string figures unless named ``system_``."""

    requirements: Requirements
    architecture: Architecture
    topology: Topology | None
    strings: int
    sector: Sector
    cell_ref: str
    cell: CellSpec
    series: int
    parallel: int
    cells_per_slave: int | None
    slave_cells: tuple[int, ...]
    modules: tuple[Module, ...]
    power_path: PowerPathDesign
    balancing: BalancingDesign
    comms: tuple[str, ...]
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    peak_current_a: float
    string_current_a: float
    charge_ceiling_per_cell_v: float
    inverter_can: bool
    """The system master speaks the inverter CAN (``buses.inverter``)."""

    @property
    def chemistry(self) -> str:
        return self.cell.chemistry.name

    @property
    def slaves_per_string(self) -> int:
        return len(self.slave_cells)

    @property
    def nominal_voltage_v(self) -> float:
        return self.series * self.cell.chemistry.nominal_voltage_v

    @property
    def max_voltage_v(self) -> float:
        """A string with every cell at its upper ``mol`` (what the 1500 V limit is checked on)."""
        return self.series * self.cell.effective_limits.cell_voltage_v.upper.mol

    @property
    def stacked(self) -> int:
        """Strings in series on the bus (all of them in series topology, else 1)."""
        return self.strings if self.topology is Topology.SERIES else 1

    @property
    def branches(self) -> int:
        """Parallel branches on the bus."""
        return self.strings // self.stacked

    @property
    def capacity_ah(self) -> float:
        return self.parallel * self.cell.capacity_ah

    @property
    def system_capacity_ah(self) -> float:
        return self.capacity_ah * self.branches

    @property
    def system_nominal_voltage_v(self) -> float:
        return self.nominal_voltage_v * self.stacked

    @property
    def system_max_voltage_v(self) -> float:
        return self.max_voltage_v * self.stacked

    @property
    def energy_kwh(self) -> float:
        return self.strings * self.nominal_voltage_v * self.capacity_ah / 1000.0

    @property
    def cell_count(self) -> int:
        return self.strings * self.series * self.parallel

    @property
    def modules_summary(self) -> str:
        text = " + ".join(module.label for module in self.modules)
        if self.architecture is Architecture.STANDALONE:
            path = "MOSFET path" if self.power_path.kind.value == "mosfet" else "contactors"
            text += f" with {path}"
        return text

    def as_dict(self, config_file: str | None = None) -> dict[str, Any]:
        """The JSON form printed by ``cellwarden design --json``."""
        path = self.power_path
        return {
            "architecture": self.architecture.value,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "modules": [module.as_dict() for module in self.modules],
            "modules_summary": self.modules_summary,
            "sector": self.sector.name,
            "profile": self.sector.profile_kind,
            "strings": self.strings,
            "topology": self.topology.value if self.topology else None,
            "cells_per_string": self.series,
            "series": self.series,
            "parallel": self.parallel,
            "cell_count": self.cell_count,
            "cell": self.cell_ref,
            "chemistry": self.chemistry,
            "capacity_ah": self.capacity_ah,
            "nominal_voltage_v": round(self.nominal_voltage_v, 2),
            "max_voltage_v": round(self.max_voltage_v, 2),
            "system_capacity_ah": self.system_capacity_ah,
            "system_nominal_voltage_v": round(self.system_nominal_voltage_v, 2),
            "system_max_voltage_v": round(self.system_max_voltage_v, 2),
            "energy_kwh": round(self.energy_kwh, 2),
            "peak_current_a": self.peak_current_a,
            "string_current_a": round(self.string_current_a, 2),
            "cells_per_slave": self.cells_per_slave,
            "slaves_per_string": self.slaves_per_string,
            "slave_cells": list(self.slave_cells),
            "power_path": path.kind.value,
            "power_path_rating": {
                "max_current_a": path.max_current_a,
                "closed_resistance_ohm": path.closed_resistance_ohm,
                "precharge_resistance_ohm": path.precharge_resistance_ohm,
                "precharge_time_s": path.precharge_time_s,
                "dc_link_capacitance_f": path.dc_link_capacitance_f,
                "short_circuit_trip_a": path.short_circuit_trip_a,
                "per_string": True,
            },
            "balancing_current_a": self.balancing.current_a,
            "bleed_resistance_ohm": self.balancing.bleed_resistance_ohm,
            "balancing_strategy": self.balancing.strategy,
            "comms": list(self.comms),
            "inverter_can": self.inverter_can,
            "config_file": config_file,
        }
