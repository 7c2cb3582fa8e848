"""The decision matrix of DESIGN.md as code: requirements → architecture, modules, reasons."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from cellwarden.design.cells import (
    CellChoice,
    choose_cell,
    load_requested_cell,
    resolve_chemistry,
)
from cellwarden.design.requirements import DesignError, Requirements
from cellwarden.design.result import Design, Module
from cellwarden.design.sectors import Sector, resolve_sector
from cellwarden.design.sizing import (
    BALANCING_AH_PER_A,
    CONTACTOR_RATINGS_A,
    BalancingDesign,
    PowerPathDesign,
    charge_ceiling_per_cell_v,
    size_balancing,
    size_power_path,
)
from cellwarden.model import architecture as arch
from cellwarden.model.architecture import Architecture, PowerPathKind, Topology
from cellwarden.model.cell import CellSpec
from cellwarden.model.library import load_chemistry

SHARING_MARGIN = 1.2
"""Parallel strings share current unevenly: each string's switches carry this much more than
an even share."""


def design_system(requirements: Requirements) -> Design:
    """Recommend an architecture and its configuration; DesignError when none fits."""
    requirements.check()
    sector = resolve_sector(requirements.sector)
    strings = requirements.strings
    topology = requirements.resolved_topology() if strings > 1 else None
    reasons: list[str] = []
    notes: list[str] = []
    if strings == 1 and requirements.topology is not None:
        notes.append(f"--topology {requirements.topology} has no effect on a single string")

    chemistry, given_cell = _chemistry(requirements, sector, notes)
    nominal_cell_v = load_chemistry(chemistry).nominal_voltage_v
    series = _series(requirements, chemistry, nominal_cell_v, reasons)
    branches = 1 if topology is Topology.SERIES else strings
    peak_asked_a = requirements.peak_current_a
    share_a = None if peak_asked_a is None else peak_asked_a / branches
    choice = choose_cell(
        chemistry,
        requirements.capacity_ah or sector.capacity_ah,
        share_a,
        explicit_capacity=requirements.capacity_ah is not None,
        cell_ref=_cell_ref(requirements.cell),
        cell=given_cell,
    )
    if requirements.capacity_ah is None:
        notes.append(
            f"capacity not given: {sector.capacity_ah:g} Ah per string, typical of "
            f"{sector.label} packs (--capacity-ah to change)"
        )
    notes.extend(choice.notes)
    reasons.extend(choice.reasons)
    peak_a = requirements.peak_current_a
    if peak_a is None:
        c_rate = choice.cell.effective_limits.discharge_current_c.upper.mol
        peak_a = round(choice.capacity_ah * c_rate * branches, 1)
        notes.append(
            f"peak current not given: {peak_a:g} A, the pack's {c_rate:g} C discharge operating "
            "limit (--peak-current-a to change)"
        )
    string_a = peak_a / branches * (SHARING_MARGIN if branches > 1 else 1.0)

    _check_limits(series, choice.cell, strings, topology, chemistry)
    if strings > 1:
        architecture = Architecture.MULTI_MASTER
    elif _standalone_fits(series, choice.cell):
        architecture = Architecture.STANDALONE
    else:
        architecture = Architecture.MASTER_SLAVE
    if architecture is Architecture.STANDALONE:
        reasons.extend(_standalone_reasons(series, choice.cell))
        path = _standalone_path(peak_a, sector, reasons)
        cells_per_slave, slave_cells = None, ()
        modules: tuple[Module, ...] = (Module("standalone board", 1, series),)
    else:
        cells_per_slave, slave_cells = _slave_layout(architecture, series, strings, choice, reasons)
        if topology is not None:
            reasons.append(_topology_reason(topology, strings, series, choice))
        path = _contactor_path(string_a, peak_a, strings, branches, sector, reasons)
        slaves = Module("slave", strings * len(slave_cells), cells_per_slave)
        if architecture is Architecture.MASTER_SLAVE:
            modules = (Module("master", 1), slaves)
        else:
            modules = (Module("system master", 1), Module("string master", strings), slaves)

    inverter_can = _inverter_can(architecture, sector, series, strings, topology, choice, notes)
    standalone = architecture is Architecture.STANDALONE
    balancing = size_balancing(choice.cell, choice.parallel, standalone)
    reasons.append(_balancing_reason(architecture, balancing.current_a, balancing, choice))
    reasons.append(_strategy_reason(balancing, chemistry))
    return Design(
        requirements=requirements,
        architecture=architecture,
        topology=topology,
        strings=strings,
        sector=sector,
        cell_ref=choice.ref,
        cell=choice.cell,
        series=series,
        parallel=choice.parallel,
        cells_per_slave=cells_per_slave,
        slave_cells=slave_cells,
        modules=modules,
        power_path=path,
        balancing=balancing,
        comms=_comms(architecture, sector, inverter_can),
        inverter_can=inverter_can,
        reasons=tuple(reasons),
        notes=tuple(notes),
        peak_current_a=float(peak_a),
        string_current_a=string_a,
        charge_ceiling_per_cell_v=charge_ceiling_per_cell_v(
            choice.cell, series * (strings if topology is Topology.SERIES else 1)
        ),
    )


# --- inputs ------------------------------------------------------------------------------------


def _chemistry(
    requirements: Requirements, sector: Sector, notes: list[str]
) -> tuple[str, CellSpec | None]:
    chemistry = resolve_chemistry(requirements.chemistry) if requirements.chemistry else None
    if requirements.cell is not None:
        cell = load_requested_cell(requirements.cell, chemistry)
        return cell.chemistry.name, cell
    if chemistry is None:
        chemistry = sector.chemistry
        notes.append(
            f"chemistry not given: {chemistry}, usual for {sector.label} packs (--chemistry)"
        )
    return chemistry, None


def _cell_ref(cell: str | None) -> str | None:
    """How the scenario names a ``--cell``: a built-in name, or a cell file's absolute path (a
    relative one would be read from wherever the scenario later runs)."""
    if cell is None or not cell.endswith(".toml"):
        return cell
    return str(Path(cell).resolve())


def _series(
    requirements: Requirements, chemistry: str, nominal_cell_v: float, reasons: list[str]
) -> int:
    if requirements.cells is not None:
        return requirements.cells
    voltage_v = requirements.voltage_v or 0.0
    series = max(1, math.floor(voltage_v / nominal_cell_v + 0.5))
    reasons.append(
        f"{voltage_v:g} V nominal per string at {nominal_cell_v:g} V per {chemistry} cell: "
        f"{series}S ({series * nominal_cell_v:.1f} V nominal)"
    )
    return series


# --- limits ------------------------------------------------------------------------------------


def _upper_mol_v(cell: CellSpec) -> float:
    return cell.effective_limits.cell_voltage_v.upper.mol


def _check_limits(
    series: int, cell: CellSpec, strings: int, topology: Topology | None, chemistry: str
) -> None:
    """Raise DesignError naming every broken limit of the design table."""
    mol_v = _upper_mol_v(cell)
    max_v = series * mol_v
    nominal_v = series * cell.chemistry.nominal_voltage_v
    limit_v = arch.MAX_STRING_VOLTAGE_V
    problems: list[str] = []
    if series < arch.MASTER_SLAVE_MIN_SERIES:
        problems.append(
            f"{series} cells in one string are below the {arch.MASTER_SLAVE_MIN_SERIES}S minimum "
            f"of every architecture (standalone from {arch.STANDALONE_MIN_SERIES}S, master-slave "
            f"from {arch.MASTER_SLAVE_MIN_SERIES}S)"
        )
    too_long = series > arch.MASTER_SLAVE_MAX_SERIES
    if too_long:
        problems.append(
            f"{series} cells in one string exceed the {arch.MASTER_SLAVE_MAX_SERIES}S per-string "
            f"limit ({arch.MAX_SLAVES} slaves × {max(arch.SLAVE_CELL_COUNTS)}S)"
        )
    too_high = max_v > limit_v + 1e-6
    if too_high:
        problems.append(
            f"{max_v:.0f} V per string ({series}S {chemistry} at its {mol_v:g} V charge limit, "
            f"{nominal_v:.0f} V nominal) exceeds the {limit_v:.0f} V limit"
        )
    if problems:
        raise DesignError("; ".join(problems) + _advice(series, mol_v, too_long, too_high))
    if strings > arch.MAX_STRINGS:
        raise DesignError(
            f"--strings {strings} exceeds the {arch.MAX_STRINGS} string masters one system "
            "master coordinates"
        )
    if topology is Topology.SERIES and strings * max_v > limit_v + 1e-6:
        raise DesignError(
            f"series topology stacks {strings} strings to {strings * max_v:.0f} V "
            f"({strings} × {max_v:.0f} V at the charge limit; {strings * nominal_v:.0f} V "
            f"nominal), above the {limit_v:.0f} V limit; use --topology parallel, or fewer "
            "or shorter strings"
        )


def _advice(series: int, mol_v: float, too_long: bool, too_high: bool) -> str:
    if series < arch.MASTER_SLAVE_MIN_SERIES:
        return ""
    longest = min(arch.MASTER_SLAVE_MAX_SERIES, math.floor(arch.MAX_STRING_VOLTAGE_V / mol_v))
    if too_long and not too_high:
        parts = math.ceil(series / arch.MASTER_SLAVE_MAX_SERIES)
        return (
            f"; use --strings {parts} or more: --strings {parts} --topology series "
            f"--cells {math.ceil(series / parts)} keeps the {series * mol_v:.0f} V"
        )
    return (
        f"; no architecture goes above {arch.MAX_STRING_VOLTAGE_V:.0f} V: use strings of at "
        f"most {longest}S and --strings 2 or more in parallel"
    )


def _standalone_fits(series: int, cell: CellSpec) -> bool:
    max_v = series * _upper_mol_v(cell)
    return (
        arch.STANDALONE_MIN_SERIES <= series <= arch.STANDALONE_EXTENDED_MAX_SERIES
        and max_v <= arch.STANDALONE_MAX_VOLTAGE_V + 1e-6
    )


# --- reasons -----------------------------------------------------------------------------------


def _standalone_reasons(series: int, cell: CellSpec) -> list[str]:
    mol_v = _upper_mol_v(cell)
    lo, hi = arch.STANDALONE_MIN_SERIES, arch.STANDALONE_MAX_SERIES
    if series <= hi:
        fit = f"one string of {series}S is within the standalone board's {lo}S–{hi}S range"
    else:
        fit = (
            f"one string of {series}S is above {hi}S but within the "
            f"{arch.STANDALONE_EXTENDED_MAX_SERIES}S a standalone board accepts up to "
            f"{arch.STANDALONE_MAX_VOLTAGE_V:g} V"
        )
    return [
        fit,
        f"the pack reaches {series * mol_v:.1f} V ({series} × {mol_v:g} V), within the "
        f"standalone board's {arch.STANDALONE_MAX_VOLTAGE_V:g} V",
        "one string and one board: no slaves, no system master",
    ]


def _not_standalone_reasons(series: int, cell: CellSpec) -> list[str]:
    max_v = series * _upper_mol_v(cell)
    lo, hi = arch.STANDALONE_MIN_SERIES, arch.STANDALONE_MAX_SERIES
    ext, ext_v = arch.STANDALONE_EXTENDED_MAX_SERIES, arch.STANDALONE_MAX_VOLTAGE_V
    if series < lo:
        return [f"{series}S is below the standalone board's {lo}S minimum"]
    if series > ext:
        return [
            f"{series}S is above the standalone board's {hi}S ({ext}S only up to {ext_v:g} V; "
            f"this pack reaches {max_v:.1f} V)"
        ]
    return [f"the pack reaches {max_v:.1f} V, above the {ext_v:g} V a standalone board takes"]


def _master_slave_reasons(series: int, cell: CellSpec) -> list[str]:
    max_v = series * _upper_mol_v(cell)
    return [
        f"{series}S per string is within the master-slave range of "
        f"{arch.MASTER_SLAVE_MIN_SERIES}S–{arch.MASTER_SLAVE_MAX_SERIES}S",
        f"{max_v:.1f} V per string at the charge limit is within the "
        f"{arch.MAX_STRING_VOLTAGE_V:.0f} V per-string limit",
    ]


def _slave_layout(
    architecture: Architecture, series: int, strings: int, choice: CellChoice, reasons: list[str]
) -> tuple[int, tuple[int, ...]]:
    """Why a master (and system master) rather than a standalone board, and the slaves."""
    if architecture is Architecture.MASTER_SLAVE:
        reasons.extend(_not_standalone_reasons(series, choice.cell))
    else:
        reasons.append(
            f"{strings} strings: multi-master, each string with its own master, slaves and "
            "contactors, and one system master coordinating them"
        )
    reasons.extend(_master_slave_reasons(series, choice.cell))
    cells_per_slave, slave_cells, slave_reason = _choose_slaves(series)
    reasons.append(slave_reason)
    return cells_per_slave, slave_cells


def _choose_slaves(series: int) -> tuple[int, tuple[int, ...], str]:
    """The slave type needing fewer slaves (the smaller type on a tie), cells spread evenly."""
    options = sorted((math.ceil(series / size), size) for size in arch.SLAVE_CELL_COUNTS)
    count, size = options[0]
    base, extra = divmod(series, count)
    cells = tuple(base + 1 if index < extra else base for index in range(count))
    spread = " + ".join(
        f"{n} × {c}" if n > 1 else f"{c}" for c, n in sorted(Counter(cells).items(), reverse=True)
    )
    others = ", ".join(f"{n} of {s}S" for n, s in options[1:])
    why = "fewer than" if options[1][0] > count else "as few as"
    return (
        size,
        cells,
        (
            f"slaves of {size}S: {count} slave{'s' if count > 1 else ''} carrying {spread} cells "
            f"({why} {others}{'' if why == 'fewer than' else ', on the smaller board'}), within "
            f"the {arch.MAX_SLAVES} slaves of one daisy chain"
        ),
    )


def _topology_reason(topology: Topology, strings: int, series: int, choice: CellChoice) -> str:
    nominal_v = series * choice.cell.chemistry.nominal_voltage_v
    if topology is Topology.SERIES:
        stack_v = strings * series * _upper_mol_v(choice.cell)
        return (
            f"series topology: {strings} strings stack to {strings * nominal_v:.0f} V nominal, "
            f"{stack_v:.0f} V at the charge limit, within the "
            f"{arch.MAX_STRING_VOLTAGE_V:.0f} V limit"
        )
    where = (
        "packs apart, each on its own cable to the bus (electrically parallel)"
        if topology is Topology.DISTRIBUTED
        else "strings side by side on one bus"
    )
    return (
        f"{topology.value} topology: {strings} × {nominal_v:.0f} V strings, "
        f"{strings * choice.capacity_ah:g} Ah in total, {where}; the system master joins a string "
        "only when its voltage is close to the bus and shares current by each string's limits"
    )


def _balancing_reason(
    architecture: Architecture, current_a: float, balancing: BalancingDesign, choice: CellChoice
) -> str:
    bleed = (
        f"{balancing.bleed_resistance_ohm:g} Ω bleed resistors "
        f"({current_a * 1000:.0f} mA at a full cell's {balancing.full_cell_voltage_v:.2f} V)"
    )
    if architecture is Architecture.STANDALONE:
        low, high = arch.STANDALONE_BALANCING_CURRENT_A
        return (
            f"passive balancing on the board at {current_a * 1000:.0f} mA (a standalone board "
            f"bleeds {low * 1000:.0f}–{high * 1000:.0f} mA): {bleed}"
        )
    low, high = arch.MASTER_SLAVE_BALANCING_CURRENT_A
    who = "the master" if architecture is Architecture.MASTER_SLAVE else "each string master"
    return (
        f"passive balancing commanded by {who} at {current_a * 1000:.0f} mA (slaves bleed "
        f"{low * 1000:.0f}–{high * 1000:.0f} mA, here scaled to the {choice.capacity_ah:g} Ah "
        f"cell group at 1 A per {BALANCING_AH_PER_A:g} Ah): {bleed}"
    )


def _strategy_reason(balancing: BalancingDesign, chemistry: str) -> str:
    slope = f"{balancing.plateau_slope_mv_per_pct:g} mV per % SoC between 30 and 70 %"
    if balancing.strategy == "voltage":
        return (
            f"balancing by voltage: {chemistry}'s OCV rises only {slope}, too flat for the SoC "
            "estimates that charge-based balancing plans with; cells are bled when they stand "
            "out near full"
        )
    return f"balancing by charge (each cell's estimated excess): {chemistry}'s OCV rises {slope}"


# --- power path and comms ----------------------------------------------------------------------


def _standalone_path(peak_a: float, sector: Sector, reasons: list[str]) -> PowerPathDesign:
    limit_a = arch.MOSFET_MAX_CURRENT_A
    if peak_a <= limit_a:
        path = size_power_path(PowerPathKind.MOSFET, peak_a, sector.dc_link_capacitance_f)
        assert path is not None  # every current up to the MOSFET limit has a rating
        reasons.append(
            f"peak {peak_a:g} A is within the integrated MOSFET path's {limit_a:g} A: "
            + path.describe()
        )
        return path
    path = _sized_contactors(peak_a, sector)
    reasons.append(
        f"peak {peak_a:g} A exceeds the integrated MOSFET path's {limit_a:g} A: "
        f"{path.describe()}, switched by the standalone board (the cell count still fits it)"
    )
    return path


def _contactor_path(
    string_a: float,
    peak_a: float,
    strings: int,
    branches: int,
    sector: Sector,
    reasons: list[str],
) -> PowerPathDesign:
    path = _sized_contactors(string_a, sector)
    owner = "the master" if strings == 1 else "each string master"
    load = f"peak {peak_a:g} A"
    if branches > 1:
        load += (
            f" shared by {branches} strings ({peak_a / branches:g} A each, "
            f"+{(SHARING_MARGIN - 1) * 100:.0f} % for uneven sharing)"
        )
    elif strings > 1:
        load += " through every string of the stack"
    reasons.append(f"{load}: {owner} switches {path.describe()}")
    return path


def _sized_contactors(current_a: float, sector: Sector) -> PowerPathDesign:
    path = size_power_path(PowerPathKind.CONTACTORS, current_a, sector.dc_link_capacitance_f)
    if path is None:
        raise DesignError(
            f"{current_a:.0f} A per string is above the largest contactor rating "
            f"({CONTACTOR_RATINGS_A[-1]:g} A); share it over more parallel strings (--strings)"
        )
    return path


def _inverter_can(
    architecture: Architecture,
    sector: Sector,
    series: int,
    strings: int,
    topology: Topology | None,
    choice: CellChoice,
    notes: list[str],
) -> bool:
    """A multi-master system of an inverter sector talks to it over the inverter CAN, if the
    bus voltage fits the protocol."""
    if architecture is not Architecture.MULTI_MASTER or not sector.inverter:
        return False
    stacked = strings if topology is Topology.SERIES else 1
    bus_v = stacked * series * _upper_mol_v(choice.cell)
    if bus_v <= arch.INVERTER_CAN_MAX_VOLTAGE_V:
        return True
    notes.append(
        f"the bus reaches {bus_v:.0f} V, above the {arch.INVERTER_CAN_MAX_VOLTAGE_V:g} V the "
        "inverter CAN (Pylontech low-voltage protocol) carries: the inverter bus stays off; "
        "serve SunSpec Modbus to the inverter or PCS instead"
    )
    return False


def _comms(architecture: Architecture, sector: Sector, inverter_can: bool) -> tuple[str, ...]:
    if architecture is Architecture.STANDALONE:
        return (
            "CAN, RS232 and RS485 on the board",
            "charger and vehicle over CAN (charger.dbc, external.dbc)",
        )
    chain = (
        "master ↔ slaves: internal CAN protocol on the daisy chain (internal.dbc), "
        f"up to {arch.MAX_SLAVES} slaves"
    )
    if architecture is Architecture.MASTER_SLAVE:
        return (
            chain,
            "master ↔ outside: CAN (charger.dbc, external.dbc), RS485 or RS232",
        )
    if inverter_can:
        outside = "system master ↔ inverter: Victron/Pylontech-style inverter CAN"
    elif sector.inverter:
        outside = "system master ↔ inverter or PCS: SunSpec Modbus"
    else:
        outside = "system master ↔ outside: CAN, RS485 or RS232"
    return (f"each string's {chain}", "each string master ↔ the system master", outside)
