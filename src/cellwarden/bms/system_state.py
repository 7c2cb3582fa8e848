"""What a system master knows and publishes: string reports in, one system state out.

The inverter CAN, the SunSpec Modbus server and telemetry read ``SystemState``; none of them
needs to know whether one string or many stand behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from cellwarden.bms.alarms import Alarm
from cellwarden.model.architecture import Topology
from cellwarden.model.system import SystemSpec


class StringStatus(StrEnum):
    """The system master's verdict on one string."""

    DISCONNECTED = "disconnected"  # healthy, not on the bus (waiting for its voltage window)
    CONNECTING = "connecting"  # commanded to connect, precharging
    CONNECTED = "connected"  # on the bus, carrying current
    ISOLATED = "isolated"  # faulted or silent: kept off the bus
    DISABLED = "disabled"  # taken out of service by the operator


@dataclass(frozen=True)
class StringReport:
    """A string master's report over the system bus, as last received."""

    index: int
    time_s: float
    path_state: str  # the string's power path: standby, precharge, normal, opening, fault
    connected: bool
    fault: bool  # a protection that opens the path is active, or the path is broken
    charge_allowed: bool
    discharge_allowed: bool
    pack_voltage_v: float
    link_voltage_v: float
    current_a: float  # positive charging
    soc_pct: float
    soh_pct: float
    charge_current_limit_a: float
    discharge_current_limit_a: float
    charge_voltage_limit_v: float
    cell_voltage_min_v: float
    cell_voltage_max_v: float
    temp_min_c: float
    temp_max_c: float
    alarms: frozenset[Alarm] = frozenset()
    warnings: frozenset[Alarm] = frozenset()
    worst_code: int = 0  # digits of the most severe active DTC (B1103 -> 1103), 0 for none
    balancing_cells: int = 0


@dataclass(frozen=True)
class StringCommand:
    """What the system master tells one string."""

    connect: bool
    charge_allowed: bool = False
    discharge_allowed: bool = False
    charge_current_a: float = 0.0  # the share of the system's limits allotted to the string
    discharge_current_a: float = 0.0


@dataclass(frozen=True)
class StringView:
    """One string as the system master sees it."""

    index: int
    name: str
    modules: int  # slaves on its daisy chain
    status: StringStatus
    report: StringReport | None  # None before the first report
    connect_commanded: bool
    current_share: float  # share of the system current this string carries (0 when off)
    reason: str = ""  # why it is isolated, disabled or waiting


@dataclass(frozen=True)
class SystemRating:
    """Fixed facts of a system, from its configuration."""

    serial_number: str
    topology: str
    strings: int
    modules_per_string: int
    cells_per_string: int
    rated_capacity_ah: float  # of the whole system
    rated_energy_wh: float
    nominal_voltage_v: float  # of the DC bus
    max_voltage_v: float  # DC bus with every cell at its upper operating limit
    min_voltage_v: float  # DC bus with every cell at its lower operating limit
    max_charge_current_a: float  # rated, every string connected
    max_discharge_current_a: float


@dataclass(frozen=True)
class SystemState:
    """The system master's published view: what inverters, Modbus clients and the cloud see.

    Limits are for the DC bus as a whole. ``charge_voltage_limit_v`` is never 0: a system that
    must not charge says so with a zero charge current limit.
    """

    time_s: float
    voltage_v: float  # DC bus
    current_a: float  # positive charging
    soc_pct: float
    soh_pct: float
    capacity_ah: float  # of the connected strings
    charge_voltage_limit_v: float
    discharge_voltage_limit_v: float
    charge_current_limit_a: float
    discharge_current_limit_a: float
    cell_voltage_min_v: float
    cell_voltage_max_v: float
    temp_min_c: float
    temp_max_c: float
    strings_connected: int
    charge_allowed: bool
    discharge_allowed: bool
    alarms: frozenset[Alarm] = frozenset()
    warnings: frozenset[Alarm] = frozenset()
    strings: tuple[StringView, ...] = field(default_factory=tuple)

    @property
    def connected(self) -> bool:
        return self.strings_connected > 0


class SystemControl(Protocol):
    """Requests from the outside (a Modbus client, an operator) to the system master."""

    def request_connected(self, connected: bool) -> None:
        """Connect the system to its DC bus, or take every string off it."""
        ...

    def request_string_enabled(self, index: int, enabled: bool) -> None:
        """Take one string out of service, or return it to service."""
        ...


def rating_of(system: SystemSpec) -> SystemRating:
    """A system's rating from its configuration: strings in series add their voltages and are
    bounded by the weakest; strings in parallel (or distributed) add their capacities."""
    strings = system.expanded_strings()
    in_series = system.topology is Topology.SERIES and len(strings) > 1

    def combine(values: list[float]) -> float:
        return sum(values) if not in_series else min(values)

    def stack(values: list[float]) -> float:
        return sum(values) if in_series else max(values)

    def lowest_v(string) -> float:
        return string.pack.series * string.pack.cell.effective_limits.cell_voltage_v.lower.mol

    def current_a(string, getter) -> float:
        return getter(string.pack.cell.effective_limits).upper.mol * string.pack.capacity_ah

    capacity_ah = combine([s.pack.capacity_ah for s in strings])
    nominal_v = stack([s.pack.nominal_voltage_v for s in strings])
    return SystemRating(
        serial_number=system.serial_number,
        topology=system.topology.value if len(strings) > 1 else "single",
        strings=len(strings),
        modules_per_string=max(max(s.slaves, 1) for s in strings),
        cells_per_string=max(s.pack.series for s in strings),
        rated_capacity_ah=capacity_ah,
        rated_energy_wh=capacity_ah * nominal_v,
        nominal_voltage_v=nominal_v,
        max_voltage_v=system.max_bus_voltage_v,
        min_voltage_v=stack([lowest_v(s) for s in strings]),
        max_charge_current_a=combine(
            [current_a(s, lambda lim: lim.charge_current_c) for s in strings]
        ),
        max_discharge_current_a=combine(
            [current_a(s, lambda lim: lim.discharge_current_c) for s in strings]
        ),
    )
