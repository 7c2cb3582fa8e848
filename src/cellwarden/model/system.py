"""Packs, strings and systems, with the architecture limits of the design table enforced."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cellwarden.model import architecture as arch
from cellwarden.model.architecture import Architecture, PowerPathKind, Topology
from cellwarden.model.cell import CellSpec
from cellwarden.model.library import cell_from_dict, load_cell


class PackSpec(BaseModel):
    """Cells wired ``series`` groups deep, each group ``parallel`` cells wide."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: CellSpec
    series: int = Field(ge=1, le=2000)
    parallel: int = Field(default=1, ge=1, le=500)

    @field_validator("cell", mode="before")
    @classmethod
    def _resolve_cell(cls, value: Any) -> Any:
        if isinstance(value, str):
            return load_cell(value)
        if isinstance(value, dict):
            return cell_from_dict(value, "inline cell table")
        return value

    @property
    def cell_count(self) -> int:
        return self.series * self.parallel

    @property
    def max_operating_voltage_v(self) -> float:
        """Pack voltage with every cell at its upper maximum operating limit."""
        return self.series * self.cell.effective_limits.cell_voltage_v.upper.mol

    @property
    def nominal_voltage_v(self) -> float:
        return self.series * self.cell.chemistry.nominal_voltage_v

    @property
    def capacity_ah(self) -> float:
        return self.parallel * self.cell.capacity_ah


class PowerPathSpec(BaseModel):
    """Switches between a string and the DC bus, with a precharge branch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PowerPathKind = PowerPathKind.CONTACTORS
    max_current_a: float = Field(gt=0, default=250.0)
    closed_resistance_ohm: float = Field(gt=0, default=0.0005)
    precharge_resistance_ohm: float = Field(gt=0, default=20.0)
    short_circuit_trip_a: float | None = Field(
        default=None, gt=0, description="analog cut-off threshold (board hardware), if any"
    )
    short_circuit_delay_s: float = Field(
        default=200e-6, gt=0, le=0.1, description="how long the analog cut-off takes to open"
    )


class SlaveSpec(BaseModel):
    """One slave module: its address (its position on the daisy chain, 1 next to the master)
    and how many series cells it monitors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=1, le=arch.MAX_SLAVES)
    cells: int = Field(ge=1, le=max(arch.SLAVE_CELL_COUNTS))


class StringSpec(BaseModel):
    """A series string of one pack type behind its own power path; ``count`` copies of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    pack: PackSpec
    count: int = Field(default=1, ge=1, le=64)
    cells_per_slave: int | None = Field(default=None, description="12 or 18 in master-slave")
    slave_layout: list[SlaveSpec] | None = Field(
        default=None, description="cells per slave address (default: spread evenly)"
    )
    cable_resistance_ohm: float = Field(default=0.0005, ge=0)
    power_path: PowerPathSpec = PowerPathSpec()

    @property
    def slaves(self) -> int:
        """Slave modules needed to monitor every series group (0 without slaves)."""
        if self.cells_per_slave is None:
            return 0
        if self.slave_layout is not None:
            return len(self.slave_layout)
        return math.ceil(self.pack.series / self.cells_per_slave)

    @property
    def slave_cells(self) -> list[int]:
        """Series cells of each slave in chain order (25 over three 12S slaves → 9, 8, 8)."""
        if self.slave_layout is not None:
            return [slave.cells for slave in sorted(self.slave_layout, key=lambda s: s.address)]
        base, extra = divmod(self.pack.series, self.slaves)
        return [base + (1 if index < extra else 0) for index in range(self.slaves)]


class SystemSpec(BaseModel):
    """Strings joined by a topology onto one DC bus with the load's DC-link capacitance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: Architecture
    topology: Topology = Topology.PARALLEL
    serial_number: str = "CW-SIM-0001"
    strings: list[StringSpec] = Field(min_length=1)
    dc_link_capacitance_f: float = Field(default=0.002, ge=0, le=10.0)
    dc_link_bleed_resistance_ohm: float = Field(default=10_000.0, gt=0)

    @property
    def string_count(self) -> int:
        return sum(string.count for string in self.strings)

    @property
    def cell_count(self) -> int:
        return sum(string.count * string.pack.cell_count for string in self.strings)

    @property
    def max_bus_voltage_v(self) -> float:
        """The DC bus with every cell at its upper operating limit (series strings add up)."""
        voltages = [s.pack.max_operating_voltage_v for s in self.expanded_strings()]
        return sum(voltages) if self.topology is Topology.SERIES else max(voltages)

    def expanded_strings(self) -> list[StringSpec]:
        """One entry per physical string, ``count`` copies expanded and named."""
        expanded = []
        for index, string in enumerate(self.strings):
            base = string.name or f"string-{index + 1}"
            for copy in range(string.count):
                name = base if string.count == 1 else f"{base}.{copy + 1}"
                expanded.append(string.model_copy(update={"name": name, "count": 1}))
        return expanded

    @model_validator(mode="after")
    def _check_architecture(self) -> SystemSpec:
        if self.architecture is Architecture.STANDALONE:
            _check_standalone(self)
        elif self.architecture is Architecture.MASTER_SLAVE:
            _check_single_string(self, "master-slave")
            _check_master_slave_string(self.strings[0], 0)
        else:
            _check_multi_master(self)
        return self


def _check_single_string(system: SystemSpec, label: str) -> None:
    if system.string_count != 1:
        raise ValueError(
            f"strings: a {label} system has exactly 1 string (got {system.string_count}); "
            "use architecture = 'multi-master' for several"
        )


def _check_standalone(system: SystemSpec) -> None:
    _check_single_string(system, "standalone")
    string = system.strings[0]
    series = string.pack.series
    voltage = string.pack.max_operating_voltage_v
    lo, hi, ext = (
        arch.STANDALONE_MIN_SERIES,
        arch.STANDALONE_MAX_SERIES,
        arch.STANDALONE_EXTENDED_MAX_SERIES,
    )
    extended_ok = series <= ext and voltage <= arch.STANDALONE_MAX_VOLTAGE_V + 1e-6
    if series < lo or (series > hi and not extended_ok):
        raise ValueError(
            f"strings.0.pack.series = {series} is outside the standalone range {lo}..{hi} "
            f"(up to {ext} where the pack stays at or below {arch.STANDALONE_MAX_VOLTAGE_V} V; "
            f"this pack reaches {voltage:.1f} V)"
        )
    path = string.power_path
    if path.kind is PowerPathKind.MOSFET and path.max_current_a > arch.MOSFET_MAX_CURRENT_A:
        raise ValueError(
            f"strings.0.power_path.max_current_a = {path.max_current_a} exceeds the MOSFET "
            f"power path's allowed range 0..{arch.MOSFET_MAX_CURRENT_A} A; use external contactors"
        )
    if string.cells_per_slave is not None:
        raise ValueError("strings.0.cells_per_slave: a standalone board has no slaves; remove it")


def _check_master_slave_string(string: StringSpec, index: int) -> None:
    prefix = f"strings.{index}"
    series = string.pack.series
    lo, hi = arch.MASTER_SLAVE_MIN_SERIES, arch.MASTER_SLAVE_MAX_SERIES
    if not lo <= series <= hi:
        raise ValueError(
            f"{prefix}.pack.series = {series} is outside the master-slave range {lo}..{hi}"
        )
    if string.cells_per_slave not in arch.SLAVE_CELL_COUNTS:
        raise ValueError(
            f"{prefix}.cells_per_slave = {string.cells_per_slave} is not allowed; "
            f"slaves come as {' or '.join(map(str, arch.SLAVE_CELL_COUNTS))} cells"
        )
    if string.slaves > arch.MAX_SLAVES:
        raise ValueError(
            f"{prefix}: {series} cells need {string.slaves} slaves of {string.cells_per_slave}S, "
            f"outside the allowed range 1..{arch.MAX_SLAVES} slaves on one daisy chain"
        )
    voltage = string.pack.max_operating_voltage_v
    if voltage > arch.MAX_STRING_VOLTAGE_V:
        raise ValueError(
            f"{prefix}.pack reaches {voltage:.0f} V, outside the allowed range "
            f"0..{arch.MAX_STRING_VOLTAGE_V:.0f} V per string"
        )
    if string.power_path.kind is not PowerPathKind.CONTACTORS:
        raise ValueError(
            f"{prefix}.power_path.kind = {string.power_path.kind.value!r}: a master switches "
            "external contactors; use 'contactors'"
        )
    if string.slave_layout is not None:
        _check_slave_layout(string, prefix)


def _check_slave_layout(string: StringSpec, prefix: str) -> None:
    """Addresses run 1..n in chain order, each once; cells fit the slaves and fill the pack."""
    layout = string.slave_layout or []
    addresses = [slave.address for slave in layout]
    for address in sorted(set(addresses)):
        if addresses.count(address) > 1:
            raise ValueError(f"{prefix}.slave_layout: address {address} appears twice")
    for address in range(1, len(layout) + 1):
        if address not in addresses:
            raise ValueError(
                f"{prefix}.slave_layout: address {address} is missing (the {len(layout)} "
                f"slaves take addresses 1..{len(layout)} from their chain positions)"
            )
    for slave in layout:
        if slave.cells > (string.cells_per_slave or 0):
            raise ValueError(
                f"{prefix}.slave_layout: slave {slave.address} has {slave.cells} cells, more "
                f"than a {string.cells_per_slave}S slave monitors"
            )
    total = sum(slave.cells for slave in layout)
    if total != string.pack.series:
        raise ValueError(
            f"{prefix}.slave_layout: the slaves monitor {total} cells, the pack has "
            f"{string.pack.series} in series"
        )


def _check_multi_master(system: SystemSpec) -> None:
    if system.string_count > arch.MAX_STRINGS:
        raise ValueError(
            f"strings: {system.string_count} strings are outside the allowed range "
            f"1..{arch.MAX_STRINGS} string masters on one system bus"
        )
    for index, string in enumerate(system.strings):
        _check_master_slave_string(string, index)
    if system.topology is Topology.SERIES:
        stack_v = sum(s.count * s.pack.max_operating_voltage_v for s in system.strings)
        if stack_v > arch.MAX_STRING_VOLTAGE_V:
            raise ValueError(
                f"topology = 'series' stacks the strings to {stack_v:.0f} V, outside the "
                f"allowed range 0..{arch.MAX_STRING_VOLTAGE_V:.0f} V"
            )
